//! The store's meters.

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Gauge, Histogram,
};

#[derive(Clone)]
pub(crate) struct StoreMetrics {
    pub commits: Counter,
    pub writes: Counter,
    pub written_bytes: Counter,
    pub commit_seconds: Histogram,
    pub fsync_seconds: Histogram,
    pub up: Gauge,
    pub skipped: Counter,
}

impl StoreMetrics {
    pub(crate) fn new() -> StoreMetrics {
        StoreMetrics {
            commits: counter!("alicia_store_commits_total"),
            writes: counter!("alicia_store_writes_total"),
            written_bytes: counter!("alicia_store_written_bytes_total"),
            commit_seconds: histogram!("alicia_store_commit_seconds"),
            fsync_seconds: histogram!("alicia_store_fsync_seconds"),
            up: gauge!("alicia_store_up"),
            skipped: counter!("alicia_store_records_skipped_total"),
        }
    }
}

/// Registers the descriptions of this crate's metrics with the installed recorder.
pub fn describe_metrics() {
    describe_counter!("alicia_store_commits_total", "Group commits of the durable store");
    describe_counter!("alicia_store_writes_total", "Records written or deleted by the durable store");
    describe_counter!("alicia_store_written_bytes_total", "Bytes of keys and records written to the durable store");
    describe_histogram!(
        "alicia_store_commit_seconds",
        "Time of one group commit (journal write, and fsync with sync = always)"
    );
    describe_histogram!("alicia_store_fsync_seconds", "Time of the periodic fsync with sync = batch");
    describe_gauge!("alicia_store_up", "1 while the durable store writes, 0 once a write failed");
    describe_counter!(
        "alicia_store_records_skipped_total",
        "Records that could not be read back at start-up (reported and skipped)"
    );
}
