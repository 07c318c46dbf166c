//! A one-way flag that tasks can wait on.

use tokio::sync::watch;

/// Set once, never cleared; every waiter wakes when it is set, including later ones.
#[derive(Debug)]
pub(crate) struct Latch(watch::Sender<bool>);

impl Default for Latch {
    fn default() -> Self {
        Self(watch::Sender::new(false))
    }
}

impl Latch {
    pub(crate) fn set(&self) {
        self.0.send_replace(true);
    }

    pub(crate) fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    pub(crate) async fn wait(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, which outlives this borrow: wait_for cannot see it closed.
        let _ = rx.wait_for(|set| *set).await;
    }
}
