//! The `fault-injection` feature's one hook: a way for a test to make the accept loop
//! die as a bug would, so the engine's supervision can be seen to notice and restart
//! it. Off by default (the engine's binary never has it); only the end-to-end test
//! crate turns it on, and even then only a call on [`crate::WyomingServer`], never
//! anything a client sends, reaches it.

#[cfg(feature = "fault-injection")]
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub(crate) struct FaultPoint {
    #[cfg(feature = "fault-injection")]
    armed: Arc<tokio::sync::Notify>,
}

impl FaultPoint {
    /// Resolves once a fault is injected; never without the feature.
    pub(crate) async fn triggered(&self) {
        #[cfg(feature = "fault-injection")]
        self.armed.notified().await;
        #[cfg(not(feature = "fault-injection"))]
        std::future::pending::<()>().await;
    }

    #[cfg(feature = "fault-injection")]
    pub(crate) fn trigger(&self) {
        // A stored permit: the loop sees it even if it is busy right now.
        self.armed.notify_one();
    }
}
