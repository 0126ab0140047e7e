//! `alicia/voice/timer/command` is open to every client: what a careless or hostile one
//! sends gets one exact refusal on `alicia/voice/timer/error`, correlated to its
//! request, and the timers and the bus carry on.

use alicia_e2e::ai_requests::Watcher;
use alicia_e2e::assert_bus_works;
use alicia_e2e::clients::V4Client;
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_envelope::{Destination, Envelope, MessageType};
use rumqttc::{Publish, QoS};
use serde_json::{json, Value};

const COMMAND: &str = "alicia/voice/timer/command";
const EVENTS: &str = "alicia/voice/timer/event";
const ERRORS: &str = "alicia/voice/timer/error";

fn command(data: Value) -> Envelope {
    Envelope::new("hostile-client", Destination::Service("timers".into()), MessageType::Command, data)
}

/// The `data` of the answer on `topic` correlated to `request`.
async fn answer(watcher: &mut Watcher, topic: &str, request: &Envelope) -> Value {
    watcher.answer_to(topic, request).await.payload.data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_timer_commands_get_exact_refusals_and_good_ones_still_work() {
    let mut config = test_config();
    config.services.max_envelope_bytes = 16 * 1024;
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();
    let mut watcher = Watcher::connect(port, "timer-errors", &[EVENTS, ERRORS]).await;
    let (sender, _) = V4Client::connect(port, "timer-hostile", |o| {
        o.set_max_packet_size(1 << 20, 1 << 20);
    })
    .await;
    let send = |bytes: Vec<u8>| {
        let client = sender.client.clone();
        async move { client.publish(COMMAND, QoS::AtLeastOnce, false, bytes).await.unwrap() }
    };

    // Not an envelope at all: an uncorrelated refusal.
    send(b"{\"action\": \"set_timer\"".to_vec()).await;
    let is_invalid =
        |p: &Publish| Envelope::decode(&p.payload).is_ok_and(|e| e.payload.data["error_type"] == "invalid_envelope");
    watcher.take(ERRORS, is_invalid).await;

    let site = |extra: Value| {
        let mut data = json!({"site_id": "kitchen", "device_id": "kitchen_speaker"});
        data.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        data
    };
    let long_name = "x".repeat(65);
    let cases: Vec<(Value, &str)> = vec![
        (site(json!({"action": "explode"})), "unknown_action"),
        (json!({"action": "set_timer", "device_id": "kitchen_speaker", "value": 60}), "missing_site"),
        (site(json!({"action": "set_timer", "site_id": "../kitchen", "value": 60})), "invalid_id"),
        (site(json!({"action": "set_timer", "site_id": "Kitchen Ünïcode", "value": 60})), "invalid_id"),
        (site(json!({"action": "set_timer", "device_id": "alicia/#", "value": 60})), "invalid_id"),
        (site(json!({"action": "set_timer", "device_id": "s".repeat(65), "value": 60})), "invalid_id"),
        (site(json!({"action": "set_timer", "name": long_name, "value": 60})), "invalid_name"),
        (site(json!({"action": "set_timer", "name": "tea\u{7}\u{1b}[2J", "value": 60})), "invalid_name"),
        (json!({"action": "set_timer", "site_id": "kitchen", "value": 60}), "missing_speaker"),
        (site(json!({"action": "set_timer", "value": "ten"})), "missing_value"),
        (site(json!({"action": "set_timer", "value": -5})), "missing_value"),
        (site(json!({"action": "set_timer", "value": 1.5})), "missing_value"),
        (site(json!({"action": "set_timer", "value": 0})), "out_of_range"),
        (site(json!({"action": "set_timer", "value": 86_401})), "out_of_range"),
        (site(json!({"action": "set_timer", "value": 1_000_000_000_000u64})), "out_of_range"),
        (site(json!({"action": "cancel_timer"})), "no_such_timer"),
        (site(json!({"action": "pause_timer", "name": "tea"})), "no_such_timer"),
        (site(json!({"action": "resume_timer"})), "no_such_timer"),
    ];
    for (data, error_type) in cases {
        let request = command(data.clone());
        send(request.encode().to_vec()).await;
        let refusal = answer(&mut watcher, ERRORS, &request).await;
        assert_eq!(refusal["error_type"], error_type, "{data}: {refusal}");
        assert!(refusal["message"].as_str().is_some_and(|m| !m.is_empty() && m.len() < 300), "{refusal}");
    }

    // Larger than the services' envelope limit (16 KiB here): refused before it is parsed.
    let mut huge = command(site(json!({"action": "set_timer", "value": 60})));
    huge.payload.data["padding"] = json!("p".repeat(16 * 1024));
    send(huge.encode().to_vec()).await;
    let is_too_large =
        |p: &Publish| Envelope::decode(&p.payload).is_ok_and(|e| e.payload.data["error_type"] == "too_large");
    watcher.take(ERRORS, is_too_large).await;

    // The timers still work: set, pause, resume, cancel, each answered with its event.
    let set = command(site(json!({"action": "set_timer", "name": "tea", "value": 600})));
    send(set.encode().to_vec()).await;
    let started = answer(&mut watcher, EVENTS, &set).await;
    assert_eq!((started["event"].as_str(), started["timer"]["name"].as_str()), (Some("started"), Some("tea")));
    for (action, event) in [("pause_timer", "paused"), ("resume_timer", "resumed"), ("cancel_timer", "cancelled")] {
        let request = command(site(json!({"action": action, "name": "tea"})));
        send(request.encode().to_vec()).await;
        let data = answer(&mut watcher, EVENTS, &request).await;
        assert_eq!(data["event"], event, "{action}: {data}");
        assert_eq!(data["timer"]["id"], started["timer"]["id"]);
    }
    assert_bus_works(&engine).await;
    engine.stop().await;
}
