//! The breaker's state machine, with time passed in: closed → (threshold consecutive
//! failures) → open → (cool-down over) → half-open with one probe → closed on its
//! success, open again on its failure.

use std::time::{Duration, Instant};

use crate::settings::BreakerSettings;

/// What the breaker is doing; the gauge value is in [`BreakerState::gauge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// `alicia_breaker_state`: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Whether an attempt may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: go ahead.
    Allowed,
    /// The one attempt of the half-open state: its outcome decides.
    Probe,
    /// Open, or a probe is already out: answer without calling. `retry_in` is how
    /// long until a probe may go (zero while another caller's probe is out).
    ShortCircuit { retry_in: Duration },
}

/// How an admitted attempt went, as far as the target's health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// `since`: when the probe went out. A probe whose caller never reports (it
    /// panicked, or dropped the result) would wedge the breaker, so after another
    /// cool-down a new probe may go.
    HalfOpen {
        since: Instant,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Machine {
    threshold: u32,
    open_for: Duration,
    phase: Phase,
}

impl Machine {
    pub(crate) fn new(settings: &BreakerSettings) -> Machine {
        Machine {
            threshold: settings.failure_threshold.max(1),
            open_for: settings.open_for(),
            phase: Phase::Closed { failures: 0 },
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        match self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    pub(crate) fn admit(&mut self, now: Instant) -> Admission {
        match self.phase {
            Phase::Closed { .. } => Admission::Allowed,
            Phase::Open { until } if now >= until => {
                self.phase = Phase::HalfOpen { since: now };
                Admission::Probe
            }
            Phase::Open { until } => Admission::ShortCircuit { retry_in: until - now },
            Phase::HalfOpen { since } if now.duration_since(since) >= self.open_for => {
                self.phase = Phase::HalfOpen { since: now };
                Admission::Probe
            }
            Phase::HalfOpen { .. } => Admission::ShortCircuit { retry_in: Duration::ZERO },
        }
    }

    pub(crate) fn record(&mut self, outcome: Outcome, now: Instant) {
        self.phase = match (self.phase, outcome) {
            (_, Outcome::Success) => Phase::Closed { failures: 0 },
            (Phase::Closed { failures }, Outcome::Failure) if failures + 1 < self.threshold => {
                Phase::Closed { failures: failures + 1 }
            }
            (Phase::Closed { .. } | Phase::HalfOpen { .. }, Outcome::Failure) => {
                Phase::Open { until: now + self.open_for }
            }
            // A late failure of an attempt let through before the breaker opened.
            (open @ Phase::Open { .. }, Outcome::Failure) => open,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(threshold: u32, open_ms: u64) -> Machine {
        Machine::new(&BreakerSettings { failure_threshold: threshold, open_ms, ..BreakerSettings::default() })
    }

    #[test]
    fn opens_after_the_threshold_of_consecutive_failures() {
        let t0 = Instant::now();
        let mut m = machine(3, 1_000);
        for _ in 0..2 {
            assert_eq!(m.admit(t0), Admission::Allowed);
            m.record(Outcome::Failure, t0);
        }
        // A success in between starts the count again.
        m.record(Outcome::Success, t0);
        for _ in 0..2 {
            m.record(Outcome::Failure, t0);
        }
        assert_eq!(m.state(), BreakerState::Closed);
        m.record(Outcome::Failure, t0);
        assert_eq!(m.state(), BreakerState::Open);
        let later = t0 + Duration::from_millis(400);
        assert_eq!(m.admit(later), Admission::ShortCircuit { retry_in: Duration::from_millis(600) });
    }

    #[test]
    fn one_probe_after_the_cool_down_decides() {
        let t0 = Instant::now();
        let mut m = machine(1, 1_000);
        m.record(Outcome::Failure, t0);
        let after = t0 + Duration::from_millis(1_000);
        assert_eq!(m.admit(after), Admission::Probe);
        assert_eq!(m.state(), BreakerState::HalfOpen);
        assert_eq!(m.admit(after), Admission::ShortCircuit { retry_in: Duration::ZERO }, "only one probe");
        m.record(Outcome::Failure, after);
        assert_eq!(m.state(), BreakerState::Open, "a failed probe opens it again");
        assert!(matches!(m.admit(after + Duration::from_millis(999)), Admission::ShortCircuit { .. }));

        let again = after + Duration::from_millis(1_000);
        assert_eq!(m.admit(again), Admission::Probe);
        m.record(Outcome::Success, again);
        assert_eq!(m.state(), BreakerState::Closed);
        assert_eq!(m.admit(again), Admission::Allowed);
    }

    #[test]
    fn a_probe_that_never_reports_does_not_wedge_it() {
        let t0 = Instant::now();
        let mut m = machine(1, 100);
        m.record(Outcome::Failure, t0);
        assert_eq!(m.admit(t0 + Duration::from_millis(100)), Admission::Probe);
        assert!(matches!(m.admit(t0 + Duration::from_millis(150)), Admission::ShortCircuit { .. }));
        assert_eq!(m.admit(t0 + Duration::from_millis(200)), Admission::Probe);
    }

    #[test]
    fn a_late_failure_keeps_it_open_until_its_time() {
        let t0 = Instant::now();
        let mut m = machine(1, 100);
        m.record(Outcome::Failure, t0);
        m.record(Outcome::Failure, t0 + Duration::from_millis(90));
        assert_eq!(m.admit(t0 + Duration::from_millis(100)), Admission::Probe);
    }
}
