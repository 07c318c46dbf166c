//! The channel half of a shell that serves every channel from one loop, with local ends that
//! never block (the load generator's built-in origins, the test peer's non-blocking sockets).

use bytes::Bytes;
use std::cell::Cell;
use std::time::Instant;

use super::{Slots, Waiters, WriteCursor};
use crate::mux::{ChannelHandle, CloseCause, Multiplexer, Recv};
use crate::random::Random;

/// The local end failed: its channel is closed, nobody else's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the channel's local end failed")]
pub struct EndpointError;

/// What a local end has for the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Produced {
    /// Bytes to send.
    Data(Bytes),
    /// Nothing now.
    Nothing,
    /// It is done: the channel is closed behind what it sent.
    End,
}

/// A channel's local end, synchronous and non-blocking.
pub trait Endpoint {
    /// Takes bytes from the tunnel; returns how many it took (0: it cannot take more now).
    fn deliver(&mut self, data: &[u8]) -> Result<usize, EndpointError>;
    /// The next bytes for the tunnel.
    fn produce(&mut self) -> Result<Produced, EndpointError>;
    /// The tunnel side closed the channel and everything it sent was delivered: end the
    /// local side cleanly. Returns whether it is done (false: call again on a later turn).
    fn finish(&mut self) -> bool;
}

/// A local end and what the shell holds for it.
#[derive(Debug)]
pub struct Served<E> {
    /// The local end.
    pub end: E,
    /// Received and not yet taken by the local end.
    pending: WriteCursor,
    /// The tunnel side closed the channel: finish once `pending` is delivered.
    closing: bool,
    /// The multiplexer killed the channel (what was queued is gone): drop the end at once.
    aborted: Cell<bool>,
    /// The last turn found the end with nothing to send while the tunnel would take it.
    dry: bool,
}

impl<E> Served<E> {
    /// Wraps a fresh local end.
    pub fn new(end: E) -> Self {
        Self {
            end,
            pending: WriteCursor::default(),
            closing: false,
            aborted: Cell::new(false),
            dry: false,
        }
    }

    /// Whether the last turn left bytes that the end would not take. A shell whose ends are
    /// sockets waits for this one to be writable.
    pub fn waits_to_deliver(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether the last turn found the end with nothing to send while the tunnel would have
    /// taken it. A shell whose ends are sockets waits for this one to be readable; while the
    /// tunnel takes nothing (`can_send` is false) it need not, since an
    /// [`crate::mux::Event::Writable`] comes through the loop first.
    pub fn waits_to_produce(&self) -> bool {
        self.dry
    }
}

impl<E> Waiters for Served<E> {
    // One loop polls every channel each turn: there is nobody to wake.
    fn readable(&self) {}
    fn writable(&self) {}
    fn closed(&self, cause: CloseCause) {
        if cause.discards_undelivered() {
            self.aborted.set(true);
        }
    }
    fn tunnel_ended(&self) {}
}

/// Moves bytes between every channel and its local end, both ways: what the tunnel queued goes
/// to the end (and is reported consumed as the end takes it), what the end produces goes to
/// the tunnel while [`Multiplexer::can_send`] allows. Channels whose end failed, ended or
/// finished are closed and removed. Returns whether any bytes moved.
pub fn serve_channels<R: Random, E: Endpoint>(
    mux: &mut Multiplexer<R>,
    slots: &mut Slots<Served<E>>,
    now: Instant,
) -> bool {
    let mut moved = false;
    // In place: serving a turn allocates nothing.
    slots.retain(|h, s| match serve_one(mux, h, s, now, &mut moved) {
        Ok(true) => true,
        Ok(false) | Err(EndpointError) => {
            mux.close(h);
            // A channel the peer closed is forgotten once drained to `Closed`.
            while !matches!(mux.recv(h), Recv::Closed) {}
            false
        }
    });
    moved
}

/// Serves one channel; `Ok(false)` once it is over.
fn serve_one<R: Random, E: Endpoint>(
    mux: &mut Multiplexer<R>,
    h: ChannelHandle,
    s: &mut Served<E>,
    now: Instant,
    moved: &mut bool,
) -> Result<bool, EndpointError> {
    s.dry = false;
    if s.aborted.get() {
        return Ok(false);
    }
    // Tunnel to local end.
    loop {
        if let Some(seg) = s.pending.front() {
            let len = seg.len();
            let n = s.end.deliver(seg)?;
            if n == 0 {
                break;
            }
            let n = n.min(len);
            s.pending.advance(n);
            mux.consumed(h, n);
            *moved = true;
            continue;
        }
        match mux.recv(h) {
            Recv::Data(d) => s.pending.extend([d]),
            Recv::Empty => break,
            Recv::Closed => {
                s.closing = true;
                break;
            }
        }
    }
    if s.closing {
        return Ok(!(s.pending.is_empty() && s.end.finish()));
    }
    // Local end to tunnel.
    while mux.can_send(h) {
        match s.end.produce()? {
            Produced::Data(b) => {
                *moved = true;
                // A closed channel refuses it; the next turn sees `Closed`.
                let _ = mux.send(h, b, now);
            }
            Produced::Nothing => {
                s.dry = true;
                break;
            }
            Produced::End => return Ok(false),
        }
    }
    Ok(true)
}
