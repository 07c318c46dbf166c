//! The connector's main loop: connect, serve, refresh the token, back off, obey requests.
//!
//! ```text
//!            connect()                      tunnel up
//! Disconnected ───────▶ Connecting ───────────────────▶ Connected ──┐ token near expiry:
//!      ▲                  ▲     │ failed                  │   ▲     │ fetch, wait for idle,
//!      │ disconnect()     │     ▼                         │   └─────┘ open the new tunnel
//!      └──────────────── BackingOff ◀─────────────────────┘           first, close the old
//!                         (full jitter)        tunnel lost
//! ```

use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;
use tracing::{info, warn};

use sluice_proto::crypto::CipherKind;

use crate::backoff::Backoff;
use crate::channel;
use crate::config::ServeConfig;
use crate::credentials::{CredentialSource, Credentials};
use crate::tunnel::{self, Tunnel};
use crate::{Error, State};

/// Shortest wait between two refresh attempts.
const MIN_REFRESH_WAIT: Duration = Duration::from_secs(1);

/// What the application wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    Connected,
    Disconnected,
    Stopped,
}

/// The application's wish and a counter bumped by every `connect()`, so that a `connect()`
/// while backing off retries at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Desired {
    pub(crate) want: Want,
    pub(crate) generation: u64,
}

#[derive(Debug)]
pub(crate) struct Supervisor {
    pub(crate) edge: String,
    pub(crate) source: CredentialSource,
    pub(crate) serve: Arc<ServeConfig>,
    pub(crate) backoff: Backoff,
    pub(crate) refresh_before: Duration,
    pub(crate) allow_gcm_key_reuse: bool,
}

/// How serving a tunnel ended.
enum Served {
    Lost(Error, Instant),
    Disconnect,
    Stop,
}

struct Run {
    cfg: Supervisor,
    desired: watch::Receiver<Desired>,
    state: watch::Sender<State>,
    /// SHA-256 of every aes-gcm key used on a connection.
    used_gcm_keys: HashSet<[u8; 32]>,
    rng: StdRng,
}

/// Runs until stopped. Returns the fatal error, if one stopped it.
pub(crate) async fn run(
    cfg: Supervisor,
    desired: watch::Receiver<Desired>,
    state: watch::Sender<State>,
) {
    let mut run = Run {
        cfg,
        desired,
        state,
        used_gcm_keys: HashSet::new(),
        rng: StdRng::from_entropy(),
    };
    let outcome = run.main().await;
    if let Some(e) = &outcome {
        warn!(error = %e, "connector stopped");
    }
    run.state.send_replace(State::Stopped(outcome));
}

impl Run {
    fn want(&self) -> Want {
        self.desired.borrow().want
    }

    fn set(&self, state: State) {
        self.state.send_replace(state);
    }

    /// Waits for the application to change its mind; `Stopped` once every handle is gone.
    async fn changed(&mut self) -> Want {
        changed(&mut self.desired).await
    }

