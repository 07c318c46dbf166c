//! The per-channel wakeups shared by a tunnel's tasks and a channel's task. A leaf: the
//! tunnel creates and signals slots, the channel waits on them.

use tokio::sync::Notify;
use tracing::debug;

use sluice_proto::mux::shell::Waiters;
use sluice_proto::mux::{ChannelHandle, CloseCause};

use crate::sync::Latch;

/// The per-channel wakeups a channel task waits on.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) handle: ChannelHandle,
    /// Data (or the end) is ready to `recv`.
    pub(crate) readable: Notify,
    /// The local endpoint may be read again.
    pub(crate) writable: Notify,
    /// Stop reading the endpoint: the channel is closed (by either side) or the tunnel ended.
    pub(crate) done: Latch,
    /// Stop writing to the endpoint too: the channel was killed (idle, overrun) and what was
    /// still queued for it is gone.
    pub(crate) abort: Latch,
}

impl Slot {
    /// The wakeups of a channel the edge just opened.
    pub(crate) fn new(handle: ChannelHandle) -> Self {
        Self {
            handle,
            readable: Notify::new(),
            writable: Notify::new(),
            done: Latch::default(),
            abort: Latch::default(),
        }
    }
}

impl Waiters for Slot {
    fn readable(&self) {
        self.readable.notify_one();
    }

    fn writable(&self) {
        self.writable.notify_one();
    }

    fn closed(&self, cause: CloseCause) {
        debug!(channel = ?self.handle, ?cause, "channel closed by the edge side");
        if cause.discards_undelivered() {
            self.abort.set();
        }
        self.done.set();
        self.readable.notify_one();
    }

    fn tunnel_ended(&self) {
        self.done.set();
        self.readable.notify_one();
        self.writable.notify_one();
    }
}
