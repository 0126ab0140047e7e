//! The writer thread: every change to the store, in the order it was asked for, committed
//! in groups.
//!
//! Callers never wait for the disk to change the store: they queue an [`Op`] and go on.
//! A caller that must know its changes are kept (a PUBACK about to go out) queues a
//! barrier and waits for it. The writer takes everything queued, commits it as one
//! batch to the journal and only then answers the barriers queued with it, so one
//! flush (or fsync) serves every publisher waiting at that moment: the more load, the
//! bigger the group, the cheaper each message.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fjall::{Keyspace, PartitionHandle, PersistMode};
use tokio::sync::oneshot;

use crate::keys;
use crate::metrics::StoreMetrics;
use crate::{StoreError, SyncMode};

/// Most changes one commit takes; the rest go in the next.
const MAX_GROUP: usize = 8192;

pub(crate) enum Op {
    Put(Bytes, Bytes),
    Delete(Bytes),
    /// Every delivery and state key of one client.
    DeleteClient(String),
    /// Answered once everything queued before it is committed.
    Barrier(oneshot::Sender<Result<(), StoreError>>),
    /// Several of the above, in order (a [`crate::StoreBatch`]).
    Many(Vec<Op>),
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Put(key, _) => write!(f, "Put({key:?})"),
            Op::Delete(key) => write!(f, "Delete({key:?})"),
            Op::DeleteClient(id) => write!(f, "DeleteClient({id:?})"),
            Op::Barrier(_) => f.write_str("Barrier"),
            Op::Many(ops) => write!(f, "Many({})", ops.len()),
        }
    }
}

/// Takes `op` into `ops`, a batch's changes one by one.
fn take(ops: &mut Vec<Op>, op: Op) {
    match op {
        Op::Many(many) => ops.extend(many),
        op => ops.push(op),
    }
}

pub(crate) struct Writer {
    pub keyspace: Keyspace,
    pub partition: PartitionHandle,
    pub sync: SyncMode,
    pub sync_interval: Duration,
    pub metrics: StoreMetrics,
    /// Why the store stopped writing, for [`crate::Store::failure`].
    pub failure: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Writer {
    /// Runs until every sender is gone, then makes what it wrote durable.
    pub(crate) fn run(self, rx: flume::Receiver<Op>) {
        let mut ops = Vec::new();
        let mut barriers = Vec::new();
        let mut unsynced_since: Option<Instant> = None;
        let mut failed: Option<StoreError> = None;
        loop {
            let wait = match (self.sync, unsynced_since) {
                (SyncMode::Batch, Some(since)) => self.sync_interval.saturating_sub(since.elapsed()),
                _ => Duration::from_secs(3600),
            };
            match rx.recv_timeout(wait) {
                Ok(op) => take(&mut ops, op),
                Err(flume::RecvTimeoutError::Timeout) => {}
                Err(flume::RecvTimeoutError::Disconnected) => break,
            }
            while ops.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(op) => take(&mut ops, op),
                    Err(_) => break,
                }
            }
            let wrote = !ops.is_empty() && failed.is_none() && {
                let result = self.commit(&ops);
                if let Err(e) = &result {
                    tracing::error!(error = %e, "the store cannot write: acknowledgements that need it are refused");
                    self.failed(e.to_string());
                    failed = Some(e.clone());
                }
                result.unwrap_or(false)
            };
            for op in ops.drain(..) {
                if let Op::Barrier(tx) = op {
                    barriers.push(tx);
                }
            }
            let answer = failed.clone().map_or(Ok(()), Err);
            for tx in barriers.drain(..) {
                let _ = tx.send(answer.clone());
            }
            if wrote && self.sync == SyncMode::Batch && unsynced_since.is_none() {
                unsynced_since = Some(Instant::now());
            }
            if let Some(since) = unsynced_since {
                if since.elapsed() >= self.sync_interval {
                    self.fsync();
                    unsynced_since = None;
                }
            }
        }
        if failed.is_none() {
            self.fsync();
        }
    }

    fn failed(&self, cause: String) {
        self.metrics.up.set(0.0);
        if let Ok(mut failure) = self.failure.lock() {
            failure.get_or_insert(cause);
        }
    }

    fn fsync(&self) {
        let started = Instant::now();
        if let Err(e) = self.keyspace.persist(PersistMode::SyncAll) {
            tracing::error!(error = %e, "the store could not fsync its journal");
            self.failed(e.to_string());
        }
        self.metrics.fsync_seconds.record(started.elapsed().as_secs_f64());
    }

    /// Commits the writes among `ops` as one batch; whether anything was written.
    fn commit(&self, ops: &[Op]) -> Result<bool, StoreError> {
        // A delivery acknowledged before its record reached the disk needs neither its
        // puts nor its deletes: its key is new (a fresh sequence number), and so is the
        // key of its state, so dropping all of them leaves the store as it was.
        let mut fresh = HashSet::new();
        let mut deleted = HashSet::new();
        for op in ops.iter() {
            match op {
                Op::Put(key, _) if key.first() == Some(&keys::DELIVERY) => {
                    fresh.insert(twin(key, keys::STATE));
                    fresh.insert(key.clone());
                }
                Op::Delete(key) if fresh.contains(key) => {
                    deleted.insert(key.clone());
                }
                _ => {}
            }
        }
        let mut batch = self.keyspace.batch().durability(Some(match self.sync {
            SyncMode::Always => PersistMode::SyncData,
            SyncMode::Batch => PersistMode::Buffer,
        }));
        let mut pending: Vec<(Bytes, Option<Bytes>)> = Vec::with_capacity(ops.len());
        for op in ops.iter() {
            match op {
                // Both halves of a fresh key's put-then-delete are dropped.
                Op::Put(key, value) if !deleted.contains(key) => pending.push((key.clone(), Some(value.clone()))),
                Op::Delete(key) if !deleted.contains(key) => pending.push((key.clone(), None)),
                Op::Put(..) | Op::Delete(_) => {}
                Op::DeleteClient(client_id) => {
                    for kind in [keys::DELIVERY, keys::STATE] {
                        let prefix = keys::client_prefix(kind, client_id);
                        pending.retain(|(k, _)| !k.starts_with(&prefix));
                        for item in self.partition.prefix(&prefix[..]) {
                            let (key, _) = item.map_err(StoreError::from)?;
                            pending.push((Bytes::copy_from_slice(&key), None));
                        }
                    }
                }
                Op::Barrier(_) | Op::Many(_) => {}
            }
        }
        if pending.is_empty() {
            return Ok(false);
        }
        let mut bytes = 0;
        for (key, value) in &pending {
            bytes += key.len() + value.as_ref().map_or(0, Bytes::len);
            match value {
                Some(value) => batch.insert(&self.partition, &key[..], &value[..]),
                None => batch.remove(&self.partition, &key[..]),
            }
        }
        let started = Instant::now();
        batch.commit().map_err(StoreError::from)?;
        self.metrics.commit_seconds.record(started.elapsed().as_secs_f64());
        self.metrics.commits.increment(1);
        self.metrics.writes.increment(pending.len() as u64);
        self.metrics.written_bytes.increment(bytes as u64);
        Ok(true)
    }
}

/// The same client and sequence number under another kind of key.
fn twin(key: &Bytes, kind: u8) -> Bytes {
    let mut twin = key.to_vec();
    twin[0] = kind;
    Bytes::from(twin)
}