    async fn main(&mut self) -> Option<Error> {
        let mut failures: u32 = 0;
        loop {
            self.desired.borrow_and_update();
            match self.want() {
                Want::Stopped => return None,
                Want::Disconnected => {
                    self.set(State::Disconnected);
                    failures = 0;
                    if self.changed().await == Want::Stopped {
                        return None;
                    }
                    continue;
                }
                Want::Connected => {}
            }
            self.set(State::Connecting { attempt: failures });
            let mut desired = self.desired.clone();
            let attempt = tokio::select! {
                r = self.attempt() => Some(r),
                w = changed(&mut desired) => {
                    if w == Want::Stopped { return None; }
                    None
                }
            };
            let error = match attempt {
                None => continue,
                Some(Ok((tunnel, creds))) => match self.serve(tunnel, creds).await {
                    Served::Stop => return None,
                    Served::Disconnect => continue,
                    Served::Lost(e, since) => {
                        if since.elapsed() >= self.cfg.backoff.stable_after {
                            failures = 0;
                        }
                        e
                    }
                },
                Some(Err(e)) => e,
            };
            // Only a new token can fix bad or mismatched credentials: stop if none can come.
            if matches!(error, Error::Config(_))
                || (matches!(error, Error::Credentials(_) | Error::ProtocolMismatch(_))
                    && !self.cfg.source.can_refresh())
            {
                return Some(error);
            }
            failures = failures.saturating_add(1);
            let delay = self.cfg.backoff.delay(failures, &mut self.rng);
            let until = Instant::now() + delay;
            warn!(error = %error, attempt = failures, retry_in = ?delay, "not connected; backing off");
            self.set(State::BackingOff {
                until,
                attempt: failures,
                error,
            });
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                w = self.changed() => {
                    if w == Want::Stopped { return None; }
                    // connect() again: retry now; disconnect(): the loop's top handles it.
                }
            }
        }
    }

    /// Fetches credentials and opens a tunnel with them.
    async fn attempt(&mut self) -> Result<(Arc<Tunnel>, Credentials), Error> {
        let creds = self.cfg.source.fetch().await?;
        self.open(&creds).await.map(|t| (t, creds))
    }

    async fn open(&mut self, creds: &Credentials) -> Result<Arc<Tunnel>, Error> {
        if creds.remaining(SystemTime::now()).is_zero() {
            return Err(Error::Credentials(format!(
                "the token for {} has expired",
                creds.hostname()
            )));
        }
        let gcm_key = (creds.claims().cipher == CipherKind::AesGcm
            && !self.cfg.allow_gcm_key_reuse)
            .then(|| Sha256::digest(creds.claims().aes_key).into());
        if let Some(k) = &gcm_key
            && self.used_gcm_keys.contains(k)
        {
            return Err(Error::Credentials(
                "this aes-gcm key was already used on a connection, and reusing it would repeat \
                 nonces; fresh credentials are needed (or use aes-gcm-siv)"
                    .into(),
            ));
        }
        let used = &mut self.used_gcm_keys;
        let tunnel = tunnel::connect(
            &self.cfg.edge,
            creds,
            self.cfg.serve.clone(),
            channel::start,
            || {
                if let Some(k) = gcm_key {
                    used.insert(k);
                }
            },
        )
        .await?;
        info!(
            host = %creds.hostname(),
            edge = %self.cfg.edge,
            version = %creds.claims().protocol_version,
            cipher = %creds.claims().cipher,
            "tunnel connected"
        );
        self.set(State::Connected {
            hostname: creds.hostname().to_string(),
            since: SystemTime::now(),
            token_expires: creds.expires_at(),
        });
        Ok(tunnel)
    }

    /// Serves a tunnel until it is lost or the application asks otherwise; replaces it with a
    /// fresh one before its token expires.
    async fn serve(&mut self, mut tunnel: Arc<Tunnel>, mut creds: Credentials) -> Served {
        let mut since = Instant::now();
        loop {
            let wait = if self.cfg.source.can_refresh() {
                refresh_wait(creds.remaining(SystemTime::now()), self.cfg.refresh_before)
            } else {
                Duration::from_secs(365 * 24 * 3600)
            };
            tokio::select! {
                e = tunnel.ended() => return Served::Lost(e, since),
                w = self.changed() => match w {
                    Want::Connected => {}
                    Want::Disconnected => {
                        info!("disconnecting on request");
                        tunnel.close(Error::Stopped).await;
                        return Served::Disconnect;
                    }
                    Want::Stopped => {
                        tunnel.close(Error::Stopped).await;
                        return Served::Stop;
                    }
                },
                _ = tokio::time::sleep(wait) => {
                    if let Some((t, c)) = self.refresh(&tunnel, &creds).await {
                        tunnel.close(Error::Stopped).await;
                        (tunnel, creds, since) = (t, c, Instant::now());
                    }
                }
            }
        }
    }

    /// Fetches new credentials; once they are new, waits for the tunnel to be idle (at most
    /// half the time left) and opens a tunnel with them. `None` leaves the old one in place.
    async fn refresh(
        &mut self,
        tunnel: &Arc<Tunnel>,
        creds: &Credentials,
    ) -> Option<(Arc<Tunnel>, Credentials)> {
        let fresh = match self.cfg.source.fetch().await {
            Ok(c) if c.token() != creds.token() && c.expires_at() > creds.expires_at() => c,
            Ok(_) => {
                warn!(host = %creds.hostname(), "the credentials source has no newer token yet");
                return None;
            }
            Err(e) => {
                warn!(error = %e, "cannot refresh the credentials");
                return None;
            }
        };
        let left = creds.remaining(SystemTime::now());
        info!(host = %creds.hostname(), "new token; switching tunnels once idle");
        tokio::select! {
            _ = tunnel.wait_idle() => {}
            _ = tokio::time::sleep(left / 2) => {}
        }
        match self.open(&fresh).await {
            Ok(t) => Some((t, fresh)),
            Err(e) => {
                warn!(error = %e, "cannot connect with the new token; keeping the current tunnel");
                None
            }
        }
    }
}

async fn changed(desired: &mut watch::Receiver<Desired>) -> Want {
    match desired.changed().await {
        Ok(()) => desired.borrow_and_update().want,
        Err(_) => Want::Stopped,
    }
}

/// How long to wait before fetching new credentials: until `before` the expiry, but never
/// later than halfway there, and never less than a second.
pub(crate) fn refresh_wait(remaining: Duration, before: Duration) -> Duration {
    remaining
        .saturating_sub(before)
        .max(remaining / 2)
        .max(MIN_REFRESH_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_before_expiry() {
        let s = Duration::from_secs;
        assert_eq!(refresh_wait(s(3600), s(300)), s(3300));
        assert_eq!(refresh_wait(s(400), s(300)), s(200));
        assert_eq!(refresh_wait(s(1), s(300)), s(1));
        assert_eq!(refresh_wait(s(0), s(300)), s(1));
    }
}
