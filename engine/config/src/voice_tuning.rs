//! `[voice.vad]`, `[voice.stt]` and `[voice.tts]`: how the voice pipeline listens,
//! transcribes and speaks, beyond `[voice]`'s silences. Every key has the value the
//! stages were tuned with as its default, so the sections may be left out; a change is
//! put in force by rebuilding the pipeline on the models already loaded. Numbers are
//! `f64`, as TOML writes them (the stages take `f32`): a value read and written back
//! by the config service stays the one in the file.

use serde::{Deserialize, Serialize};

use crate::check::{in_range, ConfigErrors};

/// `[voice.vad]`: how speech is told from silence (the silences that end an utterance
/// are `[voice]`'s `hangover_ms`, `unfinished_hangover_ms` and `pause_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceVadSection {
    /// Audio is speech when its level is at least this many dB above the room's noise
    /// floor: higher for a noisy room that triggers on its own, lower for quiet voices.
    pub threshold_db: f64,
    /// Speech shorter than this (a click, a door) does not start an utterance.
    pub min_speech_ms: u32,
    /// Audio from before the onset sent with the utterance, so its first sound is kept.
    pub pre_roll_ms: u32,
    /// A session with no speech by then ends with `no_speech`.
    pub max_wait_ms: u32,
    /// An utterance is ended at this length even if speech goes on.
    pub max_utterance_ms: u32,
}

impl Default for VoiceVadSection {
    fn default() -> Self {
        Self { threshold_db: 10.0, min_speech_ms: 100, pre_roll_ms: 200, max_wait_ms: 10_000, max_utterance_ms: 15_000 }
    }
}

/// `[voice.stt]`: the voice pipeline's Whisper decoding. The passes climb from greedy
/// decoding to the reference decoder's beam search and temperature fallback while a
/// pass is doubted by the thresholds below, within `fallback_budget_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceSttSection {
    /// Beams of the reference pass (1: greedy only).
    pub beam_size: usize,
    /// Candidates sampled at each fallback temperature; the most likely is kept.
    pub best_of: usize,
    /// Temperature added at each fallback, up to 1.0; 0 turns the fallback off.
    pub temperature_step: f64,
    /// A text that compresses better than this (zlib) is a loop, and doubted.
    pub compression_ratio_threshold: f64,
    /// A text whose mean token log-probability is below this is a guess, and doubted.
    pub logprob_threshold: f64,
    /// A guess on audio whose no-speech probability is above this is silence.
    pub no_speech_threshold: f64,
    /// The doubted passes of one utterance stop this long after it started; the least
    /// doubtful so far is the transcript.
    pub fallback_budget_ms: u32,
    /// The shortest encoder window for live requests (the pipeline): Whisper's window
    /// is sized to the utterance, this long at least.
    pub min_window_ms: u32,
    /// The shortest encoder window for whole recordings (Wyoming, `stt/request`):
    /// longer, for accuracy (measured in perf-report/voice.md). Read at start.
    pub recording_min_window_ms: u32,
}

impl Default for VoiceSttSection {
    fn default() -> Self {
        Self {
            beam_size: 5,
            best_of: 5,
            temperature_step: 0.2,
            compression_ratio_threshold: 2.4,
            logprob_threshold: -1.0,
            no_speech_threshold: 0.6,
            fallback_budget_ms: 3_000,
            min_window_ms: 3_200,
            recording_min_window_ms: 20_480,
        }
    }
}

/// `[voice.tts]`: the cache of synthesised sentences (replies repeat: "OK.", "Done.").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceTtsSection {
    /// Sentences kept; 0 turns the cache off.
    pub cache_sentences: usize,
    /// Bytes of audio the cache may hold.
    pub cache_bytes: usize,
}

impl Default for VoiceTtsSection {
    fn default() -> Self {
        Self { cache_sentences: 256, cache_bytes: 16 << 20 }
    }
}

/// The VAD's analysis window: its waits must hold at least one.
const VAD_WINDOW_MS: u32 = 20;

pub(crate) fn check(vad: &VoiceVadSection, stt: &VoiceSttSection, tts: &VoiceTtsSection, errors: &mut ConfigErrors) {
    if !(vad.threshold_db.is_finite() && vad.threshold_db > 0.0 && vad.threshold_db <= 60.0) {
        errors.push(
            "voice.vad.threshold_db",
            format!("{} must be a number of dB above 0 and up to 60", vad.threshold_db),
        );
    }
    in_range(errors, "voice.vad.min_speech_ms", vad.min_speech_ms as usize, VAD_WINDOW_MS as usize, 5_000);
    in_range(errors, "voice.vad.pre_roll_ms", vad.pre_roll_ms as usize, 0, 2_000);
    in_range(errors, "voice.vad.max_wait_ms", vad.max_wait_ms as usize, 100, 600_000);
    if vad.max_utterance_ms <= vad.pre_roll_ms + vad.min_speech_ms || vad.max_utterance_ms > 120_000 {
        let message = format!("{} must exceed pre_roll_ms + min_speech_ms and be at most 120000", vad.max_utterance_ms);
        errors.push("voice.vad.max_utterance_ms", message);
    }

    in_range(errors, "voice.stt.beam_size", stt.beam_size, 1, 16);
    in_range(errors, "voice.stt.best_of", stt.best_of, 1, 16);
    let fraction = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
    if !fraction(stt.temperature_step) {
        errors.push("voice.stt.temperature_step", format!("{} must be from 0 (off) to 1", stt.temperature_step));
    }
    if !(stt.compression_ratio_threshold.is_finite() && stt.compression_ratio_threshold > 1.0) {
        let message = format!("{} must be a ratio above 1", stt.compression_ratio_threshold);
        errors.push("voice.stt.compression_ratio_threshold", message);
    }
    if !(stt.logprob_threshold.is_finite() && stt.logprob_threshold <= 0.0) {
        let message = format!("{} must be a log-probability (0 or below)", stt.logprob_threshold);
        errors.push("voice.stt.logprob_threshold", message);
    }
    if !fraction(stt.no_speech_threshold) {
        errors.push(
            "voice.stt.no_speech_threshold",
            format!("{} must be a probability, 0 to 1", stt.no_speech_threshold),
        );
    }
    in_range(errors, "voice.stt.fallback_budget_ms", stt.fallback_budget_ms as usize, 100, 60_000);
    in_range(errors, "voice.stt.min_window_ms", stt.min_window_ms as usize, 3_200, 30_000);
    in_range(errors, "voice.stt.recording_min_window_ms", stt.recording_min_window_ms as usize, 3_200, 30_000);

    in_range(errors, "voice.tts.cache_sentences", tts.cache_sentences, 0, 100_000);
    in_range(errors, "voice.tts.cache_bytes", tts.cache_bytes, 0, 1 << 30);
}
