//! Fixed-rate pacing for publishers.
//!
//! Timers fire late, by a little on an idle machine and by a lot on a loaded one. A pacer
//! that sends "rate × tick" per tick therefore under-delivers by exactly its drift. This
//! one derives the number of messages due from the time elapsed since the start, so each
//! tick sends whatever is owed and the achieved rate converges on the offered one however
//! irregular the ticks are.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How often a fixed-rate publisher wakes up to send what is due.
pub const TICK: Duration = Duration::from_millis(1);

/// Offered load: a total rate across all publishers, or as fast as the broker accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    Max,
    PerSec(u64),
}

impl Rate {
    pub fn per_sec(self) -> Option<u64> {
        match self {
            Rate::Max => None,
            Rate::PerSec(n) => Some(n),
        }
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Rate::Max);
        }
        match s.replace('_', "").parse::<u64>() {
            Ok(n) if n > 0 => Ok(Rate::PerSec(n)),
            _ => Err(format!("rate must be `max` or a positive msg/s count, got `{s}`")),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Max => f.write_str("max"),
            Rate::PerSec(n) => write!(f, "{n}"),
        }
    }
}

/// Tells a publisher how many messages it owes at any instant.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    per_sec: f64,
}

impl Pacer {
    pub fn new(start: Instant, per_sec: f64) -> Self {
        Pacer { start, per_sec }
    }

    /// Messages that should have been sent by `now` in total since the start.
    pub fn due(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        (elapsed * self.per_sec) as u64
    }
}

/// One publisher's share of a total rate. Shares are fractional so that P publishers
/// add up to the total even when it does not divide evenly.
pub fn share_of_rate(total: u64, publishers: usize) -> f64 {
    total as f64 / publishers.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!("max".parse::<Rate>(), Ok(Rate::Max));
        assert_eq!("10_000".parse::<Rate>(), Ok(Rate::PerSec(10_000)));
        assert!("0".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
        assert_eq!(Rate::PerSec(5).to_string(), "5");
    }

    #[test]
    fn due_follows_elapsed_time() {
        let start = Instant::now();
        let pacer = Pacer::new(start, 1000.0);
        assert_eq!(pacer.due(start), 0);
        assert_eq!(pacer.due(start + Duration::from_millis(1500)), 1500);
        assert_eq!(pacer.due(start - Duration::from_millis(5)), 0);
    }

    #[test]
    fn late_irregular_ticks_still_reach_the_offered_rate() {
        // A tick meant for every 1 ms that fires after 1.7 ms, sometimes after 25 ms.
        let start = Instant::now();
        let pacer = Pacer::new(start, 10_000.0);
        let mut sent = 0u64;
        let mut now = start;
        for i in 0..2000u32 {
            now += Duration::from_micros(if i % 97 == 0 { 25_000 } else { 1_700 });
            sent += pacer.due(now) - sent;
        }
        let expected = now.duration_since(start).as_secs_f64() * 10_000.0;
        assert!((sent as f64 - expected).abs() <= 1.0, "sent {sent}, expected {expected}");
    }

    #[test]
    fn shares_add_up_to_the_total() {
        let total: f64 = (0..7).map(|_| share_of_rate(10_000, 7)).sum();
        assert!((total - 10_000.0).abs() < 1e-6);
    }
}
