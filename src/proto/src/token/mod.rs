//! SniTun tokens: a Fernet container around a JSON payload that a session master mints and
//! the tunnel server checks.
//!
//! The payload names the tunnel's host names, its AES key and IV, its protocol version and
//! cipher, and its expiry (`valid`, Unix seconds). Keys rotate by listing several: any of
//! them may verify, the first one mints. The Fernet timestamp is not used, as in SniTun.

mod credentials;
mod fernet;
mod framing;
mod issuer;
mod key_file;
mod payload;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use credentials::{Credentials, CredentialsError};
pub use fernet::{FernetError, FernetKey, FernetKeyError};
pub use framing::{TokenFraming, frame_token, is_unsigned_token};
pub use issuer::{DEFAULT_VALIDITY, IssueError, Issued, Issuer, TokenRequest};
pub use key_file::{KeyFileError, parse_key_file};

use crate::crypto::{CipherKind, IV_LEN, KEY_LEN};
use crate::hostname::{Hostname, HostnameError};
use crate::limits::MAX_ALIASES;
use crate::random::Random;
use crate::version::ProtocolVersion;

/// What a token grants: the decoded payload.
#[derive(Clone, PartialEq)]
pub struct TokenClaims {
    /// Expiry in seconds since the Unix epoch (a float, as Python writes it).
    pub valid: f64,
    /// The primary host name.
    pub hostname: Hostname,
    /// Further host names routed to the same tunnel.
    pub aliases: Vec<Hostname>,
    /// The tunnel's AES-256 key.
    pub aes_key: [u8; KEY_LEN],
    /// The tunnel's CBC IV (present, and ignored, for the AEAD ciphers).
    pub aes_iv: [u8; IV_LEN],
    /// The multiplexer protocol version.
    pub protocol_version: ProtocolVersion,
    /// The tunnel cipher.
    pub cipher: CipherKind,
}

impl TokenClaims {
    /// The expiry as a point in time (saturating for absurd values).
    pub fn expires_at(&self) -> SystemTime {
        let secs = Duration::try_from_secs_f64(self.valid.max(0.0)).unwrap_or(Duration::MAX);
        UNIX_EPOCH
            .checked_add(secs)
            .unwrap_or(UNIX_EPOCH + Duration::from_secs(u32::MAX.into()))
    }

    /// Every host name this token routes: the primary first, then the aliases.
    pub fn names(&self) -> impl Iterator<Item = &Hostname> {
        std::iter::once(&self.hostname).chain(&self.aliases)
    }

    /// Mints a token for these claims with `key`, as a session master does.
    ///
    /// `fernet_time` is the Fernet timestamp (Unix seconds; SniTun ignores it, but it must stay
    /// below 2^60, as every real time does, for the token to start with `gA`, which is how
    /// single-port servers tell a tunnel from a browser); the Fernet IV is drawn from `rng`. The payload JSON is byte-compatible with Python's `json.dumps`.
    pub fn mint(&self, key: &FernetKey, fernet_time: u64, rng: &mut dyn Random) -> String {
        let mut iv = [0; 16];
        rng.fill(&mut iv);
        key.seal(payload::write(self).as_bytes(), fernet_time, &iv)
    }
}

impl fmt::Debug for TokenClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The AES key and IV are secrets.
        f.debug_struct("TokenClaims")
            .field("valid", &self.valid)
            .field("hostname", &self.hostname)
            .field("aliases", &self.aliases)
            .field("protocol_version", &self.protocol_version)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused. Every variant is the token holder's doing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenError {
    /// The Fernet container is malformed or not signed by a configured key.
    #[error(transparent)]
    Fernet(#[from] FernetError),
    /// The plaintext is not a JSON object.
    #[error("token payload is not a JSON object: {0}")]
    NotJson(String),
    /// A required field is absent.
    #[error("token payload lacks the required field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong type or an unusable value.
    #[error("token payload field `{field}` is invalid: {why}")]
    BadField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// A host name in the token is not a valid host name.
    #[error("token host name {name:?} is invalid: {error}")]
    BadHostname {
        /// The name as written in the token.
        name: String,
        /// Why it is not a host name.
        error: HostnameError,
    },
    /// More aliases than [`MAX_ALIASES`].
    #[error("token has {0} aliases, more than the {MAX_ALIASES} allowed")]
    TooManyAliases(usize),
    /// A protocol version this crate does not speak.
    #[error("token asks for multiplexer protocol {0}, which is not supported (0, 1 or 2)")]
    UnsupportedVersion(u64),
    /// The token's `valid` time has passed.
    #[error("token expired at {valid} (now {now})")]
    Expired {
        /// The token's expiry, Unix seconds.
        valid: f64,
        /// The time it was checked at, Unix seconds.
        now: f64,
    },
}

/// Decodes and checks a token: the signature against every key in `keys` (any may match),
/// the payload, and the expiry against `now`.
pub fn verify_token(
    token: &[u8],
    keys: &[FernetKey],
    now: SystemTime,
) -> Result<TokenClaims, TokenError> {
    let plain = fernet::open_with_any(token, keys)?;
    let claims = payload::parse(&plain)?;
    let now = unix_seconds(now);
    if claims.valid < now {
        return Err(TokenError::Expired {
            valid: claims.valid,
            now,
        });
    }
    Ok(claims)
}

/// Seconds since the Unix epoch as a float; 0 before it.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests;
