//! Signed envelopes on the topics `[security.signing] require` names, with real
//! clients: a device signing in Python with the standard library (the canonical form of
//! `alicia-signing`'s documentation) is delivered; unsigned, tampered, replayed and stale
//! commands go nowhere (MQTT 5 PUBACK 0x87, 3.1.1 acknowledged and dropped), each
//! counted, audited and raised on `alicia/monitoring/alerts`; an encrypted one arrives
//! decrypted; and what the engine publishes there itself arrives signed.
//!
//! Each reason's counter is asserted in one test only: the metrics are the process's.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use alicia_broker::{Broker, LocalClient};
use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::engine::TestEngine;
use alicia_e2e::gateway::{refusals, AuditFile};
use alicia_e2e::signing::{command, data_of, python_sign, python_sign_with, signing_config, write_keys, COMMAND};
use alicia_envelope::{Destination, Envelope, MessageType};
use alicia_signing::{Keyring, Verifier};
use rumqttc::v5::mqttbytes::v5::PubAckReason;
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::QoS;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_signed_commands_pass_and_forged_ones_go_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let keys = write_keys(dir.path());
    let audit = AuditFile::in_dir(dir.path());
    let engine = TestEngine::start(signing_config(&keys, &audit)).await;
    let port = engine.mqtt_port();

    let (mut reader, _) = V4Client::connect(port, "signed-reader", |_| {}).await;
    reader.subscribe("alicia/devices/+/command", QoS::AtLeastOnce).await;
    let (mut watcher, _) = V4Client::connect(port, "alert-watcher", |_| {}).await;
    watcher.subscribe("alicia/monitoring/alerts", QoS::AtLeastOnce).await;

    // A command signed by the device's Python is delivered as it was sent.
    let good = python_sign(&command(json!({"action": "on", "n": 1})), &keys);
    let (mut device, _) = V5Client::connect(port, "kitchen-device", |_| {}).await;
    device.client.publish(COMMAND, V5QoS::AtLeastOnce, false, good.clone()).await.unwrap();
    assert_eq!(device.puback().await.reason, PubAckReason::Success);
    let delivered = reader.next_publish_on(COMMAND).await;
    assert_eq!(&delivered.payload[..], &good[..]);

    // Forgeries, each refused with 0x87 to the MQTT 5 sender.
    let unsigned = command(json!({"action": "on", "n": 2})).to_string().into_bytes();
    let mut tampered: Value = serde_json::from_slice(&python_sign(&command(json!({"action": "on"})), &keys)).unwrap();
    tampered["payload"]["data"]["action"] = json!("unlock");
    let mut old = command(json!({"action": "on", "n": 3}));
    old["timestamp"] = json!("2020-01-01T00:00:00.000Z");
    let stale = python_sign(&old, &keys);
    let forgeries: [(&str, Vec<u8>); 4] = [
        ("unsigned", unsigned.clone()),
        ("bad_signature", tampered.to_string().into_bytes()),
        ("replayed", good.clone()),
        ("stale", stale),
    ];
    for (reason, payload) in &forgeries {
        device.client.publish(COMMAND, V5QoS::AtLeastOnce, false, payload.clone()).await.unwrap();
        assert_eq!(device.puback().await.reason, PubAckReason::NotAuthorized, "{reason}");
        let line = audit.wait_for(reason, &[("client_id", "kitchen-device"), ("topic", COMMAND)]).await;
        assert_eq!((line["action"].as_str(), line["listener"].as_str()), (Some("publish"), Some("tcp")));
    }

    // MQTT 3.1.1 cannot be told: acknowledged, and dropped all the same. The good
    // command the same device sends next is the next one anyone receives.
    let (mut device3, _) = V4Client::connect(port, "kitchen-device-3", |_| {}).await;
    device3.client.publish(COMMAND, QoS::AtLeastOnce, false, unsigned).await.unwrap();
    device3.acked().await;
    let fence = python_sign(&command(json!({"action": "off", "fence": true})), &keys);
    device3.client.publish(COMMAND, QoS::AtLeastOnce, false, fence.clone()).await.unwrap();
    device3.acked().await;
    let next = reader.next_publish_on(COMMAND).await;
    assert_eq!(data_of(&next.payload), json!({"action": "off", "fence": true}), "a refused command was delivered");
    audit.wait_for("unsigned", &[("client_id", "kitchen-device-3")]).await;

    let http = engine.http_addr();
    assert_eq!(refusals(http, "tcp", "unsigned").await, 2.0);
    assert_eq!(refusals(http, "tcp", "bad_signature").await, 1.0);
    assert_eq!(refusals(http, "tcp", "replayed").await, 1.0);
    assert_eq!(refusals(http, "tcp", "stale").await, 1.0);

    // Each reason raised an alert naming it (the second `unsigned` within ten seconds
    // is folded into the next alert for it, not sent on its own).
    let mut reasons = BTreeSet::new();
    while reasons.len() < 4 {
        let alert = watcher.next_publish_on("alicia/monitoring/alerts").await;
        let data = data_of(&alert.payload);
        assert_eq!(data["type"], "security", "{data}");
        assert_eq!(data["topic"], COMMAND, "{data}");
        assert!(data["client_id"].as_str().is_some_and(|id| id.starts_with("kitchen-device")), "{data}");
        reasons.insert(data["reason"].as_str().unwrap().to_string());
    }
    assert_eq!(reasons, BTreeSet::from(["bad_signature", "replayed", "stale", "unsigned"].map(String::from)));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_command_is_delivered_decrypted() {
    let dir = tempfile::tempdir().unwrap();
    let keys = write_keys(dir.path());
    let audit = AuditFile::in_dir(dir.path());
    let engine = TestEngine::start(signing_config(&keys, &audit)).await;
    let port = engine.mqtt_port();
    let (mut reader, _) = V4Client::connect(port, "sealed-reader", |_| {}).await;
    reader.subscribe(COMMAND, QoS::AtLeastOnce).await;

    let keyring = Keyring::load(&keys.file).unwrap();
    let secret = json!({"action": "unlock", "code": "4711"});
    let sealed =
        alicia_signing::sign_encrypted(command(secret.clone()).to_string().as_bytes(), "kitchen", &keyring).unwrap();
    let on_the_wire: Value = serde_json::from_slice(&sealed).unwrap();
    assert!(on_the_wire["payload"]["data"].is_string(), "the data travels encrypted: {on_the_wire}");
    assert!(!String::from_utf8_lossy(&sealed).contains("4711"));

    let (mut device, _) = V5Client::connect(port, "sealed-device", |_| {}).await;
    device.client.publish(COMMAND, V5QoS::AtLeastOnce, false, sealed).await.unwrap();
    assert_eq!(device.puback().await.reason, PubAckReason::Success);
    let delivered = reader.next_publish_on(COMMAND).await;
    assert_eq!(data_of(&delivered.payload), secret);
    assert_eq!(audit.lines().len(), 0, "nothing was refused");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_engine_publishes_on_a_signed_topic_is_signed() {
    let dir = tempfile::tempdir().unwrap();
    let keys = write_keys(dir.path());
    let audit = AuditFile::in_dir(dir.path());
    let config = signing_config(&keys, &audit);
    let supervisor = alicia_supervisor::Supervisor::new();
    let broker = Broker::start(&config, &supervisor).await.expect("broker starts");
    let port = broker.mqtt_addr().port();
    let (mut reader, _) = V4Client::connect(port, "engine-reader", |_| {}).await;
    reader.subscribe(COMMAND, QoS::AtLeastOnce).await;

    // The voice pipeline's publisher, as the engine connects it.
    let mut service = LocalClient::connect(broker.bus(), "voice-publisher").await.unwrap();
    let data = json!({"action": "turn_on", "entity": "light.kitchen"});
    let envelope = Envelope::new("alicia", Destination::Device("kitchen".into()), MessageType::Command, data.clone());
    service.publish(COMMAND, envelope.encode(), false).await.unwrap();

    let delivered = reader.next_publish_on(COMMAND).await;
    let signed: Value = serde_json::from_slice(&delivered.payload).unwrap();
    assert_eq!(signed["security"]["key_id"], "engine", "{signed}");
    let verifier = Verifier::new(Keyring::load(&keys.file).unwrap(), Duration::from_secs(300), 100);
    let verified = verifier.verify(&delivered.payload, SystemTime::now()).expect("the engine's signature verifies");
    assert!(!verified.encrypted);
    assert_eq!(signed["payload"]["data"], data);

    // A device holding the engine's key checks it the same way in Python.
    let engine_secret = std::fs::read_to_string(&keys.file)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("engine "))
        .unwrap()
        .trim()
        .to_string();
    let resigned: Value = serde_json::from_slice(&python_sign_with(&signed, "engine", &engine_secret)).unwrap();
    assert_eq!(resigned["security"]["signature"], signed["security"]["signature"]);

    drop(service);
    broker.shutdown().await;
}

