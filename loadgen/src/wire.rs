//! The load generator's own little protocol, spoken inside a browser connection after its
//! ClientHello (raw mode) or inside the TLS session (TLS mode).
//!
//! ```text
//! browser                                        origin
//!   ClientHello (raw mode only; skipped) ─────▶
//!   request: 16-byte header + `body` bytes ───▶  discards the body
//!                                          ◀───  `answer` bytes of PATTERN, then FIN if `close`
//!   (more requests, pipelined or not)
//! ```
//!
//! Byte `k` of an origin's whole answer stream is `k as u8`, so a browser can check what it got
//! without a copy of the data. [`Responder`] is the origin's side as a sans-I/O state machine:
//! the TCP origin and the in-tunnel origin both drive it.

use sluice_proto::peek::Peek;
use sluice_proto::sni::peek_client_hello;
use std::fmt;

/// Bytes of a request header.
pub const REQUEST_LEN: usize = 16;
/// First byte of every request header.
const MAGIC: u8 = b'Q';
/// `answer` value meaning "until the connection closes".
pub const ENDLESS: u64 = u64::MAX;
/// Length of [`PATTERN`]: a multiple of 256, so that any offset modulo 256 starts a valid slice.
pub const PATTERN_LEN: usize = 64 * 1024 + 256;
/// Largest slice [`Responder::next_chunk`] hands out.
pub const MAX_CHUNK: usize = 64 * 1024;
/// Largest ClientHello the responder skips.
const MAX_HELLO: usize = 64 * 1024;

/// The answer stream's bytes: `PATTERN[i] == i as u8`.
pub static PATTERN: [u8; PATTERN_LEN] = pattern();

const fn pattern() -> [u8; PATTERN_LEN] {
    let mut p = [0u8; PATTERN_LEN];
    let mut i = 0;
    while i < PATTERN_LEN {
        p[i] = i as u8;
        i += 1;
    }
    p
}

/// One request: `body` bytes follow the header; the origin answers `answer` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Bytes of body after the header (discarded by the origin).
    pub body: u32,
    /// Bytes the origin sends back ([`ENDLESS`]: until the connection closes).
    pub answer: u64,
    /// Close the connection once the answer is sent.
    pub close: bool,
}

impl Request {
    /// The header's wire form.
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[0] = MAGIC;
        b[1] = u8::from(self.close);
        b[4..8].copy_from_slice(&self.body.to_be_bytes());
        b[8..16].copy_from_slice(&self.answer.to_be_bytes());
        b
    }

    /// Parses a header; `None` if it is not one.
    pub fn decode(b: &[u8; REQUEST_LEN]) -> Option<Self> {
        if b[0] != MAGIC || b[1] > 1 {
            return None;
        }
        Some(Self {
            body: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            answer: u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]),
            close: b[1] == 1,
        })
    }

    /// The header followed by its body (zeros), ready to write.
    pub fn with_body(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(REQUEST_LEN + self.body as usize);
        v.extend_from_slice(&self.encode());
        v.resize(REQUEST_LEN + self.body as usize, 0);
        v
    }
}

/// The peer sent something that is not this protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(&'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for WireError {}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading TLS records until the ClientHello handshake message is complete.
    Hello,
    /// Reading a request header (`got` bytes so far).
    Header { got: usize },
    /// Discarding a request body.
    Body { remaining: u32 },
}

/// The origin side of the protocol, sans I/O: feed it what the browser sent, take the answer's
/// bytes from [`Self::next_chunk`].
#[derive(Debug, Clone)]
pub struct Responder {
    state: State,
    /// Raw hello bytes so far (only while in `State::Hello`).
    hello: Vec<u8>,
    header: [u8; REQUEST_LEN],
    /// Answer bytes still owed (saturating at [`ENDLESS`]).
    owed: u64,
    /// Answer bytes sent so far (the offset into the pattern stream).
    sent: u64,
    close: bool,
    requests: u64,
}

impl Responder {
    /// A responder that first skips a TLS ClientHello (`expect_hello`), or starts with requests.
    pub fn new(expect_hello: bool) -> Self {
        Self {
            state: if expect_hello {
                State::Hello
            } else {
                State::Header { got: 0 }
            },
            hello: Vec::new(),
            header: [0; REQUEST_LEN],
            owed: 0,
            sent: 0,
            close: false,
            requests: 0,
        }
    }

