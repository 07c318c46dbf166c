//! Message bodies, shared by both directions: a known length, or chunked with trailers
//! (RFC 9112 §7.1). The reader only finds where a body ends; the caller passes the bytes on
//! unchanged.

use crate::limits::MAX_HTTP_LINE_LEN;

/// Longest chunk size, in hex digits: 15 keeps it below 2^60, far beyond any real body.
const MAX_CHUNK_SIZE_DIGITS: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// Inside a body of known length, or inside chunk data.
    Bytes { left: u64, chunk: bool },
    /// Collecting a chunk-size line.
    ChunkSize,
    /// Expecting the CRLF after chunk data.
    ChunkEnd,
    /// Collecting trailer lines, up to the empty one.
    Trailer,
}

/// Where the end of one body is.
#[derive(Debug)]
pub(super) struct BodyReader {
    part: Part,
    /// A partial chunk-size, chunk-end or trailer line.
    line: Vec<u8>,
}

impl BodyReader {
    /// A body of `n` bytes (not 0: a message without a body has no reader).
    pub(super) fn length(n: u64) -> Self {
        Self {
            part: Part::Bytes {
                left: n,
                chunk: false,
            },
            line: Vec::new(),
        }
    }

    /// A chunked body.
    pub(super) fn chunked() -> Self {
        Self {
            part: Part::ChunkSize,
            line: Vec::new(),
        }
    }

    /// Consumes body bytes from the front of `input`: returns how many, and whether the body
    /// ended with the last of them.
    pub(super) fn advance(&mut self, input: &[u8]) -> Result<(usize, bool), &'static str> {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            match self.part {
                Part::Bytes { left, chunk } => {
                    let take = usize::try_from(left).map_or(rest.len(), |l| l.min(rest.len()));
                    used += take;
                    let left = left - take as u64;
                    self.part = match (left, chunk) {
                        (0, false) => return Ok((used, true)),
                        (0, true) => Part::ChunkEnd,
                        _ => Part::Bytes { left, chunk },
                    };
                }
                Part::ChunkSize | Part::ChunkEnd | Part::Trailer => {
                    let (done, take) = match rest.iter().position(|&b| b == b'\n') {
                        Some(i) => (true, i + 1),
                        None => (false, rest.len()),
                    };
                    self.line.extend_from_slice(&rest[..take]);
                    used += take;
                    if self.line.len() > MAX_HTTP_LINE_LEN {
                        return Err("chunk or trailer line too long");
                    }
                    if self.part == Part::ChunkEnd && self.line.len() >= 2 && !done {
                        return Err("chunk data not followed by CRLF");
                    }
                    if done {
                        let line = std::mem::take(&mut self.line);
                        if self.on_line(&line)? {
                            return Ok((used, true));
                        }
                    }
                }
            }
        }
        Ok((used, false))
    }

    /// Acts on a whole line; true when it was the body's last.
    fn on_line(&mut self, line: &[u8]) -> Result<bool, &'static str> {
        let body = line.strip_suffix(b"\r\n").ok_or("bare LF")?;
        if body.contains(&b'\r') {
            return Err("bare CR");
        }
        match self.part {
            Part::ChunkEnd if body.is_empty() => self.part = Part::ChunkSize,
            Part::ChunkEnd => return Err("chunk data not followed by CRLF"),
            Part::Trailer => return Ok(body.is_empty()),
            _ => {
                let size = body.split(|&b| b == b';').next().unwrap_or_default();
                let size = super::head::trim(size);
                if size.is_empty()
                    || size.len() > MAX_CHUNK_SIZE_DIGITS
                    || !size.iter().all(u8::is_ascii_hexdigit)
                {
                    return Err("bad chunk size");
                }
                let n = size.iter().fold(0u64, |n, &d| {
                    // A hex digit, checked above.
                    n << 4 | u64::from((d as char).to_digit(16).unwrap_or(0))
                });
                self.part = if n == 0 {
                    Part::Trailer
                } else {
                    Part::Bytes {
                        left: n,
                        chunk: true,
                    }
                };
            }
        }
        Ok(false)
    }
}
