//! Admission bookkeeping shared by every path a connection takes: the pending count a
//! connection holds while it reads its hello or handshake, and the refusal (with its TLS
//! alert) that turns it away. A leaf of `worker/`: `conn`, `tunnel` and `channel` all use it,
//! and it uses none of them, so imports between them run one way.

use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;
use tracing::debug;

use sluice_proto::sni::{AlertDescription, fatal_alert};

use super::Worker;
use crate::metrics::Refusal;
use crate::quota::Held;

/// How long an alert may take to write before the connection is just closed.
const ALERT_TIMEOUT: Duration = Duration::from_secs(1);

/// Counts a connection as pending (in its hello or handshake) while alive.
/// The edge-wide count is the [`Held`] unit; the worker's own is for its metrics and drain.
pub(super) struct Pending(Rc<Worker>, #[allow(dead_code)] Held);

impl Pending {
    pub(super) fn new(w: &Rc<Worker>, held: Held) -> Self {
        w.pending.set(w.pending.get() + 1);
        Self(w.clone(), held)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.set(self.0.pending.get() - 1);
    }
}

/// Why a connection is turned away, and what it is told.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) reason: Refusal,
    pub(super) alert: Option<(AlertDescription, u16)>,
}

impl Refused {
    pub(super) fn silent(reason: Refusal) -> Self {
        Self {
            reason,
            alert: None,
        }
    }

    pub(super) fn tls(reason: Refusal, alert: AlertDescription, record_version: u16) -> Self {
        Self {
            reason,
            alert: Some((alert, record_version)),
        }
    }
}

/// Counts the refusal, sends the alert if there is one, and closes.
pub(super) async fn refuse(w: &Worker, mut stream: TcpStream, refused: Refused) {
    debug!(reason = refused.reason.label(), "refused");
    w.m().refused(refused.reason);
    if let Some((alert, version)) = refused.alert {
        let bytes = fatal_alert(alert, version).to_vec();
        let _ = monoio::time::timeout(ALERT_TIMEOUT, async {
            let (res, _) = stream.write_all(bytes).await;
            if res.is_ok() {
                let _ = stream.shutdown().await;
            }
        })
        .await;
    }
}
