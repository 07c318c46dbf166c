//! Passwords: argon2id with the crate's default parameters (19 MiB, two passes), a fresh
//! salt each, stored as a PHC string so that parameters can rise without a migration.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// The shortest password an account may have.
pub const MIN_PASSWORD_LEN: usize = 8;
/// The longest: hashing cost is linear in it, and nobody types more.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Hashes `password` (which the caller has checked against the length bounds).
pub(crate) fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A hash no password was hashed into (its password is random and forgotten), to verify
/// against when there is no account: the same work either way.
pub(crate) fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        hash(&hex::encode(secret)).unwrap_or_default()
    })
}

/// Whether `password` matches the PHC string `stored` (false for a malformed one).
pub(crate) fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsf", &h));
        assert!(!verify("correct horse", "not a phc string"));
        assert_ne!(hash("correct horse").unwrap(), h, "a fresh salt each time");
    }
}
