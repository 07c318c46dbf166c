//! The tunnel's read buffer and the stall rule.

use bytes::BytesMut;
use std::time::Instant;

use crate::mux::{Multiplexer, MuxError};
use crate::random::Random;

/// The tunnel socket's read buffer. While the multiplexer stalls (a sink is over its cap,
/// [`Multiplexer::wants_input`] is false), what is left in the buffer waits in it; once the
/// stall ends ([`super::dispatch`] says so) it must be fed before the socket is read again,
/// since the socket may have nothing more to wake the reader with.
#[derive(Debug, Default)]
pub struct Inbox {
    buf: BytesMut,
    held: bool,
}

impl Inbox {
    /// An empty inbox that holds no memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// The buffer, to read the socket into (reserve room first).
    pub fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Takes the buffer, for runtimes that read into owned buffers; [`Self::put`] it back.
    pub fn take(&mut self) -> BytesMut {
        std::mem::take(&mut self.buf)
    }

    /// Puts back the buffer [`Self::take`] took, with what was read appended.
    pub fn put(&mut self, buf: BytesMut) {
        self.buf = buf;
    }

    /// Feeds what the buffer holds to the multiplexer. Afterwards [`Self::held`] says whether
    /// bytes wait for a stall to end.
    pub fn feed<R: Random>(
        &mut self,
        mux: &mut Multiplexer<R>,
        now: Instant,
    ) -> Result<(), MuxError> {
        let r = mux.handle_input(&mut self.buf, now);
        self.held = !mux.wants_input() && !self.buf.is_empty();
        r
    }

    /// Whether bytes left by a stall wait in the buffer: feed them (once the multiplexer
    /// wants input) before reading the socket.
    pub fn held(&self) -> bool {
        self.held
    }

    /// Whether the socket should be read now: the multiplexer wants input and nothing waits.
    pub fn should_read<R: Random>(&self, mux: &Multiplexer<R>) -> bool {
        mux.wants_input() && !self.held
    }

    /// Bytes waiting in the buffer (a partial frame, or what a stall left).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Gives the buffer's memory back if it holds nothing; returns whether there was any to
    /// give (a quiet tunnel should hold no read buffer).
    pub fn shed(&mut self) -> bool {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
            return true;
        }
        false
    }

    /// The buffer's capacity (what it holds of memory).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}
