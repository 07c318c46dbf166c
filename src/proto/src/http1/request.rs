//! The browser-to-server direction: every request head is rewritten. The `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `Forwarded` and `X-Real-IP` fields the browser sent are dropped (any
//! browser can write them), and the connector's own are added. To find every head on a
//! keep-alive connection the rewriter follows HTTP/1.1 message framing (RFC 9112 §6):
//! `Content-Length` bodies, chunked bodies and their trailers.
//!
//! A request that asks to switch protocols (`Upgrade`, or `CONNECT`) is sent on, and what
//! follows it is *held* until the server's answer is known: after a 101 (or a 2xx to
//! CONNECT) it passes untouched, after any other answer it is read as more requests. Deciding
//! on the request alone would let a refused upgrade carry a pipelined request with a forged
//! `X-Forwarded-For` to the server.
//!
//! Anything it cannot frame exactly as a server would (both `Content-Length` and
//! `Transfer-Encoding`, conflicting lengths, bare CR or LF, folded lines, a coding other than
//! chunked last) is an error and the connection is closed: a request the rewriter misframes
//! is a request that could reach the home server with a forged `X-Forwarded-For`.

use std::net::IpAddr;

use super::body::BodyReader;
use super::head::{self, Framing, HeadBuf};
use super::pending::{Asked, Pending};
use super::{Answer, Http1Error};
use crate::limits::MAX_HTTP_HELD_LEN;

/// Header fields the browser may not set.
const DROPPED: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "forwarded",
    "x-real-ip",
];

#[derive(Debug)]
enum State {
    /// Collecting a request head.
    Head,
    /// Inside a request body.
    Body(BodyReader),
    /// After a request that may switch protocols, until its answer is known.
    Held,
    /// The connection switched protocols: everything passes.
    Tunnel,
}

/// What follows the current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Head,
    Hold,
    Tunnel,
}

/// Rewrites the request side of one HTTP/1 connection.
#[derive(Debug)]
pub struct RequestRewriter {
    added: String,
    state: State,
    head: HeadBuf,
    /// What follows the request whose body is being read.
    next: Next,
    /// Bytes held after a request that may switch protocols.
    held: Vec<u8>,
}

impl RequestRewriter {
    /// A rewriter that adds `caller` (if known) to every request.
    pub fn new(caller: Option<IpAddr>) -> Self {
        let mut added = String::new();
        if let Some(ip) = caller.map(|ip| ip.to_canonical()) {
            let node = match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("\"[{v6}]\""),
            };
            added = format!(
                "X-Forwarded-For: {ip}\r\nX-Forwarded-Proto: https\r\nForwarded: for={node};proto=https\r\n"
            );
        } else {
            added.push_str("X-Forwarded-Proto: https\r\n");
        }
        Self {
            added,
            state: State::Head,
            head: HeadBuf::default(),
            next: Next::Head,
            held: Vec::new(),
        }
    }

    /// Whether the stream is between requests (no partial head, body or held bytes pending).
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Head) && self.head.is_empty()
    }

    /// Whether bytes are being held until the server answers a protocol switch.
    pub fn is_holding(&self) -> bool {
        matches!(self.state, State::Held)
    }

    /// Consumes `input` (bytes from the browser), appends what to send to the server now to
    /// `out`, and records each request sent on in `pending`.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        pending: &mut Pending,
    ) -> Result<(), Http1Error> {
        while !input.is_empty() {
            match &mut self.state {
                State::Tunnel => {
                    out.extend_from_slice(input);
                    return Ok(());
                }
                State::Held => {
                    if self.held.len() + input.len() > MAX_HTTP_HELD_LEN {
                        return Err(Http1Error::HeldTooLarge);
                    }
                    self.held.extend_from_slice(input);
                    return Ok(());
                }
                State::Body(body) => {
                    let (used, done) = body.advance(input).map_err(Http1Error::Malformed)?;
                    out.extend_from_slice(&input[..used]);
                    input = &input[used..];
                    if done {
                        self.state = self.after_request();
                    }
                }
                State::Head => {
                    let (used, head) = self
                        .head
                        .push(input)
                        .map_err(|_| Http1Error::HeadTooLarge)?;
                    input = &input[used..];
                    if let Some(head) = head {
                        let (asked, body) = self.rewrite_head(&head, out)?;
                        pending.push(asked)?;
                        self.next = if asked.may_switch() {
                            Next::Hold
                        } else {
                            Next::Head
                        };
                        self.state = match body {
                            Some(body) => State::Body(body),
                            None => self.after_request(),
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// The server answered the request that may switch protocols: release what was held,
    /// untouched after a switch, as requests after a refusal. An answer that comes while that
    /// request's body is still arriving applies once the body ends.
    pub fn answer(
        &mut self,
        answer: Answer,
        out: &mut Vec<u8>,
        pending: &mut Pending,
    ) -> Result<(), Http1Error> {
        let next = match answer {
            Answer::Switched => Next::Tunnel,
            Answer::Refused => Next::Head,
        };
        match self.state {
            State::Held => {
                let held = std::mem::take(&mut self.held);
                self.state = match next {
                    Next::Tunnel => State::Tunnel,
                    _ => State::Head,
                };
                self.feed(&held, out, pending)
            }
            State::Body(_) if self.next == Next::Hold => {
                self.next = next;
                Ok(())
            }
            // Nothing waits for an answer: the response side only answers a request that
            // may switch, and that request is the last one sent on.
            _ => Ok(()),
        }
    }

    fn after_request(&mut self) -> State {
        match std::mem::replace(&mut self.next, Next::Head) {
            Next::Head => State::Head,
            Next::Hold => State::Held,
            Next::Tunnel => State::Tunnel,
        }
    }

    /// Writes the rewritten head to `out`; returns what the response side needs to know and
    /// the body's reader, if it has a body.
    fn rewrite_head(
        &self,
        head: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(Asked, Option<BodyReader>), Http1Error> {
        let malformed = Http1Error::Malformed;
        let (request_line, fields) = head::parse(head).map_err(malformed)?;
        let mut parts = request_line.split(|&b| b == b' ');
        let (method, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() => (m, v),
            _ => return Err(malformed("bad request line")),
        };
        if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
            return Err(malformed("not HTTP/1.0 or HTTP/1.1"));
        }
        let framing = Framing::of(&fields).map_err(malformed)?;
        let body = match (framing.chunked, framing.length) {
            (Some(_), Some(_)) => {
                return Err(malformed("both Content-Length and Transfer-Encoding"));
            }
            (Some(true), None) => Some(BodyReader::chunked()),
            (Some(false), None) => {
                return Err(malformed("Transfer-Encoding not ending in chunked"));
            }
            (None, Some(n)) if n > 0 => Some(BodyReader::length(n)),
            (None, _) => None,
        };
        out.extend_from_slice(request_line);
        out.extend_from_slice(b"\r\n");
        for field in &fields {
            if DROPPED
                .iter()
                .any(|d| d.as_bytes().eq_ignore_ascii_case(field.name))
            {
                continue;
            }
            out.extend_from_slice(field.line);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(self.added.as_bytes());
        out.extend_from_slice(b"\r\n");
        let asked = Asked {
            head: method == b"HEAD",
            connect: method == b"CONNECT",
            upgrade: framing.upgrade && framing.connection_upgrade,
        };
        Ok((asked, body))
    }
}
