//! The per-channel wakeups shared by a tunnel's tasks and a channel's task. A leaf: the
//! tunnel creates and signals slots, the channel waits on them.

use tokio::sync::Notify;

use sluice_proto::mux::ChannelHandle;

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
