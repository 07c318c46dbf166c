//! `POST /auth/login`: email and password for a token set, behind a limit on failed attempts
//! per account and per address, so that guessing costs days, not minutes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, StatusCode};
use serde::Deserialize;

use super::AppState;
use super::extract::JsonBody;
use super::reject::ApiError;
use crate::accounts::{AccountError, TokenSet, normalize_email};

/// Failed sign-ins allowed per account in a window.
pub const MAX_FAILURES_PER_ACCOUNT: u32 = 5;
/// Failed sign-ins allowed per address in a window (several people behind one NAT).
pub const MAX_FAILURES_PER_ADDRESS: u32 = 20;
/// The window: the counts start again this long after their first failure.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The most accounts and addresses tracked at once; past it, sign-ins are refused until
/// windows expire (an attacker filling the table locks sign-in, never opens it).
pub const MAX_TRACKED: usize = 10_000;

/// Failure counts by key (an email, an address).
#[derive(Debug, Default)]
pub(crate) struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    /// Whether `key` may try again now (at most `max` failures in the window).
    fn allowed(&self, key: &str, max: u32, now: Instant) -> bool {
        let mut map = self.failures.lock().expect("login limiter lock");
        match map.get(key) {
            Some((n, since)) if now.duration_since(*since) < FAILURE_WINDOW => *n < max,
            _ => {
                if map.len() >= MAX_TRACKED {
                    map.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
                }
                map.len() < MAX_TRACKED || map.contains_key(key)
            }
        }
    }

    fn failed(&self, key: &str, now: Instant) {
        let mut map = self.failures.lock().expect("login limiter lock");
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            return;
        }
        let entry = map.entry(key.to_owned()).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .expect("login limiter lock")
            .remove(key);
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginRequest {
    email: String,
    password: String,
}

pub(crate) async fn login(
    State(state): State<AppState>,
    extensions: Extensions,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<Json<TokenSet>, ApiError> {
    let body = body.ok_or_else(|| ApiError::bad_request("email and password are required"))?;
    let account_key = format!(
        "account:{}",
        normalize_email(&body.email).unwrap_or_default()
    );
    let address: Option<IpAddr> = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let address_key = address.map(|ip| format!("address:{ip}"));
    let limiter = &state.logins;
    let now = Instant::now();
    let open = limiter.allowed(&account_key, MAX_FAILURES_PER_ACCOUNT, now)
        && address_key
            .as_deref()
            .is_none_or(|k| limiter.allowed(k, MAX_FAILURES_PER_ADDRESS, now));
    if !open {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed sign-ins; try again in 15 minutes",
        ));
    }
    match state
        .accounts
        .check_password(&body.email, &body.password)
        .await
    {
        Ok(account) => {
            limiter.succeeded(&account_key);
            Ok(Json(state.accounts.token_set(&account).await?))
        }
        Err(e @ AccountError::WrongCredentials) => {
            limiter.failed(&account_key, now);
            if let Some(k) = &address_key {
                limiter.failed(k, now);
            }
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_close_a_key_for_its_window_and_a_success_reopens_it() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES_PER_ACCOUNT {
            assert!(l.allowed("a", MAX_FAILURES_PER_ACCOUNT, t0));
            l.failed("a", t0);
        }
        assert!(!l.allowed("a", MAX_FAILURES_PER_ACCOUNT, t0));
        assert!(
            l.allowed("b", MAX_FAILURES_PER_ACCOUNT, t0),
            "keys are apart"
        );
        assert!(l.allowed("a", MAX_FAILURES_PER_ACCOUNT, t0 + FAILURE_WINDOW));
        l.succeeded("a");
        assert!(l.allowed("a", MAX_FAILURES_PER_ACCOUNT, t0));
    }

    #[test]
    fn a_full_table_refuses_newcomers_until_windows_expire() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED {
            l.failed(&format!("k{i}"), t0);
        }
        assert!(!l.allowed("new", 5, t0));
        assert!(l.allowed("k1", 5, t0), "tracked keys keep their own count");
        assert!(l.allowed("new", 5, t0 + FAILURE_WINDOW));
    }
}
