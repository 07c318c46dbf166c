//! What the connector is doing, as reported through [`crate::ConnectorHandle::state`].

use std::time::{Instant, SystemTime};

use crate::Error;

/// The connector's state. Changes are published on a `tokio::sync::watch` channel.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Dialling the edge or in the handshake. `attempt` counts the failures since the last
    /// stable connection (0 for a first try).
    Connecting {
        /// Consecutive failed attempts before this one.
        attempt: u32,
    },
    /// The tunnel is up and serving channels.
    Connected {
        /// The tunnel's primary host name.
        hostname: String,
        /// When it came up (wall clock, for display).
        since: SystemTime,
        /// When its token expires (wall clock).
        token_expires: SystemTime,
    },
    /// Waiting before the next attempt after a failure.
    BackingOff {
        /// When the next attempt starts.
        until: Instant,
        /// Consecutive failed attempts so far.
        attempt: u32,
        /// Why the last attempt failed or the last tunnel ended.
        error: Error,
    },
    /// Not connected, by request ([`crate::ConnectorHandle::disconnect`], or built with
    /// `autoconnect(false)`); [`crate::ConnectorHandle::connect`] starts again.
    Disconnected,
    /// Shut down for good; `Some` when a fatal error stopped it.
    Stopped(Option<Error>),
}

impl State {
    /// A short name: `connecting`, `connected`, `backing-off`, `disconnected`, `stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connecting { .. } => "connecting",
            Self::Connected { .. } => "connected",
            Self::BackingOff { .. } => "backing-off",
            Self::Disconnected => "disconnected",
            Self::Stopped(_) => "stopped",
        }
    }

    /// Whether a tunnel is up.
    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected { .. })
    }

    /// The state as a JSON object (what the control endpoint answers to `GET /state`).
    pub fn to_json(&self) -> serde_json::Value {
        let unix = |t: &SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        };
        let mut v = serde_json::json!({ "state": self.name() });
        match self {
            Self::Connecting { attempt } => v["attempt"] = (*attempt).into(),
            Self::Connected {
                hostname,
                since,
                token_expires,
            } => {
                v["hostname"] = hostname.clone().into();
                v["since"] = unix(since).into();
                v["token_expires"] = unix(token_expires).into();
            }
            Self::BackingOff {
                until,
                attempt,
                error,
            } => {
                let left = until.saturating_duration_since(Instant::now());
                v["attempt"] = (*attempt).into();
                v["retry_in_secs"] = left.as_secs_f64().into();
                v["error"] = error.to_string().into();
            }
            Self::Disconnected => {}
            Self::Stopped(error) => {
                if let Some(e) = error {
                    v["error"] = e.to_string().into();
                }
            }
        }
        v
    }
}
