//! Fernet keys and tunnel tokens, as a session master would mint them.

use anyhow::{Context, Result};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::path::Path;
use std::time::{Duration, SystemTime};

use sluice_proto::crypto::CipherKind;
use sluice_proto::token::{FernetKey, Issuer, TokenClaims, TokenRequest};
use sluice_proto::version::ProtocolVersion;

/// How long minted tokens are valid.
const VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// Reads a key file (one urlsafe-base64 key per line, `#` comments); the first key mints.
pub fn read_keys(path: &Path) -> Result<Vec<FernetKey>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let keys = sluice_proto::token::parse_key_file(&text)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(keys)
}

/// A fresh key in its file form.
pub fn new_key() -> String {
    FernetKey::generate(&mut StdRng::from_entropy()).to_base64()
}

/// What a tunnel client needs: the token and the key material inside it.
#[derive(Clone)]
pub struct Creds {
    /// The Fernet token, sent verbatim.
    pub token: String,
    /// What it grants.
    pub claims: TokenClaims,
}

impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("claims", &self.claims)
            .finish()
    }
}

impl Creds {
    /// Mints credentials for `host` with a fresh AES key and IV.
    pub fn mint(
        key: &FernetKey,
        host: &str,
        version: ProtocolVersion,
        cipher: CipherKind,
        rng: &mut StdRng,
    ) -> Result<Self> {
        let mut request = TokenRequest::new(
            host.parse()
                .map_err(|e| anyhow::anyhow!("host name {host:?}: {e}"))?,
        );
        request.protocol_version = version;
        request.cipher = cipher;
        request.valid_for = VALIDITY;
        let issued =
            Issuer::new(std::slice::from_ref(key))?.issue(&request, SystemTime::now(), rng)?;
        Ok(Self {
            token: issued.token,
            claims: issued.claims,
        })
    }

    /// The JSON config the real SniTun client script (`src/testkit/peers/client.py`) reads.
    pub fn snitun_client_json(&self) -> serde_json::Value {
        let c = &self.claims;
        serde_json::json!({
            "token": self.token,
            "aes_key": hex(&c.aes_key),
            "aes_iv": hex(&c.aes_iv),
            "protocol_version": c.protocol_version.number(),
            "cipher": c.cipher.name(),
            "hostname": c.hostname.as_str(),
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses a protocol version number (0, 1, 2).
pub fn parse_version(s: &str) -> Result<ProtocolVersion, String> {
    s.parse::<u64>()
        .ok()
        .and_then(ProtocolVersion::from_number)
        .ok_or_else(|| format!("unknown protocol version {s:?} (0, 1 or 2)"))
}

/// Parses a cipher name.
pub fn parse_cipher(s: &str) -> Result<CipherKind, String> {
    CipherKind::from_name(s).ok_or_else(|| format!("unknown cipher {s:?}"))
}

/// The host names of a pattern: `{}` is replaced by the index.
pub fn host_name(pattern: &str, i: usize) -> String {
    pattern.replace("{}", &i.to_string())
}