/// One heartbeat of the engine's health service, checked against `keys`.
async fn next_heartbeat_verifies(reader: &mut V4Client, keys: &Path) {
    let heartbeat = reader.next_publish_on(HEARTBEAT).await;
    let envelope: Value = serde_json::from_slice(&heartbeat.payload).unwrap();
    assert_eq!(envelope["security"]["key_id"], "engine", "{envelope}");
    let verifier = Verifier::new(Keyring::load(keys).unwrap(), Duration::from_secs(300), 100);
    verifier.verify(&heartbeat.payload, SystemTime::now()).expect("the engine's heartbeat verifies");
}

const HEARTBEAT: &str = "alicia/system/discovery/heartbeat";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_rotates_the_keys_and_refuses_a_file_without_the_engines_own() {
    let dir = tempfile::tempdir().unwrap();
    let keys = write_keys(dir.path());
    let audit = AuditFile::in_dir(dir.path());
    let mut config = signing_config(&keys, &audit);
    // The health service's heartbeats (every second here) must be signed too: the
    // engine's own voice on a signed topic.
    config.security.signing.as_mut().unwrap().require.push(HEARTBEAT.into());
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();
    let (mut reader, _) = V4Client::connect(port, "rotation-reader", |_| {}).await;
    reader.subscribe(COMMAND, QoS::AtLeastOnce).await;
    reader.subscribe(HEARTBEAT, QoS::AtLeastOnce).await;
    next_heartbeat_verifies(&mut reader, &keys.file).await;

    // Rotation: the kitchen's key is replaced by a new one.
    let engine_line =
        std::fs::read_to_string(&keys.file).unwrap().lines().find(|l| l.starts_with("engine ")).unwrap().to_string();
    let new_line = Keyring::generate_line("kitchen-2026").unwrap();
    let new_secret = new_line.split_once(' ').unwrap().1.trim().to_string();
    std::fs::write(&keys.file, format!("{engine_line}\n{new_line}\n")).unwrap();
    engine.engine.reload().expect("the rotated key file reloads");

    let (mut device, _) = V5Client::connect(port, "rotating-device", |_| {}).await;
    let old_key = python_sign(&command(json!({"action": "on", "key": "old"})), &keys);
    device.client.publish(COMMAND, V5QoS::AtLeastOnce, false, old_key).await.unwrap();
    assert_eq!(device.puback().await.reason, PubAckReason::NotAuthorized);
    audit.wait_for("unknown_key", &[("client_id", "rotating-device")]).await;
    let new_key = python_sign_with(&command(json!({"action": "on", "key": "new"})), "kitchen-2026", &new_secret);
    device.client.publish(COMMAND, V5QoS::AtLeastOnce, false, new_key).await.unwrap();
    assert_eq!(device.puback().await.reason, PubAckReason::Success);
    assert_eq!(data_of(&reader.next_publish_on(COMMAND).await.payload), json!({"action": "on", "key": "new"}));
    assert_eq!(refusals(engine.http_addr(), "tcp", "unknown_key").await, 1.0);

    // A key file without `sign_as`'s key would leave the engine unable to sign what it
    // says: refused as start-up refuses it, and the keys in force stay.
    let rotated = std::fs::read_to_string(&keys.file).unwrap();
    std::fs::write(&keys.file, format!("{new_line}\n")).unwrap();
    let error = engine.engine.reload().expect_err("a key file without the engine's key is refused");
    assert!(error.contains("sign_as") && error.contains("engine"), "{error}");
    std::fs::write(&keys.file, rotated).unwrap();
    // Two heartbeats on: the second was certainly signed after the refused reload.
    next_heartbeat_verifies(&mut reader, &keys.file).await;
    next_heartbeat_verifies(&mut reader, &keys.file).await;
    engine.stop().await;
}
