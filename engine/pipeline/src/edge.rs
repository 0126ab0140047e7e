//! Bounded edges between stages.
//!
//! An edge is the queue in front of one stage: every producer feeding that stage
//! (upstream stages, a source) holds an [`EdgeSender`] on it, and the stage's loop
//! holds the only receiver. Edges are named after the stage they feed. When the queue
//! is full the edge's [`WhenFull`] policy decides: wait, or drop the incoming frame
//! and count it. Nothing is ever dropped silently.

// Send errors hand the frame back, as flume's and std's channel errors do; boxing it
// would allocate on every full edge.
#![allow(clippy::result_large_err)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::frame::{Domain, Frame};
use crate::telemetry::EdgeMetrics;

/// What a producer does when the edge is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WhenFull {
    /// Wait for room: backpressure reaches the producer. The default, because losing
    /// a command or a sentence is worse than being late.
    #[default]
    Block,
    /// Discard the frame being sent and count it. For live audio, where a frame that
    /// waits is a frame nobody wants any more.
    DropNewest,
}

/// What happened to a frame handed to an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    /// The edge was full and drops the newest frame; it was counted.
    Dropped,
}

/// The stage behind the edge has stopped (aborted or failed); the frame comes back.
#[derive(Debug, thiserror::Error)]
#[error("edge {edge} is closed")]
pub struct SendError<D: Domain> {
    pub edge: Arc<str>,
    pub frame: Frame<D>,
}

impl<D: Domain> SendError<D> {
    pub fn error_type(&self) -> &'static str {
        "edge_closed"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrySendError<D: Domain> {
    /// Only for [`WhenFull::Block`] edges: sending now would block.
    #[error("edge {edge} is full")]
    Full { edge: Arc<str>, frame: Frame<D> },
    #[error("edge {edge} is closed")]
    Closed { edge: Arc<str>, frame: Frame<D> },
}

impl<D: Domain> TrySendError<D> {
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Full { .. } => "edge_full",
            Self::Closed { .. } => "edge_closed",
        }
    }

    pub fn into_frame(self) -> Frame<D> {
        match self {
            Self::Full { frame, .. } | Self::Closed { frame, .. } => frame,
        }
    }
}

/// A point-in-time copy of an edge's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeStats {
    pub capacity: usize,
    pub when_full: WhenFull,
    /// Frames discarded by [`WhenFull::DropNewest`] since the edge was built.
    pub dropped: u64,
    /// Producers waiting for room right now: a stalled reader shows up here.
    pub blocked_senders: usize,
}

/// State every handle on one edge shares.
pub(crate) struct EdgeShared {
    name: Arc<str>,
    capacity: usize,
    when_full: WhenFull,
    dropped: AtomicU64,
    blocked_senders: AtomicUsize,
    metrics: EdgeMetrics,
}

impl EdgeShared {
    pub(crate) fn stats(&self) -> EdgeStats {
        EdgeStats {
            capacity: self.capacity,
            when_full: self.when_full,
            dropped: self.dropped.load(Ordering::Relaxed),
            blocked_senders: self.blocked_senders.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn count_drop(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.metrics.dropped.increment(1);
    }
}

/// Creates an edge. `capacity` must be at least 1 (validated by the topology): a
/// rendezvous edge would make the in-flight count depend on scheduling.
pub(crate) fn edge<D: Domain>(
    name: Arc<str>,
    capacity: usize,
    when_full: WhenFull,
) -> (EdgeSender<D>, EdgeReceiver<D>) {
    debug_assert!(capacity > 0, "edge {name} has capacity 0");
    let (tx, rx) = flume::bounded(capacity);
    let shared = Arc::new(EdgeShared {
        metrics: EdgeMetrics::new(&name),
        name,
        capacity,
        when_full,
        dropped: AtomicU64::new(0),
        blocked_senders: AtomicUsize::new(0),
    });
    (EdgeSender { tx, shared: shared.clone() }, EdgeReceiver { rx, shared, since_sample: 0 })
}

/// The producing end of an edge. Clone it to feed the same stage from several
/// places; the stage sees its input close once every clone is dropped.
///
/// Works from both worlds: [`send`](Self::send) from a blocking thread,
/// [`send_async`](Self::send_async) from a task, [`try_send`](Self::try_send) from
/// anywhere.
pub struct EdgeSender<D: Domain> {
    tx: flume::Sender<Frame<D>>,
    shared: Arc<EdgeShared>,
}

impl<D: Domain> Clone for EdgeSender<D> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), shared: self.shared.clone() }
    }
}

