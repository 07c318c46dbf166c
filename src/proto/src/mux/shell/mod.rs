//! The runtime-free half of a multiplexer shell: what every shell around a [`Multiplexer`]
//! must do the same way, written once.
//!
//! A shell owns the tunnel socket, the channels' local ends and the waiting; the
//! [`Multiplexer`] owns the protocol. Between the two sits a contract that the edge, the
//! connector, the load generator and the test peer each used to re-derive from the module
//! documentation of [`crate::mux`]. Here it is as code (the way quinn-proto leaves only the
//! socket loop to quinn):
//!
//! - [`Slots`]: the shell's per-channel state, found by [`ChannelHandle`]; a stale handle (a
//!   channel that ended, whose index a newer channel reuses) finds nothing.
//! - [`dispatch`]: turns the multiplexer's events into per-channel wakeups ([`Waiters`]):
//!   readable, writable, closed (aborting the sink when the multiplexer killed the channel),
//!   and says whether the tunnel takes input again after a stall. [`end_all`] wakes every
//!   channel when the tunnel ends (the shell keeps the first cause).
//! - [`Inbox`]: the tunnel's read buffer and the stall rule: after a stall, what is left in
//!   the buffer is fed before the socket is read again.
//! - [`recv_batch`]: what is queued for one channel's sink, up to a batch, for one vectored
//!   write; the shell reports it `consumed` once written.
//! - [`WriteCursor`]: segments written in order across partial vectored writes
//!   ([`WriteCursor::write_with`] for shells whose writes borrow slices).
//! - [`Endpoint`] and [`serve_channels`]: for shells that serve every channel from one loop
//!   with synchronous, non-blocking local ends.
//! - [`ClientShell`]: the one client shell of that kind, all but its socket and its wait
//!   (`turn`: dispatch, serve the channels, dispatch, frames). The load generator's tunnels
//!   (tokio, built-in origins) and the test tunnel peer in `sluice-testkit` (a thread, std
//!   sockets, poll(2), local ends that are sockets too) are its two loops.
//!
//! What it does not do: wait, open sockets, spawn tasks, or choose a runtime. monoio's
//! owned buffers and tokio's borrowed ones each keep their own loop around these pieces.

mod batch;
mod client;
mod cursor;
mod dispatch;
mod endpoint;
mod inbox;
mod slots;
#[cfg(test)]
mod tests;

pub use batch::{Batch, recv_batch};
pub use client::ClientShell;
pub use cursor::WriteCursor;
pub use dispatch::{Waiters, dispatch, end_all};
pub use endpoint::{Endpoint, EndpointError, Produced, Served, serve_channels};
pub use inbox::Inbox;
pub use slots::Slots;

#[allow(unused_imports)]
use super::{ChannelHandle, Multiplexer};
