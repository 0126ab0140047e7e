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
//! # Limits
//!
//! Nothing a client sends can make the server hold more than [`WyomingConfig`]
//! allows: header, data and payload of each event; seconds and bytes of each
//! utterance; characters of each `synthesize`; connections in total and per source
//! address; an idle clock between events and an event clock within one. Audio formats
//! are a closed list: rates 8, 16, 32 and 48 kHz; 1- to 4-byte samples; 1 to 8
//! channels (everything else is `unsupported_audio`). Each refusal is an `error` event
//! with its `code`, counted in `alicia_wyoming_errors_total{reason}`, and the limit it
//! enforces in `alicia_wyoming_refused_total{reason}` (the limit's config key). A
//! client that leaves during `synthesize` stops the backend before its next sentence.
//!
//! # Who may connect
//!
//! A peer outside every block of [`WyomingConfig::allow`] (loopback by default;
//! IPv4-mapped IPv6 peers match IPv4 blocks) is closed at accept, before a byte is
//! read or written and before it takes a connection slot; it is counted in
//! `alicia_security_refusals_total{listener="wyoming",reason="address_not_allowed"}`
//! and logged once per ten seconds with how many more.
//!
//! The `fault-injection` feature (off by default, on only in the end-to-end tests)
//! adds [`WyomingServer::inject_fault`], which makes the accept loop panic so the
//! engine's supervision can be tested; no client input reaches it.
//!
//! # Layout
//!
//! | file | what lives there |
//! |---|---|
//! | `server.rs` | [`WyomingServer`]: bind, accept loop, the allow list, refusals over a connection cap, shutdown |
//! | `admission.rs` | the connection caps, in total and per source address |
//! | `connection.rs` | one client: read with idle and event clocks, decode, answer in order; model calls on the blocking pool |
//! | `codec.rs` | [`Event`], [`EventDecoder`]: the wire format, incremental and self-resynchronising |
//! | `asr.rs` | the `transcribe` / `audio-*` state of a connection |
//! | `tts.rs` | `synthesize` requests and cutting PCM into chunks |
//! | `audio.rs` | audio formats and conversion to 16 kHz s16le mono |
//! | `info.rs` | the `info` event: programs, model, voice, languages |
//! | `backend.rs` | [`SpeechBackend`], the engine's side, and [`AudioOut`], synthesis's way back |
//! | `config.rs` | [`WyomingConfig`], its defaults and validation |
//! | `metrics.rs` | `alicia_wyoming_*` meters |
//! | `error.rs` | [`WyomingError`], [`BackendError`], [`ErrorReason`] (the `error` event codes), [`Limit`] |
//! | `fault.rs` | the `fault-injection` hook |

mod admission;
mod asr;
mod audio;
mod backend;
mod codec;
mod config;
mod connection;
mod error;
mod fault;
mod info;
mod metrics;
mod server;
mod tts;

pub use audio::{MAX_CHANNELS, SUPPORTED_RATES};
pub use backend::{AudioOut, ClientGone, SpeechBackend};
pub use codec::{DecodeError, Event, EventDecoder, PROTOCOL_VERSION};
pub use config::{WyomingConfig, DEFAULT_PORT};
pub use error::{BackendError, ErrorReason, Limit, WyomingError};
pub use info::{ASR_PROGRAM, LANGUAGE, TTS_PROGRAM};
pub use metrics::{
    ABANDONED_TOTAL, CONNECTIONS_ACTIVE, ERRORS_TOTAL, EVENTS_TOTAL, REFUSED_TOTAL, SECURITY_REFUSALS_TOTAL,
    SYNTHESIZE_SECONDS, TRANSCRIBE_SECONDS,
};
pub use server::WyomingServer;
