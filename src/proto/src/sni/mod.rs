//! The SNI peek: find the server name in the first bytes a client sends, without TLS.
//!
//! The edge reads the start of a connection, asks [`peek_client_hello`] what it has, and
//! either reads more, routes on [`ClientHello::server_name`], hands the bytes to another
//! protocol, or refuses the connection with [`fatal_alert`]. Nothing is decrypted and the
//! bytes are forwarded unchanged: the edge never holds a tenant's key.
//!
//! SniTun gets three things wrong here, and this parser does not:
//! - it only looks at the first TLS record, so a ClientHello split over several records (as
//!   any client may do, and large post-quantum hellos invite) is misparsed; here the
//!   handshake message is reassembled across records;
//! - it routes on the raw bytes, so `A.Example.TEST.` misses `a.example.test`; here the
//!   name goes through [`Hostname::parse`];
//! - it closes bad connections silently; here every [`HelloError`] maps to a TLS alert.
//!
//! The parser is stateless: the caller passes everything read so far and calls again with
//! more after [`Peek::NeedMore`]. Each call is linear in the bytes it looks at and allocates
//! nothing but the returned [`Hostname`].
//!
//! How it works: `records` walks the record headers until the records hold the whole
//! handshake message (deciding [`HelloError::TooLarge`] as soon as the message header is
//! known); only then does `hello` decode the ClientHello completely, through bounded
//! readers (`reader`) that see the record payloads as one stream.

mod alert;
mod hello;
mod reader;
mod records;

#[cfg(test)]
mod tests;

pub use alert::{AlertDescription, fatal_alert};

use crate::hostname::{Hostname, HostnameError};
use crate::peek::Peek;

/// What the peek learnt from a complete ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The normalized `host_name` of the server_name extension; `None` when the client sent
    /// no server_name extension or one without a `host_name` entry.
    pub server_name: Option<Hostname>,
    /// How many bytes at the start of the buffer the TLS records that carry the ClientHello
    /// take up. Bytes after them belong to later records.
    pub len: usize,
    /// The legacy record version of the first record (`0x0301` from most clients), to write
    /// an alert back in a version the client reads.
    pub record_version: u16,
}

/// Why bytes that start like a TLS ClientHello are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The handshake message (header included) is longer than the cap given to
    /// [`peek_client_hello`]; decided from its length field, before the bytes arrive.
    #[error("ClientHello of {len} bytes is larger than the {max}-byte cap")]
    TooLarge {
        /// Length of the handshake message, 4-byte header included.
        len: usize,
        /// The cap in force.
        max: usize,
    },
    /// The records or the ClientHello break the TLS encoding rules.
    #[error("malformed ClientHello: {0}")]
    Malformed(#[from] Malformed),
    /// The ClientHello is well formed but its `host_name` is not a DNS host name (an IP
    /// literal, a non-ASCII byte, a bad label...).
    #[error("ClientHello server name is invalid: {0}")]
    InvalidServerName(#[source] HostnameError),
}

/// The encoding rule a malformed ClientHello breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The cipher suite list is empty or has an odd length.
    #[error("cipher suite list is empty or of odd length")]
    BadCipherSuites,
    /// The ClientHello's legacy_version does not have major version 3.
    #[error("legacy_version is not 3.x")]
    BadLegacyVersion,
    /// A later record's version is not 3.x, or a record's minor version is over 4.
    #[error("record version is not 3.0 to 3.4")]
    BadRecordVersion,
    /// The record that ends the ClientHello carries more handshake bytes after it.
    #[error("handshake data after the ClientHello in its last record")]
    DataAfterHello,
    /// The server_name list holds two `host_name` entries (RFC 6066 §3).
    #[error("server_name list holds more than one host_name")]
    DuplicateHostName,
    /// Two server_name extensions (RFC 8446 §4.2).
    #[error("more than one server_name extension")]
    DuplicateServerName,
    /// A `host_name` entry of length 0.
    #[error("empty host_name")]
    EmptyHostName,
    /// A handshake record of length 0 (RFC 8446 §5.1 forbids them).
    #[error("empty handshake record")]
    EmptyRecord,
    /// A server_name extension with an empty body or an empty list.
    #[error("empty server_name extension or list")]
    EmptyServerNameList,
    /// No compression method is listed.
    #[error("no compression method")]
    NoCompressionMethods,
    /// A record longer than 2^14 bytes.
    #[error("record longer than 16384 bytes")]
    RecordOverflow,
    /// The legacy session id is longer than 32 bytes.
    #[error("session id longer than 32 bytes")]
    SessionIdTooLong,
    /// Bytes are left over inside a block after its last field.
    #[error("trailing bytes inside a length-prefixed block")]
    TrailingBytes,
    /// A length field runs past the end of the block that holds it.
    #[error("a length runs past its enclosing block")]
    Truncated,
    /// A record of another content type arrived before the ClientHello was complete.
    #[error("non-handshake record inside the ClientHello")]
    UnexpectedContentType,
}

/// Looks for a complete TLS ClientHello at the start of `buf` and returns its server name.
///
/// `max_hello_len` caps the handshake message, 4-byte header included (the usual value is
/// [`crate::limits::DEFAULT_MAX_HELLO_LEN`]); values above
/// [`crate::limits::MAX_HELLO_LEN_LIMIT`] count as that ceiling.
///
/// Answers:
/// - `Ok(Peek::NotThisProtocol)` as soon as the bytes cannot start a TLS handshake that opens
///   with a ClientHello (one byte of `GET ` is enough; SSLv2-style hellos are refused too);
/// - `Ok(Peek::NeedMore)` for every strict prefix of a valid ClientHello;
/// - `Ok(Peek::Complete(hello))` once the records carrying the whole hello are in `buf`;
/// - `Err(_)` when the bytes are TLS but cannot be, or are not allowed to be, a ClientHello.
///
/// The answer depends only on `buf`: a caller that gets `NeedMore` reads more and calls again
/// with everything so far.
pub fn peek_client_hello(
    buf: &[u8],
    max_hello_len: usize,
) -> Result<Peek<ClientHello>, HelloError> {
    let located = match records::locate(buf, max_hello_len)? {
        Peek::Complete(located) => located,
        Peek::NeedMore => return Ok(Peek::NeedMore),
        Peek::NotThisProtocol => return Ok(Peek::NotThisProtocol),
    };
    let records = buf.get(..located.end).ok_or(Malformed::Truncated)?;
    let mut scratch = [0; hello::MAX_RAW_NAME_LEN];
    let raw_name = hello::parse(records, &mut scratch)?;
    let server_name = raw_name
        .map(|raw| raw.to_hostname().map_err(HelloError::InvalidServerName))
        .transpose()?;
    Ok(Peek::Complete(ClientHello {
        server_name,
        len: located.end,
        record_version: located.record_version,
    }))
}
