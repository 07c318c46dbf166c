//! Message heads, shared by both directions: collecting one up to its empty line, splitting it
//! into a start line and fields, and reading the fields that decide how the body is framed.
//!
//! Whatever a server or client could read two ways (bare CR or LF, folded lines, fields
//! without a colon, bad names, several differing `Content-Length` values) is refused here:
//! a message framed differently from the peer is how a request or response gets smuggled.

use crate::limits::MAX_HTTP_HEAD_LEN;

/// Collects the bytes of one head, up to and including its empty line.
#[derive(Debug, Default)]
pub(super) struct HeadBuf {
    buf: Vec<u8>,
}

/// The head was longer than [`MAX_HTTP_HEAD_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooLarge;

impl HeadBuf {
    /// Whether no byte of a head has arrived yet.
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes bytes from the front of `input`: the number used and, once the empty line is in,
    /// the whole head (CRLF CRLF included).
    pub(super) fn push(&mut self, input: &[u8]) -> Result<(usize, Option<Vec<u8>>), TooLarge> {
        // The terminator may straddle the previous push: look back three bytes.
        let start = self.buf.len().saturating_sub(3);
        let before = self.buf.len();
        let room = (MAX_HTTP_HEAD_LEN + 1).saturating_sub(before);
        let take = input.len().min(room);
        self.buf.extend_from_slice(&input[..take]);
        match find(&self.buf[start..], b"\r\n\r\n") {
            Some(at) => {
                let end = start + at + 4;
                self.buf.truncate(end);
                Ok((end - before, Some(std::mem::take(&mut self.buf))))
            }
            None if self.buf.len() > MAX_HTTP_HEAD_LEN => Err(TooLarge),
            None => Ok((take, None)),
        }
    }
}

/// One header field line of a head.
#[derive(Debug, Clone, Copy)]
pub(super) struct Field<'a> {
    /// The whole line, without its CRLF.
    pub(super) line: &'a [u8],
    /// The name, as sent.
    pub(super) name: &'a [u8],
    /// The value, without surrounding whitespace.
    pub(super) value: &'a [u8],
}

/// Splits a complete head (as [`HeadBuf::push`] returns it) into its start line and fields.
pub(super) fn parse(head: &[u8]) -> Result<(&[u8], Vec<Field<'_>>), &'static str> {
    let body = head.strip_suffix(b"\r\n\r\n").unwrap_or(head);
    let bare = body.iter().enumerate().any(|(i, &b)| {
        (b == b'\n' && (i == 0 || body[i - 1] != b'\r'))
            || (b == b'\r' && body.get(i + 1) != Some(&b'\n'))
    });
    if bare {
        return Err("bare CR or LF in the head");
    }
    let mut lines = body
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let start = lines.next().unwrap_or_default();
    let mut fields = Vec::new();
    for line in lines {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Err("folded header line");
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or("header line without a colon")?;
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err("bad header name");
        }
        fields.push(Field { line, name, value });
    }
    Ok((start, fields))
}

/// What a head's fields say about framing and protocol switches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Framing {
    /// The `Content-Length`, if any (all its values agree).
    pub(super) length: Option<u64>,
    /// `Some` if `Transfer-Encoding` is present: whether its last coding is chunked.
    pub(super) chunked: Option<bool>,
    /// A non-empty `Upgrade` field.
    pub(super) upgrade: bool,
    /// `Connection` lists `upgrade`.
    pub(super) connection_upgrade: bool,
}

impl Framing {
    /// Reads the fields that matter for framing.
    pub(super) fn of(fields: &[Field<'_>]) -> Result<Self, &'static str> {
        let mut f = Self::default();
        for field in fields {
            let (name, value) = (field.name, field.value);
            if name.eq_ignore_ascii_case(b"content-length") {
                for v in value.split(|&b| b == b',').map(trim) {
                    let n = parse_decimal(v).ok_or("bad Content-Length")?;
                    if f.length.is_some_and(|l| l != n) {
                        return Err("conflicting Content-Length");
                    }
                    f.length = Some(n);
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                let last = value.split(|&b| b == b',').map(trim).next_back();
                f.chunked = Some(last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")));
            } else if name.eq_ignore_ascii_case(b"upgrade") {
                f.upgrade = !value.is_empty();
            } else if name.eq_ignore_ascii_case(b"connection") {
                f.connection_upgrade |= value
                    .split(|&b| b == b',')
                    .any(|t| trim(t).eq_ignore_ascii_case(b"upgrade"));
            }
        }
        Ok(f)
    }
}

/// A `Content-Length` value: 1 to 18 ASCII digits (so it fits a `u64`).
fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Strips spaces and tabs at both ends.
pub(super) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 9110 `tchar`.
pub(super) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
