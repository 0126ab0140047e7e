//! What the matcher may know of the timers running at a site, to answer "how much time
//! is left?" and to say so when there is no timer to cancel. The engine's timers
//! implement [`RunningTimers`]; without them the replies say only what was asked.

use std::sync::Arc;
use std::time::Duration;

/// One timer running at a site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerLeft {
    pub name: Option<String>,
    /// How long it was set for.
    pub length: Duration,
    /// Frozen at `remaining` until resumed.
    pub paused: bool,
    pub remaining: Duration,
}

/// The timers running at each site.
pub trait RunningTimers: Send + Sync {
    /// The site's timers, soonest first.
    fn running(&self, site: &str) -> Vec<TimerLeft>;
}

/// A shared view of the timers, for the matcher.
#[derive(Clone)]
pub(crate) struct TimerView(pub(crate) Arc<dyn RunningTimers>);

impl std::fmt::Debug for TimerView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TimerView")
    }
}

/// "the pizza timer", "the 5 minute timer".
pub(crate) fn timer_called(name: Option<&str>, length: Duration) -> String {
    format!("the {}", timer_spoken(name, length))
}

/// A timer as said: "pizza timer", "5 minute timer", "1 minute 30 second timer".
pub fn timer_spoken(name: Option<&str>, length: Duration) -> String {
    match name {
        Some(name) => format!("{name} timer"),
        None => format!("{} timer", length_adjective(length)),
    }
}

/// "5 minute", "1 hour 30 minute", "90 second": a length as it stands before "timer".
fn length_adjective(length: Duration) -> String {
    let s = length.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec} second"),
        (0, m, 0) => format!("{m} minute"),
        (h, 0, 0) => format!("{h} hour"),
        (0, m, sec) => format!("{m} minute {sec} second"),
        (h, m, _) => format!("{h} hour {m} minute"),
    }
}

/// "4 minutes and 10 seconds", "1 hour and 5 minutes", "30 seconds".
pub(crate) fn duration_spoken(length: Duration) -> String {
    let s = length.as_secs();
    let plural = |n: u64, unit: &str| if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") };
    let parts: Vec<String> = [(s / 3600, "hour"), ((s % 3600) / 60, "minute"), (s % 60, "second")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| plural(n, unit))
        .collect();
    match parts.as_slice() {
        [] => "no time".to_string(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_read_aloud() {
        assert_eq!(duration_spoken(Duration::from_secs(250)), "4 minutes and 10 seconds");
        assert_eq!(duration_spoken(Duration::from_secs(3_900)), "1 hour and 5 minutes");
        assert_eq!(duration_spoken(Duration::from_secs(3_661)), "1 hour, 1 minute and 1 second");
        assert_eq!(timer_called(None, Duration::from_secs(300)), "the 5 minute timer");
        assert_eq!(timer_called(None, Duration::from_secs(90)), "the 1 minute 30 second timer");
        assert_eq!(timer_called(Some("pizza"), Duration::from_secs(300)), "the pizza timer");
    }
}
