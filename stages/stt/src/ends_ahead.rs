//! [`EndsAhead`]: how many ends of speech are on their way to the Whisper stage, so a
//! guess at another session's pause gives way to them.
//!
//! Why: Whisper is one model on one thread. A session whose user has stopped talking
//! usually needs no Whisper at all (its transcript was made at the pause), yet its end
//! of stream waited behind whatever guess was running for another session, 100 to
//! 300 ms on a busy machine. The stage in front counts each end as it hands it on; a
//! running guess stops when the count is above 0 and is tried again after.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Shared by the stage that hands ends of stream to Whisper ([`sent`](Self::sent))
/// and the Whisper stage ([`arrived`](Self::arrived)). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct EndsAhead(Arc<AtomicUsize>);

impl EndsAhead {
    pub fn new() -> Self {
        Self::default()
    }

    /// An end of stream is on its way to the Whisper stage.
    pub fn sent(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The Whisper stage has taken one (never below 0).
    pub fn arrived(&self) {
        let _ = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// How many are on their way.
    pub fn waiting(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn counter(&self) -> &AtomicUsize {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_counted_on_their_way_and_never_below_zero() {
        let ends = EndsAhead::new();
        let seen_by_whisper = ends.clone();
        ends.sent();
        ends.sent();
        seen_by_whisper.arrived();
        assert_eq!(ends.waiting(), 1);
        seen_by_whisper.arrived();
        seen_by_whisper.arrived();
        assert_eq!(ends.waiting(), 0);
    }
}
