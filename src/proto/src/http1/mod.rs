//! HTTP/1 for terminate mode, sans I/O: adding the caller's address to every request of a
//! connection, and knowing when the connection stops being HTTP.
//!
//! ```text
//!  browser ──▶ feed_request ──▶ [RequestRewriter] ──▶ to the server (heads rewritten)
//!                                     │ push      ▲ answer (held bytes released)
//!                                     ▼           │
//!                                 [Pending] ── pop ── [ResponseWatcher] ◀── feed_response ◀── server
//! ```
//!
//! The request side ([`RequestRewriter`]) rewrites every request head and records each
//! request in [`Pending`]; the response side ([`ResponseWatcher`]) frames the server's
//! responses, passing them on unchanged, and pops each request as its answer completes. After
//! a request that may switch protocols (`Upgrade`, `CONNECT`) the request side holds what
//! follows (at most [`MAX_HTTP_HELD_LEN`]) until the response side has the answer: a 101 (or
//! a 2xx to CONNECT) lets it pass untouched, any other answer has it read as requests.
//! [`Exchange`] wires the three together for a shell.
//!
//! What it does not do: read sockets, change responses, speak HTTP/2, or judge anything
//! beyond framing (methods, targets and field values pass as they are).
//!
//! [`MAX_HTTP_HELD_LEN`]: crate::limits::MAX_HTTP_HELD_LEN

mod body;
mod head;
mod pending;
mod request;
mod response;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use crate::limits::{MAX_HTTP_HEAD_LEN, MAX_HTTP_HELD_LEN, MAX_HTTP_PENDING};
pub use pending::{Asked, Pending};
pub use request::RequestRewriter;
pub use response::{ResponseWatcher, Watched};

/// A connection that cannot be framed safely; it must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Http1Error {
    /// A request head longer than [`MAX_HTTP_HEAD_LEN`].
    #[error("request head longer than {MAX_HTTP_HEAD_LEN} bytes")]
    HeadTooLarge,
    /// Malformed or ambiguous request framing.
    #[error("malformed HTTP/1 request: {0}")]
    Malformed(&'static str),
    /// More than [`MAX_HTTP_HELD_LEN`] bytes after a request that may switch protocols,
    /// before the server answered it.
    #[error(
        "more than {MAX_HTTP_HELD_LEN} bytes sent after an upgrade or CONNECT request before \
         the server answered it"
    )]
    HeldTooLarge,
    /// More than [`MAX_HTTP_PENDING`] requests awaiting an answer.
    #[error("more than {MAX_HTTP_PENDING} pipelined requests awaiting an answer")]
    TooManyPending,
    /// A response head longer than [`MAX_HTTP_HEAD_LEN`] (the home server's fault).
    #[error("response head longer than {MAX_HTTP_HEAD_LEN} bytes")]
    ResponseHeadTooLarge,
    /// Malformed or ambiguous response framing (the home server's fault).
    #[error("malformed HTTP/1 response: {0}")]
    MalformedResponse(&'static str),
}

impl Http1Error {
    /// Whether the home server, not the browser, sent what could not be framed.
    pub fn is_server_fault(&self) -> bool {
        matches!(
            self,
            Self::ResponseHeadTooLarge | Self::MalformedResponse(_)
        )
    }
}

/// The server's answer to a request that may switch protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 101 to an upgrade, 2xx to CONNECT: the connection is no longer HTTP.
    Switched,
    /// Any other final answer: the connection stays HTTP.
    Refused,
}

/// Both directions of one HTTP/1 connection: feed each side's bytes as they arrive.
#[derive(Debug)]
pub struct Exchange {
    requests: RequestRewriter,
    responses: ResponseWatcher,
    pending: Pending,
}

impl Exchange {
    /// An exchange whose requests get `caller` (if known) as their forwarded address.
    pub fn new(caller: Option<IpAddr>) -> Self {
        Self {
            requests: RequestRewriter::new(caller),
            responses: ResponseWatcher::new(),
            pending: Pending::default(),
        }
    }

    /// Bytes from the browser: appends what to send to the server now to `to_server`.
    pub fn feed_request(
        &mut self,
        input: &[u8],
        to_server: &mut Vec<u8>,
    ) -> Result<(), Http1Error> {
        self.requests.feed(input, to_server, &mut self.pending)
    }

    /// Bytes from the server, which the caller passes on to the browser unchanged: appends to
    /// `to_server` the request bytes this releases (held after an upgrade or CONNECT request,
    /// now answered). Send them after whatever `feed_request` produced before.
    pub fn feed_response(
        &mut self,
        mut input: &[u8],
        to_server: &mut Vec<u8>,
    ) -> Result<(), Http1Error> {
        while !input.is_empty() {
            let watched = self.responses.feed(input, &mut self.pending)?;
            input = &input[watched.used..];
            match watched.answer {
                Some(answer) => self.requests.answer(answer, to_server, &mut self.pending)?,
                None => break,
            }
        }
        Ok(())
    }

    /// Whether request bytes are held until the server answers a protocol switch.
    pub fn is_holding(&self) -> bool {
        self.requests.is_holding()
    }

    /// Requests sent on and not yet answered.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}
