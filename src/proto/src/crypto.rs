//! The tunnel ciphers: how SniTun encrypts the challenge, frame headers and NEW data.
//!
//! Only these small "units" are encrypted; DATA payloads travel in clear after their header
//! because they are the end-to-end TLS of the browser session already.
//!
//! | cipher | unit on the wire | state |
//! |---|---|---|
//! | `aes-cbc` | raw AES-256-CBC, no padding (units are multiples of 16 bytes) | one chain per direction, both started at the token's IV |
//! | `aes-gcm` | `nonce(12) ‖ ciphertext ‖ tag(16)` | nonce = direction prefix (client 0, server 1, u32 BE) ‖ counter (u64 BE) from 0 |
//! | `aes-gcm-siv` | same framing | a random nonce per unit (RFC 8452) |
//!
//! The primitives are RustCrypto's `aes`, `cbc`, `aes-gcm` and `aes-gcm-siv`: pure Rust (no C
//! toolchain, which keeps the fuzzers and cross builds simple), constant time, with AES-NI/
//! CLMUL on x86-64 and the ARMv8 crypto extensions detected at run time, and a bitsliced
//! constant-time fallback elsewhere.
//!
//! Stricter than SniTun: an AES-GCM receiver here checks that each nonce carries the peer's
//! direction prefix and the next counter, so a replayed, reordered or reflected unit fails.
//! (SniTun 0.46.0 used random GCM nonces and is refused by this check; 0.46.1 and later
//! count, as this module does.)

use aes::Aes256;
use aes::cipher::{BlockDecrypt, BlockEncrypt};
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm_siv::Aes256GcmSiv;
use std::fmt;

use crate::random::Random;

/// Bytes of AES key in a SniTun token.
pub const KEY_LEN: usize = 32;
/// Bytes of CBC IV in a SniTun token (the AEAD ciphers ignore it).
pub const IV_LEN: usize = 16;
/// Extra bytes an AEAD unit carries: a 12-byte nonce and a 16-byte tag.
pub const AEAD_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const BLOCK: usize = 16;

/// The cipher a tunnel runs, named in the token's `cipher` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherKind {
    /// `aes-cbc`: SniTun's default and the only cipher before 0.46. Unauthenticated.
    AesCbc,
    /// `aes-gcm` with a counter nonce. Never reuse its key across connections.
    AesGcm,
    /// `aes-gcm-siv` with random nonces; safe when a key outlives a connection.
    AesGcmSiv,
}

impl CipherKind {
    /// The name used in tokens and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCbc => "aes-cbc",
            Self::AesGcm => "aes-gcm",
            Self::AesGcmSiv => "aes-gcm-siv",
        }
    }

    /// Parses a cipher name; `None` for names SniTun does not know.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "aes-cbc" => Some(Self::AesCbc),
            "aes-gcm" => Some(Self::AesGcm),
            "aes-gcm-siv" => Some(Self::AesGcmSiv),
            _ => None,
        }
    }

    /// Extra bytes each encrypted unit carries on the wire.
    pub fn overhead(self) -> usize {
        match self {
            Self::AesCbc => 0,
            Self::AesGcm | Self::AesGcmSiv => AEAD_OVERHEAD,
        }
    }
}

impl fmt::Display for CipherKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which end of a tunnel this is. The client (the home side) dials; the server (the edge)
/// accepts, opens channels and answers pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that dials out and presents the token: SniTun's `ClientPeer`, our connector.
    Client,
    /// The side that checks the token and routes browsers: the SniTun server, our edge.
    Server,
}

impl Role {
    fn gcm_prefix(self) -> [u8; 4] {
        match self {
            Self::Client => [0, 0, 0, 0],
            Self::Server => [0, 0, 0, 1],
        }
    }

    /// The other end.
    pub fn peer(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }
}

/// A unit could not be encrypted or decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// An AEAD tag did not verify: the unit was corrupted or forged.
    #[error("AEAD tag did not verify")]
    BadTag,
    /// An AES-GCM nonce was not the peer's next one (replayed, reordered or reflected).
    #[error("AES-GCM nonce out of sequence")]
    NonceOutOfSequence,
    /// The AES-GCM counter of this direction is used up; the tunnel must be re-keyed.
    #[error("AES-GCM nonce counter exhausted")]
    NonceExhausted,
    /// A unit of the wrong size: not a multiple of 16 bytes, or shorter than the AEAD overhead.
    #[error("encrypted unit has the wrong length")]
    BadLength,
}

