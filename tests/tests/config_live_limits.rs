//! `[limits]` changed while the engine runs, against the real engine: an update on
//! `alicia/system/config/update` (or the file re-read, SIGHUP's work) puts the new
//! limits in force at once, `applied` rather than `restart_required`, written to the
//! file; connections already up are not dropped by it, and a lowered limit applies to
//! what happens next without dropping what is held.

use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::config_admin::ConfigAdmin;
use alicia_e2e::engine::TestEngine;
use alicia_e2e::unique_topic;
use rumqttc::v5::mqttbytes::v5::{DisconnectReasonCode, PubAckReason};
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::QoS;
use serde_json::json;

/// `alicia.toml` in a directory of its own, with comments an update must keep.
struct ConfigFile {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl ConfigFile {
    fn with_limits(limits: &str) -> ConfigFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alicia.toml");
        let text = format!(
            "[engine]\nname = \"alicia\"\n\n\
             [mqtt]\nlisten = \"127.0.0.1:0\"\nio_threads = 2\nsys_interval_secs = 0\n\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\n\
             [limits]\n# tuned live\n{limits}\n\n\
             [security]\nallow_anonymous = true\n"
        );
        std::fs::write(&path, text).unwrap();
        ConfigFile { _dir: dir, path }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap()
    }

    fn replace(&self, from: &str, to: &str) {
        let text = self.text();
        assert!(text.contains(from), "{text}");
        std::fs::write(&self.path, text.replace(from, to)).unwrap();
    }
}

