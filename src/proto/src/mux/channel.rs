//! Per-channel state: what is queued each way and where flow control stands.

use bytes::Bytes;
use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

use crate::frame::ChannelId;

/// The shell's name for a channel: O(1) to resolve, and stale once the channel is gone (a
/// reused slot has a new generation), so a late call can never touch a newer channel.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelHandle {
    pub(super) index: u32,
    pub(super) generation: u32,
}

impl ChannelHandle {
    /// A small integer unique among the tunnel's open channels (for the shell's own tables).
    pub fn index(self) -> usize {
        self.index as usize
    }
}

impl fmt::Debug for ChannelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ch{}.{}", self.index, self.generation)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Open,
    /// The shell closed it; our CLOSE is queued behind its data. Late input is dropped.
    LocalClosing,
    /// The peer closed it (or we killed it); `recv` drains what arrived, then it is removed.
    RemoteClosed,
}

#[derive(Debug)]
pub(super) enum OutItem {
    New,
    Data(Bytes),
    Close,
}

#[derive(Debug)]
pub(super) struct Channel {
    pub(super) id: ChannelId,
    pub(super) generation: u32,
    pub(super) phase: Phase,
    pub(super) caller: Option<IpAddr>,
    /// Received, not yet handed out by `recv`.
    pub(super) incoming: VecDeque<Bytes>,
    /// Received, not yet reported consumed: queued plus handed out.
    pub(super) incoming_pending: usize,
    /// We sent PAUSE and owe a RESUME.
    pub(super) pause_sent: bool,
    /// Bytes received since PAUSE was sent (what was in flight), while `pause_sent`.
    pub(super) since_pause: usize,
    /// Whether the sink took bytes during the tunnel's current stall.
    pub(super) drained_in_stall: bool,
    /// A Readable event is outstanding (cleared when `recv` answers Empty).
    pub(super) readable_signalled: bool,
    pub(super) outgoing: VecDeque<OutItem>,
    /// DATA bytes queued in `outgoing`.
    pub(super) outgoing_bytes: usize,
    /// In the round-robin list.
    pub(super) scheduled: bool,
    /// The peer sent PAUSE.
    pub(super) peer_paused: bool,
    /// `can_send` said no; a Writable event is owed when it turns yes.
    pub(super) source_blocked: bool,
    pub(super) last_activity: Instant,
}

impl Channel {
    pub(super) fn new(
        id: ChannelId,
        generation: u32,
        caller: Option<IpAddr>,
        now: Instant,
    ) -> Self {
        Self {
            id,
            generation,
            phase: Phase::Open,
            caller,
            incoming: VecDeque::new(),
            incoming_pending: 0,
            pause_sent: false,
            since_pause: 0,
            drained_in_stall: false,
            readable_signalled: false,
            outgoing: VecDeque::new(),
            outgoing_bytes: 0,
            scheduled: false,
            peer_paused: false,
            source_blocked: false,
            last_activity: now,
        }
    }
}
