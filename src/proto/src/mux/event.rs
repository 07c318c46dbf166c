//! What the multiplexer tells its shell.

use bytes::Bytes;
use std::net::IpAddr;

use super::channel::ChannelHandle;

/// Something the shell must act on. Events are notifications: the state they announce is read
/// through the multiplexer's methods ([`super::Multiplexer::recv`], `can_send`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer opened a channel (client side only). Connect it to its destination.
    Opened {
        /// The new channel.
        channel: ChannelHandle,
        /// The caller's address as the server reported it (`None` if it sent none usable).
        caller: Option<IpAddr>,
    },
    /// Data, or the end of it, is ready: call `recv` until it answers `Empty`.
    Readable {
        /// The channel.
        channel: ChannelHandle,
    },
    /// A channel's local source may be read again: `can_send` is true.
    Writable {
        /// The channel.
        channel: ChannelHandle,
    },
    /// The channel was closed by the peer or by the multiplexer itself (never for a channel the
    /// shell closed). Stop reading its source; `recv` still hands out what arrived before.
    Closed {
        /// The channel.
        channel: ChannelHandle,
        /// Why.
        cause: CloseCause,
    },
    /// A tunnel that stopped taking input (a channel, or the tunnel, was over its cap) takes it
    /// again: read the socket and call `handle_input`.
    InputReady,
}

/// Why the multiplexer closed a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCause {
    /// The peer sent CLOSE.
    PeerClosed,
    /// The peer opened a second channel with the same id; both are closed.
    DuplicateId,
    /// No data either way for the channel idle timeout.
    Idle,
    /// The channel's sink fell behind: its undelivered bytes passed `channel_incoming_max`,
    /// or it held the most when the tunnel's passed `tunnel_incoming_max`. Undelivered bytes
    /// are dropped: the sink should be aborted, not closed cleanly.
    Overrun,
}

impl CloseCause {
    /// Whether what was still queued for the channel's sink was dropped with it: the sink
    /// must then be aborted, not closed cleanly (only a peer's CLOSE delivers everything).
    pub fn discards_undelivered(self) -> bool {
        self != CloseCause::PeerClosed
    }
}

/// The answer of [`super::Multiplexer::recv`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recv {
    /// Bytes for the local sink. Report them with `consumed` once written.
    Data(Bytes),
    /// Nothing now; a [`Event::Readable`] follows when there is.
    Empty,
    /// The channel is closed and drained (or the handle is stale): close the sink.
    Closed,
}
