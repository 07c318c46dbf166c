//! Reconnect delays: exponential backoff with full jitter.
//!
//! After the n-th consecutive failure the connector sleeps a uniformly random time in
//! `[0, min(max, initial * 2^(n-1))]` ("full jitter"): when an edge restarts, its thousands of
//! connectors spread their reconnects over the whole window instead of arriving in waves, and
//! a connector that keeps failing backs off to `max`. The count resets once a tunnel has stayed
//! up for `stable_after`, so a tunnel that flaps right after connecting keeps backing off.
//! (hass-nabucasa sleeps a fixed random 1-15 s, whatever happened before.)

use rand::Rng;
use std::time::Duration;

/// Backoff policy. The defaults suit a home connector: 1 s, doubling to 2 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first delay.
    pub initial: Duration,
    /// Largest ceiling.
    pub max: Duration,
    /// A tunnel up at least this long resets the failure count.
    pub stable_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(120),
            stable_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The upper bound of the delay after `failures` consecutive failures (at least 1).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// A random delay in `[0, ceiling(failures)]`.
    pub fn delay(&self, failures: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(failures);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.gen_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            stable_after: Duration::from_secs(1),
        };
        let got: Vec<u128> = (0..7).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(got, [100, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn delays_are_jittered_over_the_whole_window() {
        let b = Backoff::default();
        let mut rng = StdRng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..1000).map(|_| b.delay(4, &mut rng)).collect();
        let ceiling = b.ceiling(4);
        assert!(delays.iter().all(|d| *d <= ceiling));
        // Full jitter: both halves of the window are used, and not one fixed value.
        assert!(delays.iter().any(|d| *d < ceiling / 4));
        assert!(delays.iter().any(|d| *d > ceiling * 3 / 4));
    }
}
