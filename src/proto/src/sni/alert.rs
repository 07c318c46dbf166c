//! The one TLS record the edge ever writes itself: a fatal alert before it closes.
//!
//! SniTun closes without a word, so a browser shows a generic connection error; an alert
//! tells the client (and its user) why.

use super::{HelloError, Malformed};

const CONTENT_TYPE_ALERT: u8 = 0x15;
const ALERT_LEVEL_FATAL: u8 = 2;

/// The TLS alert descriptions the edge may send (RFC 8446 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AlertDescription {
    /// A record or message arrived where it is not allowed.
    UnexpectedMessage = 10,
    /// A record longer than 2^14 bytes.
    RecordOverflow = 22,
    /// The hello is acceptable TLS, but not to us (for instance over the size cap).
    HandshakeFailure = 40,
    /// A field is out of range or inconsistent (an invalid server name).
    IllegalParameter = 47,
    /// A message could not be decoded.
    DecodeError = 50,
    /// The client's protocol version is not supported.
    ProtocolVersion = 70,
    /// Something went wrong on our side (no tunnel could take the connection).
    InternalError = 80,
    /// No server name was sent, or it names no tunnel we know.
    UnrecognizedName = 112,
}

impl HelloError {
    /// The alert to send to the client that caused this error.
    pub fn alert(&self) -> AlertDescription {
        match self {
            Self::TooLarge { .. } => AlertDescription::HandshakeFailure,
            Self::InvalidServerName(_) => AlertDescription::IllegalParameter,
            Self::Malformed(Malformed::RecordOverflow) => AlertDescription::RecordOverflow,
            Self::Malformed(Malformed::UnexpectedContentType) => {
                AlertDescription::UnexpectedMessage
            }
            Self::Malformed(Malformed::BadRecordVersion | Malformed::BadLegacyVersion) => {
                AlertDescription::ProtocolVersion
            }
            Self::Malformed(_) => AlertDescription::DecodeError,
        }
    }
}

/// A plaintext fatal alert record: `15 VV VV 00 02 02 DD`.
///
/// `record_version` should be [`super::ClientHello::record_version`] (or `0x0301` when the
/// hello never parsed), so that even a TLS 1.0 client reads the record.
pub fn fatal_alert(description: AlertDescription, record_version: u16) -> [u8; 7] {
    let [major, minor] = record_version.to_be_bytes();
    [
        CONTENT_TYPE_ALERT,
        major,
        minor,
        0x00,
        0x02,
        ALERT_LEVEL_FATAL,
        description as u8,
    ]
}
