//! [`VadConfig`]: the knobs of end-of-speech detection; it builds the stage.

use alicia_speech::AudioFormat;
use serde::{Deserialize, Serialize};

use crate::error::VadError;
use crate::stage::VadStage;

/// The one audio layout the stage takes: s16le, mono, 16 kHz.
pub const FORMAT: AudioFormat = AudioFormat::PCM16_MONO_16K;

/// How speech is told from silence, and how long each wait may be. The config is the
/// builder: [`VadConfig::build`]. Every field has a default, so `[vad]` may be empty.
///
/// ```toml
/// [vad]
/// threshold_db = 10.0       # speech is this far above the noise floor
/// hangover_ms = 250         # this much silence after a finished request ends it
/// unfinished_hangover_ms = 700  # ... after words that sound cut short, or not judged
/// pause_ms = 40             # after this much, later stages may start on the answer
/// max_wait_ms = 10000       # no speech by then: "no_speech"
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadConfig {
    /// A window is speech when its level is at least this many dB above the floor.
    pub threshold_db: f32,
    /// The floor assumed before the session has [`floor_window_ms`](Self::floor_window_ms)
    /// of history, so a user who speaks at once is still heard. The estimate may only
    /// go below it during that warm-up.
    pub initial_floor_dbfs: f32,
    /// The floor never goes below this, so digital silence does not make every breath
    /// speech.
    pub min_floor_dbfs: f32,
    /// How far back the floor looks: it is a low percentile of the window levels of the
    /// last this many milliseconds.
    pub floor_window_ms: u32,
    /// Length of one analysis window, independent of how the client cuts its frames.
    pub window_ms: u32,
    /// Speech shorter than this (a click, a door) does not start an utterance.
    pub min_speech_ms: u32,
    /// Silence after speech that ends the utterance, once the words so far have been
    /// judged a finished request (see [`pause_ms`](Self::pause_ms)), or at once when
    /// pauses are off.
    pub hangover_ms: u32,
    /// Silence that ends the utterance when the words so far sound cut short ("turn on
    /// the", "set a timer for"), or have not been judged: the user may be searching
    /// for a word, and answering half a request is worse than waiting.
    pub unfinished_hangover_ms: u32,
    /// Silence after speech that is announced downstream as a pause
    /// ([`Payload::Pause`](alicia_speech::Payload::Pause)), so the transcript and the
    /// reply can be prepared while the rest of the hangover runs out; 0 turns it off.
    /// Each pause the user talks through costs one wasted transcription, so it should
    /// be longer than the gaps between words.
    pub pause_ms: u32,
    /// Audio from before the onset forwarded with the utterance, so the first phoneme
    /// is not clipped. It is all the stage buffers while it waits for speech.
    pub pre_roll_ms: u32,
    /// Audio without speech before the session gives up with `no_speech`.
    pub max_wait_ms: u32,
    /// An utterance (pre-roll included) is ended at this length even if speech goes on.
    pub max_utterance_ms: u32,
    /// Sessions tracked at once; past it the least recently fed one is dropped.
    pub max_sessions: usize,
    /// Frames queued in front of the stage (about 1.3 s of 20 ms frames).
    pub input_capacity: usize,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            threshold_db: 10.0,
            initial_floor_dbfs: -50.0,
            min_floor_dbfs: -70.0,
            floor_window_ms: 3_000,
            window_ms: 20,
            min_speech_ms: 100,
            hangover_ms: 250,
            unfinished_hangover_ms: 700,
            pause_ms: 40,
            pre_roll_ms: 200,
            max_wait_ms: 10_000,
            max_utterance_ms: 15_000,
            max_sessions: 64,
            input_capacity: 64,
        }
    }
}