impl<D: Domain> std::fmt::Debug for EdgeSender<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeSender").field("edge", &self.shared.name).field("stats", &self.shared.stats()).finish()
    }
}

/// Marks a producer as waiting for room for as long as it lives, including when an
/// async send is cancelled mid-wait.
struct BlockedSender<'a>(&'a AtomicUsize);

impl<'a> BlockedSender<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for BlockedSender<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The fast path shared by every send flavour: queue if there is room, apply the
/// drop policy, or hand the frame back to wait.
pub(crate) enum FastPath<D: Domain> {
    Done(Delivery),
    MustWait(Frame<D>),
    Closed(Frame<D>),
}

impl<D: Domain> EdgeSender<D> {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    pub fn when_full(&self) -> WhenFull {
        self.shared.when_full
    }

    /// Frames queued right now.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    /// Frames this edge has discarded (any handle on it).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> EdgeStats {
        self.shared.stats()
    }

    pub(crate) fn fast_path(&self, frame: Frame<D>) -> FastPath<D> {
        match self.tx.try_send(frame) {
            Ok(()) => FastPath::Done(Delivery::Queued),
            Err(flume::TrySendError::Full(frame)) => match self.shared.when_full {
                WhenFull::DropNewest => {
                    self.shared.count_drop();
                    FastPath::Done(Delivery::Dropped)
                }
                WhenFull::Block => FastPath::MustWait(frame),
            },
            Err(flume::TrySendError::Disconnected(frame)) => FastPath::Closed(frame),
        }
    }

    pub(crate) fn closed(&self, frame: Frame<D>) -> SendError<D> {
        SendError { edge: self.shared.name.clone(), frame }
    }

    /// Never blocks. A full [`WhenFull::Block`] edge returns
    /// [`TrySendError::Full`]; a full [`WhenFull::DropNewest`] edge drops the frame.
    pub fn try_send(&self, frame: Frame<D>) -> Result<Delivery, TrySendError<D>> {
        match self.fast_path(frame) {
            FastPath::Done(delivery) => Ok(delivery),
            FastPath::MustWait(frame) => Err(TrySendError::Full { edge: self.shared.name.clone(), frame }),
            FastPath::Closed(frame) => Err(TrySendError::Closed { edge: self.shared.name.clone(), frame }),
        }
    }

    /// Blocks the calling thread while a [`WhenFull::Block`] edge is full. Never call
    /// it from a tokio worker; use [`send_async`](Self::send_async) there.
    pub fn send(&self, frame: Frame<D>) -> Result<Delivery, SendError<D>> {
        match self.fast_path(frame) {
            FastPath::Done(delivery) => Ok(delivery),
            FastPath::MustWait(frame) => {
                let _waiting = BlockedSender::enter(&self.shared.blocked_senders);
                self.tx.send(frame).map(|()| Delivery::Queued).map_err(|flume::SendError(frame)| self.closed(frame))
            }
            FastPath::Closed(frame) => Err(self.closed(frame)),
        }
    }

    /// Waits without blocking the worker while a [`WhenFull::Block`] edge is full.
    /// Cancel-safe in the sense that a dropped future drops its frame.
    pub async fn send_async(&self, frame: Frame<D>) -> Result<Delivery, SendError<D>> {
        match self.fast_path(frame) {
            FastPath::Done(delivery) => Ok(delivery),
            FastPath::MustWait(frame) => {
                let _waiting = BlockedSender::enter(&self.shared.blocked_senders);
                self.tx
                    .send_async(frame)
                    .await
                    .map(|()| Delivery::Queued)
                    .map_err(|flume::SendError(frame)| self.closed(frame))
            }
            FastPath::Closed(frame) => Err(self.closed(frame)),
        }
    }
}

