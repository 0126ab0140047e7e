//! Rate limits with bounded memory, for every door: a connection's messages/s and
//! bytes/s, connection attempts per source address, failed logins per username.
//!
//! # Layout
//! - `bucket`: [`TokenBucket`], a rate as a `Copy` value with exact integer refills, and
//!   [`ClientRate`], the messages/s + bytes/s pair one connection keeps on its own thread.
//! - `attempts`: [`AttemptLimiter`], attempts per minute per source address (IPv6 by /64),
//!   sharded, at most `max_tracked` addresses; untracked overflow is admitted and counted.
//! - `login`: [`LoginBackoff`], a doubling wait after repeated failed logins for a
//!   username, at most `max_tracked` names.
//!
//! Nothing here reads a clock: every call takes `now: Instant`, so callers read it once
//! per event and tests drive time by hand. Nothing here refuses on its own account
//! either: the caller answers (v5 0x96, disconnect, HTTP 429), counts and audits.

mod attempts;
mod bucket;
mod login;

pub use attempts::{AttemptLimiter, AttemptLimiterConfig};
pub use bucket::{ClientRate, RateExceeded, TokenBucket};
pub use login::{LoginBackoff, LoginBackoffConfig};

/// Registers the descriptions of this crate's metrics with the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "alicia_ratelimit_attempts_untracked_total",
        "connection attempts admitted without a per-address limit because the address table was full"
    );
    metrics::describe_counter!(
        "alicia_ratelimit_logins_evicted_total",
        "usernames with recent failed logins forgotten to make room in the back-off table"
    );
}
