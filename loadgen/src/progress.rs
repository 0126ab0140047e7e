//! How far the subscribers have got with each publisher, so that a flat-out publisher stays
//! a bounded distance ahead of the slowest one (closed loop).
//!
//! Open-loop flat-out publishing measures a broker's collapse, not its capacity: a broker
//! that reads faster than it delivers (rumqttd acknowledges on append to its in-memory log)
//! builds a queue of seconds, starves delivery inside the measured window and turns latency
//! into queue length. Bounding the lead makes `--rate max` mean "the highest rate the
//! broker sustains with bounded queues". The highest sequence seen, not a count, is the
//! measure, so a lost QoS 0 message cannot stall a publisher.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

pub struct Progress {
    publishers: Vec<PublisherProgress>,
}

struct PublisherProgress {
    /// Per subscriber: highest sequence received from this publisher + 1.
    next: Vec<AtomicU64>,
    notify: Notify,
}

impl Progress {
    pub fn new(publishers: usize, subscribers: usize) -> Self {
        let publishers = (0..publishers)
            .map(|_| PublisherProgress {
                next: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
                notify: Notify::new(),
            })
            .collect();
        Progress { publishers }
    }

    /// Subscriber `subscriber` has seen sequence numbers below `next` from `publisher`.
    pub fn advance(&self, publisher: usize, subscriber: usize, next: u64) {
        if let Some(p) = self.publishers.get(publisher) {
            p.next[subscriber].fetch_max(next, Ordering::AcqRel);
            p.notify.notify_one();
        }
    }

    /// Sequence numbers below this reached every subscriber.
    pub fn slowest(&self, publisher: usize) -> u64 {
        self.publishers[publisher].next.iter().map(|n| n.load(Ordering::Acquire)).min().unwrap_or(0)
    }

    /// Resolves after the next `advance` for `publisher` (or at once if one happened since
    /// the last wait).
    pub async fn advanced(&self, publisher: usize) {
        self.publishers[publisher].notify.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slowest_subscriber_bounds_the_lead() {
        let progress = Progress::new(1, 2);
        progress.advance(0, 0, 50);
        assert_eq!(progress.slowest(0), 0);
        progress.advance(0, 1, 30);
        progress.advance(0, 1, 20); // a late out-of-order arrival never moves it back
        assert_eq!(progress.slowest(0), 30);
        progress.advanced(0).await; // the permit left by advance() wakes at once
    }
}
