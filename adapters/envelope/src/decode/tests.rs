use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::envelope::{Destination, Envelope, MessageType, Priority, Routing};
use crate::error::EnvelopeError;

const ID: &str = "6f1c1f2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f";

/// The seeds' voice-processing example, with a real v4 id and every optional part.
fn valid() -> Value {
    json!({
        "message_id": ID,
        "timestamp": "2025-01-08T14:30:00.000Z",
        "source": "voice_input",
        "destination": "capability:speech_to_text",
        "message_type": "request",
        "priority": "high",
        "ttl": 300,
        "payload": {
            "data": {"audio_format": "wav", "sample_rate": 16000},
            "metadata": {"session_id": "session-123"}
        },
        "security": {"signature": "sig", "encryption": "aes-256-gcm", "key_id": "k1"},
        "routing": {"hops": 0, "max_hops": 10, "route": ["service1", "service2"]}
    })
}

/// Sets (or with `None` removes) the value at a dotted path.
fn with(path: &str, value: Option<Value>) -> Vec<u8> {
    let mut document = valid();
    let (parents, last) = match path.rsplit_once('.') {
        Some((parents, last)) => (Some(parents), last),
        None => (None, path),
    };
    let mut target = &mut document;
    for key in parents.into_iter().flat_map(|p| p.split('.')) {
        target = &mut target[key];
    }
    let object = target.as_object_mut().unwrap();
    match value {
        Some(value) => object.insert(last.to_owned(), value),
        None => object.remove(last),
    };
    serde_json::to_vec(&document).unwrap()
}

fn refused(bytes: &[u8]) -> EnvelopeError {
    Envelope::decode(bytes).expect_err("should be refused")
}

#[track_caller]
fn assert_invalid(path: &str, value: Value, field: &str) {
    let error = refused(&with(path, Some(value.clone())));
    assert_eq!(error.error_type(), "invalid_field", "{path} = {value}: {error}");
    assert_eq!(error.field(), Some(field), "{path} = {value}: {error}");
}

#[track_caller]
fn assert_missing(path: &str) {
    let error = refused(&with(path, None));
    assert_eq!(error, EnvelopeError::MissingField { field: leak(path) }, "{error}");
    assert_eq!(error.error_type(), "missing_field");
}

fn leak(path: &str) -> &'static str {
    Box::leak(path.to_owned().into_boxed_str())
}

#[test]
fn accepts_the_full_seed_example() {
    let envelope = Envelope::decode(&serde_json::to_vec(&valid()).unwrap()).unwrap();
    assert_eq!(envelope.message_id, Uuid::parse_str(ID).unwrap());
    assert_eq!(envelope.timestamp, Utc.with_ymd_and_hms(2025, 1, 8, 14, 30, 0).unwrap());
    assert_eq!(envelope.destination, Destination::Capability("speech_to_text".into()));
    assert_eq!(envelope.message_type, MessageType::Request);
    assert_eq!(envelope.priority, Priority::High);
    assert_eq!(envelope.payload.data["sample_rate"], 16000);
    assert_eq!(envelope.payload.metadata["session_id"], "session-123");
    assert_eq!(envelope.security.as_ref().unwrap().key_id.as_deref(), Some("k1"));
    assert_eq!(envelope.routing.route, ["service1", "service2"]);
}

#[test]
fn fills_defaults_for_absent_or_null_optionals() {
    for absent in [None, Some(Value::Null)] {
        let mut document = valid();
        let object = document.as_object_mut().unwrap();
        for key in ["priority", "ttl", "security", "routing"] {
            match &absent {
                None => object.remove(key),
                Some(null) => object.insert(key.to_owned(), null.clone()),
            };
        }
        object["payload"].as_object_mut().unwrap().remove("metadata");
        let envelope = Envelope::decode(&serde_json::to_vec(&document).unwrap()).unwrap();
        assert_eq!(envelope.priority, Priority::Normal);
        assert_eq!(envelope.ttl, 300);
        assert_eq!(envelope.security, None);
        assert_eq!(envelope.routing, Routing::default());
        assert!(envelope.payload.metadata.is_empty());
    }
    let partial = with("routing", Some(json!({"hops": 3})));
    assert_eq!(Envelope::decode(&partial).unwrap().routing, Routing { hops: 3, max_hops: 10, route: vec![] });
}

