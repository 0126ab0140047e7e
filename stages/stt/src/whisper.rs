//! Whisper on one utterance: the model is loaded once, the decoder state is reused,
//! and the encoder window is sized to the utterance instead of Whisper's fixed 30 s.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperError, WhisperState};

use alicia_pipeline::Transcript;

/// Whisper's input rate.
pub const SAMPLE_RATE: u32 = 16_000;
/// Whisper sees at most 30 s at once; longer utterances are refused.
pub const MAX_SAMPLES: usize = 30 * SAMPLE_RATE as usize;
/// whisper.cpp skips input under 100 ms and Whisper, trained on longer clips, is
/// unreliable under a second: shorter utterances ("stop", "yes") are padded with
/// silence up to this.
const MIN_SAMPLES: usize = SAMPLE_RATE as usize * 21 / 20;
/// Encoder positions per input sample: 1500 positions cover 30 s.
const SAMPLES_PER_POSITION: usize = MAX_SAMPLES / FULL_AUDIO_CTX;
const FULL_AUDIO_CTX: usize = 1500;
/// Extra encoder positions past the audio (1.28 s): a window that ends on the last
/// word makes the decoder cut it or start the utterance over.
const AUDIO_CTX_MARGIN: usize = 64;
/// The smallest window (3.2 s): one-word answers ("yes", "lights off") lose their
/// last sound in less.
const MIN_AUDIO_CTX: usize = 160;
/// Window sizes are multiples of this, so utterances of similar length share them.
const AUDIO_CTX_STEP: usize = 32;

/// Whisper's tokens per second of audio are ~3-5 for speech; see `max_tokens_for`.
const MAX_TOKENS_PER_SECOND: usize = 8;
const MAX_TOKENS_BASE: usize = 16;

/// Why an utterance could not be transcribed, or the model not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SttError {
    #[error("{path}: missing; run `make models` to fetch and convert the Whisper model")]
    ModelMissing { path: PathBuf },

    #[error("{path}: whisper.cpp could not load it ({source}); delete it and run `make models`")]
    ModelLoad { path: PathBuf, source: WhisperError },

    #[error("whisper.cpp could not create its decoder state: {0}")]
    State(WhisperError),

    #[error("the utterance has no audio")]
    NoAudio,

    #[error("the utterance is {seconds:.1} s long; Whisper takes at most 30 s")]
    TooLong { seconds: f64 },

    #[error("s16le audio needs an even number of bytes, got a chunk of {len}")]
    OddLength { len: usize },

    #[error("whisper.cpp failed on the utterance: {0}")]
    Transcribe(WhisperError),

    #[error("the transcription was given up: its result was no longer wanted")]
    GivenUp,
}

impl SttError {
    /// The stable label for metrics and error events.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::ModelMissing { .. } | Self::ModelLoad { .. } | Self::State(_) => "model_load",
            Self::NoAudio => "empty_utterance",
            Self::TooLong { .. } => "utterance_too_long",
            Self::OddLength { .. } => "bad_audio",
            Self::Transcribe(_) => "transcription_failed",
            Self::GivenUp => "given_up",
        }
    }
}

/// A loaded Whisper model: the weights, read-only, shared by every [`WhisperStt`] made
/// from it (each has its own decoder state). Cheap to clone: a stage that dies is
/// rebuilt on the weights already in memory.
#[derive(Clone)]
pub struct WhisperModel {
    context: Arc<WhisperContext>,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel").field("multilingual", &self.context.is_multilingual()).finish()
    }
}

impl WhisperModel {
    /// Loads the ggml model at `path` (e.g. `models/whisper/ggml-tiny.en.bin`).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SttError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(SttError::ModelMissing { path: path.to_owned() });
        }
        // whisper.cpp logs every load to stderr; route it to tracing instead.
        crate::logs::route_to_tracing();
        let context = WhisperContext::new_with_params(path, WhisperContextParameters::default())
            .map_err(|source| SttError::ModelLoad { path: path.to_owned(), source })?;
        tracing::info!(path = %path.display(), "whisper model loaded");
        Ok(Self { context: Arc::new(context) })
    }
}

