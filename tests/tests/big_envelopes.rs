//! Large JSON on request topics: the core services read envelopes up to
//! `services.max_envelope_bytes` (large ones off the main runtime) and answer a bigger
//! one with a `too_large` error event, while the message itself is still delivered and
//! the services go on answering.

use alicia_e2e::clients::V4Client;
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_envelope::{topics, Destination, Envelope, MessageType};
use rumqttc::QoS;
use serde_json::json;

fn status_of(bytes: usize) -> Envelope {
    Envelope::new("lamp", Destination::Broadcast, MessageType::Event, json!({ "padding": "x".repeat(bytes) }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_over_the_limit_is_refused_unread_and_the_services_carry_on() {
    let mut config = test_config();
    config.services.max_envelope_bytes = 64 << 10;
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();
    let big = |o: &mut rumqttc::MqttOptions| {
        o.set_max_packet_size(1 << 20, 1 << 20);
    };
    let (mut watcher, _) = V4Client::connect(port, "big-watcher", big).await;
    watcher.subscribe("alicia/monitoring/alerts", QoS::AtLeastOnce).await;
    watcher.subscribe("alicia/devices/lamp/status", QoS::AtLeastOnce).await;
    watcher.subscribe("alicia/system/health/alicia", QoS::AtLeastOnce).await;
    let (lamp, _) = V4Client::connect(port, "big-lamp", big).await;
    let publish = |topic: &'static str, payload: Vec<u8>| {
        let client = lamp.client.clone();
        async move { client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap() }
    };

    // 200 KiB: over the limit. Delivered, and refused by the gatekeeper unread.
    let oversized = status_of(200 << 10).encode();
    publish("alicia/devices/lamp/status", oversized.to_vec()).await;
    assert_eq!(watcher.next_publish_on("alicia/devices/lamp/status").await.payload.len(), oversized.len());
    let alert = Envelope::decode(&watcher.next_publish_on("alicia/monitoring/alerts").await.payload).unwrap();
    assert_eq!(alert.payload.data["error_type"], "too_large");
    assert_eq!(
        alert.payload.data["reason"],
        format!("the message is {} bytes; envelopes are read up to 65536 bytes here", oversized.len())
    );
    assert_eq!(alert.payload.data["topic"], "alicia/devices/lamp/status");

    // 40 KiB: under the limit but over the inline threshold, so parsed on the blocking
    // pool, and valid: no alert. The next alert is the one for the broken message after.
    publish("alicia/devices/lamp/status", status_of(40 << 10).encode().to_vec()).await;
    publish("alicia/devices/lamp/status", b"{\"not\": \"an envelope\"".to_vec()).await;
    let alert = Envelope::decode(&watcher.next_publish_on("alicia/monitoring/alerts").await.payload).unwrap();
    assert_eq!(alert.payload.data["error_type"], "not_json");

    // A health check is answered as ever.
    let check = Envelope::new("dashboard", Destination::Broadcast, MessageType::Request, json!({}));
    publish(topics::SYSTEM_HEALTH_CHECK, check.encode().to_vec()).await;
    let answer = loop {
        let envelope = Envelope::decode(&watcher.next_publish_on("alicia/system/health/alicia").await.payload).unwrap();
        if envelope.message_type == MessageType::Response {
            break envelope;
        }
    };
    assert_eq!(answer.correlation_id(), Some(check.message_id));

    let (_, page) = alicia_e2e::http_get(engine.http_addr(), "/metrics").await;
    assert!(page.contains("alicia_envelope_invalid_total{error_type=\"too_large\"} 1"), "{page}");
    engine.stop().await;
}
