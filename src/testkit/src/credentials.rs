//! What a session master hands out: a Fernet key for the server and, for one tunnel, a token
//! plus the AES key and IV that the client needs, minted with `sluice-proto`.
//!
//! ```
//! use sluice_proto::{crypto::CipherKind, version::ProtocolVersion};
//! use sluice_testkit::Credentials;
//!
//! let creds = Credentials::builder("a.example.test")
//!     .alias("b.example.test")
//!     .protocol(ProtocolVersion::V2)
//!     .cipher(CipherKind::AesGcm)
//!     .build()
//!     .unwrap();
//! assert!(creds.token.starts_with("gA"));
//! let claims = sluice_proto::token::verify_token(
//!     creds.token.as_bytes(),
//!     std::slice::from_ref(&creds.fernet_key),
//!     std::time::SystemTime::now(),
//! )
//! .unwrap();
//! assert_eq!(claims.aes_key, creds.aes_key);
//! ```

use std::path::Path;
use std::time::{Duration, SystemTime};

use rand::SeedableRng as _;
use rand::rngs::StdRng;
use sluice_proto::Hostname;
use sluice_proto::crypto::{CipherKind, IV_LEN, KEY_LEN};
use sluice_proto::token::{FernetKey, TokenClaims, unix_seconds};
use sluice_proto::version::ProtocolVersion;

use crate::error::{Error, Result};
use crate::real_client::ClientConfig;

/// A Fernet key and one token minted with it, with everything both sides need.
#[derive(Clone)]
pub struct Credentials {
    /// The key the server verifies tokens with (give it to [`crate::RealServer::start`]).
    pub fernet_key: FernetKey,
    /// The token the client sends (urlsafe base64, starts with `gA`).
    pub token: String,
    /// The tunnel's AES-256 key (client side; also inside the token).
    pub aes_key: [u8; KEY_LEN],
    /// The tunnel's CBC IV (client side; also inside the token, unused by the AEAD ciphers).
    pub aes_iv: [u8; IV_LEN],
    /// The claims inside the token.
    pub claims: TokenClaims,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("claims", &self.claims)
            .field("token_len", &self.token.len())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// A fresh key and a v0 / aes-cbc token for `hostname`, valid for an hour.
    pub fn new(hostname: &str) -> Result<Self> {
        Self::builder(hostname).build()
    }

    /// A builder for other versions, ciphers, aliases, keys or validity.
    pub fn builder(hostname: &str) -> CredentialsBuilder {
        CredentialsBuilder {
            hostname: hostname.to_owned(),
            aliases: Vec::new(),
            protocol_version: ProtocolVersion::V0,
            cipher: CipherKind::AesCbc,
            valid_until: None,
            fernet_key: None,
            aes_key: None,
            aes_iv: None,
        }
    }

    /// The tunnel's protocol version.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.claims.protocol_version
    }

    /// The tunnel's cipher.
    pub fn cipher(&self) -> CipherKind {
        self.claims.cipher
    }

    /// What [`crate::RealClient::start`] needs.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            token: self.token.clone(),
            aes_key: self.aes_key,
            aes_iv: self.aes_iv,
            protocol_version: self.claims.protocol_version,
            cipher: self.claims.cipher,
        }
    }
}

/// Builds [`Credentials`]; see [`Credentials::builder`].
#[derive(Debug, Clone)]
pub struct CredentialsBuilder {
    hostname: String,
    aliases: Vec<String>,
    protocol_version: ProtocolVersion,
    cipher: CipherKind,
    valid_until: Option<f64>,
    fernet_key: Option<FernetKey>,
    aes_key: Option<[u8; KEY_LEN]>,
    aes_iv: Option<[u8; IV_LEN]>,
}

impl CredentialsBuilder {
    /// Adds an alias (another host name routed to the same tunnel).
    pub fn alias(mut self, name: &str) -> Self {
        self.aliases.push(name.to_owned());
        self
    }

    /// The multiplexer protocol version (default 0).
    pub fn protocol(mut self, version: ProtocolVersion) -> Self {
        self.protocol_version = version;
        self
    }

    /// The tunnel cipher (default aes-cbc).
    pub fn cipher(mut self, cipher: CipherKind) -> Self {
        self.cipher = cipher;
        self
    }

    /// Valid for `d` from now (default an hour).
    pub fn valid_for(mut self, d: Duration) -> Self {
        self.valid_until = Some(unix_seconds(SystemTime::now()) + d.as_secs_f64());
        self
    }

