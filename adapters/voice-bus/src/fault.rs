//! The `fault-injection` feature's hook: a way for a test to make a stage thread die
//! as a bug would, so the engine's supervision can be seen to notice and rebuild the
//! pipeline. Off by default (the engine's binary never has it); only the end-to-end
//! test crate turns it on, and even then only a call on [`crate::VoiceService`],
//! never anything a client sends, arms it. Without the feature [`Fault`] is empty and
//! its check compiles to nothing.

#[cfg(feature = "fault-injection")]
use std::sync::atomic::{AtomicBool, Ordering};

use alicia_pipeline::{Stage, StageError, StageHints};
use alicia_speech::{Frame, Outputs, Speech};
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

/// A stage that checks its [`Fault`] before each frame and is otherwise `stage`.
pub(crate) struct WithFault<S> {
    label: &'static str,
    stage: S,
    fault: Fault,
}

impl<S: Stage<Speech>> WithFault<S> {
    pub(crate) fn new(label: &'static str, stage: S, fault: Fault) -> Self {
        Self { label, stage, fault }
    }
}

impl<S: Stage<Speech>> Stage<Speech> for WithFault<S> {
    fn name(&self) -> &'static str {
        self.stage.name()
    }

    fn process(&mut self, frame: Frame, out: &mut Outputs) -> Result<(), StageError> {
        self.fault.check(self.label);
        self.stage.process(frame, out)
    }

    fn flush(&mut self, out: &mut Outputs) -> Result<(), StageError> {
        self.stage.flush(out)
    }

    fn idle(&mut self, out: &mut Outputs) -> Result<bool, StageError> {
        self.stage.idle(out)
    }

    fn hints(&self) -> StageHints {
        self.stage.hints()
    }
}
