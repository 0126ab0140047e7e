//! Whisper on one utterance: the model is loaded once, the decoder state is reused,
//! and each pass over the utterance is planned and judged in `decoding.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperError, WhisperState};

use alicia_speech::Transcript;

use crate::decoding::{least_doubtful, Beams, DecodeOptions, Decoded, Doubt, Pass, FULL_AUDIO_CTX};
use crate::give_up::GiveUp;

/// Whisper's input rate.
pub const SAMPLE_RATE: u32 = 16_000;
/// Whisper sees at most 30 s at once; longer utterances are refused.
pub const MAX_SAMPLES: usize = 30 * SAMPLE_RATE as usize;
/// whisper.cpp skips input under 100 ms and Whisper, trained on longer clips, is
/// unreliable under a second: shorter utterances ("stop", "yes") are padded with
/// silence up to this.
const MIN_SAMPLES: usize = SAMPLE_RATE as usize * 21 / 20;
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

    #[error("the transcription gave way to work that must come first; it may be tried again")]
    Yielded,
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
            Self::Yielded => "yielded",
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

/// A transcript made quickly at a pause ([`WhisperStt::guess_s16le_unless`]).
#[derive(Clone, Debug)]
pub struct Guess {
    pub transcript: Transcript,
    /// The full decoding would give the same text; false when the quick passes were
    /// all doubted and the full-window ones were skipped.
    pub settled: bool,
}

