//! The Fernet container (spec version 0x80): `0x80 ‖ timestamp(8) ‖ IV(16) ‖
//! AES-128-CBC(PKCS7) ciphertext ‖ HMAC-SHA256(32)`, urlsafe base64 with padding.
//!
//! SniTun ignores the Fernet timestamp (it never passes a TTL); expiry lives in the payload.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

use crate::random::Random;

const VERSION: u8 = 0x80;
const HEADER_LEN: usize = 1 + 8 + 16;
const MAC_LEN: usize = 32;
/// Smallest decoded token: header, one ciphertext block, MAC.
pub(crate) const MIN_DECODED_LEN: usize = HEADER_LEN + 16 + MAC_LEN;

type HmacSha256 = Hmac<Sha256>;

/// A Fernet key: 32 bytes, urlsafe base64 (44 characters). The first half signs, the second
/// encrypts.
#[derive(Clone, PartialEq, Eq)]
pub struct FernetKey {
    signing: [u8; 16],
    encryption: [u8; 16],
}

/// A Fernet key string is not 32 bytes of urlsafe base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a Fernet key must be 32 bytes in urlsafe base64 (44 characters ending in '=')")]
pub struct FernetKeyError;

impl FernetKey {
    /// Parses the urlsafe-base64 form (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<Self, FernetKeyError> {
        let raw = URL_SAFE
            .decode(text.trim().as_bytes())
            .map_err(|_| FernetKeyError)?;
        let raw: [u8; 32] = raw.try_into().map_err(|_| FernetKeyError)?;
        Ok(Self::from_bytes(&raw))
    }

    /// Builds a key from its 32 raw bytes.
    pub fn from_bytes(raw: &[u8; 32]) -> Self {
        let mut signing = [0; 16];
        let mut encryption = [0; 16];
        signing.copy_from_slice(&raw[..16]);
        encryption.copy_from_slice(&raw[16..]);
        Self {
            signing,
            encryption,
        }
    }

    /// A fresh random key.
    pub fn generate(rng: &mut dyn Random) -> Self {
        let mut raw = [0; 32];
        rng.fill(&mut raw);
        Self::from_bytes(&raw)
    }

    /// The urlsafe-base64 form, as Python's `Fernet.generate_key()` writes it.
    pub fn to_base64(&self) -> String {
        let mut raw = [0; 32];
        raw[..16].copy_from_slice(&self.signing);
        raw[16..].copy_from_slice(&self.encryption);
        URL_SAFE.encode(raw)
    }

    /// Encrypts and signs `plaintext` with this key, at Fernet time `timestamp` and with `iv`.
    pub fn seal(&self, plaintext: &[u8], timestamp: u64, iv: &[u8; 16]) -> String {
        let padded_len = (plaintext.len() / 16 + 1) * 16;
        let mut raw = Vec::with_capacity(HEADER_LEN + padded_len + MAC_LEN);
        raw.push(VERSION);
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(iv);
        raw.extend_from_slice(plaintext);
        raw.resize(HEADER_LEN + padded_len, 0);
        let enc = cbc::Encryptor::<aes::Aes128>::new(&self.encryption.into(), iv.into());
        // The buffer was sized for PKCS7 above, so padding cannot run out of room.
        if enc
            .encrypt_padded_mut::<Pkcs7>(&mut raw[HEADER_LEN..], plaintext.len())
            .is_err()
        {
            unreachable!("buffer sized for PKCS7 padding");
        }
        let tag = self.mac().chain_update(&raw).finalize().into_bytes();
        raw.extend_from_slice(&tag);
        URL_SAFE.encode(raw)
    }

    /// Checks the MAC of a decoded token and decrypts it; `None` when this key did not sign it.
    pub(crate) fn open(&self, raw: &[u8]) -> Option<Result<Vec<u8>, FernetError>> {
        let (signed, tag) = raw.split_at(raw.len().checked_sub(MAC_LEN)?);
        self.mac().chain_update(signed).verify_slice(tag).ok()?;
        let iv: [u8; 16] = signed.get(9..HEADER_LEN)?.try_into().ok()?;
        let mut body = signed.get(HEADER_LEN..)?.to_vec();
        let dec = cbc::Decryptor::<aes::Aes128>::new(&self.encryption.into(), &iv.into());
        Some(match dec.decrypt_padded_mut::<Pkcs7>(&mut body) {
            Ok(plain) => {
                let len = plain.len();
                body.truncate(len);
                Ok(body)
            }
            Err(_) => Err(FernetError::BadPadding),
        })
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; 16 bytes cannot fail.
        match HmacSha256::new_from_slice(&self.signing) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts any key length"),
        }
    }
}

impl fmt::Debug for FernetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FernetKey(..)")
    }
}

/// Why a Fernet container was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FernetError {
    /// Not urlsafe base64 with padding.
    #[error("token is not urlsafe base64")]
    NotBase64,
    /// Too short, or not Fernet version 0x80, or the ciphertext is not whole blocks.
    #[error("token is not a Fernet token")]
    NotFernet,
    /// No configured key signed it.
    #[error("token is not signed by any configured key")]
    BadSignature,
    /// Signed by a key but its plaintext padding is broken: the minter is faulty.
    #[error("token plaintext has bad padding")]
    BadPadding,
}

/// Decodes the container and returns the plaintext of the first key that signed it.
pub(crate) fn open_with_any(token: &[u8], keys: &[FernetKey]) -> Result<Vec<u8>, FernetError> {
    let raw = decode(token)?;
    for key in keys {
        if let Some(result) = key.open(&raw) {
            return result;
        }
    }
    Err(FernetError::BadSignature)
}

/// Decodes the base64 and checks the shape that every Fernet token has.
pub(crate) fn decode(token: &[u8]) -> Result<Vec<u8>, FernetError> {
    let raw = URL_SAFE.decode(token).map_err(|_| FernetError::NotBase64)?;
    if raw.len() < MIN_DECODED_LEN
        || raw.first() != Some(&VERSION)
        || !(raw.len() - HEADER_LEN - MAC_LEN).is_multiple_of(16)
    {
        return Err(FernetError::NotFernet);
    }
    Ok(raw)
}
