//! Log lines a client can cause, at most one per reason per interval, each saying how
//! many it stands for: a flood leaves a readable log, not a copy of itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Holds back repeats of a log line per reason.
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    /// By reason: when the last line went out, and how many were held back since.
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogThrottle {
    pub const INTERVAL: Duration = Duration::from_secs(10);

    pub fn new(interval: Duration) -> Self {
        Self { interval, last: Mutex::new(HashMap::new()) }
    }

    /// `Some(held back since the last line)` when a line for `reason` may go out now.
    pub fn allow(&self, reason: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match last.get_mut(reason) {
            Some((at, held)) if now.duration_since(*at) < self.interval => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let suppressed = std::mem::take(held);
                *at = now;
                Some(suppressed)
            }
            None => {
                last.insert(reason, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason_per_interval_counting_the_rest() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(throttle.allow("unknown_event"), Some(0));
        assert_eq!(throttle.allow("unknown_event"), None);
        assert_eq!(throttle.allow("unknown_event"), None);
        assert_eq!(throttle.allow("accept_failed"), Some(0), "reasons are apart");
        let eager = LogThrottle::new(Duration::ZERO);
        assert_eq!(eager.allow("x"), Some(0));
        eager.last.lock().unwrap().get_mut("x").unwrap().1 = 5;
        assert_eq!(eager.allow("x"), Some(5), "the next line says how many it stands for");
    }
}
