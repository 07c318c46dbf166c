//! The v1 text line: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Command, ProxiedAddrs, ProxyError, ProxyHeader, ProxyVersion, as_v6};
use crate::limits::MAX_PROXY_V1_LEN;
use crate::peek::Peek;

/// What every v1 line starts with.
pub(super) const PREFIX: &[u8] = b"PROXY ";

/// Longest address text `inet_pton` takes: IPv6 with a dotted IPv4 tail,
/// `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`.
const MAX_ADDR_TEXT: usize = 45;
/// Longest port text: `65535`.
const MAX_PORT_TEXT: usize = 5;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

/// Parses a v1 line; `buf` starts with [`PREFIX`].
pub(super) fn peek(buf: &[u8]) -> Result<Peek<ProxyHeader>, ProxyError> {
    let window = &buf[..buf.len().min(MAX_PROXY_V1_LEN)];
    let body = &window[PREFIX.len()..];
    // The line ends at the first CR or LF: the spec forbids a lone CR or LF as line end, so
    // neither may appear anywhere else in the line either.
    let Some(end) = body.iter().position(|&b| b == b'\r' || b == b'\n') else {
        if window.len() == MAX_PROXY_V1_LEN {
            return Err(ProxyError::TooLong);
        }
        check_fields(body, false)?;
        return Ok(Peek::NeedMore);
    };
    if body[end] == b'\n' {
        return Err(ProxyError::BareLf);
    }
    let line = &body[..end];
    match body.get(end + 1) {
        Some(b'\n') => {}
        Some(_) => return Err(ProxyError::BareCr),
        // The LF would be byte MAX_PROXY_V1_LEN + 1.
        None if window.len() == MAX_PROXY_V1_LEN => return Err(ProxyError::TooLong),
        None => {
            check_fields(line, false)?;
            return Ok(Peek::NeedMore);
        }
    }
    let addresses = check_fields(line, true)?;
    Ok(Peek::Complete(ProxyHeader {
        len: PREFIX.len() + end + 2,
        version: ProxyVersion::V1,
        command: Command::Proxy,
        addresses,
    }))
}

/// Checks the fields after `PROXY `. With `complete` false, `line` is all that has arrived
/// so far: its last field may still grow, and missing fields may still come.
fn check_fields(line: &[u8], complete: bool) -> Result<Option<ProxiedAddrs>, ProxyError> {
    let mut fields = line.split(|&b| b == b' ');
    // `split` always yields at least one (possibly empty) field.
    let keyword = fields.next().unwrap_or_default();
    let keyword_done = complete || line.len() > keyword.len();
    let family = match keyword {
        b"TCP4" => Family::V4,
        b"TCP6" => Family::V6,
        // Whatever follows UNKNOWN is to be ignored, CRLF aside.
        b"UNKNOWN" => return Ok(None),
        // "PROXY  TCP4": a space where the keyword should be.
        b"" if line.len() > keyword.len() => return Err(ProxyError::BadSpacing),
        k if !keyword_done
            && [&b"TCP4"[..], b"TCP6", b"UNKNOWN"]
                .iter()
                .any(|w| w.starts_with(k)) =>
        {
            return Ok(None);
        }
        _ => return Err(ProxyError::UnknownProtocol),
    };
    let mut addrs = [IpAddr::V4(Ipv4Addr::UNSPECIFIED); 2];
    let mut ports = [0u16; 2];
    let mut count = 0;
    let mut fields = fields.peekable();
    while let Some(field) = fields.next() {
        // Only the last field of an unfinished line may be unfinished itself.
        let done = complete || fields.peek().is_some();
        match count {
            0 | 1 => {
                if let Some(ip) = address(field, family, done)? {
                    addrs[count] = ip;
                }
            }
            2 | 3 => {
                if let Some(port) = port(field, done)? {
                    ports[count - 2] = port;
                }
            }
            _ => return Err(ProxyError::FieldCount),
        }
        count += 1;
    }
    if !complete {
        return Ok(None);
    }
    if count != 4 {
        return Err(ProxyError::FieldCount);
    }
    Ok(Some(ProxiedAddrs {
        source: SocketAddr::new(addrs[0], ports[0]),
        destination: SocketAddr::new(addrs[1], ports[1]),
    }))
}

/// An address field; `Ok(None)` when `done` is false and the text may still become valid.
fn address(text: &[u8], family: Family, done: bool) -> Result<Option<IpAddr>, ProxyError> {
    if !done {
        let plausible = text.len() <= MAX_ADDR_TEXT
            && text
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        return if plausible {
            Ok(None)
        } else {
            Err(ProxyError::BadAddress)
        };
    }
    if text.is_empty() {
        return Err(ProxyError::BadSpacing);
    }
    // Both parsers reject octal-looking IPv4 octets ("010") and IPv6 zones; the IPv6 one
    // takes a dotted IPv4 tail, as inet_pton does.
    let text = std::str::from_utf8(text).map_err(|_| ProxyError::BadAddress)?;
    let parsed = match family {
        Family::V4 => text.parse::<Ipv4Addr>().map(IpAddr::V4),
        Family::V6 => text.parse::<Ipv6Addr>().map(IpAddr::V6),
    };
    // Only a refused address pays for the second parse, which names the error.
    parsed.map(Some).map_err(|_| match text.parse::<IpAddr>() {
        Ok(_) => ProxyError::FamilyMismatch,
        Err(_) => ProxyError::BadAddress,
    })
}

/// A port field; `Ok(None)` when `done` is false and the text may still become valid.
fn port(text: &[u8], done: bool) -> Result<Option<u16>, ProxyError> {
    if text.is_empty() {
        return if done {
            Err(ProxyError::BadSpacing)
        } else {
            Ok(None)
        };
    }
    if text.len() > MAX_PORT_TEXT
        || !text.iter().all(u8::is_ascii_digit)
        || (text[0] == b'0' && text.len() > 1)
    {
        return Err(ProxyError::BadPort);
    }
    // At most 5 digits: no overflow in u32.
    let value = text
        .iter()
        .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
    let port = u16::try_from(value).map_err(|_| ProxyError::BadPort)?;
    Ok(done.then_some(port))
}

/// Appends a v1 line for `addrs`, or `PROXY UNKNOWN\r\n` for `None`.
///
/// Two IPv4 addresses give `TCP4`; anything else gives `TCP6`, with an IPv4 address written
/// IPv4-mapped. The line is at most 104 bytes.
pub fn write_v1(addrs: Option<&ProxiedAddrs>, out: &mut Vec<u8>) {
    let Some(a) = addrs else {
        out.extend_from_slice(b"PROXY UNKNOWN\r\n");
        return;
    };
    let (src, dst) = (a.source, a.destination);
    // Writing into a Vec cannot fail.
    let _ = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => write!(out, "PROXY TCP4 {s} {d}"),
        (s, d) => write!(out, "PROXY TCP6 {} {}", as_v6(s), as_v6(d)),
    };
    let _ = write!(out, " {} {}\r\n", src.port(), dst.port());
}
