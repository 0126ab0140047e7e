use super::*;
use serde_json::json;

#[test]
fn destination_spellings_round_trip() {
    for (text, parsed) in [
        ("stt_service", Destination::Service("stt_service".into())),
        ("broadcast", Destination::Broadcast),
        ("capability:speech_to_text", Destination::Capability("speech_to_text".into())),
        ("device_id:sonos_kitchen_001", Destination::Device("sonos_kitchen_001".into())),
        // the seeds' discovery example names a topic as destination: still a service name
        ("alicia/system/discovery/register", Destination::Service("alicia/system/discovery/register".into())),
    ] {
        assert_eq!(text.parse::<Destination>().unwrap(), parsed);
        assert_eq!(parsed.to_string(), text);
    }
}

#[test]
fn destination_refuses_empty_names() {
    assert_eq!("".parse::<Destination>(), Err(ParseDestinationError::Empty));
    assert_eq!("  ".parse::<Destination>(), Err(ParseDestinationError::Empty));
    assert_eq!("capability:".parse::<Destination>(), Err(ParseDestinationError::EmptyCapability));
    assert_eq!("device_id:".parse::<Destination>(), Err(ParseDestinationError::EmptyDevice));
}

#[test]
fn new_fills_defaults() {
    let envelope = Envelope::new("alicia", Destination::Broadcast, MessageType::Event, json!({"a": 1}));
    assert_eq!(envelope.message_id.get_version_num(), 4);
    assert_eq!(envelope.priority, Priority::Normal);
    assert_eq!(envelope.ttl, DEFAULT_TTL_SECONDS);
    assert_eq!(envelope.routing, Routing { hops: 0, max_hops: 10, route: vec![] });
    assert!(envelope.payload.metadata.is_empty());
    assert_eq!(envelope.timestamp.timestamp_subsec_nanos() % 1_000_000, 0);
}

#[test]
fn encode_uses_seed_field_names_and_z_timestamps() {
    let envelope = Envelope::new("alicia", Destination::Device("lamp_1".into()), MessageType::Command, json!(null));
    let value: Value = serde_json::from_slice(&envelope.encode()).unwrap();
    let object = value.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["destination", "message_id", "message_type", "payload", "priority", "routing", "source", "timestamp", "ttl"]
    );
    assert_eq!(object["destination"], "device_id:lamp_1");
    assert_eq!(object["message_type"], "command");
    assert!(object["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(object["payload"], json!({"data": null, "metadata": {}}));
    assert_eq!(object["routing"], json!({"hops": 0, "max_hops": 10, "route": []}));
}

#[test]
fn response_is_correlated_the_seeds_way_and_ours() {
    let request = Envelope::new(
        "voice_router",
        Destination::Capability("speech_to_text".into()),
        MessageType::Request,
        json!({"request_id": "req_12345", "audio_data": "..."}),
    )
    .with_priority(Priority::High)
    .with_metadata("session_id", json!("session-123"));
    let response = Envelope::response_to(&request, "stt_service", json!({"transcription": "hi"}));
    assert_eq!(response.destination, Destination::Service("voice_router".into()));
    assert_eq!(response.source, "stt_service");
    assert_eq!(response.message_type, MessageType::Response);
    assert_eq!(response.priority, Priority::High);
    assert_eq!(response.correlation_id(), Some(request.message_id));
    assert_eq!(response.payload.metadata["session_id"], "session-123");
    assert_eq!(response.payload.data, json!({"transcription": "hi", "request_id": "req_12345"}));
    assert_ne!(response.message_id, request.message_id);
}

#[test]
fn freshness_discards_expired_and_over_travelled() {
    let envelope = Envelope::new("s", Destination::Broadcast, MessageType::Event, Value::Null).with_ttl(10);
    let sent = envelope.timestamp;
    assert_eq!(envelope.check_freshness(sent + TimeDelta::seconds(10)), Ok(()));
    let late = envelope.check_freshness(sent + TimeDelta::seconds(12)).unwrap_err();
    assert_eq!(late, Discard::Expired { ttl: 10, late_seconds: 2 });
    assert_eq!(late.error_type(), "expired");
    assert_eq!(envelope.check_freshness(sent - TimeDelta::seconds(3600)), Ok(()), "future is fine");

    let mut hopped = envelope.clone();
    hopped.routing.hops = 10;
    assert_eq!(hopped.check_freshness(sent), Ok(()), "hops == max_hops is still allowed");
    hopped.routing.hops = 11;
    let discard = hopped.check_freshness(sent).unwrap_err();
    assert_eq!(discard, Discard::TooManyHops { hops: 11, max_hops: 10 });
    assert_eq!(discard.error_type(), "too_many_hops");
}

#[test]
fn wire_enums_parse_their_own_names() {
    for kind in MessageType::ALL {
        assert_eq!(kind.as_str().parse::<MessageType>(), Ok(*kind));
    }
    assert!(Priority::Critical > Priority::High && Priority::Low < Priority::Normal);
}