/// A Whisper model with its own decoder state: one transcription at a time.
pub struct WhisperStt {
    context: Arc<WhisperContext>,
    state: WhisperState,
    threads: i32,
    language: &'static str,
    // Reused between utterances: the one f32 copy of the audio.
    samples: Vec<f32>,
}

impl std::fmt::Debug for WhisperStt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperStt").field("threads", &self.threads).field("language", &self.language).finish()
    }
}

impl WhisperStt {
    /// Loads the ggml model at `path` (e.g. `models/whisper/ggml-tiny.en.bin`) for
    /// decoding on `threads` threads.
    pub fn load(path: impl AsRef<Path>, threads: usize) -> Result<Self, SttError> {
        Self::new(&WhisperModel::load(path)?, threads)
    }

    /// A decoder state of its own on `model`'s weights, decoding on `threads` threads.
    pub fn new(model: &WhisperModel, threads: usize) -> Result<Self, SttError> {
        let context = Arc::clone(&model.context);
        let state = context.create_state().map_err(SttError::State)?;
        // English-only models know one language; a multilingual one detects it.
        let language = if context.is_multilingual() { "auto" } else { "en" };
        Ok(Self { context, state, threads: threads.max(1) as i32, language, samples: Vec::new() })
    }

    /// Transcribes one utterance of 16 kHz mono samples.
    pub fn transcribe(&mut self, pcm: &[i16]) -> Result<Transcript, SttError> {
        self.samples.clear();
        self.samples.extend(pcm.iter().map(|&s| sample_to_f32(s)));
        self.run(None)
    }

    /// Transcribes one utterance of 16 kHz mono s16le chunks, in order. This is the
    /// one place the audio is copied: straight from the chunks into f32 samples.
    pub fn transcribe_s16le(&mut self, chunks: &[Bytes]) -> Result<Transcript, SttError> {
        self.transcribe_chunks(chunks, None)
    }

    /// [`transcribe_s16le`](Self::transcribe_s16le), given up (with
    /// [`SttError::GivenUp`]) as soon as `give_up` is set, even mid-way: whisper.cpp
    /// polls it between steps of its computation.
    pub fn transcribe_s16le_unless(&mut self, chunks: &[Bytes], give_up: &AtomicBool) -> Result<Transcript, SttError> {
        self.transcribe_chunks(chunks, Some(give_up))
    }

    fn transcribe_chunks(&mut self, chunks: &[Bytes], give_up: Option<&AtomicBool>) -> Result<Transcript, SttError> {
        if let Some(odd) = chunks.iter().find(|chunk| !chunk.len().is_multiple_of(2)) {
            return Err(SttError::OddLength { len: odd.len() });
        }
        s16le_to_f32(chunks, &mut self.samples);
        self.run(give_up)
    }

    fn run(&mut self, give_up: Option<&AtomicBool>) -> Result<Transcript, SttError> {
        let heard = self.samples.len();
        if heard == 0 {
            return Err(SttError::NoAudio);
        }
        if heard > MAX_SAMPLES {
            return Err(SttError::TooLong { seconds: heard as f64 / f64::from(SAMPLE_RATE) });
        }
        if heard < MIN_SAMPLES {
            self.samples.resize(MIN_SAMPLES, 0.0);
        }
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(self.threads);
        params.set_language(Some(self.language));
        params.set_translate(false);
        params.set_audio_ctx(audio_ctx_for(self.samples.len()) as i32);
        params.set_max_tokens(max_tokens_for(self.samples.len()) as i32);
        params.set_single_segment(true);
        params.set_no_context(true);
        // Timestamp tokens let the decoder close the segment where the audio ends;
        // without them a window sized to the utterance makes it repeat the utterance
        // up to the token limit.
        params.set_no_timestamps(false);
        // One greedy pass: no re-decoding at higher temperatures, whose cost is
        // unbounded on noise.
        params.set_temperature_inc(0.0);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        if let Some(flag) = give_up {
            // `flag` is borrowed for this whole function, so it outlives `full`.
            crate::give_up::give_up_when(&mut params, flag);
        }
        crate::logs::clear_giving_up();
        let result = self.state.full(params, &self.samples);
        crate::logs::clear_giving_up();
        match result {
            Ok(_) => Ok(self.collect()),
            Err(_) if give_up.is_some_and(|flag| flag.load(Ordering::Relaxed)) => Err(SttError::GivenUp),
            Err(e) => Err(SttError::Transcribe(e)),
        }
    }

