//! The durable store: what the bus must not forget when the engine stops or is killed.
//!
//! Retained messages, persistent sessions (subscriptions with their options, expiry),
//! the QoS 1/2 deliveries held for them (waiting, in flight, released) and pending wills
//! live in one fjall keyspace under `[storage] dir`. One writer thread commits every
//! change in groups; a caller that must know its changes are kept waits on
//! [`Store::sync`].
//!
//! What `sync` promises:
//! - `always`: a group is fsynced (fdatasync of the journal) before any barrier queued
//!   with it is answered: an acknowledged message survives a power loss.
//! - `batch`: a group is written to the operating system before its barriers are
//!   answered, and fsynced every `sync_interval`: an acknowledged message survives
//!   `kill -9` and any crash of the engine; a power loss or kernel crash can lose the
//!   last interval.
//!
//! # Layout
//! - `record`: the records and their byte layout.
//! - `keys`: the key of each kind of record.
//! - `writer`: the writer thread and its group commit.
//! - `backup`: online snapshots to a file and restoring one.
//! - `metrics`: the store's meters.
//! - this file: [`Store`], opening it (one process at a time) and reading it back.

mod backup;
mod keys;
mod metrics;
mod record;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle};
use tokio::sync::oneshot;

pub use backup::{restore, verify, BackupSummary};
pub use metrics::describe_metrics;
pub use record::{
    DecodeError, DeliveryState, StoredDelivery, StoredMessage, StoredProperties, StoredSession, StoredSubscription,
    StoredWill,
};
use writer::{Op, Writer};

const PARTITION: &str = "bus";
const LOCK_FILE: &str = "LOCK";

/// `[storage] sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Always,
    Batch,
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub dir: PathBuf,
    pub sync: SyncMode,
    /// With `batch`: how long written data may wait for its fsync.
    pub sync_interval: Duration,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("store directory {dir}: {error}")]
    Directory { dir: PathBuf, error: String },
    #[error("store directory {0} is in use by another process (an engine is running on it)")]
    Locked(PathBuf),
    #[error("store: {0}")]
    Database(String),
    #[error("the store's writer has stopped")]
    Stopped,
    #[error("backup file {path}: {error}")]
    Backup { path: PathBuf, error: String },
}

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> StoreError {
        StoreError::Database(e.to_string())
    }
}

impl From<fjall::LsmError> for StoreError {
    fn from(e: fjall::LsmError) -> StoreError {
        StoreError::Database(e.to_string())
    }
}

/// A persistent session as it was kept, with its deliveries in the order queued.
#[derive(Debug, Clone)]
pub struct RestoredSession {
    pub session: StoredSession,
    pub deliveries: Vec<(u64, StoredDelivery, DeliveryState)>,
}

/// Everything the store held at start-up.
#[derive(Debug, Default)]
pub struct Restored {
    pub retained: Vec<StoredMessage>,
    pub sessions: Vec<RestoredSession>,
    pub wills: Vec<(String, StoredWill)>,
    /// Records that could not be read back (each reported once, then ignored).
    pub skipped: usize,
}

struct Inner {
    tx: flume::Sender<Op>,
    next_seq: AtomicU64,
    keyspace: Keyspace,
    partition: PartitionHandle,
    failure: Arc<std::sync::Mutex<Option<String>>>,
    writer: Option<std::thread::JoinHandle<()>>,
    _lock: File,
}

/// Changes made together on one thread (a node's batch of routing), handed to the
/// writer at once with [`Store::submit`]: their order is kept, and a node pays one queue
/// operation per batch instead of one per change.
#[derive(Debug, Default)]
pub struct StoreBatch {
    ops: Vec<Op>,
}

impl StoreBatch {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn put_session(&mut self, session: &StoredSession) {
        self.ops.push(Op::Put(keys::simple(keys::SESSION, session.client_id.as_bytes()), session.encode()));
    }

    /// The session ends: it and every delivery it held go.
    pub fn remove_session(&mut self, client_id: &str) {
        self.ops.push(Op::Delete(keys::simple(keys::SESSION, client_id.as_bytes())));
        self.ops.push(Op::DeleteClient(client_id.to_string()));
    }

