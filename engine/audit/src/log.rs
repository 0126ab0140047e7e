//! [`AuditLog`]: the handle every door holds, and the one writer thread behind it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metrics::{counter, describe_counter, Counter};

use crate::error::AuditError;
use crate::file::RotatingFile;
use crate::record::AuditRecord;

/// Where the log goes and how much of it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// The live file, e.g. `/var/log/alicia/audit.log`. Its directory must exist.
    pub path: PathBuf,
    /// Rotate before the live file would grow past this; 0 never rotates.
    pub max_bytes: u64,
    /// Rotated files kept (`audit.log.1` newest … `audit.log.{keep}` oldest); 0 keeps none.
    pub keep: u32,
    /// Records that may wait for the writer; more are dropped and counted. Each holds at
    /// most ~4 KiB of client strings (see [`crate::MAX_FIELD_BYTES`]), so the default
    /// queue is at most ~4 MiB even when every field is hostile.
    pub queue_capacity: usize,
}

impl AuditConfig {
    /// 10 MiB files, 5 kept (logrotate's habit), 1024 queued records: the writer does well
    /// over 10^5 lines/s, so a full queue means a stalled disk, not a busy door.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AuditConfig { path: path.into(), max_bytes: 10 * 1024 * 1024, keep: 5, queue_capacity: 1024 }
    }
}

enum Message {
    Record(AuditRecord),
    /// Answered once everything queued before it has been written (or failed).
    Flush(flume::Sender<()>),
}

/// The security audit log. Cheap to clone; [`AuditLog::record`] never blocks.
#[derive(Clone)]
pub struct AuditLog {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tx: flume::Sender<Message>,
    counts: Arc<Counts>,
    writer: JoinHandle<()>,
}

/// Shared between the handles and the writer thread.
struct Counts {
    dropped: AtomicU64,
    written: AtomicU64,
    failed: AtomicU64,
    dropped_total: Counter,
    written_total: Counter,
    failed_total: Counter,
}

impl AuditLog {
    /// Opens (or appends to) the file and starts the writer thread. The file is opened
    /// here, so a path that cannot be written is an error at start, not a silent loss.
    pub fn open(config: AuditConfig) -> Result<AuditLog, AuditError> {
        Self::start(config, None)
    }

    /// `gate`: the writer waits for it before its first record (tests fill the queue).
    fn start(config: AuditConfig, gate: Option<flume::Receiver<()>>) -> Result<AuditLog, AuditError> {
        if config.queue_capacity == 0 {
            return Err(AuditError::ZeroQueue);
        }
        let file = RotatingFile::open(config.path.clone(), config.max_bytes, config.keep)
            .map_err(|source| AuditError::Open { path: config.path.clone(), source })?;
        let counts = Arc::new(Counts {
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped_total: counter!("alicia_security_audit_dropped_total"),
            written_total: counter!("alicia_security_audit_written_total"),
            failed_total: counter!("alicia_security_audit_failed_total"),
        });
        let (tx, rx) = flume::bounded(config.queue_capacity);
        let writer_counts = Arc::clone(&counts);
        let handle = std::thread::Builder::new()
            .name("alicia-audit".into())
            .spawn(move || {
                if let Some(gate) = gate {
                    let _ = gate.recv();
                }
                write_loop(rx, file, &writer_counts);
            })
            .map_err(AuditError::Spawn)?;
        Ok(AuditLog { inner: Some(Arc::new(Inner { tx, counts, writer: handle })) })
    }

    /// A log that records nothing (auditing switched off).
    pub fn disabled() -> AuditLog {
        AuditLog { inner: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues a record for the writer. Never blocks: when the queue is full the record is
    /// dropped and counted, because a flood of refusals (the very thing being audited)
    /// must not slow the doors down.
    pub fn record(&self, record: AuditRecord) {
        let Some(inner) = &self.inner else { return };
        if inner.tx.try_send(Message::Record(record)).is_err() {
            inner.counts.dropped.fetch_add(1, Ordering::Relaxed);
            inner.counts.dropped_total.increment(1);
        }
    }

    /// Waits until every record queued before this call is written and synced to disk (or
    /// has failed and been counted). For shutdown and tests; it blocks, so not for async
    /// code (use `spawn_blocking`).
    pub fn flush_blocking(&self, timeout: Duration) -> Result<(), AuditError> {
        let Some(inner) = &self.inner else { return Ok(()) };
        // `Instant + Duration::MAX` would panic; a year is forever enough.
        let deadline = Instant::now() + timeout.min(Duration::from_secs(365 * 24 * 3600));
        let (done_tx, done_rx) = flume::bounded(1);
        match inner.tx.send_deadline(Message::Flush(done_tx), deadline) {
            Ok(()) => {}
            Err(flume::SendTimeoutError::Timeout(_)) => return Err(AuditError::FlushTimeout),
            Err(flume::SendTimeoutError::Disconnected(_)) => return Err(AuditError::WriterGone),
        }
        match done_rx.recv_deadline(deadline) {
            Ok(()) => Ok(()),
            Err(flume::RecvTimeoutError::Timeout) => Err(AuditError::FlushTimeout),
            Err(flume::RecvTimeoutError::Disconnected) => Err(AuditError::WriterGone),
        }
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.counts.dropped.load(Ordering::Relaxed))
    }

    /// Records written and flushed to the file.
    pub fn written(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.counts.written.load(Ordering::Relaxed))
    }

