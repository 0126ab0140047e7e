//! When each satellite speaks. People in a home do not talk in lock-step: if every
//! satellite started together and waited the same pause after its reply, K sessions would
//! hit each stage at the same instant, run after run, which is neither realistic nor a
//! fair average. So each satellite starts at a random offset and thinks a random time
//! between requests, drawn from a seeded generator so a run can be repeated exactly.

use std::time::Duration;

/// SplitMix64: a tiny, well-mixed generator, plenty for picking pauses. loadgen has no
/// random-number crate and needs none for this.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1): the top 53 bits, all an f64 mantissa holds.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One satellite's schedule in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacing {
    /// Before its first request: uniform in [0, interval).
    pub offset: Duration,
    /// After the reply to request `i` ends, before the next one (and, after the last, how
    /// long late events still count): uniform in [0.5, 1.5) × interval.
    pub think: Vec<Duration>,
}

/// The schedule of satellite `index` of `k` with `utterances` requests. Each (K, satellite)
/// pair has its own stream, so one satellite's pauses do not depend on how many others
/// there are or how many requests they make.
pub fn pacing(seed: u64, k: usize, index: usize, utterances: usize, interval: Duration) -> Pacing {
    let mut rng = SplitMix64::new(seed ^ (k as u64).rotate_left(32) ^ index as u64);
    let offset = interval.mul_f64(rng.unit());
    let think = (0..utterances).map(|_| interval.mul_f64(0.5 + rng.unit())).collect();
    Pacing { offset, think }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(3);

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        assert_eq!(pacing(7, 10, 3, 5, INTERVAL), pacing(7, 10, 3, 5, INTERVAL));
        assert_ne!(pacing(7, 10, 3, 5, INTERVAL), pacing(8, 10, 3, 5, INTERVAL));
        assert_ne!(pacing(7, 10, 3, 5, INTERVAL), pacing(7, 10, 4, 5, INTERVAL));
        assert_ne!(pacing(7, 5, 3, 5, INTERVAL), pacing(7, 10, 3, 5, INTERVAL));
    }

    #[test]
    fn offsets_and_think_times_stay_within_their_bounds() {
        for seed in 0..50 {
            for i in 0..10 {
                let p = pacing(seed, 10, i, 20, INTERVAL);
                assert!(p.offset < INTERVAL, "{p:?}");
                assert_eq!(p.think.len(), 20);
                assert!(p.think.iter().all(|t| *t >= INTERVAL / 2 && *t < INTERVAL * 3 / 2), "{p:?}");
            }
        }
        assert_eq!(
            pacing(1, 1, 0, 2, Duration::ZERO),
            Pacing { offset: Duration::ZERO, think: vec![Duration::ZERO; 2] }
        );
    }

    #[test]
    fn satellites_are_not_in_lock_step() {
        // Every request takes the same 4 s to speak and answer: only the schedule spreads them.
        let busy = Duration::from_secs(4);
        let starts: Vec<Vec<Duration>> = (0..10)
            .map(|i| {
                let p = pacing(1, 10, i, 5, INTERVAL);
                let mut at = p.offset;
                let mut starts = Vec::new();
                for think in &p.think {
                    starts.push(at);
                    at += busy + *think;
                }
                starts
            })
            .collect();
        for request in 0..5 {
            let at: Vec<Duration> = starts.iter().map(|s| s[request]).collect();
            let spread = *at.iter().max().unwrap() - *at.iter().min().unwrap();
            assert!(spread > INTERVAL / 2, "request {request} starts within {spread:?}: {at:?}");
        }
        // Draws are spread over the range, not clustered at one end.
        let mut rng = SplitMix64::new(1);
        let draws: Vec<f64> = (0..1000).map(|_| rng.unit()).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.45..0.55).contains(&mean), "mean {mean}");
    }
}
