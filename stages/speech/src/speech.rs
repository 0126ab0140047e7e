//! What voice stages tell each other beyond audio: the [`Transcript`] of an utterance,
//! and the [`Timeline`] of moments a session passed, stamped by the stage that reached
//! each one so the end of the pipeline can say where the time went.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The words of one utterance, how sure the model was, and their language.
#[derive(Clone, Debug, PartialEq)]
pub struct Transcript {
    /// Trimmed; empty when the model heard no words.
    pub text: String,
    /// Mean probability of the text tokens, 0..=1 (0 when there are none).
    pub confidence: f32,
    /// ISO 639-1 code (`"en"`).
    pub language: String,
    /// `Some` when heard at this pause, before the end of speech: a provisional
    /// transcript. Later stages may prepare an answer (work out the reply, synthesise
    /// it into a cache) and judge whether the words sound finished, but must not act
    /// on it, since the user may go on. The final transcript follows at the end.
    pub pause: Option<PauseSignal>,
}

impl Transcript {
    pub fn is_provisional(&self) -> bool {
        self.pause.is_some()
    }
}

/// A pause in a session's speech, shared between the VAD that saw it begin and the
/// stages working ahead on it. They can tell, even in the middle of that work, that
/// the user went on speaking and the work is wasted; and the VAD can hear back whether
/// what was said up to the pause sounds like a finished request, to end the utterance
/// at once or to give the user longer to go on.
#[derive(Clone, Debug, Default)]
pub struct PauseSignal(Arc<PauseState>);

#[derive(Debug, Default)]
struct PauseState {
    over: AtomicBool,
    /// 0 until judged, then `FINISHED` or `UNFINISHED`.
    verdict: AtomicU8,
}

const FINISHED: u8 = 1;
const UNFINISHED: u8 = 2;

impl PauseSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Speech came back: the pause did not end the utterance.
    pub fn resume(&self) {
        self.0.over.store(true, Ordering::Relaxed);
    }

    /// Whether speech came back after this pause.
    pub fn is_over(&self) -> bool {
        self.0.over.load(Ordering::Relaxed)
    }

    /// The flag [`is_over`](Self::is_over) reads, for a callback that polls it from
    /// another language's thread.
    pub fn flag(&self) -> &AtomicBool {
        &self.0.over
    }

    /// Says whether the words up to this pause make a finished request.
    pub fn judge(&self, finished: bool) {
        self.0.verdict.store(if finished { FINISHED } else { UNFINISHED }, Ordering::Relaxed);
    }

    /// `Some(true)` when the words so far make a finished request, `Some(false)` when
    /// they sound cut short, `None` until a stage has judged them.
    pub fn verdict(&self) -> Option<bool> {
        match self.0.verdict.load(Ordering::Relaxed) {
            FINISHED => Some(true),
            UNFINISHED => Some(false),
            _ => None,
        }
    }
}

/// Two signals are equal when they are the same pause.
impl PartialEq for PauseSignal {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// When a session reached each step of its way through the voice stages. Stages stamp
/// the frames they emit; frames derived from them carry the stamps on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Arrival of the last frame that held speech: where the user stopped talking.
    pub speech_end: Option<Instant>,
    /// When the VAD decided the utterance was over (after its hangover of silence), or
    /// the client's stop arrived.
    pub endpoint: Option<Instant>,
    /// When the final transcript was ready.
    pub transcribed: Option<Instant>,
    /// When the intent and the reply text were ready.
    pub understood: Option<Instant>,
    /// When the reply's first audio was ready.
    pub synthesised: Option<Instant>,
    /// The final transcript was the one prepared during the hangover.
    pub speculative: bool,
}

/// The timeline as consecutive durations, each from the previous stamp.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StageTimings {
    /// Last speech → end of utterance decided: the hangover as the engine lived it.
    pub vad: Duration,
    /// End of utterance → final transcript (near zero when speculation hit).
    pub stt: Duration,
    /// Transcript → reply text.
    pub intent: Duration,
    /// Reply text → first reply audio.
    pub tts: Duration,
    /// First reply audio → the moment given to [`Timeline::timings`] (its publication).
    pub publish: Duration,
    pub speculative: bool,
}

impl StageTimings {
    /// Each step with its name (`vad`, `stt`, `intent`, `tts`, `publish`), in order:
    /// the one list reports and metrics label the steps from.
    pub fn steps(&self) -> [(&'static str, Duration); 5] {
        [("vad", self.vad), ("stt", self.stt), ("intent", self.intent), ("tts", self.tts), ("publish", self.publish)]
    }

    /// Last speech → `now`: the sum of the parts.
    pub fn end_to_end(&self) -> Duration {
        self.steps().iter().map(|(_, took)| *took).sum()
    }
}

impl Timeline {
    /// The durations between the stamps, up to `now`; `None` unless every step up to
    /// the first reply audio was stamped.
    pub fn timings(&self, now: Instant) -> Option<StageTimings> {
        let steps = [self.speech_end?, self.endpoint?, self.transcribed?, self.understood?, self.synthesised?, now];
        let gap = |i: usize| steps[i + 1].saturating_duration_since(steps[i]);
        Some(StageTimings {
            vad: gap(0),
            stt: gap(1),
            intent: gap(2),
            tts: gap(3),
            publish: gap(4),
            speculative: self.speculative,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_signal_is_shared_by_its_clones() {
        let pause = PauseSignal::new();
        let seen_by_a_stage = pause.clone();
        assert!(!seen_by_a_stage.is_over());
        pause.resume();
        assert!(seen_by_a_stage.is_over());
        assert_eq!(pause, seen_by_a_stage);
        assert_ne!(pause, PauseSignal::new());

        assert_eq!(pause.verdict(), None);
        seen_by_a_stage.judge(false);
        assert_eq!(pause.verdict(), Some(false));
        seen_by_a_stage.judge(true);
        assert_eq!(pause.verdict(), Some(true));
    }

    #[test]
    fn timings_are_the_gaps_between_stamps_and_add_up() {
        let t0 = Instant::now();
        let at = |ms: u64| Some(t0 + Duration::from_millis(ms));
        let mut timeline = Timeline {
            speech_end: at(0),
            endpoint: at(300),
            transcribed: at(302),
            understood: at(303),
            synthesised: at(310),
            speculative: true,
        };
        let timings = timeline.timings(t0 + Duration::from_millis(311)).unwrap();
        assert_eq!(
            (timings.vad, timings.stt, timings.intent, timings.tts, timings.publish),
            (
                Duration::from_millis(300),
                Duration::from_millis(2),
                Duration::from_millis(1),
                Duration::from_millis(7),
                Duration::from_millis(1)
            )
        );
        assert_eq!(timings.end_to_end(), Duration::from_millis(311));
        assert!(timings.speculative);
        timeline.understood = None;
        assert_eq!(timeline.timings(t0), None, "a missing step means no breakdown");
    }
}