/// A Whisper model with its own decoder state: one transcription at a time.
pub struct WhisperStt {
    context: Arc<WhisperContext>,
    state: WhisperState,
    threads: i32,
    language: &'static str,
    options: DecodeOptions,
    // Reused between utterances: the one f32 copy of the audio.
    samples: Vec<f32>,
    /// Decoding passes run to their end, for tests and logs.
    passes: u64,
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
        Ok(Self {
            context,
            state,
            threads: threads.max(1) as i32,
            language,
            options: DecodeOptions::default(),
            samples: Vec::new(),
            passes: 0,
        })
    }

    /// Decodes with `options` from now on (the home's prompt, beam size, thresholds).
    pub fn with_options(mut self, options: DecodeOptions) -> Self {
        self.options = options;
        self
    }

    pub fn options(&self) -> &DecodeOptions {
        &self.options
    }

    /// Decoding passes run to their end so far (a transcription is one or more: see
    /// `decoding.rs`).
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// Runs the model once on a second of near silence, so the first request does not
    /// pay for what a first run costs (the weights paged in, ggml's threads and
    /// buffers set up): measured, the first request after start took 1.07 s.
    pub fn warm_up(&mut self) -> Result<(), SttError> {
        self.samples.clear();
        // Low noise rather than digital zero: the same code path as a quiet room.
        self.samples.extend((0..MIN_SAMPLES).map(|i| if i % 2 == 0 { 1e-4 } else { -1e-4 }));
        let plan = self.options.passes(self.samples.len())[0];
        self.decode(plan, GiveUp { flag: None, deadline: None, yield_to: None }).map(|_| ())
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

    /// A quick transcript of the audio so far, for a pause in speech: only the passes
    /// on windows sized to the utterance, never the full-window ones (a second or
    /// more). `settled` is false when those were needed: the text then loops, and the
    /// end of the utterance must be transcribed in full. Given up like
    /// [`transcribe_s16le_unless`](Self::transcribe_s16le_unless).
    pub fn guess_s16le_unless(&mut self, chunks: &[Bytes], give_up: &AtomicBool) -> Result<Guess, SttError> {
        self.load_chunks(chunks)?;
        self.run_passes(Some(give_up), None, true).map(|(transcript, settled)| Guess { transcript, settled })
    }

    /// [`guess_s16le_unless`](Self::guess_s16le_unless) that also stops, with
    /// [`SttError::Yielded`], while `waiting` is above 0: work that must come first
    /// (another session's end of speech, whose user is waiting for the answer).
    pub fn guess_s16le_yielding(
        &mut self,
        chunks: &[Bytes],
        give_up: &AtomicBool,
        waiting: &AtomicUsize,
    ) -> Result<Guess, SttError> {
        self.load_chunks(chunks)?;
        self.run_passes(Some(give_up), Some(waiting), true).map(|(transcript, settled)| Guess { transcript, settled })
    }

    fn transcribe_chunks(&mut self, chunks: &[Bytes], give_up: Option<&AtomicBool>) -> Result<Transcript, SttError> {
        self.load_chunks(chunks)?;
        self.run(give_up)
    }

    fn load_chunks(&mut self, chunks: &[Bytes]) -> Result<(), SttError> {
        if let Some(odd) = chunks.iter().find(|chunk| !chunk.len().is_multiple_of(2)) {
            return Err(SttError::OddLength { len: odd.len() });
        }
        s16le_to_f32(chunks, &mut self.samples);
        Ok(())
    }

    fn run(&mut self, give_up: Option<&AtomicBool>) -> Result<Transcript, SttError> {
        self.run_passes(give_up, None, false).map(|(transcript, _)| transcript)
    }

    /// The passes of `decoding.rs` until one is not doubted; `quick`: only those on
    /// windows sized to the utterance. The transcript, and whether it is the one the
    /// whole ladder would give.
    fn run_passes(
        &mut self,
        give_up: Option<&AtomicBool>,
        yield_to: Option<&AtomicUsize>,
        quick: bool,
    ) -> Result<(Transcript, bool), SttError> {
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
        // The reference decoder's fallback: each temperature is tried only when the
        // one before it gave a doubtful text (see `decoding.rs`).
        let mut doubted = Vec::new();
        let mut settled = true;
        let started = Instant::now();
        for plan in self.options.passes(self.samples.len()) {
            if quick && plan.audio_ctx >= FULL_AUDIO_CTX {
                settled = false;
                break;
            }
            // Fallbacks run within the budget, stopped mid-way at its end: on a busy
            // machine the full ladder would take many seconds, longer than anyone
            // waits for an answer. The first pass always runs to its end.
            let deadline = (!doubted.is_empty()).then(|| started + self.options.fallback_budget);
            let Some(pass) = self.decode(plan, GiveUp { flag: give_up, deadline, yield_to })? else {
                tracing::debug!(budget = ?self.options.fallback_budget, "whisper: fallback budget spent");
                break;
            };
            if pass.is_silence(&self.options) {
                return Ok((self.transcript(Decoded { text: String::new(), ..pass }), true));
            }
            match pass.doubt(&self.options) {
                None => {
                    tracing::debug!(?plan, avg_logprob = pass.avg_logprob, text = %pass.text, "whisper: decoding kept");
                    return Ok((self.transcript(pass), true));
                }
                Some(doubt) => {
                    tracing::debug!(?plan, ?doubt, text = %pass.text, "whisper: decoding doubted, falling back");
                    doubted.push(pass);
                    // An unlikely text that does not loop gets one more try, on the
                    // wider window: the full-window passes cost a second or more, and
                    // on a short command they rarely find likelier words (measured on
                    // espeak-ng requests: they tripled the median latency).
                    if doubt == Doubt::Unlikely && doubted.len() >= 2 {
                        break;
                    }
                }
            }
        }
        let mut best = least_doubtful(doubted, &self.options).ok_or(SttError::NoAudio)?;
        if best.doubt(&self.options) == Some(Doubt::Repetitive) {
            if let Some(once) = crate::loops::twice_cut(&best.text) {
                tracing::debug!(text = %best.text, "whisper: every pass heard one phrase twice; kept once");
                best.text = once.to_owned();
            }
        }
        Ok((self.transcript(best), settled))
    }

    /// One whisper.cpp pass as `plan` says, stopped when `when` says so: `None` if its
    /// deadline passed first.
    fn decode(&mut self, plan: Pass, when: GiveUp<'_>) -> Result<Option<Decoded>, SttError> {
        let strategy = match plan.beams {
            Beams::Greedy { best_of } => SamplingStrategy::Greedy { best_of: best_of as i32 },
            Beams::Search { beam_size } => SamplingStrategy::BeamSearch { beam_size: beam_size as i32, patience: -1.0 },
        };
        let temperature = plan.temperature;
        let max_tokens = max_tokens_for(self.samples.len());
        let mut params = FullParams::new(strategy);
        params.set_n_threads(self.threads);
        params.set_language(Some(self.language));
        params.set_translate(false);
        params.set_audio_ctx(plan.audio_ctx as i32);
        params.set_max_tokens(max_tokens as i32);
        params.set_single_segment(true);
        params.set_no_context(true);
        // Timestamp tokens let the decoder close the segment where the audio ends;
        // without them a window sized to the utterance makes it repeat the utterance
        // up to the token limit.
        params.set_no_timestamps(false);
        // The fallback is ours (`run`): whisper.cpp's accepts a pass that reached the
        // token limit.
        params.set_temperature(temperature);
        params.set_temperature_inc(0.0);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        if let Some(prompt) = &self.options.initial_prompt {
            params.set_initial_prompt(prompt);
        }
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        crate::loops::stop_loops(&mut params);
        // `when` lives on this frame for the whole `full` call.
        if when.flag.is_some() || when.deadline.is_some() || when.yield_to.is_some() {
            crate::give_up::give_up_when(&mut params, &when);
        }
        crate::logs::clear_giving_up();
        let result = self.state.full(params, &self.samples);
        crate::logs::clear_giving_up();
        match result {
            Ok(_) => {
                self.passes += 1;
                Ok(Some(self.collect(temperature, max_tokens)))
            }
            Err(_) if when.flag.is_some_and(|flag| flag.load(Ordering::Relaxed)) => Err(SttError::GivenUp),
            Err(_) if when.yielding() => Err(SttError::Yielded),
            Err(_) if when.deadline.is_some_and(|d| Instant::now() >= d) => Ok(None),
            Err(e) => Err(SttError::Transcribe(e)),
        }
    }

    fn collect(&self, temperature: f32, max_tokens: usize) -> Decoded {
        let eot = self.context.token_eot();
        let (mut text, mut logprob, mut probability, mut tokens) = (String::new(), 0.0f32, 0.0f32, 0usize);
        let (mut all_tokens, mut ended, mut no_speech_prob) = (0usize, false, 0.0f32);
        for segment in self.state.as_iter() {
            if let Ok(piece) = segment.to_str_lossy() {
                text.push_str(&piece);
            }
            if segment.segment_index() == 0 {
                no_speech_prob = segment.no_speech_probability();
            }
            for index in 0..segment.n_tokens() {
                let Some(token) = segment.get_token(index) else { continue };
                let id = token.token_id();
                all_tokens += 1;
                ended = id == eot;
                if id < eot {
                    logprob += token.token_data().plog;
                    probability += token.token_probability();
                    tokens += 1;
                }
            }
        }
        let text = text.trim();
        let kept = crate::loops::restart_cut(text).inspect(|_| {
            tracing::debug!(%text, "whisper: the utterance started over; its first copy kept");
        });
        Decoded {
            text: kept.unwrap_or(text).to_owned(),
            // The reference decoder divides by the tokens plus the end of text.
            avg_logprob: logprob / (tokens + 1) as f32,
            confidence: if tokens == 0 { 0.0 } else { probability / tokens as f32 },
            no_speech_prob,
            tokens,
            hit_token_limit: !ended && all_tokens >= max_tokens,
            temperature,
        }
    }

    fn transcript(&self, decoded: Decoded) -> Transcript {
        let language = whisper_rs::get_lang_str(self.state.full_lang_id_from_state()).unwrap_or(self.language);
        Transcript { text: decoded.text, confidence: decoded.confidence, language: language.to_owned(), pause: None }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_budget_follows_the_utterance() {
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
