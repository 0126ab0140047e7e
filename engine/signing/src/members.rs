//! The envelope members the scheme itself reads: `message_id` and `timestamp`.
//!
//! Everything else in the envelope is signed as it is; checking it is the envelope
//! decoder's job, after verification.

use chrono::DateTime;
use serde_json::{Map, Value};

/// Longest accepted `message_id` (a UUID has 36 characters), so the replay cache
/// holds bounded entries and an error may quote the id.
pub const MAX_MESSAGE_ID_LEN: usize = 128;

/// `(field, reason)` for the `Malformed` variants of both error types.
pub(crate) type Problem = (&'static str, &'static str);

pub(crate) fn message_id(envelope: &Map<String, Value>) -> Result<&str, Problem> {
    match envelope.get("message_id") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_MESSAGE_ID_LEN => Ok(id),
        Some(Value::String(_)) => Err(("message_id", "must be 1 to 128 bytes")),
        _ => Err(("message_id", "missing or not a string")),
    }
}

/// Nanoseconds since the Unix epoch of the RFC 3339 `timestamp`.
pub(crate) fn timestamp_nanos(envelope: &Map<String, Value>) -> Result<i128, Problem> {
    let Some(Value::String(text)) = envelope.get("timestamp") else {
        return Err(("timestamp", "missing or not a string"));
    };
    let time = DateTime::parse_from_rfc3339(text).map_err(|_| ("timestamp", "not RFC 3339"))?;
    Ok(i128::from(time.timestamp()) * 1_000_000_000 + i128::from(time.timestamp_subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn reads_rfc3339_with_any_offset() {
        let utc = object(json!({"timestamp": "2025-01-08T14:30:00.123Z"}));
        let offset = object(json!({"timestamp": "2025-01-08T15:30:00.123+01:00"}));
        assert_eq!(timestamp_nanos(&utc), timestamp_nanos(&offset));
        assert_eq!(timestamp_nanos(&utc).unwrap(), 1_736_346_600_123_000_000);
        let before_epoch = object(json!({"timestamp": "1969-12-31T23:59:59Z"}));
        assert_eq!(timestamp_nanos(&before_epoch).unwrap(), -1_000_000_000);
    }

    #[test]
    fn refuses_bad_members() {
        assert_eq!(timestamp_nanos(&object(json!({"timestamp": 5}))).unwrap_err().1, "missing or not a string");
        assert_eq!(timestamp_nanos(&object(json!({"timestamp": "yesterday"}))).unwrap_err().1, "not RFC 3339");
        assert_eq!(message_id(&object(json!({}))).unwrap_err().1, "missing or not a string");
        assert_eq!(message_id(&object(json!({"message_id": ""}))).unwrap_err().1, "must be 1 to 128 bytes");
        assert_eq!(
            message_id(&object(json!({"message_id": "x".repeat(129)}))).unwrap_err().1,
            "must be 1 to 128 bytes"
        );
        assert_eq!(message_id(&object(json!({"message_id": "m-1"}))), Ok("m-1"));
    }
}