    pub fn put_will(&mut self, client_id: &str, will: &StoredWill) {
        self.ops.push(Op::Put(keys::simple(keys::WILL, client_id.as_bytes()), will.encode()));
    }

    pub fn remove_will(&mut self, client_id: &str) {
        self.ops.push(Op::Delete(keys::simple(keys::WILL, client_id.as_bytes())));
    }

    /// Keeps a delivery, with where it stands now (`delivery.state`): one record.
    pub fn put_delivery(&mut self, client_id: &str, seq: u64, delivery: &StoredDelivery) {
        self.ops.push(Op::Put(keys::delivery(keys::DELIVERY, client_id, seq), delivery.encode()));
    }

    /// A kept delivery moved on (sent after waiting, released): a state record of its
    /// own, read over the one in the delivery's record.
    pub fn set_state(&mut self, client_id: &str, seq: u64, state: DeliveryState) {
        self.ops.push(Op::Put(keys::delivery(keys::STATE, client_id, seq), state.encode()));
    }

    /// A delivery is done with; `with_state`: `set_state` was called for it.
    pub fn remove_delivery(&mut self, client_id: &str, seq: u64, with_state: bool) {
        self.ops.push(Op::Delete(keys::delivery(keys::DELIVERY, client_id, seq)));
        if with_state {
            self.ops.push(Op::Delete(keys::delivery(keys::STATE, client_id, seq)));
        }
    }
}

/// A handle on the open store; cheap to clone and to use from any thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// The directory's lock: one process opens a store at a time.
fn lock(dir: &Path) -> Result<File, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Directory { dir: dir.to_path_buf(), error: e.to_string() })?;
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::Directory { dir: dir.to_path_buf(), error: e.to_string() })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StoreError::Directory { dir: dir.to_path_buf(), error: e.to_string() })
        }
    }
}

fn open_keyspace(dir: &Path) -> Result<(Keyspace, PartitionHandle), StoreError> {
    // Two small machines' worth of background work: one flush and one compaction thread.
    let keyspace = Config::new(dir.join("db"))
        .manual_journal_persist(true)
        .fsync_ms(None)
        .flush_workers(1)
        .compaction_workers(1)
        .cache_size(8 * 1024 * 1024)
        .open()?;
    let partition = keyspace.open_partition(PARTITION, PartitionCreateOptions::default())?;
    Ok((keyspace, partition))
}

impl Store {
    /// Opens (or creates) the store and reads back what it holds.
    pub fn open(settings: &StoreSettings) -> Result<(Store, Restored), StoreError> {
        let lock = lock(&settings.dir)?;
        let (keyspace, partition) = open_keyspace(&settings.dir)?;
        let metrics = metrics::StoreMetrics::new();
        let (restored, last_seq) = read_back(&partition, &metrics)?;
        metrics.up.set(1.0);
        let (tx, rx) = flume::unbounded();
        let failure = Arc::new(std::sync::Mutex::new(None));
        let writer = Writer {
            failure: failure.clone(),
            keyspace: keyspace.clone(),
            partition: partition.clone(),
            sync: settings.sync,
            sync_interval: settings.sync_interval,
            metrics,
        };
        let thread = std::thread::Builder::new()
            .name("alicia-store".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Database(format!("cannot start the writer thread: {e}")))?;
        let inner = Inner {
            tx,
            next_seq: AtomicU64::new(last_seq + 1),
            keyspace,
            partition,
            failure,
            writer: Some(thread),
            _lock: lock,
        };
        Ok((Store { inner: Arc::new(inner) }, restored))
    }

    fn send(&self, op: Op) {
        // The writer outlives every handle; a send fails only after a panic there, and
        // the next barrier says so.
        let _ = self.inner.tx.send(op);
    }

