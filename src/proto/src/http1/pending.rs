//! What ties the two directions together: the requests sent on to the server that have no
//! answer yet, oldest first. The request side pushes one per request head; the response side
//! reads the oldest to frame its answer (a response to HEAD has no body, a 2xx to CONNECT
//! switches protocols) and pops it once that answer is complete.

use std::collections::VecDeque;

use super::Http1Error;
use crate::limits::MAX_HTTP_PENDING;

/// What the response side needs to know about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asked {
    /// The method was HEAD: the answer has no body, whatever its fields say.
    pub head: bool,
    /// The method was CONNECT: a 2xx answer turns the connection into a tunnel.
    pub connect: bool,
    /// The request asked to upgrade (`Upgrade` and `Connection: upgrade`): a 101 answer
    /// switches protocols.
    pub upgrade: bool,
}

impl Asked {
    /// Whether the right answer ends HTTP on this connection.
    pub fn may_switch(&self) -> bool {
        self.connect || self.upgrade
    }
}

/// The requests awaiting an answer, at most [`MAX_HTTP_PENDING`].
#[derive(Debug, Default)]
pub struct Pending {
    queue: VecDeque<Asked>,
}

impl Pending {
    /// Records a request sent on.
    pub fn push(&mut self, asked: Asked) -> Result<(), Http1Error> {
        if self.queue.len() >= MAX_HTTP_PENDING {
            return Err(Http1Error::TooManyPending);
        }
        self.queue.push_back(asked);
        Ok(())
    }

    /// The oldest request without an answer.
    pub fn front(&self) -> Option<Asked> {
        self.queue.front().copied()
    }

    /// Forgets the oldest request: its answer is complete.
    pub fn pop(&mut self) -> Option<Asked> {
        self.queue.pop_front()
    }

    /// Requests awaiting an answer.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether every request has its answer.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}
