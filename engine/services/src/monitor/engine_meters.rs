//! Alerts from the engine's own meters, read in-process from the Prometheus page:
//! deliveries dropped and invalid envelopes faster than their per-minute thresholds,
//! and client queues above their byte threshold and still growing.

use std::time::Instant;

use super::alerts::{Alert, Severity};

/// The thresholds (`[monitor]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Thresholds {
    pub(crate) dropped_per_minute: u64,
    pub(crate) invalid_per_minute: u64,
    pub(crate) queued_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    dropped: f64,
    invalid: f64,
    queued: f64,
}

#[derive(Debug)]
pub(crate) struct EngineMeters {
    thresholds: Thresholds,
    last: Option<Sample>,
}

impl EngineMeters {
    pub(crate) fn new(thresholds: Thresholds) -> EngineMeters {
        EngineMeters { thresholds, last: None }
    }

    /// Reads `page` (Prometheus text) and says, for each watched cause, whether its
    /// alert holds now. Nothing on the first sample: a rate needs two.
    pub(crate) fn judge(&mut self, page: &str, now: Instant) -> Vec<(Alert, bool)> {
        let sample = Sample {
            at: now,
            dropped: sum(page, "alicia_mqtt_messages_dropped_total"),
            invalid: sum(page, "alicia_envelope_invalid_total"),
            queued: sum(page, "alicia_mqtt_queued_bytes"),
        };
        let Some(last) = self.last.replace(sample) else { return Vec::new() };
        let minutes = now.duration_since(last.at).as_secs_f64() / 60.0;
        if minutes <= 0.0 {
            return Vec::new();
        }
        let per_minute = |now: f64, then: f64| (now - then).max(0.0) / minutes;
        let dropped = per_minute(sample.dropped, last.dropped);
        let invalid = per_minute(sample.invalid, last.invalid);
        let t = self.thresholds;
        vec![
            (
                Alert::new(
                    "dropped_messages",
                    Severity::Warning,
                    "mqtt",
                    format!("{dropped:.0} deliveries dropped per minute (threshold {})", t.dropped_per_minute),
                ),
                dropped > t.dropped_per_minute as f64,
            ),
            (
                Alert::new(
                    "error_rate",
                    Severity::Warning,
                    "envelopes",
                    format!("{invalid:.0} invalid envelopes per minute (threshold {})", t.invalid_per_minute),
                ),
                invalid > t.invalid_per_minute as f64,
            ),
            (
                Alert::new(
                    "queue_growth",
                    Severity::Warning,
                    "mqtt",
                    format!("{:.0} bytes queued for clients and growing (threshold {})", sample.queued, t.queued_bytes),
                ),
                sample.queued > t.queued_bytes as f64 && sample.queued > last.queued,
            ),
        ]
    }
}

/// The sum of every series of `name` on a Prometheus page (0 when absent).
fn sum(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_over_their_threshold_raise_and_calm_ones_resolve() {
        let thresholds = Thresholds { dropped_per_minute: 10, invalid_per_minute: 10, queued_bytes: 1000 };
        let mut meters = EngineMeters::new(thresholds);
        let t0 = Instant::now();
        let page = |dropped: u32, queued: u32| {
            format!(
                "# TYPE alicia_mqtt_messages_dropped_total counter\nalicia_mqtt_messages_dropped_total{{reason=\"queue_full\"}} {dropped}\nalicia_mqtt_messages_dropped_total{{reason=\"x\"}} 1\nalicia_mqtt_queued_bytes {queued}\nalicia_mqtt_queued_bytes_total 99999\n"
            )
        };
        assert!(meters.judge(&page(0, 0), t0).is_empty());
        let verdicts = meters.judge(&page(20, 5000), t0 + Duration::from_secs(60));
        let holds: Vec<(String, bool)> = verdicts.iter().map(|(a, h)| (a.id.clone(), *h)).collect();
        assert_eq!(
            holds,
            [
                ("dropped_messages:mqtt".into(), true),
                ("error_rate:envelopes".into(), false),
                ("queue_growth:mqtt".into(), true)
            ]
        );
        let verdicts = meters.judge(&page(21, 5000), t0 + Duration::from_secs(120));
        assert!(verdicts.iter().all(|(_, holds)| !holds), "a steady queue and a slow drip are fine");
    }
}
