//! Controlling a running connector.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::supervisor::{Desired, Want};
use crate::{Error, State};

/// A running connector: ask it to connect, disconnect or stop, and watch its state.
///
/// Clones control the same connector. When every clone is dropped the connector stops.
#[derive(Debug, Clone)]
pub struct ConnectorHandle {
    desired: Arc<watch::Sender<Desired>>,
    state: watch::Receiver<State>,
}

impl ConnectorHandle {
    pub(crate) fn new(desired: watch::Sender<Desired>, state: watch::Receiver<State>) -> Self {
        Self {
            desired: Arc::new(desired),
            state,
        }
    }

    /// Connects (and keeps reconnecting). While backing off, this retries at once.
    pub fn connect(&self) {
        self.desired.send_modify(|d| {
            if d.want != Want::Stopped {
                d.want = Want::Connected;
                d.generation += 1;
            }
        });
    }

    /// Closes the tunnel and stays disconnected until [`Self::connect`].
    pub fn disconnect(&self) {
        self.desired.send_modify(|d| {
            if d.want != Want::Stopped {
                d.want = Want::Disconnected;
            }
        });
    }

    /// Stops the connector for good (the tunnel is closed); see [`Self::wait`].
    pub fn shutdown(&self) {
        self.desired.send_modify(|d| d.want = Want::Stopped);
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// A receiver of every state change.
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    /// Waits until the state satisfies `pred`, at most `timeout`; returns that state, or the
    /// last one seen on timeout.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        pred: impl FnMut(&State) -> bool,
    ) -> Result<State, State> {
        let mut rx = self.state.clone();
        match tokio::time::timeout(timeout, rx.wait_for(pred)).await {
            Ok(Ok(s)) => Ok(s.clone()),
            _ => Err(self.state()),
        }
    }

    /// Waits until the connector has stopped (after [`Self::shutdown`], or a fatal error,
    /// which is returned).
    pub async fn wait(&self) -> Result<(), Error> {
        let mut rx = self.state.clone();
        let stopped = rx
            .wait_for(|s| matches!(s, State::Stopped(_)))
            .await
            .map(|s| s.clone());
        match stopped {
            Ok(State::Stopped(Some(e))) => Err(e),
            _ => Ok(()),
        }
    }
}
