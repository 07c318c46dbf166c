//! PROXY protocol v1 and v2 (HAProxy's `proxy-protocol.txt`): parse and emit.
//!
//! Two uses in Sluice:
//! - the edge, told to trust a load balancer in front of it, calls [`peek_proxy_header`] on
//!   the first bytes of a connection, before the TLS ClientHello or the tunnel token, and
//!   takes the header's source address as the caller's address;
//! - the connector writes a v2 header ([`write_v2`]) towards the home server so that it sees
//!   the caller's address rather than the connector's.
//!
//! A PROXY header is only as trustworthy as whoever sent it: any client can write one.
//! Parse it only on connections from a proxy you trust.
//!
//! Choices where the spec leaves room (each is pinned by a test):
//! - **Early refusal.** The spec asks receivers to abort as soon as possible, so a partial
//!   v1 line is checked field by field as it arrives: a finished field must be valid, the
//!   unfinished last one must still be able to become valid. Every strict prefix of a valid
//!   header is [`Peek::NeedMore`], never an error.
//! - **v1 numbers.** IPv4 octets and ports are decimal without a sign or leading zeros (the
//!   spec forbids "heading zeroes"); `0` itself is fine. IPv6 text is what `inet_pton`
//!   takes, as HAProxy does: groups of 1 to 4 hex digits, one `::`, an optional dotted IPv4
//!   tail (`::ffff:192.0.2.1`); no zone (`%eth0`).
//! - **v1 `UNKNOWN`.** Anything up to the CRLF may follow `UNKNOWN ` and is ignored (the spec
//!   says so; HAProxy itself only accepts `PROXY UNKNOWN\r\n`).
//! - **v2 LOCAL.** The family byte and the whole address/TLV block are skipped unread, as
//!   the spec says ("the family which is ignored"); only the length field is checked.
//! - **v2 families.** Family and transport nibbles outside the spec are errors. TCP and UDP
//!   over IPv4/IPv6 carry addresses: a UDP (DGRAM) header on a TCP stream means a confused
//!   sender, but SniTun takes the source address whatever the transport, and so do we.
//!   AF_UNSPEC, AF_UNIX, and an UNSPEC transport give no addresses.
//! - **v2 TLVs.** Their framing is checked (each TLV must end inside the header, and they
//!   must fill it exactly), as HAProxy does; a CRC32C TLV (type 0x03) is verified. Other
//!   TLVs are skipped. The length field must cover the family's address block.
//! - **Emitting mixed families.** A header cannot mix IPv4 and IPv6; if the two addresses
//!   differ in family, both are written as IPv6 (IPv4-mapped).

mod crc32c;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
mod v1;
mod v2;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::limits::{MAX_PROXY_V1_LEN, MAX_PROXY_V2_LEN};
use crate::peek::Peek;

pub use v1::write_v1;
pub use v2::write_v2;

/// A complete PROXY header found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// Bytes of the header at the start of the buffer; the stream proper starts after them.
    pub len: usize,
    /// Which version of the protocol the header is.
    pub version: ProxyVersion,
    /// What the sender says the connection is. Always [`Command::Proxy`] in v1.
    pub command: Command,
    /// The proxied connection's addresses, or `None` when the header has none to give:
    /// LOCAL, v1 `UNKNOWN`, v2 AF_UNSPEC, AF_UNIX or UNSPEC transport. Then the socket's own
    /// peer address is the one to use.
    pub addresses: Option<ProxiedAddrs>,
}

/// The two ends of the proxied connection, as the proxy in front saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProxiedAddrs {
    /// The caller: the client that connected to the proxy.
    pub source: SocketAddr,
    /// The address the caller connected to (the proxy's listener).
    pub destination: SocketAddr,
}

/// PROXY protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyVersion {
    /// The text format: `PROXY TCP4 ...\r\n`.
    V1,
    /// The binary format with the 12-byte signature.
    V2,
}

/// What a header says about the connection (the v2 command; v1 only has `Proxy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// The proxy opened the connection for itself (a health check): use the real endpoints.
    Local,
    /// The connection is relayed on behalf of the client the header describes.
    Proxy,
}