#[test]
fn payload_data_may_be_any_json() {
    for data in [json!(null), json!("text"), json!(1.5), json!([1, 2]), json!({"deep": {"er": [true]}})] {
        let envelope = Envelope::decode(&with("payload.data", Some(data.clone()))).unwrap();
        assert_eq!(envelope.payload.data, data);
    }
}

#[test]
fn tolerates_unknown_fields_and_takes_the_last_repeated_key() {
    let unknown = with("reply_topic", Some(json!({"nested": [1, 2, {"x": null}]})));
    assert!(Envelope::decode(&unknown).is_ok());
    assert!(Envelope::decode(&with("payload.extra", Some(json!(1)))).is_ok());
    assert!(Envelope::decode(&with("routing.note", Some(json!("x")))).is_ok());

    let text = String::from_utf8(serde_json::to_vec(&valid()).unwrap()).unwrap();
    let repeated = text.replacen('{', r#"{"source":"first","#, 1);
    assert_eq!(Envelope::decode(repeated.as_bytes()).unwrap().source, "voice_input");
}

#[test]
fn reads_escaped_strings_and_keys() {
    let text = String::from_utf8(serde_json::to_vec(&valid()).unwrap()).unwrap();
    let escaped = text
        .replace(r#""source":"voice_input""#, r#""sour\u0063e":"voice\u005finput""#)
        .replace(r#""message_type":"request""#, r#""message_type":"requ\u0065st""#);
    assert_ne!(escaped, text);
    let envelope = Envelope::decode(escaped.as_bytes()).unwrap();
    assert_eq!(envelope.source, "voice_input");
    assert_eq!(envelope.message_type, MessageType::Request);
}

#[test]
fn accepts_timestamp_offsets_and_uppercase_ids() {
    let envelope = Envelope::decode(&with("timestamp", Some(json!("2025-01-08T16:30:00+02:00")))).unwrap();
    assert_eq!(envelope.timestamp, Utc.with_ymd_and_hms(2025, 1, 8, 14, 30, 0).unwrap());
    let envelope = Envelope::decode(&with("message_id", Some(json!(ID.to_uppercase())))).unwrap();
    assert_eq!(envelope.message_id.to_string(), ID);
}

#[test]
fn refuses_what_is_not_a_json_object() {
    for bytes in [&b""[..], b"{", b"not json", b"{\"a\":1} trailing", b"\xff\xfe", b"{\"source\":\"\xff\"}"] {
        let error = refused(bytes);
        assert_eq!(error.error_type(), "not_json", "{:?}: {error}", String::from_utf8_lossy(bytes));
        assert_eq!(error.field(), None);
    }
    for bytes in [&b"[]"[..], b"\"envelope\"", b"42", b"null"] {
        assert_eq!(refused(bytes), EnvelopeError::NotObject);
        assert_eq!(refused(bytes).error_type(), "not_object");
    }
}

#[test]
fn refuses_nesting_past_the_recursion_limit() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let text = String::from_utf8(serde_json::to_vec(&valid()).unwrap()).unwrap();
    let bytes = text.replace(r#""audio_format":"wav""#, &format!(r#""audio_format":{deep}"#));
    assert_eq!(refused(bytes.as_bytes()).error_type(), "not_json");
}

#[test]
fn refuses_each_missing_required_field() {
    for path in ["message_id", "timestamp", "source", "destination", "message_type", "payload", "payload.data"] {
        assert_missing(path);
    }
}

#[test]
fn refuses_bad_message_ids() {
    let v1 = "6f1c1f2e-8a4b-1c3d-9e5f-0a1b2c3d4e5f";
    let v7 = "0190163d-8694-739b-aea5-966c26f8ad91";
    let wrong_variant = "6f1c1f2e-8a4b-4c3d-0e5f-0a1b2c3d4e5f";
    let simple = "6f1c1f2e8a4b4c3d9e5f0a1b2c3d4e5f";
    let braced = "{6f1c1f2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f}";
    let not_hex = "6f1c1f2e-8a4b-4c3d-9e5f-0a1b2c3d4e5g";
    for value in [json!(v1), json!(v7), json!(wrong_variant), json!(simple), json!(braced), json!(not_hex)] {
        assert_invalid("message_id", value, "message_id");
    }
    for value in [json!("voice-stt-001"), json!(""), json!(42), json!(null), json!({"id": ID})] {
        assert_invalid("message_id", value, "message_id");
    }
    let error = refused(&with("message_id", Some(json!(v1))));
    assert!(error.to_string().contains("version 1"), "{error}");
}

#[test]
fn refuses_bad_timestamps() {
    for value in [
        json!("2025-01-08 14:30:00"),
        json!("2025-01-08T14:30:00"),
        json!("2025-13-08T14:30:00Z"),
        json!("yesterday"),
        json!(""),
        json!(1736346600.5),
        json!(null),
        json!(true),
    ] {
        assert_invalid("timestamp", value, "timestamp");
    }
    let error = refused(&with("timestamp", Some(json!(1736346600))));
    assert!(error.reason().contains("unix time"), "{error}");
}

#[test]
fn refuses_bad_sources_and_destinations() {
    for value in [json!(""), json!("   "), json!(7), json!(["a"]), json!(null)] {
        assert_invalid("source", value, "source");
    }
    for value in [json!(""), json!("capability:"), json!("device_id:"), json!("device_id: "), json!(1), json!(null)] {
        assert_invalid("destination", value, "destination");
    }
}

#[test]
fn refuses_values_outside_closed_sets() {
    for value in [json!("service_discovered"), json!("Request"), json!(""), json!(1), json!(null)] {
        assert_invalid("message_type", value, "message_type");
    }
    for value in [json!("urgent"), json!("HIGH"), json!(3), json!(false)] {
        assert_invalid("priority", value, "priority");
    }
    let error = refused(&with("priority", Some(json!("urgent"))));
    assert_eq!(error.reason(), "must be one of low, normal, high, critical, found `urgent`");
}

#[test]
fn refuses_bad_numbers() {
    for value in [json!(-1), json!(1.5), json!(300.0), json!(4_294_967_296_u64), json!("300"), json!(true)] {
        assert_invalid("ttl", value.clone(), "ttl");
        assert_invalid("routing.hops", value.clone(), "routing.hops");
        assert_invalid("routing.max_hops", value, "routing.max_hops");
    }
    assert!(Envelope::decode(&with("ttl", Some(json!(u32::MAX)))).is_ok());
    assert!(Envelope::decode(&with("ttl", Some(json!(0)))).is_ok());
}

#[test]
fn refuses_bad_nested_objects() {
    for value in [json!("text"), json!([]), json!(1), json!(null)] {
        assert_invalid("payload", value, "payload");
    }
    for value in [json!("text"), json!([]), json!(1), json!(true)] {
        assert_invalid("payload.metadata", value.clone(), "payload.metadata");
        assert_invalid("security", value.clone(), "security");
        assert_invalid("routing", value, "routing");
    }
    for key in ["signature", "encryption", "key_id"] {
        let path = format!("security.{key}");
        assert_invalid(&path, json!(1), leak(&path));
        assert_invalid(&path, json!({}), leak(&path));
    }
    assert_invalid("routing.route", json!("service1"), "routing.route");
    assert_invalid("routing.route", json!(["ok", 2]), "routing.route");
    let error = refused(&with("routing.route", Some(json!(["ok", "ok", null]))));
    assert_eq!(error.reason(), "element 2 must be a string, found null");
}

#[test]
fn reports_the_first_failing_field_in_schema_order() {
    let mut document = valid();
    document["routing"]["hops"] = json!(-1);
    document["ttl"] = json!("soon");
    document["destination"] = json!("");
    let error = refused(&serde_json::to_vec(&document).unwrap());
    assert_eq!(error.field(), Some("destination"));
    document["destination"] = json!("broadcast");
    assert_eq!(refused(&serde_json::to_vec(&document).unwrap()).field(), Some("ttl"));
}

#[test]
fn reasons_quote_long_values_briefly() {
    let long = "x".repeat(10_000);
    let error = refused(&with("message_type", Some(json!(long))));
    assert!(error.reason().len() < 200, "{}", error.reason());
    assert!(error.to_string().starts_with("invalid field `message_type`: must be one of"));
}
