//! The master as its own identity provider: HS256 JWTs signed with a key kept in the state
//! directory (created on first start, mode 0600). The id token carries the claims
//! Home Assistant's cloud client reads (`custom:sub-exp`, `cognito:username`, `email`, `exp`);
//! every token says what it is for (`token_use`, as Cognito's do), so that a refresh token is
//! never accepted as a bearer token or the other way round.
//!
//! Verification checks the signature, that the header's `alg` is HS256 (anything else,
//! `none` included, is refused before the signature is looked at), the issuer, and the expiry
//! with no leeway (the master checks its own clock against itself).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The signing key's file in the state directory.
pub const KEY_FILE: &str = "jwt-hs256.key";
/// The `iss` of every token the master signs.
pub const ISSUER: &str = "sluice-master";
/// The longest bearer token looked at; anything longer is refused unread.
pub const MAX_JWT_LEN: usize = 8 * 1024;
const KEY_LEN: usize = 32;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    /// The id token: the bearer of every API call Home Assistant makes.
    Id,
    /// The access token (Home Assistant reads its `exp`; `instance/connection` takes it raw).
    Access,
    /// Only ever exchanged at `/auth/refresh`.
    Refresh,
}

/// The claims of every token the master signs; the optional ones are the id token's, and
/// `family` the refresh token's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account id.
    pub sub: String,
    /// [`ISSUER`].
    pub iss: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Random; a refresh token's id in the store.
    pub jti: String,
    /// What the token is for.
    pub token_use: TokenUse,
    /// The account's email (id token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The account id again, under the name Home Assistant reads (id token).
    #[serde(
        rename = "cognito:username",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub username: Option<String>,
    /// The subscription's end, `YYYY-MM-DD` (id token).
    #[serde(
        rename = "custom:sub-exp",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subscription_expires: Option<String>,
    /// The refresh token's rotation family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
}

/// Why a bearer token was refused: always the bearer's doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Its `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// Signed with an algorithm the master does not sign with (`none` among them).
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// Not for this use (a refresh token as a bearer, an id token at `/auth/refresh`).
    #[error("the token is not {0}")]
    WrongUse(&'static str),
    /// Malformed, forged, too long, or from another issuer.
    #[error("the token is not valid")]
    Invalid,
}

/// Why the signing key cannot be had: the operator's state directory.
#[derive(Debug, thiserror::Error)]
#[error("JWT signing key {path}: {why}")]
pub struct KeyFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub why: String,
}

/// The signing key.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKeys(..)")
    }
}

impl JwtKeys {
    /// The key in `dir`, made (0600, from the OS's random source) if there is none. A key file
    /// that others may read is refused: whoever reads it can sign any account's tokens.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyFileError> {
        let path = dir.join(KEY_FILE);
        let err = |why: String| KeyFileError {
            path: path.clone(),
            why,
        };
        let mut secret = [0u8; KEY_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(hex::encode(secret).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| err(e.to_string()))?;
                return Self::from_secret(&secret).map_err(err);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(err(e.to_string())),
        }
        let meta = fs::metadata(&path).map_err(|e| err(e.to_string()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(err(format!(
                "mode {:o} lets others read it; chmod 600 it",
                meta.permissions().mode() & 0o777
            )));
        }
        let text = fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
        let secret = hex::decode(text.trim())
            .ok()
            .filter(|s| s.len() >= KEY_LEN)
            .ok_or_else(|| err(format!("not {KEY_LEN} or more hex-encoded bytes")))?;
        Self::from_secret(&secret).map_err(err)
    }

    /// A key from raw bytes (tests).
    pub fn from_secret(secret: &[u8]) -> Result<Self, String> {
        Ok(Self {
            encoding: EncodingKey::from_secret(secret).map_err(|e| e.to_string())?,
            decoding: DecodingKey::from_secret(secret).map_err(|e| e.to_string())?,
        })
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of a serializable struct cannot fail")
    }

    /// Verifies `token` and that it is for `used_for`.
    pub fn verify(&self, token: &str, used_for: TokenUse) -> Result<Claims, JwtError> {
        if token.len() > MAX_JWT_LEN {
            return Err(JwtError::Invalid);
        }
        // The header's alg is read before anything else, so that `none` and its kin get their
        // own answer (the JWT crate does not even parse an `alg` it does not implement).
        if header_alg(token).as_deref() != Some("HS256") {
            return Err(if token.split('.').count() == 3 {
                JwtError::Algorithm
            } else {
                JwtError::Invalid
            });
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => JwtError::Expired,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    JwtError::Algorithm
                }
                _ => JwtError::Invalid,
            })?
            .claims;
        if claims.token_use != used_for {
            return Err(JwtError::WrongUse(match used_for {
                TokenUse::Id => "an id token",
                TokenUse::Access => "an access token",
                TokenUse::Refresh => "a refresh token",
            }));
        }
        Ok(claims)
    }
}

/// The `alg` of a compact JWT's header, if it has one that is a string.
fn header_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&json).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests;