/// The consuming end, owned by the stage loop alone: when it drops, producers see
/// the edge closed instead of waiting forever.
pub(crate) struct EdgeReceiver<D: Domain> {
    pub(crate) rx: flume::Receiver<Frame<D>>,
    shared: Arc<EdgeShared>,
    // Sampling the depth takes the channel lock, so it happens every few frames.
    since_sample: u32,
}

impl<D: Domain> EdgeReceiver<D> {
    const SAMPLE_EVERY: u32 = 32;

    pub(crate) fn shared(&self) -> &Arc<EdgeShared> {
        &self.shared
    }

    /// Called by the loop after each receive.
    pub(crate) fn sample_depth(&mut self) {
        self.since_sample += 1;
        if self.since_sample >= Self::SAMPLE_EVERY {
            self.since_sample = 0;
            self.shared.metrics.queue_depth.set(self.rx.len() as f64);
        }
    }

    /// Called when the loop found the queue empty, which is a free sample.
    pub(crate) fn sample_empty(&self) {
        self.shared.metrics.queue_depth.set(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Frame, FrameMeta};

    fn frame(seq: u64) -> Frame {
        Frame::text(FrameMeta::new("s", "site", seq), "x")
    }

    #[test]
    fn drop_newest_discards_the_incoming_frame_and_counts_it() {
        let (tx, rx) = edge("e".into(), 2, WhenFull::DropNewest);
        let deliveries: Vec<_> = (0..5).map(|seq| tx.send(frame(seq)).unwrap()).collect();
        assert_eq!(
            deliveries,
            [Delivery::Queued, Delivery::Queued, Delivery::Dropped, Delivery::Dropped, Delivery::Dropped]
        );
        assert_eq!(tx.dropped(), 3);
        let kept: Vec<u64> = rx.rx.try_iter().map(|f| f.meta.seq).collect();
        assert_eq!(kept, [0, 1]);
    }

    #[test]
    fn block_reports_full_to_try_send_and_counts_waiting_senders() {
        let (tx, rx) = edge("e".into(), 1, WhenFull::Block);
        tx.try_send(frame(0)).unwrap();
        let err = tx.try_send(frame(1)).unwrap_err();
        assert_eq!(err.error_type(), "edge_full");
        assert_eq!(err.into_frame().meta.seq, 1);

        let waiter = std::thread::spawn({
            let tx = tx.clone();
            move || tx.send(frame(1))
        });
        // The waiter is parked only once it registered itself; no timing involved.
        while tx.stats().blocked_senders == 0 {
            std::thread::yield_now();
        }
        assert_eq!(rx.rx.recv().unwrap().meta.seq, 0);
        assert_eq!(waiter.join().unwrap().unwrap(), Delivery::Queued);
        assert_eq!(tx.stats().blocked_senders, 0);
        assert_eq!(rx.rx.recv().unwrap().meta.seq, 1);
        assert_eq!(tx.dropped(), 0);
    }

    #[test]
    fn a_dropped_receiver_closes_the_edge_and_returns_the_frame() {
        let (tx, rx) = edge("stt".into(), 1, WhenFull::Block);
        drop(rx);
        let err = tx.send(frame(9)).unwrap_err();
        assert_eq!(err.to_string(), "edge stt is closed");
        assert_eq!(err.frame.meta.seq, 9);
    }
}