/// Publishes `count` QoS 0 messages at once, then one QoS 1 message, and waits for its
/// PUBACK: the client was served, not disconnected.
async fn burst_and_still_served(client: &mut V5Client, topic: &str, count: usize) {
    for i in 0..count {
        client.client.publish(topic, V5QoS::AtMostOnce, false, format!("{i}")).await.unwrap();
    }
    client.client.publish(topic, V5QoS::AtLeastOnce, false, "still here").await.unwrap();
    assert_eq!(client.puback().await.reason, PubAckReason::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowered_message_rate_applies_to_connected_clients_at_once() {
    let file = ConfigFile::with_limits("max_messages_per_second = 1000   # per client");
    let engine = TestEngine::from_file(&file.path).await;
    let port = engine.mqtt_port();
    let mut admin = ConfigAdmin::connect(port, "admin-tool", |_| {}).await;
    let topic = unique_topic("e2e/live-rate");
    let (mut bystander, _) = V4Client::connect(port, "bystander", |_| {}).await;
    bystander.subscribe(&topic, QoS::AtLeastOnce).await;
    let (mut publisher, _) = V5Client::connect(port, "fast-publisher", |_| {}).await;

    // Before: 50 messages at once are well within 1,000 a second.
    burst_and_still_served(&mut publisher, &topic, 50).await;

    let answer = admin.update(json!({"limits": {"max_messages_per_second": 5}})).await;
    assert_eq!(answer["status"], "applied", "{answer}");
    assert_eq!(answer["applied"], json!(["limits.max_messages_per_second"]));
    assert_eq!(answer["restart_required"], json!([]));
    assert!(file.text().contains("# tuned live\nmax_messages_per_second = 5   # per client\n"), "{}", file.text());
    assert_eq!(engine.engine.config().limits.max_messages_per_second, 5);

    // The update itself dropped no one: both clients are still served.
    publisher.client.publish(&topic, V5QoS::AtLeastOnce, false, "after the update").await.unwrap();
    assert_eq!(publisher.puback().await.reason, PubAckReason::Success);
    loop {
        if &bystander.next_publish_on(&topic).await.payload[..] == b"after the update" {
            break;
        }
    }

    // The same client, the same burst as before: now past its rate, 0x96. (The rate is
    // in force for a connection's next PUBLISH once the update is answered.)
    for i in 0..50 {
        publisher.client.publish(&topic, V5QoS::AtMostOnce, false, format!("{i}")).await.unwrap();
    }
    let (reason, _) = publisher.closed().await;
    assert_eq!(reason, Some(DisconnectReasonCode::MessageRateTooHigh));

    // The bystander, within the rate, is served throughout.
    bystander.client.publish(&topic, QoS::AtLeastOnce, false, "calm").await.unwrap();
    loop {
        if &bystander.next_publish_on(&topic).await.payload[..] == b"calm" {
            break;
        }
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_changes_live_and_never_drops_a_connection() {
    let file = ConfigFile::with_limits("max_connections = 100");
    let engine = TestEngine::from_file(&file.path).await;
    let port = engine.mqtt_port();
    let mut admin = ConfigAdmin::connect(port, "admin-tool", |_| {}).await;
    let (mut keeper, _) = V5Client::connect(port, "keeper", |_| {}).await;
    let topic = unique_topic("e2e/live-connections");

    // Lowered below the two connections up: both stay, a third is refused (0x97). The
    // byte budget's size is not live: it waits for a restart, and says so.
    let answer = admin.update(json!({"limits": {"max_connections": 1, "max_queued_bytes_total": 1 << 28}})).await;
    assert_eq!(answer["status"], "accepted", "{answer}");
    assert_eq!(answer["applied"], json!(["limits.max_connections"]));
    assert_eq!(answer["restart_required"], json!(["limits.max_queued_bytes_total"]));
    let refused = V5Client::start(port, "newcomer", |_| {}).connack().await.expect_err("refused");
    assert!(format!("{refused:?}").contains("QuotaExceeded"), "MQTT 5: 0x97 quota exceeded, got {refused:?}");
    keeper.client.publish(&topic, V5QoS::AtLeastOnce, false, "kept").await.unwrap();
    assert_eq!(keeper.puback().await.reason, PubAckReason::Success);

    // Raised: the newcomer gets in, and the file says 3.
    let answer = admin.update(json!({"limits": {"max_connections": 3}})).await;
    assert_eq!(answer["applied"], json!(["limits.max_connections"]), "{answer}");
    let (_newcomer, _) = V5Client::connect(port, "newcomer", |_| {}).await;
    let reread = alicia_config::AliciaConfig::load(&file.path, None).unwrap();
    assert_eq!((reread.limits.max_connections, reread.limits.max_queued_bytes_total), (3, 1 << 28));
    let now = admin.ask(alicia_e2e::config_admin::REQUEST, json!({"section": "limits"})).await;
    assert_eq!(now["config"]["limits"]["max_connections"], 3);
    assert_eq!(now["restart_required"], json!(["limits.max_queued_bytes_total"]));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_lowers_retained_and_packet_limits_for_what_comes_next() {
    let file = ConfigFile::with_limits("max_retained_messages = 1000\nmessage_size_limit = 1048576");
    let engine = TestEngine::from_file(&file.path).await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/live-retained");
    let (mut early, _) = V5Client::connect(port, "early", |o| {
        o.set_max_packet_size(Some(1 << 20));
    })
    .await;
    for n in 1..=2 {
        early.client.publish(format!("{topic}/{n}"), V5QoS::AtLeastOnce, true, format!("kept {n}")).await.unwrap();
        assert_eq!(early.puback().await.reason, PubAckReason::Success);
    }

    file.replace("max_retained_messages = 1000", "max_retained_messages = 1");
    file.replace("message_size_limit = 1048576", "message_size_limit = 65536");
    engine.engine.reload().expect("the edited file is put in force");
    assert_eq!(engine.engine.config().limits.message_size_limit, 65536);

    // A new retained message is refused (PUBACK 0x97); those held stay and are sent.
    early.client.publish(format!("{topic}/3"), V5QoS::AtLeastOnce, true, "refused").await.unwrap();
    assert_eq!(early.puback().await.reason, PubAckReason::QuotaExceeded);
    let (mut late, ack) = V5Client::connect(port, "late", |_| {}).await;
    late.subscribe(&format!("{topic}/#"), V5QoS::AtLeastOnce).await;
    let mut got = vec![late.next_publish().await.payload, late.next_publish().await.payload];
    got.sort();
    assert_eq!(got, [&b"kept 1"[..], &b"kept 2"[..]]);

    // A new connection is told the new packet size; one up before keeps what it was told.
    assert_eq!(ack.properties.and_then(|p| p.max_packet_size), Some(65536));
    early.client.publish(&topic, V5QoS::AtLeastOnce, false, vec![7u8; 100_000]).await.unwrap();
    assert_eq!(early.puback().await.reason, PubAckReason::Success);
    // rumqttc's MQTT 5 client keeps to the CONNACK's size itself: a 3.1.1 client, told
    // nothing, sends it and is cut off by the broker.
    let (mut newcomer, _) = V4Client::connect(port, "newcomer", |o| {
        o.set_max_packet_size(1 << 20, 1 << 20);
    })
    .await;
    newcomer.client.publish(&topic, QoS::AtLeastOnce, false, vec![7u8; 100_000]).await.unwrap();
    let error = newcomer.closed().await;
    let error = format!("{error:?}");
    assert!(!error.contains("TooLarge") && !error.contains("Refused"), "closed by the broker, got {error}");
    engine.stop().await;
}