impl VadConfig {
    /// Every problem in the config at once, each naming its field.
    pub fn validate(&self) -> Result<(), VadError> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, problem: &str| {
            if !ok {
                problems.push(problem.to_string());
            }
        };
        check(
            self.threshold_db.is_finite() && self.threshold_db > 0.0,
            "threshold_db: must be a positive number of dB",
        );
        check(
            self.min_floor_dbfs.is_finite() && (-120.0..0.0).contains(&self.min_floor_dbfs),
            "min_floor_dbfs: must be between -120 and 0",
        );
        check(
            self.initial_floor_dbfs.is_finite() && self.initial_floor_dbfs >= self.min_floor_dbfs,
            "initial_floor_dbfs: must be at least min_floor_dbfs",
        );
        check((5..=100).contains(&self.window_ms), "window_ms: must be 5..=100");
        check(self.floor_window_ms >= self.window_ms, "floor_window_ms: must hold at least one window");
        check(self.floor_window_ms <= 60_000, "floor_window_ms: must be at most 60000");
        check(self.min_speech_ms >= self.window_ms, "min_speech_ms: must be at least one window");
        check(self.hangover_ms >= self.window_ms, "hangover_ms: must be at least one window");
        check(
            self.pause_ms == 0 || (self.pause_ms >= self.window_ms && self.pause_ms < self.hangover_ms),
            "pause_ms: must be 0 (off), or at least one window and less than hangover_ms",
        );
        check(self.unfinished_hangover_ms >= self.hangover_ms, "unfinished_hangover_ms: must be at least hangover_ms");
        check(self.max_wait_ms > 0, "max_wait_ms: must be positive");
        check(
            self.max_utterance_ms > self.pre_roll_ms + self.min_speech_ms,
            "max_utterance_ms: must exceed pre_roll_ms + min_speech_ms",
        );
        check(self.max_sessions > 0, "max_sessions: must be positive");
        check(self.input_capacity > 0, "input_capacity: must be positive");
        if problems.is_empty() {
            Ok(())
        } else {
            Err(VadError::Config { problems })
        }
    }

    pub fn build(&self) -> Result<VadStage, VadError> {
        self.validate()?;
        Ok(VadStage::new(Limits::from_config(self), self.input_capacity))
    }
}

/// The config in the units the detector counts in: samples and bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) threshold_db: f32,
    pub(crate) initial_floor_dbfs: f32,
    pub(crate) min_floor_dbfs: f32,
    /// Windows of history behind the floor estimate.
    pub(crate) floor_windows: usize,
    pub(crate) window: u64,
    pub(crate) min_speech: u64,
    pub(crate) hangover: u64,
    pub(crate) unfinished_hangover: u64,
    pub(crate) pause: u64,
    pub(crate) pre_roll_bytes: usize,
    pub(crate) max_wait: u64,
    pub(crate) max_utterance: u64,
    pub(crate) max_sessions: usize,
}

impl Limits {
    fn from_config(config: &VadConfig) -> Self {
        let samples = |ms: u32| u64::from(ms) * u64::from(FORMAT.sample_rate) / 1_000;
        Self {
            threshold_db: config.threshold_db,
            initial_floor_dbfs: config.initial_floor_dbfs,
            min_floor_dbfs: config.min_floor_dbfs,
            floor_windows: (config.floor_window_ms / config.window_ms) as usize,
            window: samples(config.window_ms),
            min_speech: samples(config.min_speech_ms),
            hangover: samples(config.hangover_ms),
            unfinished_hangover: samples(config.unfinished_hangover_ms),
            pause: samples(config.pause_ms),
            pre_roll_bytes: samples(config.pre_roll_ms) as usize * FORMAT.bytes_per_frame(),
            max_wait: samples(config.max_wait_ms),
            max_utterance: samples(config.max_utterance_ms),
            max_sessions: config.max_sessions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_is_the_defaults() {
        let config: VadConfig = toml::from_str("").unwrap();
        assert_eq!(config, VadConfig::default());
        config.validate().unwrap();
        let limits = Limits::from_config(&config);
        assert_eq!((limits.window, limits.hangover, limits.pre_roll_bytes), (320, 4_000, 6_400));
        assert_eq!((limits.unfinished_hangover, limits.pause), (11_200, 640));
        assert_eq!(limits.floor_windows, 150);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<VadConfig>("hangover = 300").unwrap_err();
        assert!(err.to_string().contains("unknown field `hangover`"), "{err}");
    }

    #[test]
    fn validation_lists_every_problem() {
        let config = VadConfig { threshold_db: 0.0, window_ms: 1, max_sessions: 0, ..VadConfig::default() };
        let VadError::Config { problems } = config.validate().unwrap_err() else { panic!("not a config error") };
        let fields: Vec<_> = problems.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(fields, ["threshold_db", "window_ms", "max_sessions"], "{problems:?}");
        assert_eq!(config.build().unwrap_err().error_type(), "invalid_config");
    }
}
