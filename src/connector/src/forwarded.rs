//! Adding the caller's address to HTTP/1 requests in terminate mode, sans I/O.
//!
//! Every request head on the connection is rewritten: the `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `Forwarded` and `X-Real-IP` fields the browser sent are dropped (any
//! browser can write them), and the connector's own are added. To find every head on a
//! keep-alive connection the rewriter follows HTTP/1.1 message framing (RFC 9112 §6):
//! `Content-Length` bodies, chunked bodies and their trailers. After a request that asks to
//! upgrade the connection (WebSocket) or a CONNECT, the rest of the stream passes untouched.
//!
//! Anything it cannot frame exactly as a server would (both `Content-Length` and
//! `Transfer-Encoding`, conflicting lengths, bare CR or LF, folded lines, a coding other than
//! chunked last) is an error and the connection is closed: a request the rewriter misframes
//! is a request that could reach the home server with a forged `X-Forwarded-For`.

use std::net::IpAddr;

/// Longest request head (request line and header fields) accepted.
pub const MAX_HEAD_LEN: usize = 64 * 1024;
/// Longest chunk-size or trailer line.
const MAX_LINE_LEN: usize = 4096;
/// Header fields the browser may not set.
const DROPPED: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "forwarded",
    "x-real-ip",
];

/// A request stream that cannot be framed safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// A request head longer than [`MAX_HEAD_LEN`].
    #[error("request head longer than {MAX_HEAD_LEN} bytes")]
    HeadTooLarge,
    /// Malformed or ambiguous framing.
    #[error("malformed HTTP/1 request: {0}")]
    Malformed(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Collecting a request head.
    Head,
    /// Inside a body of known length.
    Body(u64),
    /// Collecting a chunk-size line.
    ChunkSize,
    /// Inside chunk data.
    ChunkData(u64),
    /// Expecting the CRLF after chunk data.
    ChunkEnd,
    /// Collecting trailer lines, up to the empty one.
    Trailer,
    /// The connection was upgraded: everything passes.
    Tunnel,
}

