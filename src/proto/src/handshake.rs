//! Opening a tunnel: the token, then SniTun's challenge and response.
//!
//! ```text
//! client                                   server
//!   token (Fernet, ASCII "gA...")  ──────▶  frame + verify it (key list, expiry)
//!                                  ◀──────  E_s(T), T = SHA-256(40 random bytes)
//!   E_c(SHA-256(D_c(challenge)))   ──────▶  D_s(answer) == SHA-256(T) ?
//!   ════════════════ multiplexer frames, same cipher state ════════════════
//! ```
//!
//! The cipher state carries over into the multiplexer: the first CBC header chains from the
//! challenge (or answer), and the first AES-GCM header uses counter 1. Nothing in this module
//! reads a clock or a socket: the server passes the bytes received so far and `now`.

use sha2::{Digest, Sha256};
use std::time::SystemTime;
use subtle::ConstantTimeEq;

use crate::crypto::{CipherKind, CryptoError, IV_LEN, KEY_LEN, Role, TunnelCipher};
use crate::peek::Peek;
use crate::random::Random;
use crate::token::{FernetKey, TokenClaims, TokenError, frame_token, verify_token};
use crate::version::ProtocolVersion;

/// Plaintext bytes of the challenge and of the answer.
pub const CHALLENGE_LEN: usize = 32;
/// Random bytes hashed into the challenge.
const SEED_LEN: usize = 40;

/// An authenticated tunnel, ready for [`crate::mux::Multiplexer::new`].
#[derive(Debug)]
pub struct Session {
    /// Which end this is.
    pub role: Role,
    /// The protocol version the token fixed.
    pub version: ProtocolVersion,
    /// The cipher, with the state the handshake left in it.
    pub cipher: TunnelCipher,
}

