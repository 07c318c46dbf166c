//! Multiplexer frames: the 32-byte header (`>16sBI11s`: channel id, flow, size, extra) and the
//! encodings of the caller address and the ping marker that live in it.
//!
//! This module only packs and unpacks plaintext; [`crate::mux`] encrypts, queues and parses
//! streams of frames.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::random::Random;

/// Bytes of a plaintext header.
pub const HEADER_LEN: usize = 32;
/// Bytes of the EXTRA field.
pub const EXTRA_LEN: usize = 11;

/// A channel's 16-byte id, chosen at random by the side that opens it (the server).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub [u8; 16]);

impl ChannelId {
    /// A fresh random id.
    pub fn random(rng: &mut dyn Random) -> Self {
        let mut id = [0; 16];
        rng.fill(&mut id);
        Self(id)
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The flow byte: what a frame does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    /// Opens a channel (server to client only).
    New,
    /// Payload for a channel, in clear after the header.
    Data,
    /// Closes a channel, both directions at once.
    Close,
    /// Keepalive; answered with a PING whose EXTRA starts with `pong`.
    Ping,
    /// Asks the receiver to stop reading the source of a channel (protocol 1+).
    Pause,
    /// Lifts a PAUSE (protocol 1+).
    Resume,
    /// A flow byte this crate does not know; ignored, as SniTun 0.46+ does.
    Unknown(u8),
}

impl Flow {
    /// The wire byte. PAUSE and RESUME are 0x16 and 0x32: hex literals that look decimal.
    pub fn byte(self) -> u8 {
        match self {
            Self::New => 0x01,
            Self::Data => 0x02,
            Self::Close => 0x04,
            Self::Ping => 0x08,
            Self::Pause => 0x16,
            Self::Resume => 0x32,
            Self::Unknown(b) => b,
        }
    }

    /// The flow for a wire byte.
    pub fn from_byte(b: u8) -> Self {
        match b {
            0x01 => Self::New,
            0x02 => Self::Data,
            0x04 => Self::Close,
            0x08 => Self::Ping,
            0x16 => Self::Pause,
            0x32 => Self::Resume,
            other => Self::Unknown(other),
        }
    }
}

/// A plaintext frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The channel (or, for PING, a random id that is not a channel).
    pub channel: ChannelId,
    /// What the frame does.
    pub flow: Flow,
    /// Plaintext bytes that follow the header.
    pub size: u32,
    /// Flow-specific bytes, padded with random bytes.
    pub extra: [u8; EXTRA_LEN],
}

impl Header {
    /// Packs the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0; HEADER_LEN];
        out[..16].copy_from_slice(&self.channel.0);
        out[16] = self.flow.byte();
        out[17..21].copy_from_slice(&self.size.to_be_bytes());
        out[21..].copy_from_slice(&self.extra);
        out
    }

    /// Unpacks a header. Every 32-byte string is some header; validation is the caller's.
    pub fn decode(raw: &[u8; HEADER_LEN]) -> Self {
        let mut channel = [0; 16];
        channel.copy_from_slice(&raw[..16]);
        let mut size = [0; 4];
        size.copy_from_slice(&raw[17..21]);
        let mut extra = [0; EXTRA_LEN];
        extra.copy_from_slice(&raw[21..]);
        Self {
            channel: ChannelId(channel),
            flow: Flow::from_byte(raw[16]),
            size: u32::from_be_bytes(size),
            extra,
        }
    }
}

/// EXTRA filled with `prefix` and then random padding.
pub fn extra_with(prefix: &[u8], rng: &mut dyn Random) -> [u8; EXTRA_LEN] {
    let mut extra = [0; EXTRA_LEN];
    let n = prefix.len().min(EXTRA_LEN);
    extra[..n].copy_from_slice(&prefix[..n]);
    // One draw of exactly the padding length, as SniTun's `os.urandom(11 - len)`.
    rng.fill(&mut extra[n..]);
    extra
}

/// Marks a PING as a request.
pub const PING_MARK: &[u8; 4] = b"ping";
/// Marks a PING as an answer.
pub const PONG_MARK: &[u8; 4] = b"pong";

/// The IPv4 address a protocol-0/1 NEW can carry for `ip`: itself, the embedded address of an
/// IPv4-mapped IPv6 address, else 0.0.0.0 (as SniTun sends for IPv6 callers).
pub fn ipv4_for_extra(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
    }
}

/// EXTRA of a protocol-0/1 NEW: `'4'`, the IPv4 address, 6 random bytes.
pub fn new_extra_v0(ip: IpAddr, rng: &mut dyn Random) -> [u8; EXTRA_LEN] {
    let mut prefix = [0; 5];
    prefix[0] = b'4';
    prefix[1..].copy_from_slice(&ipv4_for_extra(ip).octets());
    extra_with(&prefix, rng)
}

