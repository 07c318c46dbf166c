//! The credentials document: a token and what its holder must know that the token hides.
//!
//! The token is sealed with the edge's Fernet key, so the connector cannot read it; a session
//! master hands the AES key, IV, host names, protocol version, cipher and expiry alongside it,
//! as Nabu Casa's API does for Home Assistant. One JSON document:
//!
//! ```json
//! {"token": "gAAAAA...", "aes_key": "<64 hex>", "aes_iv": "<32 hex>",
//!  "hostname": "home.example.net", "alias": ["ha.example.org"],
//!  "protocol_version": 0, "cipher": "aes-cbc", "valid": 1767225600.0}
//! ```
//!
//! `alias`, `protocol_version` and `cipher` may be left out (none, 0, `aes-cbc`). Reading and
//! writing files is the connector's business (`sluice_connector::CredentialsFile`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime};

use super::TokenClaims;
use crate::Hostname;
use crate::crypto::{CipherKind, IV_LEN, KEY_LEN};
use crate::limits::MAX_TOKEN_LEN;
use crate::version::ProtocolVersion;

/// A credentials document that cannot be used, and why (the issuer's or the file's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CredentialsError(pub String);

/// A token with its key material: everything needed to open one tunnel.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    token: String,
    claims: TokenClaims,
}

#[derive(Serialize, Deserialize)]
struct Raw {
    token: String,
    aes_key: String,
    aes_iv: String,
    hostname: String,
    #[serde(default)]
    alias: Vec<String>,
    #[serde(default)]
    protocol_version: u64,
    #[serde(default = "default_cipher")]
    cipher: String,
    valid: f64,
}

fn default_cipher() -> String {
    CipherKind::AesCbc.name().to_owned()
}

impl Credentials {
    /// Pairs a minted token with the claims it was minted from.
    pub fn new(token: String, claims: TokenClaims) -> Result<Self, CredentialsError> {
        let bad = |why: &str| Err(CredentialsError(why.to_owned()));
        if !token.starts_with("gA") || token.len() > MAX_TOKEN_LEN {
            return bad("the token is not a Fernet token (it must start with \"gA\")");
        }
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
        {
            return bad("the token is not urlsafe base64");
        }
        if !claims.valid.is_finite() {
            return bad("`valid` is not a finite number");
        }
        Ok(Self { token, claims })
    }

    /// Parses the JSON document.
    pub fn from_json(text: &str) -> Result<Self, CredentialsError> {
        let raw: Raw = serde_json::from_str(text)
            .map_err(|e| CredentialsError(format!("not a credentials document: {e}")))?;
        let name = |n: &str| {
            Hostname::parse(n.as_bytes())
                .map_err(|e| CredentialsError(format!("host name {n:?}: {e}")))
        };
        let claims = TokenClaims {
            valid: raw.valid,
            hostname: name(&raw.hostname)?,
            aliases: raw
                .alias
                .iter()
                .map(|a| name(a))
                .collect::<Result<_, _>>()?,
            aes_key: hex_array::<KEY_LEN>(&raw.aes_key, "aes_key")?,
            aes_iv: hex_array::<IV_LEN>(&raw.aes_iv, "aes_iv")?,
            protocol_version: ProtocolVersion::from_number(raw.protocol_version).ok_or_else(
                || {
                    CredentialsError(format!(
                        "protocol_version {} is not 0, 1 or 2",
                        raw.protocol_version
                    ))
                },
            )?,
            cipher: CipherKind::from_name(&raw.cipher).ok_or_else(|| {
                CredentialsError(format!(
                    "cipher {:?} is not aes-cbc, aes-gcm or aes-gcm-siv",
                    raw.cipher
                ))
            })?,
        };
        Self::new(raw.token.trim().to_owned(), claims)
    }

    /// The JSON document (pretty-printed, with a trailing newline).
    pub fn to_json(&self) -> String {
        let c = &self.claims;
        let raw = Raw {
            token: self.token.clone(),
            aes_key: hex::encode(c.aes_key),
            aes_iv: hex::encode(c.aes_iv),
            hostname: c.hostname.as_str().to_owned(),
            alias: c.aliases.iter().map(|a| a.as_str().to_owned()).collect(),
            protocol_version: c.protocol_version.number().into(),
            cipher: c.cipher.name().to_owned(),
            valid: c.valid,
        };
        // Serializing plain strings and numbers cannot fail.
        let mut text = serde_json::to_string_pretty(&raw).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The token, exactly as it is sent to the edge.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// What the token grants: host names, key, IV, version, cipher, expiry.
    pub fn claims(&self) -> &TokenClaims {
        &self.claims
    }

    /// The primary host name.
    pub fn hostname(&self) -> &Hostname {
        &self.claims.hostname
    }

    /// When the token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.claims.expires_at()
    }

    /// Time left before the token expires (zero once it has).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at()
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token and the key are secrets; TokenClaims' Debug already hides the key.
        f.debug_struct("Credentials")
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

fn hex_array<const N: usize>(text: &str, field: &str) -> Result<[u8; N], CredentialsError> {
    let bytes =
        hex::decode(text.trim()).map_err(|_| CredentialsError(format!("`{field}` is not hex")))?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| CredentialsError(format!("`{field}` is {len} bytes, expected {N}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"token": "gAAAAABlU_EA8PHy", "aes_key": "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
        "aes_iv": "404142434445464748494a4b4c4d4e4f", "hostname": "A.Example.Test", "valid": 4102444800.0}"#;

    #[test]
    fn reads_the_minimal_document_with_snitun_defaults() {
        let c = Credentials::from_json(DOC).unwrap();
        assert_eq!(c.hostname().as_str(), "a.example.test");
        assert_eq!(c.claims().protocol_version, ProtocolVersion::V0);
        assert_eq!(c.claims().cipher, CipherKind::AesCbc);
        assert!(c.claims().aliases.is_empty());
        assert_eq!(c.claims().aes_iv[0], 0x40);
        assert!(!format!("{c:?}").contains("gAAAA"), "Debug hides the token");
    }

    #[test]
    fn round_trips() {
        let mut c = Credentials::from_json(DOC).unwrap();
        c.claims.aliases = vec![Hostname::parse(b"b.example.test").unwrap()];
        c.claims.protocol_version = ProtocolVersion::V2;
        c.claims.cipher = CipherKind::AesGcmSiv;
        let back = Credentials::from_json(&c.to_json()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn refuses_what_would_break_the_tunnel() {
        let cases = [
            (DOC.replace("\"gAAAAABlU_EA8PHy\"", "\"hello\""), "Fernet"),
            (DOC.replace("3e3f\"", "3e\""), "31 bytes"),
            (DOC.replace("4e4f\"", "4e4g\""), "not hex"),
            (
                DOC.replace("\"valid\"", "\"cipher\": \"rot13\", \"valid\""),
                "rot13",
            ),
            (
                DOC.replace("\"valid\"", "\"protocol_version\": 3, \"valid\""),
                "not 0, 1 or 2",
            ),
            (DOC.replace("A.Example.Test", "10.0.0.1"), "host name"),
            (DOC.replace(", \"valid\": 4102444800.0", ""), "valid"),
        ];
        for (doc, why) in cases {
            let e = Credentials::from_json(&doc).unwrap_err().to_string();
            assert!(e.contains(why), "{e} should mention {why}");
        }
    }
}