    /// Keeps `value` as the record `name` of `namespace`: a record another part of the
    /// engine owns (the timers), whose bytes are its own business. Namespaces must not
    /// contain NUL.
    pub fn put_owned(&self, namespace: &str, name: &str, value: Bytes) {
        debug_assert!(!namespace.contains('\0'));
        self.send(Op::Put(keys::app(namespace, name), value));
    }

    pub fn remove_owned(&self, namespace: &str, name: &str) {
        self.send(Op::Delete(keys::app(namespace, name)));
    }

    /// Every record of `namespace` as committed now, by name: what its owner kept
    /// before the engine stopped. Changes still queued are not seen: call after
    /// [`sync`](Self::sync) if that matters.
    pub fn read_owned(&self, namespace: &str) -> Result<Vec<(String, Bytes)>, StoreError> {
        let prefix = keys::app_prefix(namespace);
        let mut records = Vec::new();
        for item in self.inner.partition.prefix(&prefix) {
            let (key, value) = item?;
            let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            records.push((name, Bytes::copy_from_slice(&value)));
        }
        Ok(records)
    }

    pub fn put_retained(&self, message: &StoredMessage) {
        self.send(Op::Put(keys::simple(keys::RETAINED, &message.topic), message.encode()));
    }

    pub fn clear_retained(&self, topic: &[u8]) {
        self.send(Op::Delete(keys::simple(keys::RETAINED, topic)));
    }

    pub fn put_session(&self, session: &StoredSession) {
        self.one(|b| b.put_session(session));
    }

    /// The session ends: it and every delivery it held go.
    pub fn remove_session(&self, client_id: &str) {
        self.one(|b| b.remove_session(client_id));
    }

    pub fn put_will(&self, client_id: &str, will: &StoredWill) {
        self.one(|b| b.put_will(client_id, will));
    }

    pub fn remove_will(&self, client_id: &str) {
        self.one(|b| b.remove_will(client_id));
    }

    /// A new delivery's sequence number: unique in the store, increasing.
    pub fn next_seq(&self) -> u64 {
        self.inner.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    pub fn put_delivery(&self, client_id: &str, seq: u64, delivery: &StoredDelivery) {
        self.one(|b| b.put_delivery(client_id, seq, delivery));
    }

    pub fn set_state(&self, client_id: &str, seq: u64, state: DeliveryState) {
        self.one(|b| b.set_state(client_id, seq, state));
    }

    pub fn remove_delivery(&self, client_id: &str, seq: u64, with_state: bool) {
        self.one(|b| b.remove_delivery(client_id, seq, with_state));
    }

    fn one(&self, change: impl FnOnce(&mut StoreBatch)) {
        let mut batch = StoreBatch::default();
        change(&mut batch);
        self.submit(&mut batch);
    }

    /// Hands every change in `batch` to the writer at once (one queue operation, one
    /// wake-up), in the order they were made, and empties it.
    pub fn submit(&self, batch: &mut StoreBatch) {
        match batch.ops.len() {
            0 => {}
            1 => self.send(batch.ops.pop().expect("one")),
            _ => self.send(Op::Many(std::mem::take(&mut batch.ops))),
        }
    }

    /// Resolves once every change this thread queued before it is committed (written to
    /// the OS, or fsynced with `sync = always`).
    pub fn sync(&self) -> impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Barrier(tx));
        async move { rx.await.unwrap_or(Err(StoreError::Stopped)) }
    }

    /// Waits for everything queued so far to be committed, from a thread that may block.
    pub fn sync_blocking(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(Op::Barrier(tx));
        rx.blocking_recv().unwrap_or(Err(StoreError::Stopped))
    }

    /// Why the store stopped writing, once it has: from then on every barrier fails, so
    /// nothing that needs the store is acknowledged.
    pub fn failure(&self) -> Option<String> {
        self.inner.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Bytes the store takes on disk.
    pub fn disk_space(&self) -> u64 {
        self.inner.keyspace.disk_space()
    }

    /// Writes a consistent copy of the whole store, as of now, to `path` while the engine
    /// goes on (see [`backup`]).
    pub fn backup(&self, path: &Path) -> Result<BackupSummary, StoreError> {
        let snapshot = self.inner.partition.snapshot();
        backup::write_file(path, |out| backup::write_to(&snapshot, out))
    }

    /// The same backup, written to `out` (a stream to a remote `alicia backup`).
    pub fn backup_to(&self, out: &mut dyn std::io::Write) -> Result<BackupSummary, std::io::Error> {
        backup::write_to(&self.inner.partition.snapshot(), out)
    }

    /// Makes everything queued durable and stops the writer (the last handle's drop does
    /// the same).
    pub fn close(self) {
        let _ = self.sync_blocking();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping `tx` (after this) disconnects the writer, which fsyncs and ends.
        let (tx, _rx) = flume::bounded(0);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(thread) = self.writer.take() {
            let _ = thread.join();
        }
    }
}