    /// Records lost because the file could not be written.
    pub fn failed(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.counts.failed.load(Ordering::Relaxed))
    }

    /// False once the writer thread has ended — which only a panic in it could cause while
    /// a handle is alive, and which `/healthz` should then report.
    pub fn is_running(&self) -> bool {
        self.inner.as_ref().is_none_or(|i| !i.writer.is_finished())
    }
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("enabled", &self.is_enabled())
            .field("written", &self.written())
            .field("dropped", &self.dropped())
            .field("failed", &self.failed())
            .finish()
    }
}

/// Registers the descriptions of this crate's metrics with the installed recorder.
pub fn describe_metrics() {
    describe_counter!("alicia_security_audit_written_total", "audit records written to the audit log");
    describe_counter!(
        "alicia_security_audit_dropped_total",
        "audit records dropped because the writer's queue was full"
    );
    describe_counter!(
        "alicia_security_audit_failed_total",
        "audit records lost because the audit log could not be written"
    );
}

/// Most records taken per batch, so a flood still flushes (and answers flushes) regularly.
const MAX_BATCH: usize = 1024;

fn write_loop(rx: flume::Receiver<Message>, mut file: RotatingFile, counts: &Counts) {
    let mut line = Vec::with_capacity(512);
    let mut batch = Vec::with_capacity(64);
    let mut flushes = Vec::new();
    let mut failing = false;
    // Ends when every handle is gone and the queue is empty: flume hands out what is
    // still queued before it reports the disconnect.
    while let Ok(first) = rx.recv() {
        batch.clear();
        for message in std::iter::once(first).chain(rx.try_iter().take(MAX_BATCH - 1)) {
            match message {
                Message::Record(record) => batch.push(record),
                Message::Flush(done) => flushes.push(done),
            }
        }
        let (written, failed) = match write_batch(&mut file, &batch, &mut line) {
            Ok(written) => (written, 0),
            Err((written, error)) => {
                if !failing {
                    tracing::warn!(%error, "audit log: cannot write, records are being lost until it can");
                }
                failing = true;
                (written, batch.len() - written)
            }
        };
        if failing && failed == 0 && written > 0 {
            tracing::info!("audit log: writable again");
            failing = false;
        }
        counts.written.fetch_add(written as u64, Ordering::Relaxed);
        counts.written_total.increment(written as u64);
        counts.failed.fetch_add(failed as u64, Ordering::Relaxed);
        counts.failed_total.increment(failed as u64);
        if !flushes.is_empty() {
            if let Err(error) = file.sync() {
                tracing::warn!(%error, "audit log: cannot sync to disk");
            }
        }
        for done in flushes.drain(..) {
            // The waiter may have given up; that is its business.
            let _ = done.try_send(());
        }
    }
}

/// Writes a batch; on failure says how many of its records had been written before it.
fn write_batch(
    file: &mut RotatingFile,
    batch: &[AuditRecord],
    line: &mut Vec<u8>,
) -> Result<usize, (usize, std::io::Error)> {
    if batch.is_empty() {
        return Ok(0);
    }
    let mut written = 0;
    file.check_path().map_err(|e| (0, e))?;
    for record in batch {
        line.clear();
        record.write_line(line);
        match file.push_line(line) {
            Ok(n) => written += n,
            Err(e) => {
                file.discard_pending();
                return Err((written, e));
            }
        }
    }
    match file.write_pending() {
        Ok(n) => Ok(written + n),
        Err(e) => {
            file.discard_pending();
            Err((written, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditAction;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let (open_gate, gate) = flume::bounded(1);
        let log = AuditLog::start(AuditConfig { queue_capacity: 4, ..AuditConfig::new(&path) }, Some(gate)).unwrap();
        let peer = "[2001:db8::1]:1883".parse().unwrap();
        for n in 0..10 {
            // Would hang here if `record` blocked on the full queue.
            log.record(AuditRecord::new("mqtt", peer, AuditAction::Publish, "rate_limit").with_detail(n.to_string()));
        }
        assert_eq!(log.dropped(), 6);
        open_gate.send(()).unwrap();
        log.flush_blocking(Duration::from_secs(10)).unwrap();
        assert_eq!((log.written(), log.dropped(), log.failed()), (4, 6, 0));
        let text = std::fs::read_to_string(&path).unwrap();
        let details: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["detail"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(details, ["0", "1", "2", "3"]);
    }

    #[test]
    fn a_flush_that_cannot_be_queued_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let (_open_gate, gate) = flume::bounded::<()>(1);
        let log = AuditLog::start(
            AuditConfig { queue_capacity: 1, ..AuditConfig::new(dir.path().join("audit.log")) },
            Some(gate),
        )
        .unwrap();
        log.record(AuditRecord::new("http", "127.0.0.1:8080".parse().unwrap(), AuditAction::Http, "bad_token"));
        let err = log.flush_blocking(Duration::from_millis(20)).unwrap_err();
        assert_eq!(err.error_type(), "flush_timeout");
    }
}
