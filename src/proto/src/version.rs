//! Multiplexer protocol versions. The token names the version; there is no negotiation on the
//! wire, so both ends must agree, and a sender never uses what the peer's version lacks.

use std::fmt;

/// The multiplexer protocol version a tunnel speaks, fixed by its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// The original protocol: NEW, DATA, CLOSE, PING. SniTun 0.40.0 and older kill the tunnel
    /// on any other flow byte.
    V0,
    /// Adds PAUSE and RESUME flow control (SniTun 0.42+).
    V1,
    /// Moves the caller address into an encrypted NEW payload, with IPv6 (SniTun 0.46+).
    V2,
}

impl ProtocolVersion {
    /// The newest version this crate speaks.
    pub const LATEST: Self = Self::V2;

    /// The version with this number, if this crate speaks it.
    pub fn from_number(n: u64) -> Option<Self> {
        match n {
            0 => Some(Self::V0),
            1 => Some(Self::V1),
            2 => Some(Self::V2),
            _ => None,
        }
    }

    /// The number written in tokens.
    pub fn number(self) -> u8 {
        match self {
            Self::V0 => 0,
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }

    /// Whether PAUSE and RESUME may be sent to a peer of this version.
    pub fn has_flow_control(self) -> bool {
        self >= Self::V1
    }

    /// Whether NEW carries the caller address as an encrypted payload (else in EXTRA, IPv4).
    pub fn has_new_payload(self) -> bool {
        self >= Self::V2
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}
