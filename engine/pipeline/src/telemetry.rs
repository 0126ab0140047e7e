//! The metric contract of the pipeline and the per-stage handles.
//!
//! Names follow `alicia_<area>_<name>_<unit>`, counters end in `_total`, units are
//! base units. Labels are bounded: the stage or edge id from the topology (a fixed
//! set per deployment) and `error_type` (a fixed vocabulary per stage); never a
//! session, site or topic. Handles are created once when the topology is built, so
//! the hot path only touches atomics.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge, Histogram, SharedString, Unit};

pub const STAGE_FRAMES_RECEIVED: &str = "alicia_stage_frames_received_total";
pub const STAGE_FRAMES_SENT: &str = "alicia_stage_frames_sent_total";
pub const STAGE_ERRORS: &str = "alicia_stage_errors_total";
pub const STAGE_PROCESS_SECONDS: &str = "alicia_stage_process_seconds";
pub const EDGE_FRAMES_DROPPED: &str = "alicia_edge_frames_dropped_total";
pub const EDGE_QUEUE_DEPTH: &str = "alicia_edge_queue_depth";

/// Every metric this crate emits, for the naming compliance test and for exporters.
pub const METRIC_NAMES: [&str; 6] = [
    STAGE_FRAMES_RECEIVED,
    STAGE_FRAMES_SENT,
    STAGE_ERRORS,
    STAGE_PROCESS_SECONDS,
    EDGE_FRAMES_DROPPED,
    EDGE_QUEUE_DEPTH,
];

/// Registers units and help texts with the installed recorder. Call once from the
/// binary after installing it.
pub fn describe_metrics() {
    metrics::describe_counter!(STAGE_FRAMES_RECEIVED, Unit::Count, "frames a stage took from its input edge");
    metrics::describe_counter!(STAGE_FRAMES_SENT, Unit::Count, "frames a stage handed to its output edges");
    metrics::describe_counter!(STAGE_ERRORS, Unit::Count, "frames a stage failed on, by error_type");
    metrics::describe_histogram!(
        STAGE_PROCESS_SECONDS,
        Unit::Seconds,
        "time in a stage's process call, excluding time blocked on a full output"
    );
    metrics::describe_counter!(
        EDGE_FRAMES_DROPPED,
        Unit::Count,
        "frames a drop_newest edge discarded because it was full"
    );
    metrics::describe_gauge!(EDGE_QUEUE_DEPTH, Unit::Count, "frames queued on an edge, sampled by its reader");
}

/// Counts readable in tests and health checks without a metrics recorder.
#[derive(Debug, Default)]
pub(crate) struct StageCounters {
    pub(crate) received: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) errors: AtomicU64,
}

impl StageCounters {
    pub(crate) fn snapshot(&self) -> StageStats {
        StageStats {
            received: self.received.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// A point-in-time copy of a stage's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageStats {
    pub received: u64,
    /// Frames pushed by the stage and handed to every edge of their output.
    pub sent: u64,
    /// Frames dropped by a per-frame error, plus a fatal error if there was one.
    pub errors: u64,
}

/// The metric handles of one stage.
pub(crate) struct StageMetrics {
    stage: SharedString,
    pub(crate) received: Counter,
    pub(crate) process_seconds: Histogram,
    // error_type is an open (but small, per stage) vocabulary, so its counters are
    // made on first use and kept; a linear scan beats hashing for a handful.
    errors: Vec<(&'static str, Counter)>,
}

impl StageMetrics {
    pub(crate) fn new(stage: &str) -> Self {
        let stage = SharedString::from(stage.to_owned());
        Self {
            received: metrics::counter!(STAGE_FRAMES_RECEIVED, "stage" => stage.clone()),
            process_seconds: metrics::histogram!(STAGE_PROCESS_SECONDS, "stage" => stage.clone()),
            errors: Vec::new(),
            stage,
        }
    }

    pub(crate) fn sent(stage: &str) -> Counter {
        metrics::counter!(STAGE_FRAMES_SENT, "stage" => stage.to_owned())
    }

    pub(crate) fn error(&mut self, error_type: &'static str) -> &Counter {
        let index = match self.errors.iter().position(|(known, _)| *known == error_type) {
            Some(index) => index,
            None => {
                let counter = metrics::counter!(
                    STAGE_ERRORS,
                    "stage" => self.stage.clone(),
                    "error_type" => error_type
                );
                self.errors.push((error_type, counter));
                self.errors.len() - 1
            }
        };
        &self.errors[index].1
    }
}

/// The metric handles of one edge.
pub(crate) struct EdgeMetrics {
    pub(crate) dropped: Counter,
    pub(crate) queue_depth: Gauge,
}

impl EdgeMetrics {
    pub(crate) fn new(edge: &str) -> Self {
        Self {
            dropped: metrics::counter!(EDGE_FRAMES_DROPPED, "edge" => edge.to_owned()),
            queue_depth: metrics::gauge!(EDGE_QUEUE_DEPTH, "edge" => edge.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNITS: [&str; 3] = ["_total", "_seconds", "_bytes"];

    #[test]
    fn metric_names_follow_the_contract() {
        for name in METRIC_NAMES {
            let parts: Vec<&str> = name.split('_').collect();
            assert!(parts.len() >= 4, "{name}: want alicia_<area>_<name>_<unit>");
            assert_eq!(parts[0], "alicia", "{name}");
            assert!(matches!(parts[1], "stage" | "edge"), "{name}: unknown area");
            assert!(crate::stage::is_label(name), "{name}: lowercase snake_case only");
            let counter = name.ends_with("_total");
            let gauge_of_count = name == EDGE_QUEUE_DEPTH;
            assert!(
                counter || gauge_of_count || UNITS.iter().any(|unit| name.ends_with(unit)),
                "{name}: must end in a base unit"
            );
            assert!(!name.contains("milli") && !name.contains("micro"), "{name}: base units only");
        }
    }
}
