//! [`BreakerSettings`]: how quickly a breaker opens, how long it stays open, and how a
//! call retries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One breaker's settings; every field has a default.
///
/// ```toml
/// [intent.chat.breaker]
/// failure_threshold = 5      # consecutive failed attempts that open the breaker
/// open_ms = 30000            # how long it stays open before one probe goes through
/// max_attempts = 3           # attempts per call, the first included (1: no retry)
/// initial_backoff_ms = 100   # wait before the first retry; doubles each time
/// max_backoff_ms = 2000      # longest wait between attempts
/// jitter_percent = 50        # up to this share of each wait is random
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    pub failure_threshold: u32,
    pub open_ms: u64,
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub jitter_percent: u8,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_ms: 30_000,
            max_attempts: 3,
            initial_backoff_ms: 100,
            max_backoff_ms: 2_000,
            jitter_percent: 50,
        }
    }
}

impl BreakerSettings {
    /// Every problem with these settings, each naming its key under `prefix`
    /// (e.g. `intent.chat.breaker`); empty when they are usable.
    pub fn problems(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |bad: bool, key: &str, why: &str| {
            if bad {
                problems.push(format!("{prefix}.{key}: {why}"));
            }
        };
        check(self.failure_threshold == 0, "failure_threshold", "must be at least 1");
        check(self.open_ms == 0, "open_ms", "must be at least 1");
        check(self.max_attempts == 0, "max_attempts", "must be at least 1 (1 means no retry)");
        check(self.max_attempts > 10, "max_attempts", "at most 10");
        check(self.max_backoff_ms < self.initial_backoff_ms, "max_backoff_ms", "must be >= initial_backoff_ms");
        check(self.jitter_percent > 100, "jitter_percent", "at most 100");
        problems
    }

    pub fn open_for(&self) -> Duration {
        Duration::from_millis(self.open_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_usable_and_a_table_may_set_one_key() {
        assert!(BreakerSettings::default().problems("b").is_empty());
        let settings: BreakerSettings = toml::from_str("open_ms = 500").unwrap();
        assert_eq!(settings, BreakerSettings { open_ms: 500, ..BreakerSettings::default() });
        assert!(toml::from_str::<BreakerSettings>("retries = 3").is_err(), "unknown keys are refused");
    }

    #[test]
    fn every_problem_is_listed_with_its_path() {
        let bad = BreakerSettings {
            failure_threshold: 0,
            open_ms: 0,
            max_attempts: 0,
            initial_backoff_ms: 10,
            max_backoff_ms: 1,
            jitter_percent: 101,
        };
        let problems = bad.problems("intent.chat.breaker");
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[0].starts_with("intent.chat.breaker.failure_threshold:"), "{problems:?}");
    }
}
