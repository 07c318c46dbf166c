//! The record layer: find the run of handshake records that carries the whole ClientHello.
//!
//! Only record headers and the 4-byte handshake header are looked at here, so the cheap
//! answers (not TLS, too large, bad record) come before the hello's bytes have all arrived.

use super::{HelloError, Malformed};
use crate::limits::{MAX_HELLO_LEN_LIMIT, MAX_RECORD_PAYLOAD_LEN};
use crate::peek::Peek;

const CONTENT_TYPE_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
const RECORD_HEADER_LEN: usize = 5;
const HANDSHAKE_HEADER_LEN: usize = 4;
/// TLS 1.3 is 3.4; anything newer is not a record version we know how to read.
const MAX_RECORD_MINOR: u8 = 4;

/// Where the ClientHello's records end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Located {
    /// End of the last record that carries ClientHello bytes.
    pub(super) end: usize,
    /// The first record's legacy version.
    pub(super) record_version: u16,
}

/// Walks record headers until the records hold one complete handshake message.
pub(super) fn locate(buf: &[u8], max_hello_len: usize) -> Result<Peek<Located>, HelloError> {
    let max = max_hello_len.min(MAX_HELLO_LEN_LIMIT);
    let mut at = 0;
    // Handshake bytes carried by the records before `at`.
    let mut seen = 0;
    let mut header = [0; HANDSHAKE_HEADER_LEN];
    let mut hello_len = None;
    let mut record_version = 0;
    loop {
        let first = at == 0;
        let rest = buf.get(at..).unwrap_or_default();
        let (version, len) = match record_header(rest, first)? {
            Peek::Complete(h) => h,
            Peek::NeedMore => return Ok(Peek::NeedMore),
            Peek::NotThisProtocol => return Ok(Peek::NotThisProtocol),
        };
        if first {
            record_version = version;
        }
        let payload_at = at + RECORD_HEADER_LEN;
        let record_end = payload_at + len;
        let arrived = buf
            .get(payload_at..record_end.min(buf.len()))
            .unwrap_or_default();

        if hello_len.is_none() {
            // The handshake header may itself be split over several (1-byte) records.
            for (slot, &byte) in header.iter_mut().skip(seen).zip(arrived) {
                *slot = byte;
            }
            if first
                && arrived
                    .first()
                    .is_some_and(|&t| t != HANDSHAKE_CLIENT_HELLO)
            {
                return Ok(Peek::NotThisProtocol);
            }
            if seen + arrived.len() >= HANDSHAKE_HEADER_LEN {
                let [_, a, b, c] = header;
                let body_len = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
                let len = HANDSHAKE_HEADER_LEN + body_len;
                if len > max {
                    return Err(HelloError::TooLarge { len, max });
                }
                hello_len = Some(len);
            }
        }

        if let Some(total) = hello_len
            && seen + len >= total
        {
            if seen + len > total {
                return Err(Malformed::DataAfterHello.into());
            }
            if arrived.len() < len {
                return Ok(Peek::NeedMore);
            }
            return Ok(Peek::Complete(Located {
                end: record_end,
                record_version,
            }));
        }
        if arrived.len() < len {
            return Ok(Peek::NeedMore);
        }
        seen += len;
        at = record_end;
    }
}

/// Reads and checks one record header: its version and payload length.
///
/// The first record decides whether this is TLS at all; a bad header on a later record is
/// a broken TLS stream.
fn record_header(rest: &[u8], first: bool) -> Result<Peek<(u16, usize)>, HelloError> {
    match rest.first() {
        None => return Ok(Peek::NeedMore),
        Some(&CONTENT_TYPE_HANDSHAKE) => {}
        Some(_) if first => return Ok(Peek::NotThisProtocol),
        Some(_) => return Err(Malformed::UnexpectedContentType.into()),
    }
    match rest.get(1) {
        None => return Ok(Peek::NeedMore),
        Some(3) => {}
        Some(_) if first => return Ok(Peek::NotThisProtocol),
        Some(_) => return Err(Malformed::BadRecordVersion.into()),
    }
    let minor = match rest.get(2) {
        None => return Ok(Peek::NeedMore),
        Some(&minor) if minor <= MAX_RECORD_MINOR => minor,
        Some(_) => return Err(Malformed::BadRecordVersion.into()),
    };
    let (Some(&hi), Some(&lo)) = (rest.get(3), rest.get(4)) else {
        return Ok(Peek::NeedMore);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    // RFC 8446 §5.1: no empty handshake fragments, none over 2^14.
    if len == 0 {
        return Err(Malformed::EmptyRecord.into());
    }
    if len > MAX_RECORD_PAYLOAD_LEN {
        return Err(Malformed::RecordOverflow.into());
    }
    Ok(Peek::Complete((u16::from_be_bytes([3, minor]), len)))
}
