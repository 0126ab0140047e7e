//! The one trait every stage implements, and what a stage tells the runtime about
//! itself.
//!
//! The runtime owns the loop around a stage (receive, metrics, error policy,
//! shutdown); a stage only turns one frame into zero or more frames.

use std::error::Error as StdError;
use std::sync::Arc;

use crate::frame::{Domain, Frame, FrameMeta};
use crate::outputs::Outputs;

/// The name of a stage's output when it has only one.
pub const DEFAULT_OUTPUT: &str = "out";

/// Whatever a stage's model or parser failed with.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A step of the pipeline (vad, stt, intent, tts, speaker, message stages), over the
/// frames of domain `D`.
///
/// The topology holds each stage as a `Box<dyn Stage>`, so adding a stage never means
/// editing forwarding code.
pub trait Stage<D: Domain>: Send + 'static {
    /// The stage kind, for logs (`"whisper"`, `"vad"`). Metrics use the id the topology
    /// gave the stage, which is unique.
    fn name(&self) -> &'static str;

    /// Handles one frame, pushing results to `out`.
    ///
    /// For [`Execution::Async`] stages this runs on a tokio worker and must return
    /// within about 500 µs; anything slower (models, disk) belongs in a
    /// [`Execution::Blocking`] stage. A per-frame error drops only this frame; a fatal
    /// error stops the pipeline.
    fn process(&mut self, frame: Frame<D>, out: &mut Outputs<D>) -> Result<(), StageError>;

    /// Called once when every input has closed and the queue is drained, before the
    /// outputs close: emit whatever is buffered (a half-finished utterance). Not called
    /// when the pipeline is aborted.
    fn flush(&mut self, out: &mut Outputs<D>) -> Result<(), StageError> {
        let _ = out;
        Ok(())
    }

    /// Called by a [`Execution::Blocking`] stage's loop whenever its input queue is
    /// empty, before it waits for the next frame: the place for optional work that must
    /// yield to every frame already queued (a guess made ahead, which a queued end of
    /// stream would make moot). Do one piece of it and return `true`; the loop looks at
    /// the input and calls again. Return `false` when there was nothing to do, and the
    /// loop waits for the next frame.
    fn idle(&mut self, out: &mut Outputs<D>) -> Result<bool, StageError> {
        let _ = out;
        Ok(false)
    }

    /// Read once, when the topology is built.
    fn hints(&self) -> StageHints;
}

impl<D: Domain, S: Stage<D> + ?Sized> Stage<D> for Box<S> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn process(&mut self, frame: Frame<D>, out: &mut Outputs<D>) -> Result<(), StageError> {
        (**self).process(frame, out)
    }
    fn flush(&mut self, out: &mut Outputs<D>) -> Result<(), StageError> {
        (**self).flush(out)
    }
    fn idle(&mut self, out: &mut Outputs<D>) -> Result<bool, StageError> {
        (**self).idle(out)
    }
    fn hints(&self) -> StageHints {
        (**self).hints()
    }
}

/// Where the runtime runs a stage's loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Execution {
    /// A dedicated, named OS thread (`stage-<id>`): models that take milliseconds to
    /// seconds per frame and would starve the async workers.
    Blocking,
    /// A tokio task; `process` must stay under the 500 µs budget.
    Async,
}

/// What a stage tells the runtime about itself. The topology may override the input
/// capacity per deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageHints {
    /// Frames queued in front of the stage. Heavy stages want 1 (like quickwit's
    /// `Bounded(1)`) so backpressure reaches the producer instead of piling up audio.
    pub input_capacity: usize,
    pub execution: Execution,
    /// Named outputs; the first is the one [`Outputs::push`] writes to. Empty for a
    /// sink.
    pub outputs: &'static [&'static str],
}

impl StageHints {
    /// A tokio-task stage with one output.
    pub const fn asynchronous(input_capacity: usize) -> Self {
        Self { input_capacity, execution: Execution::Async, outputs: &[DEFAULT_OUTPUT] }
    }

    /// A dedicated-thread stage with one output.
    pub const fn blocking(input_capacity: usize) -> Self {
        Self { input_capacity, execution: Execution::Blocking, outputs: &[DEFAULT_OUTPUT] }
    }

    pub const fn with_outputs(mut self, outputs: &'static [&'static str]) -> Self {
        self.outputs = outputs;
        self
    }

    /// No outputs: the stage ends a path (speaker, MQTT publisher).
    pub const fn sink(self) -> Self {
        self.with_outputs(&[])
    }
}

