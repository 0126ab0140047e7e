//! The edge between the bus's JSON world and the engine: the seeds' standard
//! envelope, the canonical `alicia/...` topics, and the health and discovery
//! payloads the engine publishes. JSON exists only in adapters; the engine
//! sees the typed [`Envelope`].
//!
//! # Layout
//!
//! | module | what it holds |
//! |---|---|
//! | `envelope` | [`Envelope`] and its parts ([`Destination`], [`MessageType`], [`Priority`], [`Payload`], [`Security`], [`Routing`]), builders, [`Envelope::encode`], [`Envelope::check_freshness`] |
//! | `decode` | [`Envelope::decode`]: every field checked in schema order, first failure reported by JSON path; the rules are in its module docs |
//! | `decode/raw` | the single serde_json pass behind it: strings borrowed, the envelope's own objects read into slots |
//! | `error` | [`EnvelopeError`] (refuse and tell the sender) and [`Discard`] (drop and count), each with a stable `error_type()` |
//! | `error_event` | [`ErrorEvent`]: the event sent back when an envelope is refused |
//! | `off_runtime` | [`decode_within`], [`parse_off_runtime`]: size limits, and large JSON parsed off the async workers |
//! | [`topics`] | canonical topic constants and builders, [`topics::error_topic_for`], [`topics::is_request_topic`], [`topics::topic_matches`], [`topics::TopicAliases`] |
//! | [`health`] | health report, heartbeat and discovery registration payloads |
//! | [`rfc3339`] | the one timestamp format: RFC 3339, UTC, `Z` |
//!
//! Unit tests sit beside the code; the longer suites live in a `tests.rs` next
//! to their module (`decode/tests.rs`, `decode/round_trip.rs`, `envelope/tests.rs`,
//! `topics/aliases/tests.rs`), with proptests for the codec round trip and
//! for topic matching against a plain reference matcher.
//!
//! # Receiving a message
//!
//! ```
//! use alicia_envelope::{topics, Envelope, ErrorEvent};
//!
//! let aliases = topics::TopicAliases::defaults();
//! let topic = aliases.resolve("alicia/voice/stt/result");
//! let bytes = br#"{"message_id": "not-a-uuid", "source": "stt_service"}"#;
//! if topics::is_request_topic(&topic) {
//!     match Envelope::decode(bytes) {
//!         Ok(envelope) => { /* check_freshness, then route */ }
//!         Err(error) => {
//!             let event = ErrorEvent::for_invalid(&topic, bytes, &error);
//!             assert_eq!(event.error_topic(), "alicia/voice/stt/error");
//!             assert_eq!(event.field, Some("message_id"));
//!             let _publish = (event.error_topic(), event.to_envelope().encode());
//!         }
//!     }
//! }
//! ```

mod decode;
mod envelope;
mod error;
mod error_event;
pub mod health;
mod off_runtime;
pub mod rfc3339;
pub mod topics;

pub use envelope::{
    Destination, Envelope, MessageType, ParseDestinationError, Payload, Priority, Routing, Security,
    CORRELATION_ID_KEY, DEFAULT_MAX_HOPS, DEFAULT_TTL_SECONDS, REQUEST_ID_KEY,
};
pub use error::{Discard, EnvelopeError};
pub use error_event::{ErrorEvent, ENGINE_SOURCE};
pub use off_runtime::{decode_within, parse_off_runtime, INLINE_PARSE_BYTES};