/// The caller address in a protocol-0/1 NEW's EXTRA (bytes 1..5; the marker is not checked,
/// as in SniTun).
pub fn caller_from_extra(extra: &[u8; EXTRA_LEN]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(extra[1], extra[2], extra[3], extra[4]))
}

/// The plaintext payload of a protocol-2 NEW: `'4'` + 4 bytes or `'6'` + 16 bytes, padded with
/// random bytes to 16 or 32. Returns the buffer and the used length.
pub fn new_payload_v2(ip: IpAddr, rng: &mut dyn Random) -> ([u8; 32], usize) {
    let mut out = [0; 32];
    let (used, len) = match ip {
        IpAddr::V4(v4) => {
            out[0] = b'4';
            out[1..5].copy_from_slice(&v4.octets());
            (5, 16)
        }
        IpAddr::V6(v6) => {
            out[0] = b'6';
            out[1..17].copy_from_slice(&v6.octets());
            (17, 32)
        }
    };
    rng.fill(&mut out[used..len]);
    (out, len)
}

/// The caller address in a protocol-2 NEW payload: marker `'6'` takes 16 bytes, anything else
/// 4. `None` when the payload is too short for it.
pub fn caller_from_new_payload(payload: &[u8]) -> Option<IpAddr> {
    match payload {
        [b'6', rest @ ..] => {
            let octets: [u8; 16] = rest.get(..16)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        [_, rest @ ..] => {
            let octets: [u8; 4] = rest.get(..4)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(octets)))
        }
        [] => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::random::VectorPattern;

    #[test]
    fn packs_like_the_unit_vectors() {
        let id = ChannelId(
            hex::decode("00112233445566778899aabbccddeeff")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let new = Header {
            channel: id,
            flow: Flow::New,
            size: 0,
            extra: *b"4\xc0\x00\x02\x0a\xaa\xaa\xaa\xaa\xaa\xaa",
        };
        assert_eq!(
            hex::encode(new.encode()),
            "00112233445566778899aabbccddeeff010000000034c000020aaaaaaaaaaaaa"
        );
        let data = Header {
            channel: id,
            flow: Flow::Data,
            size: 1234,
            extra: [0xaa; 11],
        };
        assert_eq!(
            hex::encode(data.encode()),
            "00112233445566778899aabbccddeeff02000004d2aaaaaaaaaaaaaaaaaaaaaa"
        );
        assert_eq!(
            caller_from_extra(&new.extra),
            "192.0.2.10".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn padding_is_drawn_as_snitun_draws_it() {
        // SniTun pads a v0 NEW with urandom(6) and a ping with urandom(7).
        let extra = new_extra_v0("127.0.0.1".parse().unwrap(), &mut VectorPattern);
        assert_eq!(hex::encode(extra), "347f000001606162636465");
        let ping = extra_with(PING_MARK, &mut VectorPattern);
        assert_eq!(hex::encode(ping), "70696e6770717273747576");
        let (payload, len) = new_payload_v2("127.0.0.1".parse().unwrap(), &mut VectorPattern);
        assert_eq!(
            hex::encode(&payload[..len]),
            "347f000001b0b1b2b3b4b5b6b7b8b9ba"
        );
    }

    #[test]
    fn ipv6_callers_in_old_protocols() {
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(ipv4_for_extra(mapped), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(
            ipv4_for_extra("2001:db8::1".parse().unwrap()),
            Ipv4Addr::UNSPECIFIED
        );
    }

    #[test]
    fn short_new_payloads_have_no_caller() {
        assert_eq!(caller_from_new_payload(b""), None);
        assert_eq!(caller_from_new_payload(b"4\x01\x02\x03"), None);
        assert_eq!(caller_from_new_payload(&[b'6'; 16]), None);
        assert_eq!(
            caller_from_new_payload(b"x\x01\x02\x03\x04"),
            Some("1.2.3.4".parse().unwrap())
        );
    }

    #[test]
    fn flow_bytes_round_trip() {
        for b in 0..=255u8 {
            assert_eq!(Flow::from_byte(b).byte(), b);
        }
        assert_eq!(Flow::Pause.byte(), 22);
        assert_eq!(Flow::Resume.byte(), 50);
    }

    proptest! {
        #[test]
        fn header_round_trips(raw in any::<[u8; 32]>()) {
            prop_assert_eq!(Header::decode(&raw).encode(), raw);
        }

        #[test]
        fn caller_round_trips(ip in any::<IpAddr>()) {
            let (payload, len) = new_payload_v2(ip, &mut VectorPattern);
            prop_assert_eq!(caller_from_new_payload(&payload[..len]), Some(ip));
            let extra = new_extra_v0(ip, &mut VectorPattern);
            prop_assert_eq!(caller_from_extra(&extra), IpAddr::V4(ipv4_for_extra(ip)));
        }
    }
}
