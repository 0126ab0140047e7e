//! What every node of the broker shares.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::budget::ByteBudget;
use crate::bus::large::LargePayloads;
use crate::bus::tags::Tags;
use crate::gateway::Gateway;
use crate::limits::Limits;
use crate::metrics::BrokerMetrics;
use crate::retained::RetainedIndex;

pub(crate) struct Context {
    /// The limits in force; a config update swaps them whole (`BrokerControl`). Read
    /// where they are used, so a change applies to what happens next; what a client was
    /// told in its CONNACK is kept on its `Connection`.
    pub limits: ArcSwap<Limits>,
    /// Bumped when the per-client publish rate changes: each connection compares it with
    /// its own at its next PUBLISH and takes the new rate (one load per PUBLISH).
    pub rate_generation: AtomicU64,
    pub metrics: BrokerMetrics,
    /// The in-process clients' refusals (`listener="local"`).
    pub local_metrics: BrokerMetrics,
    /// Each listener's own meters, by its label (tcp, tls, websocket, websocket-tls).
    pub listener_metrics: Vec<(&'static str, Arc<BrokerMetrics>)>,
    pub budget: Arc<ByteBudget>,
    pub large: LargePayloads,
    pub retained: RetainedIndex,
    pub log: LogWatch,
    /// Sessions held by all nodes (for `max_sessions`).
    pub sessions: AtomicUsize,
    /// Each node's topics in the router.
    pub tags: Tags,
    pub stop: CancellationToken,
    /// `[security]`: credentials, ACL, audit, rate limits, signatures.
    pub gateway: Gateway,
    /// `[storage]`: the durable store, when configured.
    pub store: Option<alicia_store::Store>,
    /// What the store held at start-up, for the nodes to take up.
    pub boot: crate::persist::Boot,
}

impl Context {
    /// The meters of the listener called `label`, shared (the TCP listener's for an
    /// unknown label: the series are the same).
    pub(crate) fn listener_metrics_arc(&self, label: &str) -> Arc<BrokerMetrics> {
        let found = self.listener_metrics.iter().find(|(l, _)| *l == label);
        found.or_else(|| self.listener_metrics.first()).map(|(_, m)| m.clone()).expect("the TCP listener")
    }

    /// The meters of the listener called `label`; the engine-wide ones for another.
    pub(crate) fn metrics_for(&self, label: &str) -> &BrokerMetrics {
        self.listener_metrics.iter().find(|(l, _)| *l == label).map_or(&self.metrics, |(_, m)| m.as_ref())
    }

    /// The limits in force now (a lock-free load; not to be held across an await).
    pub(crate) fn limits(&self) -> arc_swap::Guard<Arc<Limits>> {
        self.limits.load()
    }

    pub(crate) fn try_add_session(&self) -> bool {
        let max = self.limits().max_sessions;
        let added =
            self.sessions.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).is_ok();
        if added {
            self.metrics.sessions.increment(1.0);
        }
        added
    }

    pub(crate) fn remove_session(&self) {
        self.sessions.fetch_sub(1, Ordering::AcqRel);
        self.metrics.sessions.decrement(1.0);
    }
}

/// One node's read position, on a cache line of its own (nodes update theirs per batch).
#[derive(Debug, Default)]
#[repr(align(64))]
struct ReadPosition(AtomicU64);

/// How far the slowest node is behind the log's tail, in the bytes the router counts.
///
/// rumqttd skips a reader that falls behind its retained segments ahead, losing entries
/// for it. Instead, whoever appends for clients waits while the slowest reader is more
/// than half the log's window behind: the log never outruns a reader, and a client that
/// publishes faster than the engine delivers is slowed at its socket.
#[derive(Debug)]
pub(crate) struct LogWatch {
    appended: AtomicU64,
    read: Box<[ReadPosition]>,
    limit: u64,
    room: Notify,
    waiting: AtomicUsize,
}

impl LogWatch {
    pub(crate) fn new(readers: usize, window_bytes: usize) -> LogWatch {
        LogWatch {
            appended: AtomicU64::new(0),
            read: (0..readers).map(|_| ReadPosition::default()).collect(),
            limit: (window_bytes / 2) as u64,
            room: Notify::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    pub(crate) fn appended(&self, bytes: usize) {
        self.appended.fetch_add(bytes as u64, Ordering::AcqRel);
    }

    pub(crate) fn read(&self, reader: usize, bytes: usize) {
        self.read[reader].0.fetch_add(bytes as u64, Ordering::AcqRel);
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Bytes appended to the log so far: once every reader has read this far, it has
    /// read everything appended before (the router takes its links' entries in the
    /// order they were handed over, and an entry is counted before it is handed over).
    pub(crate) fn appended_total(&self) -> u64 {
        self.appended.load(Ordering::Acquire)
    }

    fn slowest(&self) -> u64 {
        self.read.iter().map(|r| r.0.load(Ordering::Acquire)).min().unwrap_or(0)
    }

    /// Waits until every reader has read (and routed) `position` bytes of the log.
    pub(crate) async fn read_by_all(&self, position: u64) {
        self.wait_until(|watch| watch.slowest() >= position).await;
    }

    pub(crate) fn lag(&self) -> u64 {
        self.appended.load(Ordering::Acquire).saturating_sub(self.slowest())
    }

    pub(crate) fn has_room(&self) -> bool {
        self.lag() <= self.limit
    }

    /// Waits until the slowest reader is close enough to the tail.
    pub(crate) async fn room(&self) {
        self.wait_until(LogWatch::has_room).await;
    }

    /// Waits until `ready` holds; readers wake the waiters after each batch they read.
    async fn wait_until(&self, ready: impl Fn(&LogWatch) -> bool) {
        if ready(self) {
            return;
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if ready(self) {
                break;
            }
            notified.await;
        }
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appenders_wait_for_the_slowest_reader() {
        let watch = Arc::new(LogWatch::new(2, 100));
        watch.appended(80);
        watch.read(0, 80);
        assert!(!watch.has_room(), "reader 1 is 80 behind, past half the window");
        let waiter = tokio::spawn({
            let watch = watch.clone();
            async move { watch.room().await }
        });
        tokio::task::yield_now().await;
        watch.read(1, 40);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert_eq!(watch.lag(), 40);
    }
}
