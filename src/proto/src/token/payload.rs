//! The token's JSON payload: parsed leniently where SniTun is (unknown fields, unknown cipher
//! names), strictly where a wrong value would silently break the tunnel; written exactly as
//! Python's `json.dumps` writes it, so minted tokens match SniTun's byte for byte.

use serde::Deserialize;
use std::fmt::Write as _;

use super::{TokenClaims, TokenError};
use crate::crypto::{CipherKind, IV_LEN, KEY_LEN};
use crate::hostname::Hostname;
use crate::limits::MAX_ALIASES;
use crate::version::ProtocolVersion;

#[derive(Deserialize)]
struct Raw {
    valid: Option<serde_json::Value>,
    hostname: Option<serde_json::Value>,
    aes_key: Option<serde_json::Value>,
    aes_iv: Option<serde_json::Value>,
    protocol_version: Option<serde_json::Value>,
    cipher: Option<serde_json::Value>,
    alias: Option<serde_json::Value>,
}

pub(super) fn parse(plain: &[u8]) -> Result<TokenClaims, TokenError> {
    let raw: Raw = serde_json::from_slice(plain).map_err(|e| TokenError::NotJson(e.to_string()))?;
    let valid = required(raw.valid, "valid")?
        .as_f64()
        .ok_or_else(|| bad("valid", "not a number"))?;
    let hostname = parse_name(required_str(raw.hostname, "hostname")?)?;
    let aes_key = hex_array::<KEY_LEN>(required_str(raw.aes_key, "aes_key")?, "aes_key")?;
    let aes_iv = hex_array::<IV_LEN>(required_str(raw.aes_iv, "aes_iv")?, "aes_iv")?;
    let protocol_version = match raw.protocol_version {
        None | Some(serde_json::Value::Null) => ProtocolVersion::V0,
        Some(v) => {
            let n = v
                .as_u64()
                .ok_or_else(|| bad("protocol_version", "not a non-negative integer"))?;
            ProtocolVersion::from_number(n).ok_or(TokenError::UnsupportedVersion(n))?
        }
    };
    let cipher = match raw.cipher {
        None | Some(serde_json::Value::Null) => CipherKind::AesCbc,
        Some(serde_json::Value::String(name)) => CipherKind::from_name(&name).unwrap_or_else(|| {
            // SniTun falls back to CBC for a name it does not know, on both ends; do the same
            // so that such tokens keep working, but say so.
            tracing::warn!(cipher = %name, "unknown cipher in token, using aes-cbc as SniTun does");
            CipherKind::AesCbc
        }),
        Some(_) => return Err(bad("cipher", "not a string")),
    };
    let aliases = match raw.alias {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => {
            if items.len() > MAX_ALIASES {
                return Err(TokenError::TooManyAliases(items.len()));
            }
            items
                .into_iter()
                .map(|item| match item {
                    serde_json::Value::String(s) => parse_name(s),
                    _ => Err(bad("alias", "an entry is not a string")),
                })
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err(bad("alias", "not a list")),
    };
    Ok(TokenClaims {
        valid,
        hostname,
        aliases,
        aes_key,
        aes_iv,
        protocol_version,
        cipher,
    })
}

fn required(
    v: Option<serde_json::Value>,
    field: &'static str,
) -> Result<serde_json::Value, TokenError> {
    match v {
        None | Some(serde_json::Value::Null) => Err(TokenError::MissingField(field)),
        Some(v) => Ok(v),
    }
}

fn required_str(v: Option<serde_json::Value>, field: &'static str) -> Result<String, TokenError> {
    match required(v, field)? {
        serde_json::Value::String(s) => Ok(s),
        _ => Err(bad(field, "not a string")),
    }
}

fn bad(field: &'static str, why: &str) -> TokenError {
    TokenError::BadField {
        field,
        why: why.to_owned(),
    }
}

fn parse_name(name: String) -> Result<Hostname, TokenError> {
    Hostname::parse(name.as_bytes()).map_err(|error| TokenError::BadHostname { name, error })
}

fn hex_array<const N: usize>(text: String, field: &'static str) -> Result<[u8; N], TokenError> {
    let bytes = hex::decode(&text).map_err(|_| bad(field, "not hex"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| bad(field, &format!("{} bytes, expected {N}", b.len())))
}

/// Writes the payload as Python's `json.dumps(dict)` does: `", "` and `": "` separators, keys
/// in SniTun's order, `protocol_version` only when not 0 and `cipher` only when not CBC.
pub(super) fn write(claims: &TokenClaims) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"valid\": ");
    push_float(&mut out, claims.valid);
    out.push_str(", \"hostname\": ");
    push_str(&mut out, claims.hostname.as_str());
    out.push_str(", \"aes_key\": ");
    push_str(&mut out, &hex::encode(claims.aes_key));
    out.push_str(", \"aes_iv\": ");
    push_str(&mut out, &hex::encode(claims.aes_iv));
    if !claims.aliases.is_empty() {
        out.push_str(", \"alias\": [");
        for (i, alias) in claims.aliases.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            push_str(&mut out, alias.as_str());
        }
        out.push(']');
    }
    if claims.protocol_version != ProtocolVersion::V0 {
        let _ = write!(
            out,
            ", \"protocol_version\": {}",
            claims.protocol_version.number()
        );
    }
    if claims.cipher != CipherKind::AesCbc {
        out.push_str(", \"cipher\": ");
        push_str(&mut out, claims.cipher.name());
    }
    out.push('}');
    out
}

/// Python's `repr(float)` for the values tokens hold: integral values keep a `.0`.
fn push_float(out: &mut String, v: f64) {
    if v.fract() == 0.0 && v.abs() < 1e16 {
        let _ = write!(out, "{v:.1}");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// A JSON string; host names and hex never need escapes, but stay correct if they did.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
