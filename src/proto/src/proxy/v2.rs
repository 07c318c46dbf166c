//! The v2 binary header: signature, version/command, family/transport, length, then the
//! address block and TLVs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::crc32c::Crc32c;
use super::{Command, ProxiedAddrs, ProxyError, ProxyHeader, ProxyVersion, as_v6};
use crate::limits::MAX_PROXY_V2_LEN;
use crate::peek::Peek;

/// The 12 bytes every v2 header starts with.
pub(super) const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family/transport and the 2-byte length.
const FIXED_LEN: usize = 16;
/// A TLV's type and 2-byte length.
const TLV_HEADER_LEN: usize = 3;
const PP2_TYPE_CRC32C: u8 = 0x03;
const CRC32C_LEN: usize = 4;

const VERSION_2: u8 = 0x2;
const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;

/// The address family nibble, and what its block holds.
#[derive(Clone, Copy)]
enum Family {
    Unspec,
    Inet,
    Inet6,
    Unix,
}

impl Family {
    /// Bytes of the address block (proxy-protocol.txt §2.2, `union proxy_addr`).
    fn block_len(self) -> u16 {
        match self {
            Self::Unspec => 0,
            Self::Inet => 12,
            Self::Inet6 => 36,
            Self::Unix => 216,
        }
    }
}

/// The family/transport byte of a PROXY command.
#[derive(Clone, Copy)]
struct AddressKind {
    family: Family,
    /// STREAM or DGRAM; with UNSPEC the spec says to ignore the addresses.
    has_transport: bool,
}

impl AddressKind {
    fn from_byte(byte: u8) -> Result<Self, ProxyError> {
        let family = match byte >> 4 {
            0 => Family::Unspec,
            1 => Family::Inet,
            2 => Family::Inet6,
            3 => Family::Unix,
            f => return Err(ProxyError::BadFamily(f)),
        };
        let has_transport = match byte & 0x0F {
            0 => false,
            1 | 2 => true,
            t => return Err(ProxyError::BadTransport(t)),
        };
        Ok(Self {
            family,
            has_transport,
        })
    }

    fn decode(self, block: &[u8]) -> Option<ProxiedAddrs> {
        if !self.has_transport {
            return None;
        }
        match self.family {
            Family::Inet => {
                let (s, d, sp, dp) = split_block::<4>(block)?;
                Some(addrs(
                    Ipv4Addr::from(s).into(),
                    Ipv4Addr::from(d).into(),
                    sp,
                    dp,
                ))
            }
            Family::Inet6 => {
                let (s, d, sp, dp) = split_block::<16>(block)?;
                Some(addrs(
                    Ipv6Addr::from(s).into(),
                    Ipv6Addr::from(d).into(),
                    sp,
                    dp,
                ))
            }
            Family::Unspec | Family::Unix => None,
        }
    }
}

/// Source and destination addresses and ports at the start of an INET/INET6 block.
fn split_block<const N: usize>(block: &[u8]) -> Option<([u8; N], [u8; N], u16, u16)> {
    let (src, rest) = block.split_first_chunk::<N>()?;
    let (dst, rest) = rest.split_first_chunk::<N>()?;
    let (sport, rest) = rest.split_first_chunk::<2>()?;
    let (dport, _) = rest.split_first_chunk::<2>()?;
    Some((
        *src,
        *dst,
        u16::from_be_bytes(*sport),
        u16::from_be_bytes(*dport),
    ))
}

