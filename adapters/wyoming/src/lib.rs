//! A Wyoming-protocol server, so Home Assistant's Wyoming integration (and any other
//! Wyoming client) can use the engine's speech-to-text and text-to-speech.
//!
//! Wyoming is JSON Lines plus binary payloads over TCP (port 10300 by convention):
//! `describe` → `info`; `transcribe`, `audio-start`, `audio-chunk`s, `audio-stop` →
//! `transcript`; `synthesize` → `audio-start`, `audio-chunk`s, `audio-stop`; `ping` →
//! `pong`. A request that cannot be served gets Wyoming's `error` event (`text`, and
//! a stable `code`) and the connection stays usable. The models sit behind
//! [`SpeechBackend`], which the engine implements; audio reaches it as 16 kHz s16le
//! mono `Bytes` joined once from slices of the read buffers.
//!
//! # Layout
//!
//! | file | what lives there |
//! |---|---|
//! | `server.rs` | [`WyomingServer`]: bind, accept loop, connection limit, shutdown |
//! | `connection.rs` | one client: read, decode, answer in order; model calls on the blocking pool |
//! | `codec.rs` | [`Event`], [`EventDecoder`]: the wire format, incremental and self-resynchronising |
//! | `asr.rs` | the `transcribe` / `audio-*` state of a connection |
//! | `tts.rs` | `synthesize` requests and cutting PCM into chunks |
//! | `audio.rs` | audio formats and conversion to 16 kHz s16le mono |
//! | `info.rs` | the `info` event: programs, model, voice, languages |
//! | `backend.rs` | [`SpeechBackend`], the engine's side |
//! | `config.rs` | [`WyomingConfig`], its defaults and validation |
//! | `metrics.rs` | `alicia_wyoming_*` meters |
//! | `error.rs` | [`WyomingError`], [`BackendError`], [`ErrorReason`] (the `error` event codes) |

mod asr;
mod audio;
mod backend;
mod codec;
mod config;
mod connection;
mod error;
mod info;
mod metrics;
mod server;
mod tts;

pub use backend::SpeechBackend;
pub use codec::{DecodeError, Event, EventDecoder, PROTOCOL_VERSION};
pub use config::{WyomingConfig, DEFAULT_PORT};
pub use error::{BackendError, ErrorReason, WyomingError};
pub use info::{ASR_PROGRAM, LANGUAGE, TTS_PROGRAM};
pub use metrics::{ERRORS_TOTAL, EVENTS_TOTAL, SYNTHESIZE_SECONDS, TRANSCRIBE_SECONDS};
pub use server::WyomingServer;
