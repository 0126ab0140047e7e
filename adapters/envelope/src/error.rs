//! Why an envelope is refused ([`EnvelopeError`]) or dropped ([`Discard`]).
//!
//! The two are kept apart on purpose: an invalid envelope is the sender's bug and
//! earns it an error event, while an expired or over-travelled one was valid when
//! sent and is only discarded and counted (DESIGN.md, "The envelope and the topics").

use thiserror::Error;

/// An envelope that cannot be accepted. The sender is told with an error event.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvelopeError {
    /// The bytes are not one JSON document (bad syntax, bad UTF-8, trailing data).
    #[error("message is not json: {reason}")]
    NotJson { reason: String },
    /// Valid JSON, but not an object at the top level.
    #[error("message is json but not an object")]
    NotObject,
    /// A required field is absent.
    #[error("missing field `{field}`")]
    MissingField { field: &'static str },
    /// Bigger than the receiver parses: refused unread.
    #[error("message of {size} bytes exceeds the {limit}-byte limit for envelopes here")]
    TooLarge { size: usize, limit: usize },
    /// A field is present but has the wrong type or value.
    #[error("invalid field `{field}`: {reason}")]
    InvalidField { field: &'static str, reason: String },
}

impl EnvelopeError {
    /// Short stable label for metrics and the error event's `error_type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            EnvelopeError::NotJson { .. } => "not_json",
            EnvelopeError::NotObject => "not_object",
            EnvelopeError::MissingField { .. } => "missing_field",
            EnvelopeError::InvalidField { .. } => "invalid_field",
            EnvelopeError::TooLarge { .. } => "too_large",
        }
    }

    /// JSON path of the failing field (`message_id`, `routing.max_hops`), if the
    /// failure is about one field rather than the whole message.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            EnvelopeError::MissingField { field } | EnvelopeError::InvalidField { field, .. } => Some(field),
            EnvelopeError::NotJson { .. } | EnvelopeError::NotObject | EnvelopeError::TooLarge { .. } => None,
        }
    }

    /// The human reason without the field name, for the error event's `reason`.
    pub fn reason(&self) -> String {
        match self {
            EnvelopeError::NotJson { reason } => format!("not json: {reason}"),
            EnvelopeError::NotObject => "the message must be a json object".to_owned(),
            EnvelopeError::MissingField { .. } => "required field is missing".to_owned(),
            EnvelopeError::InvalidField { reason, .. } => reason.clone(),
            EnvelopeError::TooLarge { size, limit } => {
                format!("the message is {size} bytes; envelopes are read up to {limit} bytes here")
            }
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        EnvelopeError::InvalidField { field, reason: reason.into() }
    }
}

/// A valid envelope that must not be delivered any more: discard and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Discard {
    /// `timestamp + ttl` is in the past.
    #[error("envelope expired {late_seconds} s ago (ttl {ttl} s)")]
    Expired { ttl: u32, late_seconds: i64 },
    /// `routing.hops` went past `routing.max_hops`.
    #[error("envelope took {hops} hops, more than max_hops {max_hops}")]
    TooManyHops { hops: u32, max_hops: u32 },
}

impl Discard {
    /// Short stable label for metrics.
    pub fn error_type(&self) -> &'static str {
        match self {
            Discard::Expired { .. } => "expired",
            Discard::TooManyHops { .. } => "too_many_hops",
        }
    }
}
