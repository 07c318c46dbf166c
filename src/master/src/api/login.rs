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
    /// Counts one attempt for `key` and says whether it may go ahead (at most `max` attempts
    /// in the window that did not end in a success). Counting before the password is checked,
    /// under one lock, is what makes the cap hold for guesses sent in parallel.
    fn attempt(&self, key: &str, max: u32, now: Instant) -> bool {
        let mut map = self.failures.lock().expect("login limiter lock");
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            map.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
            if map.len() >= MAX_TRACKED {
                return false;
            }
        }
        let entry = map.entry(key.to_owned()).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_WINDOW {
            *entry = (0, now);
        }
        if entry.0 >= max {
            return false;
        }
        entry.0 += 1;
        true
    }

    /// Takes back one attempt of `key` (it succeeded, or another key refused it).
    fn refund(&self, key: &str) {
        let mut map = self.failures.lock().expect("login limiter lock");
        if let Some(entry) = map.get_mut(key) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }

    /// A success clears the account's count.
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
    let open = limiter.attempt(&account_key, MAX_FAILURES_PER_ACCOUNT, now);
    let open = open
        && match address_key.as_deref() {
            Some(k) if !limiter.attempt(k, MAX_FAILURES_PER_ADDRESS, now) => {
                limiter.refund(&account_key);
                false
            }
            _ => true,
        };
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
            if let Some(k) = &address_key {
                limiter.refund(k);
            }
            Ok(Json(state.accounts.token_set(&account).await?))
        }
        Err(e) => {
            // A failure keeps its attempt counted; only a wrong password is the caller's.
            if !matches!(e, AccountError::WrongCredentials) {
                limiter.refund(&account_key);
                if let Some(k) = &address_key {
                    limiter.refund(k);
                }
            }
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_close_a_key_for_its_window_and_a_success_reopens_it() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES_PER_ACCOUNT {
            assert!(l.attempt("a", MAX_FAILURES_PER_ACCOUNT, t0));
        }
        // Attempts in flight count: a parallel guess past the cap is refused before hashing.
        assert!(!l.attempt("a", MAX_FAILURES_PER_ACCOUNT, t0));
        assert!(
            l.attempt("b", MAX_FAILURES_PER_ACCOUNT, t0),
            "keys are apart"
        );
        l.refund("a");
        assert!(
            l.attempt("a", MAX_FAILURES_PER_ACCOUNT, t0),
            "a refund reopens one"
        );
        assert!(!l.attempt("a", MAX_FAILURES_PER_ACCOUNT, t0));
        assert!(l.attempt("a", MAX_FAILURES_PER_ACCOUNT, t0 + FAILURE_WINDOW));
        l.succeeded("a");
        assert!(l.attempt("a", MAX_FAILURES_PER_ACCOUNT, t0));
    }

    #[test]
    fn a_full_table_refuses_newcomers_until_windows_expire() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED {
            assert!(l.attempt(&format!("k{i}"), 5, t0));
        }
        assert!(!l.attempt("new", 5, t0));
        assert!(l.attempt("k1", 5, t0), "tracked keys keep their own count");
        assert!(l.attempt("new", 5, t0 + FAILURE_WINDOW));
    }
}
