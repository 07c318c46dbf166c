//! The shared half of the single-loop client shells (the load generator's tunnels on tokio, the
//! test peer on std sockets and poll(2)): the state the loop owns and the work it does between
//! two waits.

use std::net::IpAddr;
use std::time::Instant;

use super::{Endpoint, Inbox, Served, Slots, WriteCursor, dispatch, serve_channels};
use crate::mux::{ChannelHandle, Multiplexer, MuxError, Transmit};
use crate::random::Random;

/// A client tunnel whose channels are all served from one loop, with local ends that never
/// block ([`Endpoint`]). What is left to the shell is the socket and the waiting:
///
/// ```text
/// loop: while turn() {}
///       wait(readable if should_read | writable if !out.is_empty() | poll_timeout)
///       readable: read into inbox.buf_mut(), feed;  writable: out.write_with(..);
///       timer due: mux.handle_timeout
/// ```
#[derive(Debug)]
pub struct ClientShell<R: Random, E> {
    /// The protocol (timers, stats and `handle_timeout` are the shell's to call).
    pub mux: Multiplexer<R>,
    /// The channels and their local ends.
    pub chans: Slots<Served<E>>,
    /// The tunnel's read buffer: read into it only while [`Self::should_read`].
    pub inbox: Inbox,
    /// Frames for the socket, in order.
    pub out: WriteCursor,
    tx: Transmit,
    write_batch: usize,
}

impl<R: Random, E: Endpoint> ClientShell<R, E> {
    /// A shell around `mux` that hands the socket about `write_batch` bytes of frames at a time.
    pub fn new(mux: Multiplexer<R>, write_batch: usize) -> Self {
        Self {
            mux,
            chans: Slots::new(),
            inbox: Inbox::new(),
            out: WriteCursor::default(),
            tx: Transmit::new(),
            write_batch,
        }
    }

    /// The work between two waits: events to the channels (`open` makes the end of a channel
    /// the edge opens; `None` refuses it), every channel served both ways, then frames for the
    /// socket once the last ones are out. Returns whether it made more work that must be done
    /// before waiting (a stall ended and its bytes were fed; frames handed over made room for
    /// the ends): call it again, then wait. An error ends the tunnel.
    pub fn turn(
        &mut self,
        now: Instant,
        mut open: impl FnMut(ChannelHandle, Option<IpAddr>) -> Option<Served<E>>,
    ) -> Result<bool, MuxError> {
        let mut again = false;
        // A stall ended: what it left in the buffer goes in before the socket is read again,
        // and what that raised (a NEW, data) is served on the next turn.
        if dispatch(&mut self.mux, &mut self.chans, &mut open) {
            self.inbox.feed(&mut self.mux, now)?;
            again = true;
        }
        serve_channels(&mut self.mux, &mut self.chans, now);
        // Serving consumed bytes: that may end a stall too.
        if dispatch(&mut self.mux, &mut self.chans, &mut open) {
            self.inbox.feed(&mut self.mux, now)?;
            again = true;
        }
        if !again && self.out.is_empty() && self.mux.wants_output() {
            self.mux
                .poll_transmit(&mut self.tx, self.write_batch, now)?;
            self.out.extend(self.tx.take_segments());
            again = !self.out.is_empty();
        }
        Ok(again)
    }

    /// Whether to wait for the socket to be readable: the multiplexer wants input and nothing
    /// a stall left waits in the buffer.
    pub fn should_read(&self) -> bool {
        self.inbox.should_read(&self.mux)
    }

    /// Feeds what was read into [`Self::inbox`].
    pub fn feed(&mut self, now: Instant) -> Result<(), MuxError> {
        self.inbox.feed(&mut self.mux, now)
    }
}