/// Both directions of one tunnel's unit encryption, for one role.
///
/// Units must be sealed in the order they go on the wire and opened in the order they came
/// off it: CBC chains and GCM counters carry state from one unit to the next.
///
/// The expanded key schedule (about 1 KiB) exists only while the tunnel is in use:
/// [`TunnelCipher::compact`] drops it, keeping the key and the chaining state (under 100
/// bytes), and the next unit expands it again, which takes well under a microsecond.
pub struct TunnelCipher {
    key: [u8; KEY_LEN],
    mode: Mode,
    expanded: Option<Box<Expanded>>,
}

/// The chaining state of each direction: small, kept when compact.
#[derive(Clone, Copy)]
enum Mode {
    /// The last ciphertext block of each direction (the token's IV at first).
    Cbc {
        send: [u8; BLOCK],
        recv: [u8; BLOCK],
    },
    Gcm {
        send_prefix: [u8; 4],
        recv_prefix: [u8; 4],
        // `None` once the counter has used its last value.
        send_next: Option<u64>,
        recv_next: Option<u64>,
    },
    Siv,
}

/// Key schedules. One AES-256 schedule serves both CBC directions.
enum Expanded {
    Aes(Aes256),
    Gcm(Aes256Gcm),
    Siv(Aes256GcmSiv),
}

impl TunnelCipher {
    /// Sets up the cipher for `role` from the token's key and IV.
    pub fn new(kind: CipherKind, key: &[u8; KEY_LEN], iv: &[u8; IV_LEN], role: Role) -> Self {
        let mode = match kind {
            CipherKind::AesCbc => Mode::Cbc {
                send: *iv,
                recv: *iv,
            },
            CipherKind::AesGcm => Mode::Gcm {
                send_prefix: role.gcm_prefix(),
                recv_prefix: role.peer().gcm_prefix(),
                send_next: Some(0),
                recv_next: Some(0),
            },
            CipherKind::AesGcmSiv => Mode::Siv,
        };
        Self {
            key: *key,
            mode,
            expanded: None,
        }
    }

    /// Which cipher this is.
    pub fn kind(&self) -> CipherKind {
        match self.mode {
            Mode::Cbc { .. } => CipherKind::AesCbc,
            Mode::Gcm { .. } => CipherKind::AesGcm,
            Mode::Siv => CipherKind::AesGcmSiv,
        }
    }

    /// Extra bytes each unit carries on the wire.
    pub fn overhead(&self) -> usize {
        self.kind().overhead()
    }

    /// Drops the expanded key schedule; the next unit rebuilds it. For idle tunnels.
    pub fn compact(&mut self) {
        self.expanded = None;
    }

    /// Whether the key schedule is expanded (the tunnel has been used since `compact`).
    pub fn is_expanded(&self) -> bool {
        self.expanded.is_some()
    }

    /// The key schedule and the chaining state, expanding the schedule if needed.
    fn parts(&mut self) -> (&Expanded, &mut Mode) {
        let key = &self.key;
        let mode = self.mode;
        let expanded = self.expanded.get_or_insert_with(|| {
            Box::new(match mode {
                Mode::Cbc { .. } => Expanded::Aes(Aes256::new(key.into())),
                Mode::Gcm { .. } => Expanded::Gcm(Aes256Gcm::new(key.into())),
                Mode::Siv => Expanded::Siv(Aes256GcmSiv::new(key.into())),
            })
        });
        (expanded, &mut self.mode)
    }

