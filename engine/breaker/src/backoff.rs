//! [`Backoff`]: the wait before each retry. It doubles from `initial_backoff_ms` up to
//! `max_backoff_ms`, and up to `jitter_percent` of it is taken off at random so that
//! callers that failed together do not retry together.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::settings::BreakerSettings;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter_percent: u64,
    retries: u32,
    random: u64,
}

impl Backoff {
    /// Seeded from the process's random hasher keys: different in every process and call.
    pub fn new(settings: &BreakerSettings) -> Backoff {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x616c_6963_6961);
        Backoff::seeded(settings, hasher.finish())
    }

    /// The same waits for the same seed, for tests.
    pub fn seeded(settings: &BreakerSettings, seed: u64) -> Backoff {
        Backoff {
            initial: Duration::from_millis(settings.initial_backoff_ms),
            max: Duration::from_millis(settings.max_backoff_ms.max(settings.initial_backoff_ms)),
            jitter_percent: u64::from(settings.jitter_percent.min(100)),
            retries: 0,
            random: seed,
        }
    }

    /// The wait before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        let doubled = self.initial.saturating_mul(1u32 << self.retries.min(20));
        self.retries = self.retries.saturating_add(1);
        let full = doubled.min(self.max);
        let spread = full.as_micros() as u64 * self.jitter_percent / 100;
        if spread == 0 {
            return full;
        }
        full - Duration::from_micros(self.next_random() % (spread + 1))
    }

    /// SplitMix64: enough randomness to spread retries, no dependency for it.
    fn next_random(&mut self) -> u64 {
        self.random = self.random.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(jitter_percent: u8) -> BreakerSettings {
        BreakerSettings { initial_backoff_ms: 100, max_backoff_ms: 500, jitter_percent, ..BreakerSettings::default() }
    }

    #[test]
    fn doubles_up_to_the_cap_without_jitter() {
        let mut backoff = Backoff::seeded(&settings(0), 1);
        let waits: Vec<u64> = (0..5).map(|_| backoff.next_delay().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn jitter_stays_within_its_share_and_varies() {
        let mut backoff = Backoff::seeded(&settings(50), 7);
        let first = backoff.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
        let _ = (backoff.next_delay(), backoff.next_delay());
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let wait = backoff.next_delay();
            assert!(wait >= Duration::from_millis(250) && wait <= Duration::from_millis(500), "{wait:?}");
            seen.insert(wait);
        }
        assert!(seen.len() > 10, "jitter spreads the waits: {seen:?}");
    }
}
