//! What a new connection to the edge is, from its first bytes: an optional PROXY header (on a
//! listener that trusts one), then the first byte decides: `0x16` is a TLS ClientHello (read
//! whole, for its SNI), `g` a tunnel token, anything else is refused.
//!
//! [`classify`] is stateless: the edge calls it again after every read with everything read
//! so far, and the answer does not depend on how the bytes were split into reads. It answers
//! *need more*, a [`Preamble`], or a [`Refusal`] that says what the client gets told.

use std::net::IpAddr;

use crate::Hostname;
use crate::peek::Peek;
use crate::proxy::peek_proxy_header;
use crate::sni::{AlertDescription, HelloError, peek_client_hello};

/// Bytes a preamble may take beyond the hello cap: record headers and a PROXY header.
pub const PREAMBLE_SLACK: usize = 4096;

/// What the listener allows and trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// A PROXY header (v1 or v2) must come first; its source address is the caller's.
    pub trust_proxy: bool,
    /// Browsers (TLS) may connect here.
    pub browsers: bool,
    /// Tunnels (a token) may connect here.
    pub tunnels: bool,
    /// Largest ClientHello handshake message.
    pub max_hello_len: usize,
}

/// A connection whose kind is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preamble {
    /// A browser: its ClientHello is complete.
    Browser {
        /// Where the TLS stream starts (after any PROXY header).
        start: usize,
        /// The SNI, if the hello has one.
        sni: Option<Hostname>,
        /// The record version of the hello, for alerts.
        record_version: u16,
        /// The caller's address from the PROXY header, if it gave one.
        caller: Option<IpAddr>,
    },
    /// A tunnel: the token starts at `start`.
    Tunnel {
        /// Where the token starts (after any PROXY header).
        start: usize,
        /// The caller's address from the PROXY header, if it gave one.
        caller: Option<IpAddr>,
    },
}

/// Why a connection is turned away, and the TLS alert it gets, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A missing or malformed PROXY header on a listener that trusts one.
    BadProxyHeader,
    /// TLS on a tunnel-only listener.
    TlsOnTunnelPort,
    /// A token on a browser-only listener.
    TunnelOnBrowserPort,
    /// Neither TLS nor a token.
    NotTls,
    /// A hello over the cap, or more bytes than the cap allows without a complete one.
    HelloTooLarge {
        /// The alert to send, in the hello's record version.
        alert: AlertDescription,
        /// That record version.
        record_version: u16,
    },
    /// A malformed ClientHello.
    MalformedHello {
        /// The alert to send.
        alert: AlertDescription,
        /// The hello's record version.
        record_version: u16,
    },
}

/// Classifies a connection from the bytes read so far.
pub fn classify(buf: &[u8], rules: &Rules) -> Result<Peek<Preamble>, Refusal> {
    let (start, caller) = if rules.trust_proxy {
        match peek_proxy_header(buf) {
            Ok(Peek::Complete(h)) => (h.len, h.addresses.map(|a| a.source.ip().to_canonical())),
            // The PROXY parser bounds its own header.
            Ok(Peek::NeedMore) => return Ok(Peek::NeedMore),
            Ok(Peek::NotThisProtocol) | Err(_) => return Err(Refusal::BadProxyHeader),
        }
    } else {
        (0, None)
    };
    let body = &buf[start..];
    let Some(&first) = body.first() else {
        return Ok(Peek::NeedMore);
    };
    match first {
        0x16 if !rules.browsers => Err(Refusal::TlsOnTunnelPort),
        0x16 => match peek_client_hello(body, rules.max_hello_len) {
            Ok(Peek::Complete(hello)) => Ok(Peek::Complete(Preamble::Browser {
                start,
                sni: hello.server_name,
                record_version: hello.record_version,
                caller,
            })),
            Ok(Peek::NeedMore) => need_more(body, rules),
            Ok(Peek::NotThisProtocol) => Err(Refusal::NotTls),
            Err(e) => {
                let record_version = record_version(body);
                Err(match e {
                    HelloError::TooLarge { .. } => Refusal::HelloTooLarge {
                        alert: e.alert(),
                        record_version,
                    },
                    _ => Refusal::MalformedHello {
                        alert: e.alert(),
                        record_version,
                    },
                })
            }
        },
        b'g' if rules.tunnels => Ok(Peek::Complete(Preamble::Tunnel { start, caller })),
        b'g' => Err(Refusal::TunnelOnBrowserPort),
        _ => Err(Refusal::NotTls),
    }
}

/// The most bytes a preamble may take after its PROXY header before it is refused.
pub fn cap(rules: &Rules) -> usize {
    rules.max_hello_len + PREAMBLE_SLACK
}

/// A hello still incomplete: fine below the cap, refused at it (records cut into tiny
/// fragments could otherwise grow the buffer without bound).
fn need_more(body: &[u8], rules: &Rules) -> Result<Peek<Preamble>, Refusal> {
    if body.len() >= cap(rules) {
        return Err(Refusal::HelloTooLarge {
            alert: AlertDescription::HandshakeFailure,
            record_version: record_version(body),
        });
    }
    Ok(Peek::NeedMore)
}

/// The record version of a buffer that starts with a TLS record (TLS 1.0 if unreadable).
fn record_version(buf: &[u8]) -> u16 {
    match buf {
        [0x16, major, minor, ..] => u16::from_be_bytes([*major, *minor]),
        _ => 0x0301,
    }
}

#[cfg(test)]
mod tests;