    /// Requests seen so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Consumes everything in `data`.
    pub fn handle_input(&mut self, mut data: &[u8]) -> Result<(), WireError> {
        while !data.is_empty() {
            match self.state {
                State::Hello => {
                    let take = data.len().min(MAX_HELLO + 16 - self.hello.len());
                    self.hello.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    match peek_client_hello(&self.hello, MAX_HELLO) {
                        Ok(Peek::Complete(h)) => {
                            let n = h.len;
                            // Whatever followed the hello in this read is a request.
                            let rest = self.hello.split_off(n);
                            self.hello = Vec::new();
                            self.state = State::Header { got: 0 };
                            self.handle_input(&rest)?;
                        }
                        Ok(Peek::NeedMore) if self.hello.len() > MAX_HELLO => {
                            return Err(WireError("ClientHello too large"));
                        }
                        Ok(Peek::NeedMore) => {}
                        Ok(Peek::NotThisProtocol) | Err(_) => {
                            return Err(WireError("not a TLS ClientHello"));
                        }
                    }
                }
                State::Header { got } => {
                    let take = data.len().min(REQUEST_LEN - got);
                    self.header[got..got + take].copy_from_slice(&data[..take]);
                    data = &data[take..];
                    if got + take < REQUEST_LEN {
                        self.state = State::Header { got: got + take };
                        continue;
                    }
                    let req = Request::decode(&self.header).ok_or(WireError("bad request"))?;
                    self.requests += 1;
                    self.owed = self.owed.saturating_add(req.answer);
                    self.close |= req.close;
                    self.state = if req.body > 0 {
                        State::Body {
                            remaining: req.body,
                        }
                    } else {
                        State::Header { got: 0 }
                    };
                }
                State::Body { remaining } => {
                    let take = data.len().min(remaining as usize);
                    data = &data[take..];
                    let left = remaining - take as u32;
                    self.state = if left == 0 {
                        State::Header { got: 0 }
                    } else {
                        State::Body { remaining: left }
                    };
                }
            }
        }
        Ok(())
    }

    /// Answer bytes owed now.
    pub fn owed(&self) -> u64 {
        self.owed
    }

    /// The next slice of the answer, at most `max` (and [`MAX_CHUNK`]) bytes; `None` when
    /// nothing is owed.
    pub fn next_chunk(&mut self, max: usize) -> Option<&'static [u8]> {
        if self.owed == 0 || max == 0 {
            return None;
        }
        let n = (max.min(MAX_CHUNK) as u64).min(self.owed) as usize;
        let start = (self.sent % 256) as usize;
        if self.owed != ENDLESS {
            self.owed -= n as u64;
        }
        self.sent += n as u64;
        Some(&PATTERN[start..start + n])
    }

    /// Whether the connection should be closed now: a request asked for it and its answer is
    /// all handed out.
    pub fn wants_close(&self) -> bool {
        self.close && self.owed == 0
    }
}

/// Checks an answer stream against [`PATTERN`] as it arrives.
#[derive(Debug, Default, Clone)]
pub struct AnswerCheck {
    offset: u64,
}

impl AnswerCheck {
    /// Checks the next bytes; false at the first wrong one.
    pub fn check(&mut self, data: &[u8]) -> bool {
        let start = (self.offset % 256) as usize;
        self.offset += data.len() as u64;
        data.chunks(MAX_CHUNK).enumerate().all(|(i, c)| {
            let s = (start + i * MAX_CHUNK) % 256;
            c == &PATTERN[s..s + c.len()]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real rustls ClientHello, one record.
    fn hello() -> Vec<u8> {
        let config = crate::tls::client_config(crate::tls::Kx::X25519).unwrap();
        crate::tls::client_hello(&config, "a.bench.test").unwrap()
    }

    fn drain(r: &mut Responder) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk(1000) {
            out.extend_from_slice(c);
        }
        out
    }

    #[test]
    fn hello_then_requests_on_every_split() {
        let mut input = hello();
        input.extend(
            Request {
                body: 5,
                answer: 3000,
                close: false,
            }
            .with_body(),
        );
        input.extend(
            Request {
                body: 0,
                answer: 10,
                close: true,
            }
            .with_body(),
        );
        for cut in 0..input.len() {
            let mut r = Responder::new(true);
            r.handle_input(&input[..cut]).unwrap();
            r.handle_input(&input[cut..]).unwrap();
            assert_eq!(r.requests(), 2, "cut {cut}");
            assert_eq!(r.owed(), 3010);
            let out = drain(&mut r);
            assert_eq!(out.len(), 3010);
            assert!(AnswerCheck::default().check(&out));
            assert!(r.wants_close());
        }
    }

    #[test]
    fn hello_over_two_records() {
        let h = hello();
        // Split the handshake message across two records, the first shorter than the
        // handshake header.
        let body = &h[5..];
        let mut input = vec![0x16, 3, 1, 0, 3];
        input.extend_from_slice(&body[..3]);
        input.extend_from_slice(&[0x16, 3, 1]);
        input.extend_from_slice(&((body.len() - 3) as u16).to_be_bytes());
        input.extend_from_slice(&body[3..]);
        input.extend_from_slice(
            &Request {
                body: 0,
                answer: 1,
                close: false,
            }
            .encode(),
        );
        let mut r = Responder::new(true);
        r.handle_input(&input).unwrap();
        assert_eq!(r.requests(), 1);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(
            Responder::new(true)
                .handle_input(b"GET / HTTP/1.1\r\n")
                .is_err()
        );
        assert!(Responder::new(false).handle_input(&[0u8; 16]).is_err());
    }

    #[test]
    fn answer_check_spots_a_wrong_byte() {
        let mut c = AnswerCheck::default();
        assert!(c.check(&PATTERN[..300]));
        assert!(c.check(&PATTERN[300 % 256..300 % 256 + 10]));
        assert!(!c.check(&[0, 0]));
    }
}
