//! The engine's core services as a device sees them on the bus.

use alicia_e2e::clients::V4Client;
use alicia_e2e::engine::TestEngine;
use alicia_e2e::mosquitto;
use alicia_envelope::{topics, Destination, Envelope, MessageType};
use rumqttc::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_sub_sees_the_heartbeat_and_registration() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    // Retained registration and health arrive at once; the 1 s heartbeat brings more.
    let child = mosquitto::subscribe(port, &["-t", "alicia/#", "-v", "-C", "4"]);
    let lines = mosquitto::lines(child).await;
    let topics: Vec<&str> = lines.iter().map(|l| l.split_once(' ').unwrap().0).collect();
    assert!(topics.contains(&"alicia/system/health/alicia"), "{topics:?}");
    assert!(topics.contains(&"alicia/system/discovery/register"), "{topics:?}");

    let health = lines.iter().find(|l| l.starts_with("alicia/system/health/alicia ")).unwrap();
    let envelope = Envelope::decode(health.split_once(' ').unwrap().1.as_bytes()).expect("a valid envelope");
    assert_eq!(envelope.source, "alicia");
    assert_eq!(envelope.payload.data["status"], "healthy");
    assert_eq!(envelope.payload.data["service_name"], "alicia");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_coming() {
    let engine = TestEngine::with_defaults().await;
    let (mut watcher, _) = V4Client::connect(engine.mqtt_port(), "heartbeat-watcher", |_| {}).await;
    watcher.subscribe(topics::SYSTEM_DISCOVERY_HEARTBEAT, QoS::AtMostOnce).await;
    for _ in 0..2 {
        let beat = watcher.next_publish().await;
        let envelope = Envelope::decode(&beat.payload).unwrap();
        assert_eq!(envelope.message_type, MessageType::Heartbeat);
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_gets_a_correlated_response() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let (mut asker, _) = V4Client::connect(port, "health-asker", |_| {}).await;
    asker.subscribe("alicia/system/health/+", QoS::AtLeastOnce).await;
    let request =
        Envelope::new("dashboard", Destination::Broadcast, MessageType::Request, serde_json::json!({"check": "all"}));
    asker
        .client
        .publish(topics::SYSTEM_HEALTH_CHECK, QoS::AtLeastOnce, false, request.encode().to_vec())
        .await
        .unwrap();
    let response = loop {
        let p = asker.next_publish_on("alicia/system/health/alicia").await;
        let envelope = Envelope::decode(&p.payload).unwrap();
        if envelope.message_type == MessageType::Response {
            break envelope;
        }
    };
    assert_eq!(response.correlation_id(), Some(request.message_id));
    assert_eq!(response.destination, Destination::Service("dashboard".into()));
    assert_eq!(response.payload.data["status"], "healthy");

    // A check addressed to another service is not ours to answer: the next response
    // to arrive is the one for the broadcast asked after it.
    let other = Envelope::new(
        "dashboard",
        Destination::Service("tts_service".into()),
        MessageType::Request,
        serde_json::json!({}),
    );
    asker.client.publish(topics::SYSTEM_HEALTH_CHECK, QoS::AtLeastOnce, false, other.encode().to_vec()).await.unwrap();
    let again = Envelope::new("dashboard", Destination::Broadcast, MessageType::Request, serde_json::json!({}));
    asker.client.publish(topics::SYSTEM_HEALTH_CHECK, QoS::AtLeastOnce, false, again.encode().to_vec()).await.unwrap();
    let next = loop {
        let p = asker.next_publish_on("alicia/system/health/alicia").await;
        let envelope = Envelope::decode(&p.payload).unwrap();
        if envelope.message_type == MessageType::Response {
            break envelope;
        }
    };
    assert_eq!(next.correlation_id(), Some(again.message_id));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_clears_the_retained_health_and_registration() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let (mut watcher, _) = V4Client::connect(port, "goodbye-watcher", |_| {}).await;
    watcher.subscribe("alicia/system/discovery/#", QoS::AtLeastOnce).await;
    // Retained, or live when the watcher came before the engine had registered.
    watcher.next_publish_on(topics::SYSTEM_DISCOVERY_REGISTER).await;
    // Shut the engine down from another task; the watcher sees the goodbye first.
    let stopping = tokio::spawn(engine.stop());
    let goodbye = watcher.next_publish_on(topics::SYSTEM_DISCOVERY_UNREGISTER).await;
    let envelope = Envelope::decode(&goodbye.payload).unwrap();
    assert_eq!(envelope.payload.data["status"], "offline");
    // Then the empty retained message that deletes the registration.
    let cleared = watcher.next_publish_on(topics::SYSTEM_DISCOVERY_REGISTER).await;
    assert!(cleared.payload.is_empty());
    stopping.await.unwrap();
}
