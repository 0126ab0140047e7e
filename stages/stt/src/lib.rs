//! Speech-to-text for the voice pipeline: Whisper (whisper.cpp through whisper-rs)
//! on the audio of one utterance.
//!
//! # Layout
//!
//! | file | what lives there |
//! |---|---|
//! | `whisper.rs` | [`WhisperModel`] (the weights, shared), [`WhisperStt`] (a decoder state on them), [`WhisperStt::transcribe`], the window sized to the utterance, [`SttError`] |
//! | `give_up.rs` | the abort callback that lets a transcription stop mid-way (`unsafe`: a C callback) |
//! | `loops.rs` | a logits filter that ends a decoding as it starts to loop, and the cut of an utterance started over (`unsafe`: a C callback) |
//! | `logs.rs` | whisper.cpp's and ggml's logs into tracing at sensible levels; a deliberate give-up is not an error (`unsafe`: a C callback) |
//! | `stage.rs` | [`WhisperStage`]: per-session utterance buffers of `Bytes`, transcribed at a pause (provisionally) and at end of stream |
//! | `ends_ahead.rs` | [`EndsAhead`]: ends of speech on their way to the stage, which a running guess gives way to |
//!
//! The [`Transcript`] it makes is the pipeline's own payload type, re-exported here.
//!
//! # Use
//!
//! ```no_run
//! use alicia_stage_stt::WhisperStt;
//!
//! let mut stt = WhisperStt::load("models/whisper/ggml-tiny.en-q8_0.bin", 2)?;
//! let pcm: Vec<i16> = vec![0; 16_000]; // 16 kHz mono
//! let transcript = stt.transcribe(&pcm)?;
//! println!("{} ({:.2})", transcript.text, transcript.confidence);
//! # Ok::<(), alicia_stage_stt::SttError>(())
//! ```

mod decoding;
mod ends_ahead;
mod give_up;
mod logs;
mod loops;
mod stage;
mod whisper;

#[cfg(test)]
mod recorded_tests;
#[cfg(test)]
mod testing;

pub use alicia_speech::Transcript;
pub use decoding::{
    compression_ratio, repeats_back_to_back, DecodeOptions, Decoded, Doubt, LIVE_MIN_WINDOW, RECORDING_MIN_WINDOW,
};
pub use ends_ahead::EndsAhead;
pub use stage::{SttStats, WhisperStage};
pub use whisper::{Guess, SttError, WhisperModel, WhisperStt, MAX_SAMPLES, SAMPLE_RATE};