    fn collect(&self) -> Transcript {
        let first_special = self.context.token_eot();
        let (mut text, mut probability, mut tokens) = (String::new(), 0.0f32, 0u32);
        for segment in self.state.as_iter() {
            if let Ok(piece) = segment.to_str_lossy() {
                text.push_str(&piece);
            }
            for index in 0..segment.n_tokens() {
                let Some(token) = segment.get_token(index) else { continue };
                if token.token_id() < first_special {
                    probability += token.token_probability();
                    tokens += 1;
                }
            }
        }
        let language = whisper_rs::get_lang_str(self.state.full_lang_id_from_state()).unwrap_or(self.language);
        Transcript {
            text: text.trim().to_owned(),
            confidence: if tokens == 0 { 0.0 } else { probability / tokens as f32 },
            language: language.to_owned(),
            pause: None,
        }
    }
}

fn sample_to_f32(sample: i16) -> f32 {
    f32::from(sample) / 32_768.0
}

/// Appends the samples of even-length s16le chunks to `out` (cleared first).
fn s16le_to_f32(chunks: &[Bytes], out: &mut Vec<f32>) {
    out.clear();
    out.reserve(chunks.iter().map(|chunk| chunk.len() / 2).sum());
    for chunk in chunks {
        out.extend(chunk.chunks_exact(2).map(|pair| sample_to_f32(i16::from_le_bytes([pair[0], pair[1]]))));
    }
}

/// A bound on the tokens of one utterance: twice a fast speaker's rate plus room for
/// timestamps, so a decoder caught repeating itself stops early.
fn max_tokens_for(samples: usize) -> usize {
    MAX_TOKENS_PER_SECOND * samples.div_ceil(SAMPLE_RATE as usize) + MAX_TOKENS_BASE
}

/// The encoder window for `samples` of audio: the positions the audio covers plus a
/// margin, rounded up, at most Whisper's full 30 s.
fn audio_ctx_for(samples: usize) -> usize {
    let positions = samples.div_ceil(SAMPLES_PER_POSITION) + AUDIO_CTX_MARGIN;
    positions.next_multiple_of(AUDIO_CTX_STEP).clamp(MIN_AUDIO_CTX, FULL_AUDIO_CTX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_the_utterance() {
        assert_eq!(SAMPLES_PER_POSITION, 320);
        // 1.05 s (the padded minimum) → 53 positions + margin → 117: the floor, 160.
        assert_eq!(audio_ctx_for(MIN_SAMPLES), MIN_AUDIO_CTX);
        // 2 s → 100 + 64 → 192; 5 s → 250 + 64 → 320; 30 s → all of Whisper's 1500.
        assert_eq!(audio_ctx_for(32_000), 192);
        assert_eq!(audio_ctx_for(80_000), 320);
        assert_eq!(audio_ctx_for(MAX_SAMPLES), FULL_AUDIO_CTX);
        assert_eq!(max_tokens_for(32_000), 32);
        assert_eq!(max_tokens_for(32_001), 40);
    }

    #[test]
    fn s16le_chunks_become_normalised_samples() {
        let chunks = [Bytes::from_static(&[0x00, 0x80, 0xff, 0x7f]), Bytes::from_static(&[0x00, 0x40])];
        let mut out = vec![9.0];
        s16le_to_f32(&chunks, &mut out);
        assert_eq!(out, [-1.0, 32_767.0 / 32_768.0, 0.5]);
    }

    #[test]
    fn a_missing_model_says_how_to_get_it() {
        let err = WhisperStt::load("/nonexistent/ggml-tiny.en.bin", 2).unwrap_err();
        assert_eq!(err.error_type(), "model_load");
        let message = err.to_string();
        assert!(
            message.contains("/nonexistent/ggml-tiny.en.bin") && message.contains("run `make models`"),
            "{message}"
        );
    }
}
