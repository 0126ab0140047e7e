//! The `fault-injection` feature's hook: a way for a test to make a stage thread die
//! as a bug would, so the engine's supervision can be seen to notice and rebuild the
//! pipeline. Off by default (the engine's binary never has it); only the end-to-end
//! test crate turns it on, and even then only a call on [`crate::VoiceService`],
//! never anything a client sends, arms it. Without the feature [`Fault`] is empty and
//! its check compiles to nothing.

#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(feature = "fault-injection")]
use std::sync::Arc;

/// Armed by the test; the stage holding it panics on its next frame.
#[derive(Clone, Debug, Default)]
pub struct Fault {
    #[cfg(feature = "fault-injection")]
    armed: Arc<AtomicBool>,
}

impl Fault {
    /// Panics if armed (once): called by the stage before each frame.
    pub(crate) fn check(&self, stage: &str) {
        #[cfg(feature = "fault-injection")]
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("fault injected into the {stage} stage");
        }
        let _ = stage;
    }

    #[cfg(feature = "fault-injection")]
    pub(crate) fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}
