//! Randomness comes from the caller.
//!
//! The protocol needs random bytes for channel ids, header padding, the challenge seed and
//! AES-GCM-SIV nonces. This crate never seeds a generator itself: the shell passes one in,
//! so tests and the recorded SniTun transcripts are reproducible byte for byte.

/// A source of random bytes.
///
/// Implemented for every cryptographically secure `rand_core` generator; shells usually pass
/// `rand::rngs::StdRng::from_entropy()`.
pub trait Random {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

impl<R: rand_core::RngCore + rand_core::CryptoRng> Random for R {
    fn fill(&mut self, dest: &mut [u8]) {
        self.fill_bytes(dest);
    }
}

/// The deterministic stand-in for `os.urandom` used to record the SniTun test vectors:
/// a request for `n` bytes yields `(16 * n + i) & 0xff` for `i` in `0..n`.
///
/// **Not random.** It exists so that tests, fuzzers and benches can reproduce the recorded
/// transcripts; never give it to a real tunnel.
#[derive(Debug, Default, Clone, Copy)]
pub struct VectorPattern;

impl Random for VectorPattern {
    fn fill(&mut self, dest: &mut [u8]) {
        let n = dest.len();
        for (i, b) in dest.iter_mut().enumerate() {
            *b = ((16 * n + i) & 0xff) as u8;
        }
    }
}

/// Test helper: hands out the given bytes, in order, whatever the request size.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct Scripted(pub(crate) std::collections::VecDeque<u8>);

#[cfg(test)]
impl Scripted {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        Self(bytes.iter().copied().collect())
    }
}

#[cfg(test)]
impl Random for Scripted {
    fn fill(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.0.pop_front().expect("scripted randomness ran out");
        }
    }
}
