//! `Envelope::decode`: one serde_json pass, then every field checked in a fixed
//! order, stopping at the first failure with its JSON path.
//!
//! Rules (the seeds' guide is the standard; where it is silent we chose):
//! - required: `message_id`, `timestamp`, `source`, `destination`,
//!   `message_type`, `payload` and `payload.data` (which may be any JSON,
//!   `null` included);
//! - optional with defaults: `priority` (normal), `ttl` (300),
//!   `payload.metadata` ({}), `security` (absent), `routing` (0 hops of 10,
//!   empty route) and each field inside `security` and `routing`. An explicit
//!   `null` counts as absent for these, as Python senders write `None`;
//! - unknown fields are tolerated and dropped at every level: the seeds' own
//!   services add fields freely, and the bus forwards the publisher's original
//!   bytes, so nothing a subscriber sees is lost;
//! - a repeated key: the last one wins, as in Python's `json` and serde_json;
//! - JSON nested deeper than 128 levels is `not_json` (serde_json's recursion
//!   limit, which keeps a hostile message from exhausting the stack);
//! - the check order, and so which error a message with several faults gets:
//!   message_id, timestamp, source, destination, message_type, priority, ttl,
//!   payload (data, metadata), security (signature, encryption, key_id),
//!   routing (hops, max_hops, route).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::{Uuid, Variant};

use crate::envelope::{
    Destination, Envelope, MessageType, Payload, Priority, Routing, Security, DEFAULT_MAX_HOPS, DEFAULT_TTL_SECONDS,
};
use crate::error::EnvelopeError;

mod raw;

use raw::{kind, Raw, RawEnvelope, RawPayload, RawRouting, RawSecurity, RawStr};

pub(crate) fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    // Every value is accepted untyped, so the only errors here are syntax errors.
    let raw = Raw::<RawEnvelope>::deserialize(&mut deserializer).map_err(not_json)?;
    deserializer.end().map_err(not_json)?;
    match raw {
        Raw::Object(envelope) => validate(envelope),
        Raw::Str(_) | Raw::Other(_) => Err(EnvelopeError::NotObject),
    }
}

/// `source` and `message_id` of a message `decode` refused, when they are
/// strings, read the same way `decode` reads them (trailing bytes ignored), so
/// the error event can still reach the sender.
pub(crate) fn salvage_sender(bytes: &[u8]) -> (Option<String>, Option<String>) {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let Ok(Raw::Object(raw)) = Raw::<RawEnvelope>::deserialize(&mut deserializer) else {
        return (None, None);
    };
    let text = |value: Option<RawStr<'_>>| match value {
        Some(Raw::Str(text)) => Some(text.into_owned()),
        _ => None,
    };
    (text(raw.source), text(raw.message_id))
}

fn not_json(error: serde_json::Error) -> EnvelopeError {
    EnvelopeError::NotJson { reason: error.to_string() }
}

fn validate(raw: RawEnvelope<'_>) -> Result<Envelope, EnvelopeError> {
    let message_id = message_id(required(raw.message_id, "message_id")?)?;
    let timestamp = timestamp(required(raw.timestamp, "timestamp")?)?;
    let source = non_blank(string(required(raw.source, "source")?, "source")?, "source")?.into_owned();
    let destination = string(required(raw.destination, "destination")?, "destination")?
        .parse::<Destination>()
        .map_err(|error| EnvelopeError::invalid("destination", error.to_string()))?;
    let message_type = closed_enum::<MessageType>(
        required(raw.message_type, "message_type")?,
        "message_type",
        MessageType::ALL.iter().map(|kind| kind.as_str()),
    )?;
    let priority = match raw.priority.filter(|value| !value.is_null()) {
        None => Priority::default(),
        Some(value) => closed_enum::<Priority>(value, "priority", Priority::ALL.iter().map(|p| p.as_str()))?,
    };
    let ttl = present(raw.ttl).map_or(Ok(DEFAULT_TTL_SECONDS), |value| whole_u32(value, "ttl"))?;
    let payload = payload(required(raw.payload, "payload")?)?;
    let security = match raw.security.filter(|value| !value.is_null()) {
        None => None,
        Some(value) => Some(security(object(value, "security")?)?),
    };
    let routing = match raw.routing.filter(|value| !value.is_null()) {
        None => Routing::default(),
        Some(value) => routing(object(value, "routing")?)?,
    };
    Ok(Envelope { message_id, timestamp, source, destination, message_type, priority, ttl, payload, security, routing })
}

fn message_id(value: RawStr<'_>) -> Result<Uuid, EnvelopeError> {
    const FIELD: &str = "message_id";
    let text = string(value, FIELD)?;
    // One spelling only: peers such as the seeds compare ids as strings.
    if text.len() != 36 {
        return Err(EnvelopeError::invalid(FIELD, format!("must be a hyphenated uuid, found `{}`", shown(&text))));
    }
    let id = Uuid::try_parse(&text)
        .map_err(|error| EnvelopeError::invalid(FIELD, format!("`{}` is not a uuid: {error}", shown(&text))))?;
    if id.get_version_num() != 4 || id.get_variant() != Variant::RFC4122 {
        return Err(EnvelopeError::invalid(
            FIELD,
            format!("must be a random (version 4) uuid, found version {}", id.get_version_num()),
        ));
    }
    Ok(id)
}