/// Rewrites the request side of one HTTP/1 connection.
#[derive(Debug)]
pub struct RequestRewriter {
    added: String,
    framing: Framing,
    /// A partial head or line.
    buf: Vec<u8>,
    /// After the current request's body, pass everything through.
    upgrade_after_body: bool,
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
            framing: Framing::Head,
            buf: Vec::new(),
            upgrade_after_body: false,
        }
    }

    /// Whether the stream is between requests (no partial head, body or chunk pending).
    pub fn at_boundary(&self) -> bool {
        self.framing == Framing::Head && self.buf.is_empty()
    }

    /// Consumes `input` (bytes from the browser) and appends what to send to the server.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), RewriteError> {
        while !input.is_empty() {
            match self.framing {
                Framing::Tunnel => {
                    out.extend_from_slice(input);
                    return Ok(());
                }
                Framing::Body(n) | Framing::ChunkData(n) => {
                    let take = input.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    let left = n - take as u64;
                    self.framing = match (self.framing, left) {
                        (Framing::Body(_), 0) => self.after_message(),
                        (Framing::Body(_), _) => Framing::Body(left),
                        (_, 0) => Framing::ChunkEnd,
                        _ => Framing::ChunkData(left),
                    };
                }
                Framing::Head => {
                    let start = self.buf.len().saturating_sub(3);
                    let before = self.buf.len();
                    let room = MAX_HEAD_LEN + 1 - before.min(MAX_HEAD_LEN + 1);
                    let take = input.len().min(room);
                    self.buf.extend_from_slice(&input[..take]);
                    match find(&self.buf[start..], b"\r\n\r\n") {
                        Some(at) => {
                            let end = start + at + 4;
                            input = &input[end - before..];
                            self.buf.truncate(end);
                            let head = std::mem::take(&mut self.buf);
                            self.framing = self.rewrite_head(&head, out)?;
                        }
                        None if self.buf.len() > MAX_HEAD_LEN => {
                            return Err(RewriteError::HeadTooLarge);
                        }
                        None => input = &input[take..],
                    }
                }
                Framing::ChunkSize | Framing::ChunkEnd | Framing::Trailer => {
                    let (line_done, used) = match input.iter().position(|&b| b == b'\n') {
                        Some(i) => (true, i + 1),
                        None => (false, input.len()),
                    };
                    self.buf.extend_from_slice(&input[..used]);
                    input = &input[used..];
                    if self.buf.len() > MAX_LINE_LEN {
                        return Err(RewriteError::Malformed("chunk or trailer line too long"));
                    }
                    if self.framing == Framing::ChunkEnd && self.buf.len() >= 2 && !line_done {
                        return Err(RewriteError::Malformed("chunk data not followed by CRLF"));
                    }
                    if line_done {
                        let line = std::mem::take(&mut self.buf);
                        self.framing = self.on_line(&line)?;
                        out.extend_from_slice(&line);
                    }
                }
            }
        }
        Ok(())
    }

    fn after_message(&mut self) -> Framing {
        if std::mem::take(&mut self.upgrade_after_body) {
            Framing::Tunnel
        } else {
            Framing::Head
        }
    }

    fn on_line(&mut self, line: &[u8]) -> Result<Framing, RewriteError> {
        let body = line
            .strip_suffix(b"\r\n")
            .ok_or(RewriteError::Malformed("bare LF"))?;
        if body.contains(&b'\r') {
            return Err(RewriteError::Malformed("bare CR"));
        }
        match self.framing {
            Framing::ChunkEnd if body.is_empty() => Ok(Framing::ChunkSize),
            Framing::ChunkEnd => Err(RewriteError::Malformed("chunk data not followed by CRLF")),
            Framing::Trailer if body.is_empty() => Ok(self.after_message()),
            Framing::Trailer => Ok(Framing::Trailer),
            _ => {
                let size = body.split(|&b| b == b';').next().unwrap_or_default();
                let size = trim(size);
                if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
                    return Err(RewriteError::Malformed("bad chunk size"));
                }
                let text = std::str::from_utf8(size).unwrap_or("0");
                let n = u64::from_str_radix(text, 16)
                    .map_err(|_| RewriteError::Malformed("bad chunk size"))?;
                Ok(if n == 0 {
                    Framing::Trailer
                } else {
                    Framing::ChunkData(n)
                })
            }
        }
    }

    /// Writes the rewritten head to `out` and says what follows it.
    fn rewrite_head(&mut self, head: &[u8], out: &mut Vec<u8>) -> Result<Framing, RewriteError> {
        let malformed = RewriteError::Malformed;
        let body = &head[..head.len() - 4];
        if body.iter().enumerate().any(|(i, &b)| {
            (b == b'\n' && (i == 0 || body[i - 1] != b'\r'))
                || (b == b'\r' && body.get(i + 1) != Some(&b'\n'))
        }) {
            return Err(malformed("bare CR or LF in the head"));
        }
        let mut lines = body
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(|&b| b == b' ');
        let (method, _target, version) =
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() => (m, t, v),
                _ => return Err(malformed("bad request line")),
            };
        if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
            return Err(malformed("not HTTP/1.0 or HTTP/1.1"));
        }
        out.extend_from_slice(request_line);
        out.extend_from_slice(b"\r\n");

        let mut length: Option<u64> = None;
        let mut chunked = None;
        let mut upgrade = false;
        let mut connection_upgrade = false;
        for line in lines {
            if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                return Err(malformed("folded header line"));
            }
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or(malformed("header line without a colon"))?;
            let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
            if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
                return Err(malformed("bad header name"));
            }
            let lower = name.to_ascii_lowercase();
            if DROPPED.iter().any(|d| d.as_bytes() == lower.as_slice()) {
                continue;
            }
            match lower.as_slice() {
                b"content-length" => {
                    for v in value.split(|&b| b == b',').map(trim) {
                        if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                            return Err(malformed("bad Content-Length"));
                        }
                        let n: u64 = std::str::from_utf8(v)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .ok_or(malformed("bad Content-Length"))?;
                        if length.is_some_and(|l| l != n) {
                            return Err(malformed("conflicting Content-Length"));
                        }
                        length = Some(n);
                    }
                }
                b"transfer-encoding" => {
                    let last = value
                        .split(|&b| b == b',')
                        .map(trim)
                        .next_back()
                        .unwrap_or_default();
                    chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
                }
                b"upgrade" => upgrade = !value.is_empty(),
                b"connection" => {
                    connection_upgrade |= value
                        .split(|&b| b == b',')
                        .any(|t| trim(t).eq_ignore_ascii_case(b"upgrade"));
                }
                _ => {}
            }
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(self.added.as_bytes());
        out.extend_from_slice(b"\r\n");

        self.upgrade_after_body = (upgrade && connection_upgrade) || method == b"CONNECT";
        Ok(match (chunked, length) {
            (Some(_), Some(_)) => {
                return Err(malformed("both Content-Length and Transfer-Encoding"));
            }
            (Some(true), None) => Framing::ChunkSize,
            (Some(false), None) => {
                return Err(malformed("Transfer-Encoding not ending in chunked"));
            }
            (None, Some(n)) if n > 0 => Framing::Body(n),
            (None, _) => self.after_message(),
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 9110 `tchar`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests;
