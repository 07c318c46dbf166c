//! Multiplexer errors: fatal ones end the tunnel, the others refuse one request.

use crate::crypto::CryptoError;
use crate::version::ProtocolVersion;

/// Who is to blame for a tunnel ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Blame {
    /// The peer broke the protocol.
    Peer,
    /// A timer ran out: silence, an unanswered ping, an expired token.
    Timeout,
    /// This side gave up (counter exhaustion, shutdown).
    Local,
}

/// Why a tunnel ended. After one is returned, every further call returns [`MuxError::Closed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    /// A unit did not decrypt (bad tag, nonce out of sequence, bad length).
    #[error("frame did not decrypt: {0}")]
    Crypto(CryptoError),
    /// A frame's SIZE is above the configured cap.
    #[error("frame of {size} bytes is over the {max}-byte cap")]
    FrameTooLarge {
        /// The SIZE field.
        size: u32,
        /// The cap.
        max: u32,
    },
    /// A protocol-2 NEW whose encrypted payload has an impossible size.
    #[error("NEW frame with a {0}-byte payload")]
    BadNewPayload(u32),
    /// A NEW frame in another protocol version's format than the token's: the peer ignores
    /// the token's version (SniTun 0.40 and older speak only protocol 0), so no channel it
    /// opens could be served.
    #[error(
        "the server opened a channel in the format of protocol {}, but the token says protocol {token}",
        if token.has_new_payload() { "0 or 1" } else { "2" }
    )]
    VersionMismatch {
        /// The token's version, which this side speaks.
        token: ProtocolVersion,
    },
    /// Nothing was received for the idle timeout.
    #[error("tunnel idle for too long")]
    IdleTimeout,
    /// A keepalive PING went unanswered.
    #[error("keepalive ping unanswered")]
    KeepaliveTimeout,
    /// The tunnel's token expired.
    #[error("tunnel token expired")]
    Expired,
    /// This side ran out of AES-GCM nonces for its direction.
    #[error("AES-GCM nonces exhausted; the tunnel must reconnect with a new key")]
    NonceExhausted,
    /// The tunnel had already ended.
    #[error("tunnel is closed")]
    Closed,
}

impl MuxError {
    /// Who caused it.
    pub fn blame(&self) -> Blame {
        match self {
            Self::Crypto(_)
            | Self::FrameTooLarge { .. }
            | Self::BadNewPayload(_)
            | Self::VersionMismatch { .. } => Blame::Peer,
            Self::IdleTimeout | Self::KeepaliveTimeout | Self::Expired => Blame::Timeout,
            Self::NonceExhausted | Self::Closed => Blame::Local,
        }
    }
}

impl MuxError {
    /// For [`MuxError::VersionMismatch`]: the version to put in the token instead. Protocol 0
    /// when the peer sent the older format (every SniTun speaks it), 2 otherwise.
    pub fn suggested_version(&self) -> Option<ProtocolVersion> {
        match self {
            Self::VersionMismatch { token } if token.has_new_payload() => Some(ProtocolVersion::V0),
            Self::VersionMismatch { .. } => Some(ProtocolVersion::V2),
            _ => None,
        }
    }
}

/// A channel could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The tunnel has [`crate::mux::MuxConfig::max_channels`] channels open.
    #[error("tunnel has too many channels open")]
    TooManyChannels,
    /// Only the server opens channels.
    #[error("only the server side opens channels")]
    NotServer,
    /// The tunnel has ended.
    #[error("tunnel is closed")]
    TunnelClosed,
    /// Every one of [`crate::mux::MAX_CHANNEL_ID_DRAWS`] random ids was already in use: the
    /// random source is broken.
    #[error(
        "no unused channel id in {} random draws; the random source is broken",
        crate::mux::MAX_CHANNEL_ID_DRAWS
    )]
    NoFreeChannelId,
}

/// Data could not be queued on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The channel is closed (by either side) or the handle is stale.
    #[error("channel is closed")]
    ChannelClosed,
}