fn timestamp(value: RawStr<'_>) -> Result<DateTime<Utc>, EnvelopeError> {
    const FIELD: &str = "timestamp";
    if matches!(value, Raw::Other(Value::Number(_))) {
        // The seeds' Python wrapper sends time.time(); say why it is refused.
        return Err(EnvelopeError::invalid(
            FIELD,
            "must be an rfc 3339 string such as 2025-01-08T14:30:00.000Z, found a number (unix time is not accepted)",
        ));
    }
    let text = string(value, FIELD)?;
    crate::rfc3339::parse(&text).map_err(|error| {
        EnvelopeError::invalid(FIELD, format!("`{}` is not an rfc 3339 timestamp: {error}", shown(&text)))
    })
}

fn payload(value: Raw<'_, RawPayload>) -> Result<Payload, EnvelopeError> {
    let raw = object(value, "payload")?;
    let data = raw.data.ok_or(EnvelopeError::MissingField { field: "payload.data" })?;
    let metadata = match present(raw.metadata) {
        None => Map::new(),
        Some(Value::Object(metadata)) => metadata,
        Some(other) => {
            return Err(EnvelopeError::invalid(
                "payload.metadata",
                format!("must be an object, found {}", kind(&other)),
            ))
        }
    };
    Ok(Payload { data, metadata })
}

fn security(raw: RawSecurity) -> Result<Security, EnvelopeError> {
    let text = |value: Option<Value>, field: &'static str| present(value).map(|v| owned_string(v, field)).transpose();
    Ok(Security {
        signature: text(raw.signature, "security.signature")?,
        encryption: text(raw.encryption, "security.encryption")?,
        key_id: text(raw.key_id, "security.key_id")?,
    })
}

fn routing(raw: RawRouting) -> Result<Routing, EnvelopeError> {
    const ROUTE: &str = "routing.route";
    let hops = present(raw.hops).map_or(Ok(0), |v| whole_u32(v, "routing.hops"))?;
    let max_hops = present(raw.max_hops).map_or(Ok(DEFAULT_MAX_HOPS), |v| whole_u32(v, "routing.max_hops"))?;
    let route = match present(raw.route) {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::String(name) => Ok(name),
                other => Err(EnvelopeError::invalid(
                    ROUTE,
                    format!("element {index} must be a string, found {}", kind(&other)),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(EnvelopeError::invalid(ROUTE, format!("must be an array of strings, found {}", kind(&other))))
        }
    };
    Ok(Routing { hops, max_hops, route })
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, EnvelopeError> {
    value.ok_or(EnvelopeError::MissingField { field })
}

/// An optional field: absent and `null` both mean "use the default".
fn present(value: Option<Value>) -> Option<Value> {
    value.filter(|value| !value.is_null())
}

fn string<'de>(value: RawStr<'de>, field: &'static str) -> Result<Cow<'de, str>, EnvelopeError> {
    match value {
        Raw::Str(text) => Ok(text),
        other => Err(EnvelopeError::invalid(field, format!("must be a string, found {}", other.kind()))),
    }
}

fn owned_string(value: Value, field: &'static str) -> Result<String, EnvelopeError> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(EnvelopeError::invalid(field, format!("must be a string, found {}", kind(&other)))),
    }
}

fn object<T>(value: Raw<'_, T>, field: &'static str) -> Result<T, EnvelopeError> {
    match value {
        Raw::Object(slots) => Ok(slots),
        other => Err(EnvelopeError::invalid(field, format!("must be an object, found {}", other.kind()))),
    }
}

fn non_blank<'de>(text: Cow<'de, str>, field: &'static str) -> Result<Cow<'de, str>, EnvelopeError> {
    if text.trim().is_empty() {
        return Err(EnvelopeError::invalid(field, "must not be empty"));
    }
    Ok(text)
}

fn whole_u32(value: Value, field: &'static str) -> Result<u32, EnvelopeError> {
    let number = value.as_u64().and_then(|n| u32::try_from(n).ok());
    number.ok_or_else(|| {
        let found = match &value {
            Value::Number(n) => format!("`{n}`"),
            other => kind(other).to_owned(),
        };
        EnvelopeError::invalid(field, format!("must be a whole number from 0 to {}, found {found}", u32::MAX))
    })
}

fn closed_enum<T: std::str::FromStr>(
    value: RawStr<'_>,
    field: &'static str,
    names: impl Iterator<Item = &'static str>,
) -> Result<T, EnvelopeError> {
    let text = string(value, field)?;
    text.parse::<T>().map_err(|_| {
        let names: Vec<&str> = names.collect();
        EnvelopeError::invalid(field, format!("must be one of {}, found `{}`", names.join(", "), shown(&text)))
    })
}

/// A sender's value quoted in a reason, cut short: reasons go back on the bus
/// in error events and must not grow with the offending message.
fn shown(text: &str) -> String {
    const LIMIT: usize = 64;
    match text.char_indices().nth(LIMIT) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

#[cfg(test)]
mod round_trip;
#[cfg(test)]
mod tests;
