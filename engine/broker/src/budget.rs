//! The engine-wide budget for message bytes held on behalf of clients
//! (`limits.max_queued_bytes_total`).
//!
//! Two kinds of charge draw on it: a large packet's read buffer, reserved before its
//! body is read and held for as long as any part of it lives ([`Reservation`]); and the
//! deliveries queued for clients, charged by each io thread through a [`NodeBudget`]
//! that takes room from the shared counter in chunks, so the hot path touches no
//! shared cache line.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Room an io thread takes from the shared budget at a time.
const CHUNK: usize = 1024 * 1024;

#[derive(Debug)]
pub(crate) struct ByteBudget {
    used: AtomicUsize,
    limit: usize,
    freed: Notify,
}

impl ByteBudget {
    pub(crate) fn new(limit: usize) -> Arc<ByteBudget> {
        Arc::new(ByteBudget { used: AtomicUsize::new(0), limit, freed: Notify::new() })
    }

    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| used.checked_add(n).filter(|&u| u <= self.limit))
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::AcqRel);
            self.freed.notify_waiters();
        }
    }

    /// Reserves `n` bytes now, if there is room.
    pub(crate) fn try_reserve(self: &Arc<Self>, n: usize) -> Option<Reservation> {
        self.try_take(n).then(|| Reservation { budget: self.clone(), bytes: n })
    }

    /// Reserves `n` bytes, waiting while others hold the room. `None` when `n` alone is
    /// more than the whole budget.
    pub(crate) async fn reserve(self: &Arc<Self>, n: usize) -> Option<Reservation> {
        if n > self.limit {
            return None;
        }
        loop {
            let freed = self.freed.notified();
            if let Some(r) = self.try_reserve(n) {
                return Some(r);
            }
            freed.await;
        }
    }
}

/// Bytes held from the budget until dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<ByteBudget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

/// An io thread's share of the budget (single-threaded).
#[derive(Debug)]
pub(crate) struct NodeBudget {
    global: Arc<ByteBudget>,
    held: Cell<usize>,
    used: Cell<usize>,
}

impl NodeBudget {
    pub(crate) fn new(global: Arc<ByteBudget>) -> NodeBudget {
        NodeBudget { global, held: Cell::new(0), used: Cell::new(0) }
    }

    /// Charges `n` bytes; false (and nothing charged) when the engine is out of room.
    pub(crate) fn try_charge(&self, n: usize) -> bool {
        let used = self.used.get() + n;
        let held = self.held.get();
        if used > held {
            let more = (used - held).div_ceil(CHUNK) * CHUNK;
            if !self.global.try_take(more) {
                return false;
            }
            self.held.set(held + more);
        }
        self.used.set(used);
        true
    }

    /// Charges `n` bytes whatever the room (a packet the protocol requires, like an ack).
    pub(crate) fn force_charge(&self, n: usize) {
        if !self.try_charge(n) {
            let more = n.div_ceil(CHUNK) * CHUNK;
            self.global.used.fetch_add(more, Ordering::AcqRel);
            self.held.set(self.held.get() + more);
            self.used.set(self.used.get() + n);
        }
    }

    pub(crate) fn release(&self, n: usize) {
        let used = self.used.get().saturating_sub(n);
        self.used.set(used);
        let held = self.held.get();
        // Keep one chunk of slack; give the rest back so other threads can use it.
        if held > used + 2 * CHUNK {
            let keep = (used + CHUNK).div_ceil(CHUNK) * CHUNK;
            self.global.give_back(held - keep);
            self.held.set(keep);
        }
    }

    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.get()
    }
}

impl Drop for NodeBudget {
    fn drop(&mut self) {
        self.global.give_back(self.held.get());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_returned_on_drop() {
        let budget = ByteBudget::new(100);
        let a = budget.try_reserve(60).unwrap();
        assert!(budget.try_reserve(50).is_none());
        drop(a);
        assert!(budget.try_reserve(100).is_some());
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn node_budgets_draw_chunks_and_give_back_slack() {
        let budget = ByteBudget::new(4 * CHUNK);
        let node = NodeBudget::new(budget.clone());
        assert!(node.try_charge(10));
        assert_eq!(budget.used(), CHUNK);
        assert!(node.try_charge(3 * CHUNK));
        assert_eq!(budget.used(), 4 * CHUNK);
        assert!(!node.try_charge(CHUNK), "the engine is full");
        assert_eq!(node.used(), 3 * CHUNK + 10);
        node.release(3 * CHUNK);
        assert!(budget.used() <= 2 * CHUNK, "slack beyond one chunk is returned");
        drop(node);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn a_waiting_reservation_gets_room_when_it_frees() {
        let budget = ByteBudget::new(100);
        let held = budget.try_reserve(80).unwrap();
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(50).await.map(|r| r.bytes) }
        });
        tokio::task::yield_now().await;
        drop(held);
        assert_eq!(waiter.await.unwrap(), Some(50));
        assert!(budget.reserve(101).await.is_none(), "more than the budget never fits");
    }
}
