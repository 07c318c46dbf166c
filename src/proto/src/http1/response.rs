//! The server-to-browser direction: responses are framed (never changed) to find the answer to
//! a request that may switch protocols among pipelined responses (RFC 9112 §6.3):
//!
//! - 1xx responses are interim, except 101, which switches protocols if the request asked to
//!   upgrade (and is an error otherwise);
//! - a 2xx to CONNECT switches protocols;
//! - answers to HEAD, 204 and 304 have no body, whatever their fields say;
//! - otherwise a chunked `Transfer-Encoding` or a `Content-Length` frames the body, another
//!   coding or neither means the body runs until the server closes.
//!
//! Framing here is as strict as on the request side: if a body the server fills from the
//! browser's bytes were misframed, text in it could pass for a 101 and release held requests
//! untouched.

use super::body::BodyReader;
use super::head::{self, Framing, HeadBuf};
use super::pending::{Asked, Pending};
use super::{Answer, Http1Error};

#[derive(Debug)]
enum State {
    /// Collecting a response head.
    Head,
    /// Inside a body; `asked` is the request it answers (`None`: the server spoke first).
    Body {
        reader: BodyReader,
        asked: Option<Asked>,
    },
    /// A body that ends when the server closes: nothing after it is HTTP.
    UntilClose,
    /// The connection switched protocols.
    Tunnel,
}

/// How far one [`ResponseWatcher::feed`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watched {
    /// Bytes of the input consumed. Less than all of it only when there is an answer: feed the
    /// rest after acting on it.
    pub used: usize,
    /// The answer to the request that may switch protocols, when it became known.
    pub answer: Option<Answer>,
}

/// Frames the response side of one HTTP/1 connection.
#[derive(Debug)]
pub struct ResponseWatcher {
    state: State,
    head: HeadBuf,
}

impl Default for ResponseWatcher {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseWatcher {
    /// A watcher at the start of a connection.
    pub fn new() -> Self {
        Self {
            state: State::Head,
            head: HeadBuf::default(),
        }
    }

    /// Whether the server switched protocols (or the last body runs until it closes): from
    /// here on nothing it sends is framed.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Tunnel | State::UntilClose)
    }

    /// Consumes bytes from the server (the caller passes them on unchanged) and pops the
    /// requests in `pending` whose answers are complete. Stops right after the answer to a
    /// request that may switch protocols.
    pub fn feed(&mut self, input: &[u8], pending: &mut Pending) -> Result<Watched, Http1Error> {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            match &mut self.state {
                State::Tunnel | State::UntilClose => {
                    used = input.len();
                }
                State::Body { reader, asked } => {
                    let asked = *asked;
                    let (n, done) = reader
                        .advance(rest)
                        .map_err(Http1Error::MalformedResponse)?;
                    used += n;
                    if done {
                        self.state = State::Head;
                        if let Some(answer) = complete(asked, pending) {
                            return Ok(Watched {
                                used,
                                answer: Some(answer),
                            });
                        }
                    }
                }
                State::Head => {
                    let (n, head) = self
                        .head
                        .push(rest)
                        .map_err(|_| Http1Error::ResponseHeadTooLarge)?;
                    used += n;
                    if let Some(head) = head {
                        let answer = self.on_head(&head, pending)?;
                        if answer.is_some() {
                            return Ok(Watched { used, answer });
                        }
                    }
                }
            }
        }
        Ok(Watched { used, answer: None })
    }

    /// Acts on a complete head: sets the next state, pops and answers as it must.
    fn on_head(
        &mut self,
        head: &[u8],
        pending: &mut Pending,
    ) -> Result<Option<Answer>, Http1Error> {
        let malformed = Http1Error::MalformedResponse;
        let (status_line, fields) = head::parse(head).map_err(malformed)?;
        let status = status_code(status_line).map_err(malformed)?;
        let asked = pending.front();
        if (100..200).contains(&status) {
            if status != 101 {
                // Interim (100 Continue, 103 Early Hints...): the real answer follows.
                return Ok(None);
            }
            if !asked.is_some_and(|a| a.upgrade) {
                return Err(malformed("101 to a request that did not ask to upgrade"));
            }
            pending.pop();
            self.state = State::Tunnel;
            return Ok(Some(Answer::Switched));
        }
        if asked.is_some_and(|a| a.connect) && (200..300).contains(&status) {
            pending.pop();
            self.state = State::Tunnel;
            return Ok(Some(Answer::Switched));
        }
        let framing = Framing::of(&fields).map_err(malformed)?;
        let bodyless = asked.is_some_and(|a| a.head) || status == 204 || status == 304;
        let reader = match (framing.chunked, framing.length) {
            _ if bodyless => None,
            (Some(_), Some(_)) => {
                return Err(malformed("both Content-Length and Transfer-Encoding"));
            }
            (Some(true), None) => Some(BodyReader::chunked()),
            (None, Some(0)) => None,
            (None, Some(n)) => Some(BodyReader::length(n)),
            (Some(false), None) | (None, None) => {
                self.state = State::UntilClose;
                return Ok(None);
            }
        };
        Ok(match reader {
            Some(reader) => {
                self.state = State::Body { reader, asked };
                None
            }
            None => complete(asked, pending),
        })
    }
}

/// A response is complete: forgets the request it answered, and says whether that request
/// waited to learn if the connection switches (it does not: it got another answer).
fn complete(asked: Option<Asked>, pending: &mut Pending) -> Option<Answer> {
    let answered = asked.and_then(|_| pending.pop());
    answered.filter(Asked::may_switch).map(|_| Answer::Refused)
}

/// `HTTP/1.x SP 3DIGIT [SP reason]`.
fn status_code(line: &[u8]) -> Result<u16, &'static str> {
    let (version, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => return Err("bad status line"),
    };
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return Err("not HTTP/1.0 or HTTP/1.1");
    }
    let (code, reason) = rest.split_at(rest.len().min(3));
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return Err("bad status code");
    }
    if !(reason.is_empty() || reason[0] == b' ') {
        return Err("bad status code");
    }
    let n = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    if n < 100 {
        return Err("bad status code");
    }
    Ok(n)
}
