//! The standard envelope of the seeds ("Alicia Bus Architecture Implementation
//! Guide", *Message Format Standards*) as Rust types.
//!
//! Field names are the seeds' exactly. Decoding with full validation lives in
//! `decode.rs`; this file holds the types, the builders and the encoder, which
//! trusts the types (an `Envelope` built in-process is valid by construction).

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use thiserror::Error;
use uuid::Uuid;

use crate::error::{Discard, EnvelopeError};

/// `ttl` when the sender gives none (seeds: "5 minutes default TTL").
pub const DEFAULT_TTL_SECONDS: u32 = 300;
/// `routing.max_hops` when the sender gives none.
pub const DEFAULT_MAX_HOPS: u32 = 10;
/// `payload.metadata` key linking a response to its request's `message_id`.
///
/// The seeds have no envelope-level correlation field; they correlate with an
/// application `request_id` inside `payload.data` and copy the request's
/// metadata into the response. We keep both habits and add this key.
pub const CORRELATION_ID_KEY: &str = "correlation_id";
/// `payload.data` key the seeds use for request/response matching.
pub const REQUEST_ID_KEY: &str = "request_id";

/// One message on an `alicia/...` JSON topic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    /// UUID version 4; encoded in lowercase hyphenated form.
    pub message_id: Uuid,
    /// When the sender created the message; encoded RFC 3339 UTC with `Z`.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub timestamp: DateTime<Utc>,
    /// Name of the sending service or device; never empty.
    pub source: String,
    pub destination: Destination,
    pub message_type: MessageType,
    pub priority: Priority,
    /// Seconds after `timestamp` at which the message is stale.
    pub ttl: u32,
    pub payload: Payload,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    pub routing: Routing,
}

/// `payload`: the application data plus free-form metadata
/// (`session_id`, `user_id`, `device_id`, `correlation_id`, ...).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Payload {
    /// Any JSON value, `null` included.
    pub data: Value,
    pub metadata: Map<String, Value>,
}

/// `security`: carried through untouched; the bus does not check signatures yet.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Security {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// `routing`: how far the message has travelled through forwarding services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routing {
    pub hops: u32,
    pub max_hops: u32,
    /// Services the message passed through, oldest first.
    pub route: Vec<String>,
}

impl Default for Routing {
    fn default() -> Self {
        Routing { hops: 0, max_hops: DEFAULT_MAX_HOPS, route: Vec::new() }
    }
}

/// Who a message is for. A closed set: the wire spellings are
/// `NAME`, `broadcast`, `capability:NAME` and `device_id:ID`.
///
/// `Service` must not hold `broadcast` or a prefixed name, because it would be
/// read back as the other variant; [`Destination::from_str`] never produces one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    Service(String),
    Broadcast,
    Capability(String),
    Device(String),
}

const BROADCAST: &str = "broadcast";
const CAPABILITY_PREFIX: &str = "capability:";
const DEVICE_PREFIX: &str = "device_id:";

/// Why a `destination` string is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseDestinationError {
    #[error("must not be empty")]
    Empty,
    #[error("empty capability name after `capability:`")]
    EmptyCapability,
    #[error("empty device id after `device_id:`")]
    EmptyDevice,
}

impl FromStr for Destination {
    type Err = ParseDestinationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(name) = text.strip_prefix(CAPABILITY_PREFIX) {
            if name.trim().is_empty() {
                return Err(ParseDestinationError::EmptyCapability);
            }
            return Ok(Destination::Capability(name.to_owned()));
        }
        if let Some(id) = text.strip_prefix(DEVICE_PREFIX) {
            if id.trim().is_empty() {
                return Err(ParseDestinationError::EmptyDevice);
            }
            return Ok(Destination::Device(id.to_owned()));
        }
        match text {
            BROADCAST => Ok(Destination::Broadcast),
            _ if text.trim().is_empty() => Err(ParseDestinationError::Empty),
            _ => Ok(Destination::Service(text.to_owned())),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Service(name) => f.write_str(name),
            Destination::Broadcast => f.write_str(BROADCAST),
            Destination::Capability(name) => write!(f, "{CAPABILITY_PREFIX}{name}"),
            Destination::Device(id) => write!(f, "{DEVICE_PREFIX}{id}"),
        }
    }
}

impl Serialize for Destination {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Declares a closed string enum with its wire names, `as_str`, `FromStr` and
/// `ALL` from one list, so they never drift apart.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$variant_meta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$variant_meta])* $variant),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }

        impl FromStr for $name {
            type Err = ();
            fn from_str(text: &str) -> Result<Self, ()> {
                match text { $($wire => Ok($name::$variant),)+ _ => Err(()) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// `message_type`.
    MessageType {
        Request => "request",
        Response => "response",
        Event => "event",
        Command => "command",
        Heartbeat => "heartbeat",
    }
);

wire_enum!(
    /// `priority`, ordered from least to most urgent; `normal` when absent.
    #[derive(Default)]
    Priority {
        Low => "low",
        #[default]
        Normal => "normal",
        High => "high",
        Critical => "critical",
    }
);

/// Now, cut to milliseconds: the precision of the seeds' examples, and it keeps
/// encoded timestamps short.
pub(crate) fn now_millis() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

impl Envelope {
    /// A new message with a fresh v4 id, the current time and the defaults
    /// (priority normal, ttl 300 s, no security, zero hops of 10, empty metadata).
    pub fn new(
        source: impl Into<String>,
        destination: Destination,
        message_type: MessageType,
        data: Value,
    ) -> Envelope {
        let source = source.into();
        debug_assert!(!source.trim().is_empty(), "an envelope source must not be empty");
        Envelope {
            message_id: Uuid::new_v4(),
            timestamp: now_millis(),
            source,
            destination,
            message_type,
            priority: Priority::Normal,
            ttl: DEFAULT_TTL_SECONDS,
            payload: Payload { data, metadata: Map::new() },
            security: None,
            routing: Routing::default(),
        }
    }

    /// The response to `request`, sent back to the requester's service.
    ///
    /// Correlation, following the seeds and adding one key:
    /// - `payload.metadata` is a copy of the request's (the seeds' STT service
    ///   does this so `session_id`, `user_id`, `device_id` travel along), plus
    ///   `correlation_id` = the request's `message_id`;
    /// - if the request's `payload.data` has a `request_id` and `data` is an
    ///   object without one, it is echoed (the seeds' request/response pattern).
    ///
    /// The response keeps the request's priority: an urgent question gets an
    /// urgent answer.
    pub fn response_to(request: &Envelope, source: impl Into<String>, mut data: Value) -> Envelope {
        if let (Some(request_id), Value::Object(fields)) = (request.payload.data.get(REQUEST_ID_KEY), &mut data) {
            fields.entry(REQUEST_ID_KEY).or_insert_with(|| request_id.clone());
        }
        let mut response =
            Envelope::new(source, Destination::Service(request.source.clone()), MessageType::Response, data);
        response.priority = request.priority;
        response.payload.metadata = request.payload.metadata.clone();
        response.payload.metadata.insert(CORRELATION_ID_KEY.to_owned(), Value::String(request.message_id.to_string()));
        response
    }

    /// Sets `priority`.
    pub fn with_priority(mut self, priority: Priority) -> Envelope {
        self.priority = priority;
        self
    }

    /// Sets `ttl` in seconds.
    pub fn with_ttl(mut self, ttl: u32) -> Envelope {
        self.ttl = ttl;
        self
    }

    /// Adds one `payload.metadata` entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: Value) -> Envelope {
        self.payload.metadata.insert(key.into(), value);
        self
    }

    /// The request this message answers, from `payload.metadata.correlation_id`.
    pub fn correlation_id(&self) -> Option<Uuid> {
        let text = self.payload.metadata.get(CORRELATION_ID_KEY)?.as_str()?;
        Uuid::try_parse(text).ok()
    }

    /// Parses and validates one envelope; see the crate docs for the rules.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        crate::decode::decode(bytes)
    }

    /// The JSON bytes of this envelope.
    pub fn encode(&self) -> Bytes {
        // A typical envelope is 300-600 bytes; one allocation covers most.
        let mut buffer = Vec::with_capacity(512);
        serde_json::to_writer(&mut buffer, self)
            .expect("an envelope has only string map keys, so serialising cannot fail");
        Bytes::from(buffer)
    }

    /// Whether the message may still be delivered at `now`.
    ///
    /// Expired means `timestamp + ttl < now` (so `ttl` 0 lives for the second
    /// it was sent in, no more); a timestamp in the future is not an error, as
    /// clocks in a home drift. Expiry is checked before hops.
    pub fn check_freshness(&self, now: DateTime<Utc>) -> Result<(), Discard> {
        let deadline = self
            .timestamp
            .checked_add_signed(TimeDelta::seconds(i64::from(self.ttl)))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        if deadline < now {
            return Err(Discard::Expired { ttl: self.ttl, late_seconds: (now - deadline).num_seconds() });
        }
        if self.routing.hops > self.routing.max_hops {
            return Err(Discard::TooManyHops { hops: self.routing.hops, max_hops: self.routing.max_hops });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
