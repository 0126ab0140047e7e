//! The error event the engine sends when an envelope is refused.
//!
//! DESIGN.md: an invalid envelope is never silently dropped; the sender gets an
//! event on the matching `.../error` topic (or `alicia/monitoring/alerts`)
//! naming the field.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::envelope::{Destination, Envelope, MessageType, Priority, CORRELATION_ID_KEY};
use crate::error::EnvelopeError;
use crate::topics;

/// `source` of every envelope the engine itself publishes.
pub const ENGINE_SOURCE: &str = "alicia";

/// What went wrong with one refused message, and who to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorEvent {
    /// [`EnvelopeError::error_type`].
    pub error_type: &'static str,
    /// JSON path of the failing field, if the failure is about one field.
    pub field: Option<&'static str>,
    pub reason: String,
    /// The topic the refused message arrived on.
    pub topic: String,
    /// The refused message's `message_id` as sent, if it was a string.
    pub original_message_id: Option<String>,
    /// The offender's `source` if it could be read, else broadcast.
    pub reply_to: Destination,
}

impl ErrorEvent {
    /// Describes why `bytes`, received on `topic`, were refused with `error`.
    ///
    /// `source` and `message_id` are read again from `bytes` here rather than
    /// carried by every `EnvelopeError`: that keeps the decode path's error small,
    /// and a second look at a bad message is cheap next to publishing the event.
    pub fn for_invalid(topic: &str, bytes: &[u8], error: &EnvelopeError) -> ErrorEvent {
        // A message refused for its size is not read at all, not even for its sender.
        let (source, original_message_id) = match error {
            EnvelopeError::TooLarge { .. } => (None, None),
            _ => crate::decode::salvage_sender(bytes),
        };
        let reply_to = match source {
            Some(source) if !source.trim().is_empty() => Destination::Service(source),
            _ => Destination::Broadcast,
        };
        ErrorEvent {
            error_type: error.error_type(),
            field: error.field(),
            reason: error.reason(),
            topic: topic.to_owned(),
            original_message_id,
            reply_to,
        }
    }

    /// Where to publish the event: see [`topics::error_topic_for`].
    pub fn error_topic(&self) -> &'static str {
        topics::error_topic_for(&self.topic)
    }

    /// `payload.data` of the event:
    /// `{error_type, field, reason, topic, original_message_id?}`; `field` is
    /// `null` when the whole message was refused (`not_json`, `not_object`).
    pub fn data(&self) -> Value {
        let mut data = json!({
            "error_type": self.error_type,
            "field": self.field,
            "reason": self.reason,
            "topic": self.topic,
        });
        if let (Some(id), Value::Object(fields)) = (&self.original_message_id, &mut data) {
            fields.insert("original_message_id".to_owned(), Value::String(id.clone()));
        }
        data
    }

    /// The event as an envelope: `event` from `alicia`, priority high. When the
    /// refused id was a valid uuid it is also the `correlation_id`, as in a
    /// response, so senders can match errors the same way they match answers.
    pub fn to_envelope(&self) -> Envelope {
        let mut envelope = Envelope::new(ENGINE_SOURCE, self.reply_to.clone(), MessageType::Event, self.data())
            .with_priority(Priority::High);
        if let Some(id) = self.original_message_id.as_deref().and_then(|id| Uuid::try_parse(id).ok()) {
            envelope.payload.metadata.insert(CORRELATION_ID_KEY.to_owned(), Value::String(id.to_string()));
        }
        envelope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_for(topic: &str, bytes: &[u8]) -> ErrorEvent {
        let error = Envelope::decode(bytes).unwrap_err();
        ErrorEvent::for_invalid(topic, bytes, &error)
    }

    #[test]
    fn replies_to_a_readable_source_with_the_field() {
        let bytes = br#"{"message_id":"voice-stt-001","source":"voice_input","timestamp":"2025-01-08T14:30:00Z"}"#;
        let event = event_for("alicia/voice/stt/request", bytes);
        assert_eq!(event.reply_to, Destination::Service("voice_input".into()));
        assert_eq!(event.error_topic(), "alicia/voice/stt/error");
        let envelope = event.to_envelope();
        assert_eq!(envelope.source, "alicia");
        assert_eq!(envelope.message_type, MessageType::Event);
        assert_eq!(envelope.priority, Priority::High);
        assert_eq!(envelope.destination, Destination::Service("voice_input".into()));
        assert_eq!(
            envelope.payload.data,
            json!({
                "error_type": "invalid_field",
                "field": "message_id",
                "reason": "must be a hyphenated uuid, found `voice-stt-001`",
                "topic": "alicia/voice/stt/request",
                "original_message_id": "voice-stt-001",
            })
        );
        assert!(envelope.correlation_id().is_none(), "the original id was not a uuid");
        assert!(Envelope::decode(&envelope.encode()).is_ok(), "the event itself is valid");
    }

    #[test]
    fn broadcasts_when_the_source_is_unreadable() {
        for bytes in [&b"not json"[..], br#"{"source":""}"#, br#"{"source":42}"#, b"[1]"] {
            let event = event_for("alicia/devices/lamp/command", bytes);
            assert_eq!(event.reply_to, Destination::Broadcast, "{:?}", String::from_utf8_lossy(bytes));
            assert_eq!(event.error_topic(), "alicia/monitoring/alerts");
        }
        let event = event_for("alicia/devices/lamp/command", b"not json");
        assert_eq!(event.data()["field"], Value::Null);
        assert_eq!(event.data()["error_type"], "not_json");
        assert!(event.data().get("original_message_id").is_none());
    }

    #[test]
    fn reads_the_sender_the_way_decode_does() {
        // Last repeated key wins; trailing bytes do not hide who sent it.
        let bytes = br#"{"source":"first","source":"lamp","message_id":5} trailing"#;
        let event = event_for("alicia/devices/lamp/status", bytes);
        assert_eq!(event.error_type, "not_json");
        assert_eq!(event.reply_to, Destination::Service("lamp".into()));
        assert_eq!(event.original_message_id, None, "a number is not an id to echo");
    }

    #[test]
    fn an_oversized_message_is_refused_unread_and_broadcast() {
        let bytes = br#"{"source":"lamp","message_id":"x"}"#;
        let error = EnvelopeError::TooLarge { size: bytes.len(), limit: 10 };
        let event = ErrorEvent::for_invalid("alicia/devices/lamp/status", bytes, &error);
        assert_eq!(event.reply_to, Destination::Broadcast);
        assert_eq!(event.data()["error_type"], "too_large");
        assert_eq!(event.data()["reason"], "the message is 34 bytes; envelopes are read up to 10 bytes here");
    }

    #[test]
    fn correlates_when_the_original_id_was_a_uuid() {
        let id = Uuid::new_v4();
        let bytes = format!(r#"{{"message_id":"{id}","source":"lamp","timestamp":"later"}}"#);
        let event = event_for("alicia/voice/tts/request", bytes.as_bytes());
        assert_eq!(event.field, Some("timestamp"));
        assert_eq!(event.to_envelope().correlation_id(), Some(id));
        assert_eq!(event.error_topic(), "alicia/voice/tts/error");
    }
}
