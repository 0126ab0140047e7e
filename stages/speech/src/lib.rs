//! The voice's vocabulary, shared by every voice stage and adapter: audio, what the
//! stages tell each other (transcripts, pauses, the timeline of a session), the frames
//! they pass through the generic runtime (`alicia-pipeline`, which knows none of it),
//! where a reply is cut into sentences, and WAV files.
//!
//! # Layout
//!
//! | file | what lives there |
//! |---|---|
//! | `audio.rs` | [`AudioFormat`], [`AudioChunk`]: PCM shared as `Bytes`, sliced, never copied |
//! | `payload.rs` | [`Speech`] (the runtime's domain), [`Payload`], [`VoiceMeta`] (timeline, `reply_continues`), [`SpeechFrame`] and the [`Frame`], [`Outputs`], [`TopologyConfig`] aliases |
//! | `speech.rs` | [`Transcript`], [`PauseSignal`] and the [`Timeline`] each session's frames carry |
//! | `sentences.rs` | [`split_sentences`] and [`finished_len`]: where a reply is cut for speaking, the one split used by the intent stage (a streamed chat answer), the TTS and the Wyoming server |
//! | `wav.rs` | [`pcm16k_from_wav`] (zero copy) and the one WAV writer, [`write_wav`] |

mod audio;
mod payload;
mod sentences;
mod speech;
pub mod wav;

pub use audio::{AudioChunk, AudioFormat};
pub use payload::{
    EdgeSender, Frame, FrameMeta, Outputs, Payload, RunningTopology, Speech, SpeechFrame, TopologyConfig, VoiceMeta,
};
pub use sentences::{finished_len, split_sentences, MAX_PIECE_CHARS};
pub use speech::{PauseSignal, StageTimings, Timeline, Transcript};
pub use wav::{pcm16k_from_wav, wav_from_pcm16k, write_wav, WavError};