    /// Valid until this Unix time; a time in the past makes an expired token.
    pub fn valid_until(mut self, unix_secs: f64) -> Self {
        self.valid_until = Some(unix_secs);
        self
    }

    /// Expired a minute ago.
    pub fn expired(self) -> Self {
        let t = unix_seconds(SystemTime::now()) - 60.0;
        self.valid_until(t)
    }

    /// Mints with this key instead of a fresh one (e.g. a server's existing key).
    pub fn fernet_key(mut self, key: FernetKey) -> Self {
        self.fernet_key = Some(key);
        self
    }

    /// Pins the tunnel's AES key and IV instead of random ones.
    pub fn aes(mut self, key: [u8; KEY_LEN], iv: [u8; IV_LEN]) -> Self {
        self.aes_key = Some(key);
        self.aes_iv = Some(iv);
        self
    }

    /// Mints the token. Fails only for an invalid host name.
    pub fn build(self) -> Result<Credentials> {
        let mut rng = StdRng::from_entropy();
        let parse = |name: &str| {
            Hostname::parse(name.as_bytes())
                .map_err(|e| Error::Other(format!("invalid host name {name:?}: {e}")))
        };
        let hostname = parse(&self.hostname)?;
        let aliases = self
            .aliases
            .iter()
            .map(|a| parse(a))
            .collect::<Result<Vec<_>>>()?;
        let fernet_key = self
            .fernet_key
            .unwrap_or_else(|| FernetKey::generate(&mut rng));
        let aes_key = self.aes_key.unwrap_or_else(|| rand::Rng::r#gen(&mut rng));
        let aes_iv = self.aes_iv.unwrap_or_else(|| rand::Rng::r#gen(&mut rng));
        let now = unix_seconds(SystemTime::now());
        let claims = TokenClaims {
            valid: self.valid_until.unwrap_or(now + 3600.0),
            hostname,
            aliases,
            aes_key,
            aes_iv,
            protocol_version: self.protocol_version,
            cipher: self.cipher,
        };
        // `now` is far below 2^60, so the token starts with "gA".
        let token = claims.mint(&fernet_key, now as u64, &mut rng);
        Ok(Credentials {
            fernet_key,
            token,
            aes_key,
            aes_iv,
            claims,
        })
    }
}

/// Writes `keys` as a Fernet key file, the format `sluice edge --fernet-keys` and
/// `sluice token issue --fernet-keys` read: one urlsafe-base64 key a line, the first the one
/// that mints, after a comment line (which readers skip).
pub fn write_key_file(path: &Path, keys: &[FernetKey]) -> Result<()> {
    let mut text = String::from("# Fernet keys, written by sluice-testkit\n");
    for key in keys {
        text.push_str(&key.to_base64());
        text.push('\n');
    }
    crate::rundir::write_file(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::token::{TokenError, verify_token};

    #[test]
    fn minted_tokens_verify_and_carry_the_claims() {
        let creds = Credentials::builder("a.example.test")
            .alias("b.example.test")
            .protocol(ProtocolVersion::V1)
            .cipher(CipherKind::AesGcmSiv)
            .build()
            .unwrap();
        assert!(creds.token.starts_with("gA"));
        let claims = verify_token(
            creds.token.as_bytes(),
            std::slice::from_ref(&creds.fernet_key),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(claims, creds.claims);
        assert_eq!(claims.aliases.len(), 1);
        let cfg = creds.client_config();
        assert_eq!(cfg.aes_iv, creds.aes_iv);
        assert_eq!(cfg.cipher, CipherKind::AesGcmSiv);
    }

    #[test]
    fn expired_and_foreign_keys() {
        let creds = Credentials::builder("a.example.test")
            .expired()
            .build()
            .unwrap();
        let err = verify_token(
            creds.token.as_bytes(),
            std::slice::from_ref(&creds.fernet_key),
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(matches!(err, TokenError::Expired { .. }), "{err:?}");
        let other = Credentials::new("a.example.test").unwrap();
        let theirs = Credentials::builder("c.example.test")
            .fernet_key(other.fernet_key.clone())
            .build()
            .unwrap();
        assert!(
            verify_token(
                theirs.token.as_bytes(),
                &[other.fernet_key],
                SystemTime::now()
            )
            .is_ok()
        );
    }

    #[test]
    fn bad_host_names_are_errors() {
        assert!(Credentials::new("not a host").is_err());
    }
}