    /// Encrypts `plain` into `out`, which must be exactly `plain.len() + overhead()` long.
    ///
    /// `plain.len()` must be a multiple of 16 (SniTun's units all are). `rng` is drawn from
    /// only by AES-GCM-SIV, for its 12-byte nonce.
    pub fn seal(
        &mut self,
        plain: &[u8],
        out: &mut [u8],
        rng: &mut dyn Random,
    ) -> Result<(), CryptoError> {
        if !plain.len().is_multiple_of(BLOCK) || out.len() != plain.len() + self.overhead() {
            return Err(CryptoError::BadLength);
        }
        match self.parts() {
            (Expanded::Aes(aes), Mode::Cbc { send, .. }) => {
                for (p, c) in plain.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK)) {
                    let mut block = xor(p, send);
                    aes.encrypt_block((&mut block).into());
                    c.copy_from_slice(&block);
                    *send = block;
                }
                Ok(())
            }
            (
                Expanded::Gcm(aead),
                Mode::Gcm {
                    send_prefix,
                    send_next,
                    ..
                },
            ) => {
                let counter = send_next.ok_or(CryptoError::NonceExhausted)?;
                *send_next = counter.checked_add(1);
                let (nonce, rest) = out.split_at_mut(NONCE_LEN);
                nonce[..4].copy_from_slice(send_prefix);
                nonce[4..].copy_from_slice(&counter.to_be_bytes());
                seal_aead(aead, nonce, plain, rest)
            }
            (Expanded::Siv(aead), Mode::Siv) => {
                let (nonce, rest) = out.split_at_mut(NONCE_LEN);
                rng.fill(nonce);
                seal_aead(aead, nonce, plain, rest)
            }
            _ => unreachable_mode(),
        }
    }

    /// Decrypts one unit in place and returns its plaintext, a sub-slice of `wire`.
    ///
    /// `wire` is the whole unit as it came off the wire: `plain + overhead()` bytes.
    pub fn open<'a>(&mut self, wire: &'a mut [u8]) -> Result<&'a [u8], CryptoError> {
        match self.parts() {
            (Expanded::Aes(aes), Mode::Cbc { recv, .. }) => {
                if !wire.len().is_multiple_of(BLOCK) {
                    return Err(CryptoError::BadLength);
                }
                for block in wire.chunks_exact_mut(BLOCK) {
                    let mut ciphertext = [0u8; BLOCK];
                    ciphertext.copy_from_slice(block);
                    let mut plain = ciphertext;
                    aes.decrypt_block((&mut plain).into());
                    block.copy_from_slice(&xor(&plain, recv));
                    *recv = ciphertext;
                }
                Ok(wire)
            }
            (
                Expanded::Gcm(aead),
                Mode::Gcm {
                    recv_prefix,
                    recv_next,
                    ..
                },
            ) => {
                let counter = recv_next.ok_or(CryptoError::NonceExhausted)?;
                let (nonce, rest) = split_unit(wire)?;
                if nonce[..4] != recv_prefix[..] || nonce[4..] != counter.to_be_bytes() {
                    return Err(CryptoError::NonceOutOfSequence);
                }
                let plain = open_aead(aead, nonce, rest)?;
                *recv_next = counter.checked_add(1);
                Ok(plain)
            }
            (Expanded::Siv(aead), Mode::Siv) => {
                let (nonce, rest) = split_unit(wire)?;
                open_aead(aead, nonce, rest)
            }
            _ => unreachable_mode(),
        }
    }
}

/// XOR of a 16-byte block with a chain value, as one 128-bit operation.
fn xor(block: &[u8], chain: &[u8; BLOCK]) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b.copy_from_slice(block);
    (u128::from_ne_bytes(b) ^ u128::from_ne_bytes(*chain)).to_ne_bytes()
}

/// The schedule is always built from `mode` (see `parts`), so the pairs always match.
#[allow(clippy::panic)]
fn unreachable_mode() -> ! {
    panic!("tunnel cipher: key schedule does not match its mode")
}

impl fmt::Debug for TunnelCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("TunnelCipher")
            .field("kind", &self.kind())
            .field("expanded", &self.is_expanded())
            .finish_non_exhaustive()
    }
}

fn split_unit(wire: &mut [u8]) -> Result<(&[u8], &mut [u8]), CryptoError> {
    if wire.len() < AEAD_OVERHEAD {
        return Err(CryptoError::BadLength);
    }
    let (nonce, rest) = wire.split_at_mut(NONCE_LEN);
    Ok((nonce, rest))
}

fn seal_aead<A: AeadInPlace>(
    aead: &A,
    nonce: &[u8],
    plain: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let (body, tag_out) = out.split_at_mut(plain.len());
    body.copy_from_slice(plain);
    let tag = aead
        .encrypt_in_place_detached(nonce.into(), b"", body)
        .map_err(|_| CryptoError::BadLength)?;
    tag_out.copy_from_slice(&tag);
    Ok(())
}

