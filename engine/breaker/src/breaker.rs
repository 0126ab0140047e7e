//! [`Breaker`]: the state machine of one target behind a lock, its meters, and the
//! blocking retry loop [`Breaker::call`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge};
use parking_lot::Mutex;

use crate::backoff::Backoff;
use crate::clock::{Clock, SystemClock};
use crate::settings::BreakerSettings;
use crate::state::{Admission, BreakerState, Machine, Outcome};

/// What a failed attempt says about the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The target failed and may well answer next time (refused, timed out, 5xx, 429):
    /// counts towards opening, and the call retries.
    Retry,
    /// The target failed in a way a retry will not mend (a broken answer): counts
    /// towards opening, no retry.
    Fail,
    /// The target answered and the fault is the request's (a 4xx): the target is
    /// healthy, no retry.
    NotTheTarget,
}

/// Why [`Breaker::call`] gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker was open and no attempt was made.
    Open { target: String, retry_in: Duration },
    /// The last attempt's error (retries spent, not retryable, the deadline or an
    /// opened breaker left no room for another).
    Failed(E),
}

/// A circuit breaker for one target; share it (`Arc`) between the callers of that target.
pub struct Breaker {
    target: String,
    settings: BreakerSettings,
    clock: Arc<dyn Clock>,
    machine: Mutex<Machine>,
    meters: Meters,
}

impl std::fmt::Debug for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker").field("target", &self.target).field("state", &self.state()).finish()
    }
}

struct Meters {
    state: Gauge,
    calls: Counter,
    failures: Counter,
    retries: Counter,
    short_circuits: Counter,
}

impl Breaker {
    /// A closed breaker for `target` (a metric label: a fixed name such as `llm`, never
    /// a URL or a user's input) on the real clock.
    pub fn new(target: impl Into<String>, settings: BreakerSettings) -> Breaker {
        Breaker::with_clock(target, settings, Arc::new(SystemClock))
    }

    pub fn with_clock(target: impl Into<String>, settings: BreakerSettings, clock: Arc<dyn Clock>) -> Breaker {
        let target = target.into();
        crate::describe_metrics();
        let label = [("target", target.clone())];
        let meters = Meters {
            state: metrics::gauge!(crate::STATE_GAUGE, &label),
            calls: metrics::counter!(crate::CALLS_TOTAL, &label),
            failures: metrics::counter!(crate::FAILURES_TOTAL, &label),
            retries: metrics::counter!(crate::RETRIES_TOTAL, &label),
            short_circuits: metrics::counter!(crate::SHORT_CIRCUITS_TOTAL, &label),
        };
        meters.state.set(BreakerState::Closed.gauge());
        Breaker { target, settings, clock, machine: Mutex::new(Machine::new(&settings)), meters }
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn settings(&self) -> &BreakerSettings {
        &self.settings
    }

    pub fn state(&self) -> BreakerState {
        self.machine.lock().state()
    }

    /// Whether an attempt may go out now; an admitted one must be followed by
    /// [`Breaker::record`].
    pub fn admit(&self) -> Admission {
        let now = self.clock.now();
        let (admission, state) = {
            let mut machine = self.machine.lock();
            (machine.admit(now), machine.state())
        };
        self.meters.state.set(state.gauge());
        match admission {
            Admission::ShortCircuit { .. } => self.meters.short_circuits.increment(1),
            Admission::Allowed | Admission::Probe => self.meters.calls.increment(1),
        }
        admission
    }

    /// How an admitted attempt went.
    pub fn record(&self, outcome: Outcome) {
        let now = self.clock.now();
        let (before, after) = {
            let mut machine = self.machine.lock();
            let before = machine.state();
            machine.record(outcome, now);
            (before, machine.state())
        };
        if outcome == Outcome::Failure {
            self.meters.failures.increment(1);
        }
        self.meters.state.set(after.gauge());
        if before != after {
            tracing::info!(target_name = %self.target, from = before.as_str(), to = after.as_str(), "circuit breaker");
        }
    }

    /// Calls `attempt` (given the deadline) until it succeeds, with at most
    /// `max_attempts` attempts, retrying only what `judge` calls [`Verdict::Retry`],
    /// after a back-off that must end before `deadline`, and only while the breaker
    /// admits. Blocking: it sleeps on the breaker's clock between attempts.
    pub fn call<T, E>(
        &self,
        deadline: Instant,
        judge: impl Fn(&E) -> Verdict,
        mut attempt: impl FnMut(Instant) -> Result<T, E>,
    ) -> Result<T, CallError<E>> {
        let mut backoff = Backoff::new(&self.settings);
        let attempts = self.settings.max_attempts.max(1);
        let mut made = 0;
        loop {
            if let Admission::ShortCircuit { retry_in } = self.admit() {
                return Err(CallError::Open { target: self.target.clone(), retry_in });
            }
            if made > 0 {
                self.meters.retries.increment(1);
            }
            made += 1;
            let error = match attempt(deadline) {
                Ok(value) => {
                    self.record(Outcome::Success);
                    return Ok(value);
                }
                Err(error) => error,
            };
            let verdict = judge(&error);
            if verdict == Verdict::NotTheTarget {
                self.record(Outcome::Success);
                return Err(CallError::Failed(error));
            }
            self.record(Outcome::Failure);
            if verdict == Verdict::Fail || made >= attempts || self.state() != BreakerState::Closed {
                return Err(CallError::Failed(error));
            }
            let wait = backoff.next_delay();
            let now = self.clock.now();
            if now + wait >= deadline {
                return Err(CallError::Failed(error));
            }
            self.clock.sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests;
