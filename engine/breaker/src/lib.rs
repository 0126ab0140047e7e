//! One circuit breaker and one retry policy for every call the engine makes outside
//! itself: the LLM chat endpoint today, Home Assistant and Sonos later.
//!
//! A [`Breaker`] guards one target (a label such as `llm`). Closed, it lets calls
//! through and counts consecutive failures; at `failure_threshold` it opens and answers
//! every call at once with [`CallError::Open`] for `open_ms`; then it lets a single
//! probe through (half-open): the probe's success closes it, its failure opens it again.
//! Within one call, [`Breaker::call`] retries a retryable failure up to `max_attempts`
//! with exponential back-off and jitter, never sleeping past the caller's deadline and
//! never past an open breaker.
//!
//! # Layout
//! - `settings`: [`BreakerSettings`], the serde table (`[... .breaker]`) and its checks.
//! - `clock`: [`Clock`] (now + sleep), [`SystemClock`], and [`ManualClock`] for tests.
//! - `state`: the state machine ([`BreakerState`]) with time passed in; no metrics.
//! - `backoff`: [`Backoff`], the delay before each retry (exponential, equal jitter).
//! - `breaker`: [`Breaker`]: the state machine behind a lock, its metrics, and
//!   [`Breaker::call`], the blocking retry loop. An async caller drives the same parts
//!   ([`Breaker::admit`], [`Breaker::record`], [`Backoff`]) with its own sleep.
//!
//! # Metrics
//! - `alicia_breaker_state{target}`: 0 closed, 1 open, 2 half-open.
//! - `alicia_breaker_calls_total{target}`: attempts let through (retries included).
//! - `alicia_breaker_failures_total{target}`: attempts that failed.
//! - `alicia_breaker_retries_total{target}`: attempts that were retries.
//! - `alicia_breaker_short_circuits_total{target}`: calls answered at once by an open
//!   (or probing) breaker.

mod backoff;
mod breaker;
mod clock;
mod settings;
mod state;

pub use backoff::Backoff;
pub use breaker::{Breaker, CallError, Verdict};
pub use clock::{Clock, ManualClock, SystemClock};
pub use settings::BreakerSettings;
pub use state::{Admission, BreakerState, Outcome};

/// `alicia_breaker_state{target}`: 0 closed, 1 open, 2 half-open.
pub const STATE_GAUGE: &str = "alicia_breaker_state";
pub const CALLS_TOTAL: &str = "alicia_breaker_calls_total";
pub const FAILURES_TOTAL: &str = "alicia_breaker_failures_total";
pub const RETRIES_TOTAL: &str = "alicia_breaker_retries_total";
pub const SHORT_CIRCUITS_TOTAL: &str = "alicia_breaker_short_circuits_total";

/// Registers the descriptions of this crate's metrics with the installed recorder.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(STATE_GAUGE, "circuit breaker state by target: 0 closed, 1 open, 2 half-open");
    describe_counter!(CALLS_TOTAL, "attempts a circuit breaker let through (retries included), by target");
    describe_counter!(FAILURES_TOTAL, "attempts through a circuit breaker that failed, by target");
    describe_counter!(RETRIES_TOTAL, "attempts that retried a failed one, by target");
    describe_counter!(SHORT_CIRCUITS_TOTAL, "calls refused at once by an open circuit breaker, by target");
}