/// Reads every record back: retained messages, sessions with their deliveries, wills;
/// and the highest delivery sequence number used.
fn read_back(partition: &PartitionHandle, metrics: &metrics::StoreMetrics) -> Result<(Restored, u64), StoreError> {
    let mut restored = Restored::default();
    let mut sessions = std::collections::BTreeMap::<String, RestoredSession>::new();
    let mut deliveries = Vec::new();
    let mut states = std::collections::HashMap::<(String, u64), DeliveryState>::new();
    let mut last_seq = 0;
    let skip = |key: &[u8], why: &dyn std::fmt::Display| {
        tracing::warn!(key = %String::from_utf8_lossy(key), error = %why, "store record skipped");
        metrics.skipped.increment(1);
        1
    };
    for item in partition.iter() {
        let (key, value) = item?;
        let value = Bytes::copy_from_slice(&value);
        let name = &key[1..];
        match key.first().copied() {
            Some(keys::RETAINED) => match StoredMessage::decode(value) {
                Ok(m) => restored.retained.push(m),
                Err(e) => restored.skipped += skip(&key, &e),
            },
            Some(keys::SESSION) => match StoredSession::decode(value) {
                Ok(s) => {
                    sessions.insert(s.client_id.clone(), RestoredSession { session: s, deliveries: Vec::new() });
                }
                Err(e) => restored.skipped += skip(&key, &e),
            },
            Some(keys::WILL) => match (std::str::from_utf8(name), StoredWill::decode(value)) {
                (Ok(id), Ok(w)) => restored.wills.push((id.to_string(), w)),
                (Err(e), _) => restored.skipped += skip(&key, &e),
                (_, Err(e)) => restored.skipped += skip(&key, &e),
            },
            Some(keys::DELIVERY) => match (keys::parse_delivery(&key), StoredDelivery::decode(value)) {
                (Some((id, seq)), Ok(d)) => {
                    last_seq = last_seq.max(seq);
                    deliveries.push((id.to_string(), seq, d));
                }
                (None, _) => restored.skipped += skip(&key, &"bad key"),
                (_, Err(e)) => restored.skipped += skip(&key, &e),
            },
            Some(keys::STATE) => match (keys::parse_delivery(&key), DeliveryState::decode(value)) {
                (Some((id, seq)), Ok(s)) => {
                    last_seq = last_seq.max(seq);
                    states.insert((id.to_string(), seq), s);
                }
                (None, _) => restored.skipped += skip(&key, &"bad key"),
                (_, Err(e)) => restored.skipped += skip(&key, &e),
            },
            // Read by their owners (`read_owned`).
            Some(keys::APP) => {}
            _ => restored.skipped += skip(&key, &"unknown kind"),
        }
    }
    // Keys sort by client then sequence: each session's deliveries arrive in order.
    for (client_id, seq, delivery) in deliveries {
        let state = states.remove(&(client_id.clone(), seq)).unwrap_or(delivery.state);
        // None: the session ended and its deliveries' deletion did not finish: nobody's.
        if let Some(s) = sessions.get_mut(&client_id) {
            s.deliveries.push((seq, delivery, state));
        }
    }
    restored.sessions = sessions.into_values().collect();
    Ok((restored, last_seq))
}

#[cfg(test)]
mod tests;