/// Why a stage could not handle a frame.
///
/// `error_type` is a short, stable, snake_case label used as a metric label and in the
/// error event the engine publishes on the stage's error topic.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// This frame is dropped, counted and reported; the next frame flows.
    #[error("frame dropped ({error_type}): {cause}")]
    Frame { error_type: &'static str, cause: BoxError },
    /// The stage cannot go on; the pipeline stops and `join` returns this error.
    #[error("stage stopped ({error_type}): {cause}")]
    Fatal { error_type: &'static str, cause: BoxError },
}

impl StageError {
    /// A bad frame (undecodable audio, unknown intent): drop it and carry on.
    pub fn frame(error_type: &'static str, cause: impl Into<BoxError>) -> Self {
        debug_assert!(is_label(error_type), "error_type {error_type:?} is not snake_case");
        Self::Frame { error_type, cause: cause.into() }
    }

    /// A broken stage (model failed to load, device gone): stop the pipeline.
    pub fn fatal(error_type: &'static str, cause: impl Into<BoxError>) -> Self {
        debug_assert!(is_label(error_type), "error_type {error_type:?} is not snake_case");
        Self::Fatal { error_type, cause: cause.into() }
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Frame { error_type, .. } | Self::Fatal { error_type, .. } => error_type,
        }
    }

    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Fatal { .. })
    }

    /// What the stage failed with, for error chains.
    pub fn cause(&self) -> &(dyn StdError + Send + Sync + 'static) {
        match self {
            Self::Frame { cause, .. } | Self::Fatal { cause, .. } => cause.as_ref(),
        }
    }
}

/// A stage error on its way to the engine, which publishes it on the stage's error
/// topic (`alicia/voice/stt/error`, ...). `stage` is the topology id.
#[derive(Debug)]
pub struct StageErrorReport<D: Domain> {
    pub stage: Arc<str>,
    /// [`Stage::name`] of the failing stage.
    pub kind: &'static str,
    pub error: StageError,
    /// The frame being handled; `None` for errors raised by `flush`.
    pub frame: Option<FrameMeta<D::Meta>>,
}

/// Receives every stage error, per-frame and fatal, from the stage's own thread or
/// task: keep it short (log, `try_send` to a publisher).
pub type ErrorSink<D> = Arc<dyn Fn(&StageErrorReport<D>) + Send + Sync>;

/// Metric label values are a fixed, bounded vocabulary: lowercase words and `_`.
pub(crate) fn is_label(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Frame, FrameMeta, Outputs, Test, TestPayload};

    #[test]
    fn errors_carry_a_stable_label_and_their_severity() {
        let err = StageError::frame("bad_audio", "odd number of bytes");
        assert_eq!(err.error_type(), "bad_audio");
        assert!(!err.is_fatal());
        assert_eq!(err.to_string(), "frame dropped (bad_audio): odd number of bytes");

        let err = StageError::fatal("model_load", std::io::Error::other("no such file"));
        assert!(err.is_fatal());
        assert_eq!(err.cause().to_string(), "no such file");
        assert_eq!(err.to_string(), "stage stopped (model_load): no such file");
    }

    /// Counts the calls that reach it.
    #[derive(Default)]
    struct Counting {
        processed: usize,
        flushed: usize,
        idled: usize,
    }

    impl Stage<Test> for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn process(&mut self, _frame: Frame, _out: &mut Outputs) -> Result<(), StageError> {
            self.processed += 1;
            Ok(())
        }
        fn flush(&mut self, _out: &mut Outputs) -> Result<(), StageError> {
            self.flushed += 1;
            Ok(())
        }
        fn idle(&mut self, _out: &mut Outputs) -> Result<bool, StageError> {
            self.idled += 1;
            Ok(true)
        }
        fn hints(&self) -> StageHints {
            StageHints::blocking(3)
        }
    }

    #[test]
    fn a_boxed_stage_is_the_stage_it_holds_for_every_call() {
        type Boxed = Box<Counting>;
        let mut boxed: Boxed = Box::default();
        let mut out = Outputs::detached(&[DEFAULT_OUTPUT]);
        let frame = Frame::new(FrameMeta::new("s", "kitchen", 0), TestPayload::EndOfStream);
        <Boxed as Stage<Test>>::process(&mut boxed, frame, &mut out).unwrap();
        <Boxed as Stage<Test>>::flush(&mut boxed, &mut out).unwrap();
        assert!(<Boxed as Stage<Test>>::idle(&mut boxed, &mut out).unwrap(), "idle's answer comes through");
        assert_eq!((boxed.processed, boxed.flushed, boxed.idled), (1, 1, 1));
        let stage: Box<dyn Stage<Test>> = boxed;
        assert_eq!((stage.name(), stage.hints()), ("counting", StageHints::blocking(3)));
    }

    #[test]
    fn hints_constructors() {
        let hints = StageHints::blocking(1);
        assert_eq!(hints.execution, Execution::Blocking);
        assert_eq!(hints.outputs, [DEFAULT_OUTPUT]);
        assert!(StageHints::asynchronous(8).sink().outputs.is_empty());
        assert!(is_label("model_load") && !is_label("Model") && !is_label(""));
    }
}