/// Why a tunnel handshake failed. All are the peer's doing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HandshakeError {
    /// The token was refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A challenge or answer unit did not decrypt.
    #[error("handshake unit did not decrypt: {0}")]
    Crypto(#[from] CryptoError),
    /// The answer was not SHA-256 of the challenge: the peer does not hold the token's key.
    #[error("wrong answer to the challenge")]
    WrongAnswer,
    /// A challenge or answer of the wrong length.
    #[error("handshake unit is {got} bytes, expected {expected}")]
    WrongLength {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
}

/// Server, step 1: is `buf` (every byte received on the connection so far) a whole token, and
/// is it good? See [`frame_token`] for when `NeedMore` ends.
pub fn read_token(
    buf: &[u8],
    keys: &[FernetKey],
    now: SystemTime,
) -> Result<Peek<TokenClaims>, HandshakeError> {
    match frame_token(buf, keys).map_err(TokenError::from)? {
        Peek::Complete(framing) => Ok(Peek::Complete(verify_token(
            &buf[..framing.len],
            keys,
            now,
        )?)),
        Peek::NeedMore => Ok(Peek::NeedMore),
        Peek::NotThisProtocol => Ok(Peek::NotThisProtocol),
    }
}

/// Server, step 2: the challenge sent, the answer awaited.
#[derive(Debug)]
pub struct ServerChallenge {
    cipher: TunnelCipher,
    version: ProtocolVersion,
    expected: [u8; 32],
}

impl ServerChallenge {
    /// Makes the challenge for a verified token; returns the state and the bytes to send.
    pub fn new(
        claims: &TokenClaims,
        rng: &mut dyn Random,
    ) -> Result<(Self, Vec<u8>), HandshakeError> {
        let mut cipher =
            TunnelCipher::new(claims.cipher, &claims.aes_key, &claims.aes_iv, Role::Server);
        let mut seed = [0; SEED_LEN];
        rng.fill(&mut seed);
        let challenge: [u8; 32] = Sha256::digest(seed).into();
        let mut wire = vec![0; CHALLENGE_LEN + cipher.overhead()];
        cipher.seal(&challenge, &mut wire, rng)?;
        let state = Self {
            cipher,
            version: claims.protocol_version,
            expected: Sha256::digest(challenge).into(),
        };
        Ok((state, wire))
    }

    /// Bytes of the answer to read.
    pub fn answer_len(&self) -> usize {
        CHALLENGE_LEN + self.cipher.overhead()
    }

    /// Server, step 3: checks the answer; on success the tunnel is open.
    pub fn verify(mut self, answer: &[u8]) -> Result<Session, HandshakeError> {
        check_len(answer, self.answer_len())?;
        let mut unit = answer.to_vec();
        let plain = self.cipher.open(&mut unit)?;
        if !bool::from(plain.ct_eq(&self.expected)) {
            return Err(HandshakeError::WrongAnswer);
        }
        Ok(Session {
            role: Role::Server,
            version: self.version,
            cipher: self.cipher,
        })
    }
}

/// Client: the token sent, the challenge awaited.
#[derive(Debug)]
pub struct ClientHandshake {
    cipher: TunnelCipher,
    version: ProtocolVersion,
}

impl ClientHandshake {
    /// Sets up the client side with the key material that came with the token. Send the token
    /// bytes, alone, then read [`Self::challenge_len`] bytes.
    pub fn new(
        cipher: CipherKind,
        version: ProtocolVersion,
        aes_key: &[u8; KEY_LEN],
        aes_iv: &[u8; IV_LEN],
    ) -> Self {
        Self {
            cipher: TunnelCipher::new(cipher, aes_key, aes_iv, Role::Client),
            version,
        }
    }

    /// Bytes of the challenge to read.
    pub fn challenge_len(&self) -> usize {
        CHALLENGE_LEN + self.cipher.overhead()
    }

    /// Answers the challenge; returns the open session and the bytes to send.
    pub fn answer(
        mut self,
        challenge: &[u8],
        rng: &mut dyn Random,
    ) -> Result<(Session, Vec<u8>), HandshakeError> {
        check_len(challenge, self.challenge_len())?;
        let mut unit = challenge.to_vec();
        let plain = self.cipher.open(&mut unit)?;
        let answer: [u8; 32] = Sha256::digest(plain).into();
        let mut wire = vec![0; CHALLENGE_LEN + self.cipher.overhead()];
        self.cipher.seal(&answer, &mut wire, rng)?;
        let session = Session {
            role: Role::Client,
            version: self.version,
            cipher: self.cipher,
        };
        Ok((session, wire))
    }
}

fn check_len(unit: &[u8], expected: usize) -> Result<(), HandshakeError> {
    if unit.len() == expected {
        Ok(())
    } else {
        Err(HandshakeError::WrongLength {
            got: unit.len(),
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::random::VectorPattern;
    use crate::test_vectors;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    /// Both sides of every recorded transcript's handshake, byte for byte.
    #[test]
    fn reproduces_every_recorded_handshake() {
        for v in test_vectors::all() {
            let keys = [FernetKey::parse(&v.fernet_key).unwrap()];
            let c2s = hex::decode(&v.c2s).unwrap();
            let s2c = hex::decode(&v.s2c).unwrap();
            let token = v.token.as_bytes();
            let unit = CHALLENGE_LEN + v.cipher().overhead();

            // Server: the token arrives in pieces; the challenge must match the recording.
            assert_eq!(read_token(&c2s[..100], &keys, now()), Ok(Peek::NeedMore));
            let claims = read_token(&c2s[..token.len()], &keys, now())
                .unwrap()
                .complete()
                .unwrap();
            let (server, challenge) = ServerChallenge::new(&claims, &mut VectorPattern).unwrap();
            assert_eq!(challenge, s2c[..unit], "{} challenge", v.name);

            // Client: answering the recorded challenge gives the recorded answer.
            let client = ClientHandshake::new(v.cipher(), v.version(), &v.key(), &v.iv());
            assert_eq!(client.challenge_len(), unit);
            let (_, answer) = client.answer(&s2c[..unit], &mut VectorPattern).unwrap();
            assert_eq!(
                answer,
                c2s[token.len()..token.len() + unit],
                "{} answer",
                v.name
            );

            let session = server.verify(&answer).unwrap();
            assert_eq!(session.version, v.version());
            assert_eq!(session.cipher.kind(), v.cipher());
        }
    }

    #[test]
    fn wrong_answers_are_refused() {
        let v = &test_vectors::all()[5]; // v2 aes-gcm
        let keys = [FernetKey::parse(&v.fernet_key).unwrap()];
        let claims = read_token(v.token.as_bytes(), &keys, now())
            .unwrap()
            .complete()
            .unwrap();
        let fresh = || ServerChallenge::new(&claims, &mut VectorPattern).unwrap();

        // Right framing, wrong key: the tag fails.
        let (server, challenge) = fresh();
        let impostor = ClientHandshake::new(v.cipher(), v.version(), &[9; 32], &v.iv());
        assert_eq!(
            impostor.answer(&challenge, &mut VectorPattern).unwrap_err(),
            HandshakeError::Crypto(CryptoError::BadTag)
        );
        let mut forged = vec![0; server.answer_len()];
        forged[11] = 1; // counter 1: out of sequence
        assert_eq!(
            server.verify(&forged).unwrap_err(),
            HandshakeError::Crypto(CryptoError::NonceOutOfSequence)
        );

        // The right key but an answer that is not SHA-256 of the challenge.
        let (server, _) = fresh();
        let mut honest = TunnelCipher::new(v.cipher(), &v.key(), &v.iv(), Role::Client);
        let mut wire = vec![0; 60];
        honest
            .seal(&[0; 32], &mut wire, &mut VectorPattern)
            .unwrap();
        assert_eq!(
            server.verify(&wire).unwrap_err(),
            HandshakeError::WrongAnswer
        );

        let (server, _) = fresh();
        assert_eq!(
            server.verify(&[0; 59]).unwrap_err(),
            HandshakeError::WrongLength {
                got: 59,
                expected: 60
            }
        );
    }

    #[test]
    fn cbc_wrong_key_gives_a_wrong_answer() {
        let v = &test_vectors::all()[0];
        let keys = [FernetKey::parse(&v.fernet_key).unwrap()];
        let claims = read_token(v.token.as_bytes(), &keys, now())
            .unwrap()
            .complete()
            .unwrap();
        let (server, challenge) = ServerChallenge::new(&claims, &mut VectorPattern).unwrap();
        let impostor = ClientHandshake::new(v.cipher(), v.version(), &[9; 32], &v.iv());
        let (_, answer) = impostor.answer(&challenge, &mut VectorPattern).unwrap();
        assert_eq!(
            server.verify(&answer).unwrap_err(),
            HandshakeError::WrongAnswer
        );
    }

    #[test]
    fn expired_and_foreign_tokens_never_reach_the_challenge() {
        let v = &test_vectors::all()[0];
        let keys = [FernetKey::parse(&v.fernet_key).unwrap()];
        let later = UNIX_EPOCH + Duration::from_secs(4_102_444_801);
        assert!(matches!(
            read_token(v.token.as_bytes(), &keys, later),
            Err(HandshakeError::Token(TokenError::Expired { .. }))
        ));
        assert_eq!(
            read_token(b"\x16\x03\x01\x00", &keys, now()),
            Ok(Peek::NotThisProtocol)
        );
    }
}