/// Why bytes that started like a PROXY header are not a valid one.
///
/// Every variant is the sender's fault; the only answer is to close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// v1: no CRLF within [`MAX_PROXY_V1_LEN`] bytes.
    #[error("PROXY v1 line has no CRLF within {MAX_PROXY_V1_LEN} bytes")]
    TooLong,
    /// v1: a LF without the CR before it.
    #[error("PROXY v1 line ends with a bare LF")]
    BareLf,
    /// v1: a CR not followed by LF.
    #[error("PROXY v1 line has a CR not followed by LF")]
    BareCr,
    /// v1: the protocol is not `TCP4`, `TCP6` or `UNKNOWN`.
    #[error("PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN")]
    UnknownProtocol,
    /// v1: an empty field: a doubled, leading or trailing space.
    #[error("PROXY v1 fields must be separated by exactly one space")]
    BadSpacing,
    /// v1: `TCP4`/`TCP6` not followed by exactly four fields.
    #[error("PROXY v1 TCP4/TCP6 line must have exactly 6 fields")]
    FieldCount,
    /// v1: an address that is not IPv4 or IPv6 text.
    #[error("PROXY v1 address is not a valid IP address")]
    BadAddress,
    /// v1: an IPv6 address after `TCP4`, or an IPv4 one after `TCP6`.
    #[error("PROXY v1 address family does not match the protocol")]
    FamilyMismatch,
    /// v1: a port that is not a decimal in 0..=65535 without sign or leading zeros.
    #[error("PROXY v1 port is not a decimal in 0..=65535 without leading zeros")]
    BadPort,
    /// v2: the version nibble is not 2.
    #[error("PROXY v2 version nibble is {0}, not 2")]
    BadVersion(u8),
    /// v2: the command nibble is neither LOCAL (0) nor PROXY (1).
    #[error("PROXY v2 command {0} is neither LOCAL nor PROXY")]
    BadCommand(u8),
    /// v2: the address family nibble is not 0 to 3.
    #[error("PROXY v2 address family {0} is unassigned")]
    BadFamily(u8),
    /// v2: the transport nibble is not 0 to 2.
    #[error("PROXY v2 transport protocol {0} is unassigned")]
    BadTransport(u8),
    /// v2: the length field is shorter than the family's address block.
    #[error("PROXY v2 length {len} is shorter than the {needed}-byte address block")]
    ShortAddressBlock {
        /// The length field.
        len: u16,
        /// The address block size for the family.
        needed: u16,
    },
    /// v2: the header would be longer than [`MAX_PROXY_V2_LEN`].
    #[error("PROXY v2 length {0} makes the header longer than {MAX_PROXY_V2_LEN} bytes")]
    TooLarge(u16),
    /// v2: a TLV runs past the end of the header, or a CRC32C TLV is not 4 bytes long.
    #[error("PROXY v2 TLVs are malformed")]
    BadTlv,
    /// v2: the CRC32C TLV does not match the header.
    #[error("PROXY v2 CRC32C checksum does not match")]
    ChecksumMismatch,
}

/// Looks for a PROXY header (v1 or v2) at the start of `buf`.
///
/// - `Complete(header)`: `buf[..header.len]` is a valid header; the stream continues after it.
/// - `NeedMore`: `buf` is a strict prefix of what may still be a valid header; read more.
///   At most [`MAX_PROXY_V1_LEN`] or [`MAX_PROXY_V2_LEN`] bytes are ever needed.
/// - `NotThisProtocol`: `buf` does not start with `PROXY ` or the v2 signature, or a prefix
///   of either. A TLS record (0x16) or a tunnel token (`gA...`) is refused at the first byte.
/// - `Err`: it is a PROXY header, and a malformed one.
///
/// Reads at most the cap of the version found, whatever the length of `buf`.
pub fn peek_proxy_header(buf: &[u8]) -> Result<Peek<ProxyHeader>, ProxyError> {
    let (magic, parse): (&[u8], fn(&[u8]) -> _) = match buf.first() {
        None => return Ok(Peek::NeedMore),
        Some(b'P') => (v1::PREFIX, v1::peek),
        Some(b'\r') => (&v2::SIGNATURE, v2::peek),
        Some(_) => return Ok(Peek::NotThisProtocol),
    };
    let seen = buf.len().min(magic.len());
    if buf[..seen] != magic[..seen] {
        return Ok(Peek::NotThisProtocol);
    }
    if seen < magic.len() {
        return Ok(Peek::NeedMore);
    }
    parse(buf)
}

/// `ip` as IPv6, an IPv4 address IPv4-mapped: how both writers put mixed families in one
/// header.
fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
        IpAddr::V6(ip) => ip,
    }
}
