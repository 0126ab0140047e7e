//! The text-to-speech stage of the Alicia bus: a Piper voice (VITS on ONNX Runtime)
//! that turns a reply into 16 kHz mono s16le audio frames, sentence by sentence, so the
//! speaker starts while the rest of the reply is still being synthesised.
//!
//! Text → sentences → IPA phonemes (libespeak-ng, `en-us`, Piper's clause rules) →
//! phoneme ids → ONNX model (22,050 Hz float) → windowed-sinc resampler (16 kHz) →
//! peak-normalised s16le `Bytes` → zero-copy audio frames. Synthesised sentences are
//! kept in an LRU cache by voice and text.
//!
//! # Layout
//!
//! | file | what lives there |
//! |---|---|
//! | `config.rs` | [`PiperConfig`], the builder: voice files, threads, chunk size, cache bounds |
//! | `stage.rs` | [`PiperStage`]: the [`alicia_pipeline::Stage`], reply streaming, [`PiperStage::synthesize`] |
//! | `voice.rs` | [`PiperVoice`]: the `.onnx.json`, phoneme ids, the ONNX session, model runs |
//! | `phonemes.rs` | [`Phonemizer`]: espeak clauses → Piper phoneme sentences, punctuation kept |
//! | `espeak.rs` | the FFI to libespeak-ng behind one process-wide lock (the crate's only `unsafe`) |
//! | `onnx.rs` | the process's one ONNX Runtime library and `ort` environment |
//! | `resample.rs` | 22,050 → 16,000 Hz polyphase windowed-sinc resampler |
//! | `cache.rs` | the sentence LRU, bounded by entries and bytes |
//! | `pcm.rs` | float → s16le with peak normalisation (WAV files: `alicia_speech::write_wav`) |
//! | `error.rs` | [`TtsError`] and its stable `error_type` labels |
//!
//! # Models
//!
//! `make models` puts the voice in `models/piper/en_US-joe-medium.onnx` (+ `.onnx.json`)
//! and ONNX Runtime in `models/onnxruntime/libonnxruntime.so.1.32.0`;
//! [`PiperConfig::from_models_dir`] finds both (`ORT_DYLIB_PATH` overrides the library).
//! A missing file is [`TtsError::ModelMissing`], which says to run `make models`.

mod cache;
mod config;
mod error;
mod espeak;
mod onnx;
mod pcm;
mod phonemes;
mod resample;
mod stage;
mod voice;

pub use config::{PiperConfig, DEFAULT_VOICE_MODEL, ONNXRUNTIME_LIBRARY, ORT_DYLIB_PATH_ENV};
pub use error::TtsError;
pub use phonemes::Phonemizer;
pub use stage::{PiperStage, TtsStats};
pub use voice::{ModelRuns, PiperVoice, VoiceFiles, OUTPUT_FORMAT};