fn addrs(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> ProxiedAddrs {
    ProxiedAddrs {
        source: SocketAddr::new(src, sport),
        destination: SocketAddr::new(dst, dport),
    }
}

/// Parses a v2 header; `buf` starts with [`SIGNATURE`]. Each fixed byte is checked as soon
/// as it has arrived, and the length against the cap before the block arrives.
pub(super) fn peek(buf: &[u8]) -> Result<Peek<ProxyHeader>, ProxyError> {
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(Peek::NeedMore);
    };
    let version = ver_cmd >> 4;
    if version != VERSION_2 {
        return Err(ProxyError::BadVersion(version));
    }
    let command = match ver_cmd & 0x0F {
        CMD_LOCAL => Command::Local,
        CMD_PROXY => Command::Proxy,
        c => return Err(ProxyError::BadCommand(c)),
    };
    let Some(&fam) = buf.get(13) else {
        return Ok(Peek::NeedMore);
    };
    // LOCAL: "discard the protocol block including the family which is ignored".
    let kind = match command {
        Command::Local => None,
        Command::Proxy => Some(AddressKind::from_byte(fam)?),
    };
    let Some(&[hi, lo]) = buf.get(14..FIXED_LEN) else {
        return Ok(Peek::NeedMore);
    };
    let len = u16::from_be_bytes([hi, lo]);
    let total = FIXED_LEN + usize::from(len);
    if total > MAX_PROXY_V2_LEN {
        return Err(ProxyError::TooLarge(len));
    }
    if let Some(kind) = kind {
        let needed = kind.family.block_len();
        if len < needed {
            return Err(ProxyError::ShortAddressBlock { len, needed });
        }
    }
    let Some(header) = buf.get(..total) else {
        return Ok(Peek::NeedMore);
    };
    let addresses = match kind {
        None => None,
        Some(kind) => {
            let block_end = FIXED_LEN + usize::from(kind.family.block_len());
            check_tlvs(header, block_end)?;
            kind.decode(&header[FIXED_LEN..block_end])
        }
    };
    Ok(Peek::Complete(ProxyHeader {
        len: total,
        version: ProxyVersion::V2,
        command,
        addresses,
    }))
}

/// Walks the TLVs in `header[start..]`: they must tile it exactly. Verifies CRC32C TLVs.
fn check_tlvs(header: &[u8], start: usize) -> Result<(), ProxyError> {
    let mut at = start;
    while at < header.len() {
        let Some(&[kind, hi, lo]) = header.get(at..at + TLV_HEADER_LEN) else {
            return Err(ProxyError::BadTlv);
        };
        let value = at + TLV_HEADER_LEN;
        let end = value + usize::from(u16::from_be_bytes([hi, lo]));
        let Some(bytes) = header.get(value..end) else {
            return Err(ProxyError::BadTlv);
        };
        if kind == PP2_TYPE_CRC32C {
            let Ok(sent) = <[u8; CRC32C_LEN]>::try_from(bytes) else {
                return Err(ProxyError::BadTlv);
            };
            // The checksum covers the whole header with its own field zeroed.
            let mut crc = Crc32c::new();
            crc.update(&header[..value]);
            crc.update(&[0; CRC32C_LEN]);
            crc.update(&header[end..]);
            if crc.finish() != u32::from_be_bytes(sent) {
                return Err(ProxyError::ChecksumMismatch);
            }
        }
        at = end;
    }
    Ok(())
}

/// Appends a v2 header: TCP over IPv4 or IPv6, no TLVs.
///
/// `Command::Local` writes a LOCAL header with no addresses (the spec says a LOCAL header
/// should carry none), whatever `addrs` is. `Command::Proxy` with `None` writes AF_UNSPEC.
/// Two IPv4 addresses give an AF_INET block; anything else AF_INET6, an IPv4 address
/// IPv4-mapped. At most 52 bytes.
pub fn write_v2(command: Command, addrs: Option<&ProxiedAddrs>, out: &mut Vec<u8>) {
    out.reserve(FIXED_LEN + 36);
    out.extend_from_slice(&SIGNATURE);
    let (cmd, addrs) = match command {
        Command::Local => (CMD_LOCAL, None),
        Command::Proxy => (CMD_PROXY, addrs),
    };
    let ver_cmd = (VERSION_2 << 4) | cmd;
    let Some(a) = addrs else {
        out.extend_from_slice(&[ver_cmd, 0x00, 0, 0]);
        return;
    };
    let (src, dst) = (a.source, a.destination);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&[ver_cmd, 0x11, 0, 12]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            out.extend_from_slice(&[ver_cmd, 0x21, 0, 36]);
            out.extend_from_slice(&as_v6(s).octets());
            out.extend_from_slice(&as_v6(d).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
}
