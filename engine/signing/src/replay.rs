//! The replay cache: which `(key_id, message_id)` pairs were accepted recently.
//!
//! An entry only has to outlive its message's timestamp by the window: after that the
//! timestamp check refuses a replay on its own. So entries expire at `timestamp +
//! window` and are pruned from the front of an insertion-ordered queue.
//!
//! Memory is bounded by `capacity`. When full after pruning, the oldest entry is
//! evicted and counted. That reopens a replay for the evicted message until its
//! timestamp leaves the window, which is why the capacity should cover the window times
//! the highest expected accepted rate (e.g. 300 s × 200 msg/s = 60 000) and why
//! evictions are exposed for an alert. Refusing new messages instead would turn a burst
//! of genuine traffic into an outage of every signed topic.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

/// Thread-safe: several io threads verify at once. The lock is held for a hash lookup
/// and insert, plus amortised pruning.
pub(crate) struct ReplayCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    seen: HashSet<Arc<str>>,
    /// Insertion order, with each entry's expiry in nanoseconds since the Unix epoch.
    order: VecDeque<(Arc<str>, i128)>,
    evictions: u64,
}

impl ReplayCache {
    /// A capacity of 0 is taken as 1, so the last message is always remembered.
    pub(crate) fn new(capacity: usize) -> ReplayCache {
        ReplayCache { capacity: capacity.max(1), inner: Mutex::new(Inner::default()) }
    }

    /// Records `id` unless it is already present; `false` means a replay. Times are
    /// nanoseconds since the Unix epoch.
    pub(crate) fn check_and_record(&self, id: &str, expires_at: i128, now: i128) -> bool {
        let mut inner = self.inner.lock();
        let Inner { seen, order, evictions } = &mut *inner;
        while order.front().is_some_and(|(_, expiry)| *expiry < now) {
            if let Some((old, _)) = order.pop_front() {
                seen.remove(&old);
            }
        }
        if seen.contains(id) {
            return false;
        }
        while order.len() >= self.capacity {
            if let Some((old, _)) = order.pop_front() {
                seen.remove(&old);
                *evictions += 1;
            }
        }
        let id: Arc<str> = Arc::from(id);
        seen.insert(Arc::clone(&id));
        order.push_back((id, expires_at));
        true
    }

    /// Entries evicted because the cache was full, since it was made.
    pub(crate) fn evictions(&self) -> u64 {
        self.inner.lock().evictions
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_repeat_until_it_expires() {
        let cache = ReplayCache::new(10);
        assert!(cache.check_and_record("k m1", 100, 0));
        assert!(!cache.check_and_record("k m1", 100, 50));
        assert!(!cache.check_and_record("k m1", 100, 100), "still refused at the expiry instant");
        assert!(cache.check_and_record("k m1", 300, 101), "pruned once expired");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn evicts_the_oldest_when_full_and_counts_it() {
        let cache = ReplayCache::new(2);
        assert!(cache.check_and_record("a", 1_000, 0));
        assert!(cache.check_and_record("b", 1_000, 0));
        assert!(cache.check_and_record("c", 1_000, 0));
        assert_eq!(cache.evictions(), 1);
        assert_eq!(cache.len(), 2);
        assert!(!cache.check_and_record("b", 1_000, 0));
        assert!(!cache.check_and_record("c", 1_000, 0));
        assert!(cache.check_and_record("a", 1_000, 0), "the evicted entry is forgotten");
        assert_eq!(cache.evictions(), 2);
    }

    #[test]
    fn pruning_expired_entries_is_not_an_eviction() {
        let cache = ReplayCache::new(2);
        assert!(cache.check_and_record("a", 10, 0));
        assert!(cache.check_and_record("b", 10, 0));
        assert!(cache.check_and_record("c", 100, 11));
        assert_eq!((cache.len(), cache.evictions()), (1, 0));
    }

    #[test]
    fn zero_capacity_still_remembers_the_last_message() {
        let cache = ReplayCache::new(0);
        assert!(cache.check_and_record("a", 10, 0));
        assert!(!cache.check_and_record("a", 10, 0));
    }

    #[test]
    fn concurrent_verifiers_accept_each_id_once() {
        let cache = Arc::new(ReplayCache::new(10_000));
        let accepted: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let cache = Arc::clone(&cache);
                    scope.spawn(move || (0..1_000).filter(|n| cache.check_and_record(&n.to_string(), 10, 0)).count())
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).sum()
        });
        assert_eq!(accepted, 1_000);
    }
}
