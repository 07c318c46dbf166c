//! From the multiplexer's events to the wakeups of the channels they concern.

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use super::Slots;
use crate::mux::{ChannelHandle, CloseCause, Event, Multiplexer};
use crate::random::Random;

/// What a channel's local end waits on, in the shell's runtime. Each call only wakes: the
/// state it announces is read from the multiplexer ([`Multiplexer::recv`],
/// [`Multiplexer::can_send`]).
pub trait Waiters {
    /// Data, or the end of it, is ready to `recv`.
    fn readable(&self);
    /// The local source may be read again.
    fn writable(&self);
    /// The multiplexer closed the channel (the peer did, or it killed it). Stop reading the
    /// source and wake the sink. When `cause.discards_undelivered()`, what was queued for the
    /// sink is gone: abort it (even mid-write) rather than close it cleanly, so that it never
    /// takes a cut-short answer for a whole one.
    fn closed(&self, cause: CloseCause);
    /// The tunnel ended: stop both directions.
    fn tunnel_ended(&self);
}

/// Shared slots (`Rc` on a thread-per-core runtime, `Arc` on a work-stealing one) wake what
/// they point to.
macro_rules! shared_waiters {
    ($($ptr:ident),*) => {$(
        impl<T: Waiters + ?Sized> Waiters for $ptr<T> {
            fn readable(&self) {
                (**self).readable();
            }
            fn writable(&self) {
                (**self).writable();
            }
            fn closed(&self, cause: CloseCause) {
                (**self).closed(cause);
            }
            fn tunnel_ended(&self) {
                (**self).tunnel_ended();
            }
        }
    )*};
}

shared_waiters!(Rc, Arc);

/// Drains the multiplexer's events into wakeups of `slots`. A channel the peer opens (client
/// side) gets the state `open` makes for it, stored before any later event of the same batch
/// is looked up (`None` refuses it: the channel is closed). Events for channels without a
/// slot (the shell let go of them) are dropped. Returns whether a stall ended: the tunnel takes
/// input again, and [`super::Inbox::feed`] must run before the socket is read.
pub fn dispatch<R: Random, S: Waiters>(
    mux: &mut Multiplexer<R>,
    slots: &mut Slots<S>,
    mut open: impl FnMut(ChannelHandle, Option<IpAddr>) -> Option<S>,
) -> bool {
    let mut input_ready = false;
    while let Some(event) = mux.poll_event() {
        match event {
            Event::Opened { channel, caller } => match open(channel, caller) {
                Some(s) => {
                    slots.insert(channel, s);
                }
                None => mux.close(channel),
            },
            Event::Readable { channel } => {
                if let Some(s) = slots.get(channel) {
                    s.readable();
                }
            }
            Event::Writable { channel } => {
                if let Some(s) = slots.get(channel) {
                    s.writable();
                }
            }
            Event::Closed { channel, cause } => {
                if let Some(s) = slots.get(channel) {
                    s.closed(cause);
                }
            }
            Event::InputReady => input_ready = true,
        }
    }
    input_ready
}

/// Tells every channel the tunnel ended.
pub fn end_all<S: Waiters>(slots: &Slots<S>) {
    for (_, s) in slots.iter() {
        s.tunnel_ended();
    }
}