fn open_aead<'a, A: AeadInPlace>(
    aead: &A,
    nonce: &[u8],
    rest: &'a mut [u8],
) -> Result<&'a [u8], CryptoError> {
    let body_len = rest.len() - TAG_LEN;
    let (body, tag) = rest.split_at_mut(body_len);
    aead.decrypt_in_place_detached(nonce.into(), b"", body, (&*tag).into())
        .map_err(|_| CryptoError::BadTag)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::VectorPattern;

    const KEY: [u8; 32] = hex32("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f");
    const IV: [u8; 16] = [
        0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e,
        0x4f,
    ];

    const fn hex32(s: &str) -> [u8; 32] {
        let b = s.as_bytes();
        let mut out = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            out[i] = (nib(b[2 * i]) << 4) | nib(b[2 * i + 1]);
            i += 1;
        }
        out
    }

    const fn nib(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            _ => c - b'a' + 10,
        }
    }

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    /// A fixed nonce source, to reproduce the GCM-SIV unit vector.
    struct Fixed(Vec<u8>);
    impl Random for Fixed {
        fn fill(&mut self, dest: &mut [u8]) {
            dest.copy_from_slice(&self.0[..dest.len()]);
        }
    }

    fn seal(c: &mut TunnelCipher, plain: &[u8], rng: &mut dyn Random) -> Vec<u8> {
        let mut out = vec![0; plain.len() + c.overhead()];
        c.seal(plain, &mut out, rng).unwrap();
        out
    }

    // TV2/TV3 of the spec (`unit_release-0.47.0.txt`).
    const NEW_V0: &str = "00112233445566778899aabbccddeeff010000000034c000020aaaaaaaaaaaaa";
    const DATA: &str = "00112233445566778899aabbccddeeff02000004d2aaaaaaaaaaaaaaaaaaaaaa";
    const T: &str = "5faa4eec3611556812c2d74b437c8c49add3f910f10063d801441f7d75cd5e3b";
    const ANSWER: &str = "689ec2c20bd4356bff2a22a28a44beae59be452db1a5e43b01e1488a7a2296ed";

    #[test]
    fn cbc_chains_across_units_like_snitun() {
        let mut server = TunnelCipher::new(CipherKind::AesCbc, &KEY, &IV, Role::Server);
        let rng = &mut VectorPattern;
        assert_eq!(
            seal(&mut server, &unhex(NEW_V0), rng),
            unhex("62a8ffadf291d1d551ca0ee5388dfe4e359c88e03c1a1c0f5d141298cdd602cd")
        );
        assert_eq!(
            seal(&mut server, &unhex(DATA), rng),
            unhex("f4950853a610941a5fc0fb8c1d7b5b8222a51dcc4401b095ba89776caf6a9386")
        );
        let mut fresh = TunnelCipher::new(CipherKind::AesCbc, &KEY, &IV, Role::Server);
        assert_eq!(
            seal(&mut fresh, &unhex(T), rng),
            unhex("cf69ff57e451e733e38c5f2ce8d6ca20651dd2d7a05a00a6a45a3479615a91b0")
        );
    }

    #[test]
    fn gcm_counts_per_direction_like_snitun() {
        let rng = &mut VectorPattern;
        let mut server = TunnelCipher::new(CipherKind::AesGcm, &KEY, &IV, Role::Server);
        assert_eq!(
            seal(&mut server, &unhex(T), rng),
            unhex(
                "000000010000000000000000 81ce68caebb0450a63d1e0b50339e2ef4a70e2b0bcab76174a3169d7e0cd14f0 afe4dd891eaf7293bbaf5a22fbf9a3e4"
            )
        );
        assert_eq!(
            seal(&mut server, &unhex(DATA), rng),
            unhex(
                "000000010000000000000001 0c4a76d16f935413a17a63f84739a30df6a10f45aba6e042960fb4c9ae62f394 fa3f0ed42616039e54aacd541447edfe"
            )
        );
        let mut client = TunnelCipher::new(CipherKind::AesGcm, &KEY, &IV, Role::Client);
        assert_eq!(
            seal(&mut client, &unhex(ANSWER), rng),
            unhex(
                "000000000000000000000000 8bb0239b9f8b51323773c6e0ecfbb1ce358a322b108ce1b7b3de642c96d3091b 346aacd4dd43e4b7d75e4f488b37e218"
            )
        );
    }

    #[test]
    fn gcm_siv_vector_with_forced_nonce() {
        let mut c = TunnelCipher::new(CipherKind::AesGcmSiv, &KEY, &IV, Role::Server);
        let mut nonce = Fixed(unhex("c0c1c2c3c4c5c6c7c8c9cacb"));
        assert_eq!(
            seal(&mut c, &unhex(DATA), &mut nonce),
            unhex(
                "c0c1c2c3c4c5c6c7c8c9cacb cbf86129aa86508cf2ec5b5a5e4da675881f754cac1a847d6666ee73cda06ece 79087904a618e9d5ecba7ba5fa0f4e09"
            )
        );
    }

    #[test]
    fn every_cipher_round_trips_between_roles() {
        for kind in [
            CipherKind::AesCbc,
            CipherKind::AesGcm,
            CipherKind::AesGcmSiv,
        ] {
            let mut client = TunnelCipher::new(kind, &KEY, &IV, Role::Client);
            let mut server = TunnelCipher::new(kind, &KEY, &IV, Role::Server);
            for i in 0..5u8 {
                let plain = [i; 32];
                let mut wire = seal(&mut client, &plain, &mut VectorPattern);
                assert_eq!(server.open(&mut wire).unwrap(), &plain, "{kind} c2s #{i}");
                let mut wire = seal(&mut server, &plain[..16], &mut VectorPattern);
                assert_eq!(
                    client.open(&mut wire).unwrap(),
                    &plain[..16],
                    "{kind} s2c #{i}"
                );
            }
        }
    }

    #[test]
    fn aead_rejects_tampering_replay_and_reflection() {
        for kind in [CipherKind::AesGcm, CipherKind::AesGcmSiv] {
            let mut client = TunnelCipher::new(kind, &KEY, &IV, Role::Client);
            let mut server = TunnelCipher::new(kind, &KEY, &IV, Role::Server);
            let wire = seal(&mut client, &[7; 32], &mut VectorPattern);
            let mut flipped = wire.clone();
            flipped[20] ^= 1;
            assert_eq!(
                server.open(&mut flipped),
                Err(CryptoError::BadTag),
                "{kind}"
            );
            let mut short = wire[..20].to_vec();
            assert_eq!(server.open(&mut short), Err(CryptoError::BadLength));
        }
        // Counter nonces: a replay or a unit reflected back at its sender is refused.
        let mut client = TunnelCipher::new(CipherKind::AesGcm, &KEY, &IV, Role::Client);
        let mut server = TunnelCipher::new(CipherKind::AesGcm, &KEY, &IV, Role::Server);
        let first = seal(&mut client, &[1; 32], &mut VectorPattern);
        assert!(server.open(&mut first.clone()).is_ok());
        assert_eq!(
            server.open(&mut first.clone()),
            Err(CryptoError::NonceOutOfSequence)
        );
        let mut reflected = seal(&mut server, &[2; 32], &mut VectorPattern);
        assert_eq!(
            server.open(&mut reflected),
            Err(CryptoError::NonceOutOfSequence)
        );
    }

    #[test]
    fn gcm_refuses_to_wrap_its_counter() {
        let mut c = TunnelCipher::new(CipherKind::AesGcm, &KEY, &IV, Role::Client);
        if let Mode::Gcm { send_next, .. } = &mut c.mode {
            *send_next = Some(u64::MAX);
        }
        let mut out = [0; 32 + AEAD_OVERHEAD];
        assert!(c.seal(&[0; 32], &mut out, &mut VectorPattern).is_ok());
        assert_eq!(out[4..12], u64::MAX.to_be_bytes());
        assert_eq!(
            c.seal(&[0; 32], &mut out, &mut VectorPattern),
            Err(CryptoError::NonceExhausted)
        );
    }

    #[test]
    fn compacting_between_units_changes_nothing_on_the_wire() {
        for kind in [
            CipherKind::AesCbc,
            CipherKind::AesGcm,
            CipherKind::AesGcmSiv,
        ] {
            let mut plain_c = TunnelCipher::new(kind, &KEY, &IV, Role::Client);
            let mut compact_c = TunnelCipher::new(kind, &KEY, &IV, Role::Client);
            let mut server = TunnelCipher::new(kind, &KEY, &IV, Role::Server);
            for i in 0..6u8 {
                if i % 2 == 0 {
                    compact_c.compact();
                    server.compact();
                    assert!(!compact_c.is_expanded());
                }
                let unit = [i; 32];
                let a = seal(&mut plain_c, &unit, &mut VectorPattern);
                let b = seal(&mut compact_c, &unit, &mut VectorPattern);
                assert_eq!(a, b, "{kind} unit {i}");
                assert!(compact_c.is_expanded());
                let mut wire = b;
                assert_eq!(server.open(&mut wire).unwrap(), &unit, "{kind} unit {i}");
            }
        }
    }

    #[test]
    fn a_compact_cipher_is_small() {
        // What an idle tunnel keeps: the key, the chaining state and a pointer.
        assert!(
            std::mem::size_of::<TunnelCipher>() <= 96,
            "{}",
            std::mem::size_of::<TunnelCipher>()
        );
    }

    #[test]
    fn cbc_rejects_partial_blocks() {
        let mut c = TunnelCipher::new(CipherKind::AesCbc, &KEY, &IV, Role::Client);
        let mut out = [0; 20];
        assert_eq!(
            c.seal(&[0; 20], &mut out, &mut VectorPattern),
            Err(CryptoError::BadLength)
        );
        assert_eq!(c.open(&mut [0; 17]), Err(CryptoError::BadLength));
    }
}
