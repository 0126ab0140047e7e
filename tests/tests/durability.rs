//! Nothing acknowledged is lost when the engine stops: the real `alicia serve` with
//! `[storage]`, killed with SIGKILL or stopped with SIGTERM, then started again on the
//! same store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::engine::EngineProcess;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::QoS;

fn config(dir: &Path, sync: &str) -> PathBuf {
    let path = dir.join("alicia.toml");
    let store = dir.join("store");
    let text = format!(
        "[mqtt]\nio_threads = 2\nsys_interval_secs = 0\n\n[storage]\ndir = \"{}\"\nsync = \"{sync}\"\n",
        store.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn v4_persistent(o: &mut rumqttc::MqttOptions) {
    o.set_clean_session(false);
}

fn v5_persistent(expiry: u32) -> impl FnOnce(&mut rumqttc::v5::MqttOptions) {
    move |o| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(expiry));
    }
}

/// A 3.1.1 client that subscribes and goes away (its DISCONNECT keeps the session).
async fn subscribe_and_leave_v4(port: u16, id: &str, filter: &str) {
    let (mut c, ack) = V4Client::connect(port, id, v4_persistent).await;
    assert!(!ack.session_present);
    c.subscribe(filter, QoS::AtLeastOnce).await;
    c.client.disconnect().await.unwrap();
    c.closed().await;
}

async fn subscribe_and_leave_v5(port: u16, id: &str, filter: &str, expiry: u32) {
    let (mut c, _) = V5Client::connect(port, id, v5_persistent(expiry)).await;
    c.subscribe(filter, QoS5::AtLeastOnce).await;
    c.client.disconnect().await.unwrap();
    c.closed().await;
}

async fn publish_acked(publisher: &mut V4Client, topic: &str, qos: QoS, retain: bool, payload: &str) {
    publisher.client.publish(topic, qos, retain, payload.as_bytes().to_vec()).await.unwrap();
    publisher.acked().await;
}

fn kill_9(engine: &mut EngineProcess) {
    engine.child.kill().unwrap();
    engine.child.wait().unwrap();
}

fn stop_with_sigterm(engine: &mut EngineProcess) {
    let pid = engine.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = engine.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_sessions_and_retained_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "batch");
    let mut engine = EngineProcess::spawn_with(&config, &[]);
    let port = engine.mqtt.port();

    subscribe_and_leave_v4(port, "keep-311", "keep/#").await;
    subscribe_and_leave_v5(port, "keep-5", "keep/#", 3600).await;
    subscribe_and_leave_v5(port, "keep-short", "keep/#", 3).await;
    let short_expired_at = tokio::time::Instant::now() + Duration::from_secs(3);
    // Online, and never acknowledging: the delivery is in flight when the engine dies.
    let (mut in_flight, _) = V5Client::connect(port, "keep-inflight", |o| {
        v5_persistent(3600)(o);
        o.set_manual_acks(true);
    })
    .await;
    in_flight.subscribe("inflight/x", QoS5::AtLeastOnce).await;

    let (mut publisher, _) = V4Client::connect(port, "keep-publisher", |_| {}).await;
    publish_acked(&mut publisher, "keep/state", QoS::AtLeastOnce, true, "on").await;
    for i in 0..5 {
        publish_acked(&mut publisher, &format!("keep/m/{i}"), QoS::AtLeastOnce, false, "m").await;
    }
    publish_acked(&mut publisher, "keep/q2", QoS::ExactlyOnce, false, "exactly once").await;
    publish_acked(&mut publisher, "inflight/x", QoS::AtLeastOnce, false, "unacked").await;
    let first = in_flight.next_publish().await;
    assert_eq!((&first.topic[..], first.dup), (&b"inflight/x"[..], false));

    kill_9(&mut engine);
    let engine = EngineProcess::spawn_with(&config, &[]);
    let port = engine.mqtt.port();

    // The retained message, for a newcomer.
    let (mut late, _) = V4Client::connect(port, "late", |_| {}).await;
    late.subscribe("keep/state", QoS::AtLeastOnce).await;
    let retained = late.next_publish().await;
    assert_eq!((&retained.payload[..], retained.retain), (&b"on"[..], true));

    // Both persistent sessions, with every message acknowledged while they were away.
    let expected: BTreeSet<String> =
        ["keep/state", "keep/m/0", "keep/m/1", "keep/m/2", "keep/m/3", "keep/m/4", "keep/q2"].map(String::from).into();
    let (mut s311, ack) = V4Client::connect(port, "keep-311", v4_persistent).await;
    assert!(ack.session_present, "the 3.1.1 session came back");
    let mut got = BTreeSet::new();
    for _ in 0..expected.len() {
        got.insert(s311.next_publish().await.topic);
    }
    assert_eq!(got, expected);
    let (mut s5, ack) = V5Client::connect(port, "keep-5", v5_persistent(3600)).await;
    assert!(ack.session_present, "the v5 session came back");
    let mut got = BTreeSet::new();
    for _ in 0..expected.len() {
        got.insert(String::from_utf8(s5.next_publish().await.topic.to_vec()).unwrap());
    }
    assert_eq!(got, expected);

    // What was in flight goes again, as a retransmission.
    let (mut in_flight, ack) = V5Client::connect(port, "keep-inflight", v5_persistent(3600)).await;
    assert!(ack.session_present);
    let again = in_flight.next_publish().await;
    assert_eq!((&again.topic[..], &again.payload[..], again.dup), (&b"inflight/x"[..], &b"unacked"[..], true));

    // The session with a 3 s expiry is gone once 3 s have passed since its client left,
    // the time the engine was down included.
    tokio::time::sleep_until(short_expired_at + Duration::from_millis(500)).await;
    let (_short, ack) = V5Client::connect(port, "keep-short", v5_persistent(3)).await;
    assert!(!ack.session_present, "an expired session is not resumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_keeps_queues_and_fires_the_wills_it_held() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "always");
    let mut engine = EngineProcess::spawn_with(&config, &[]);
    let port = engine.mqtt.port();

    subscribe_and_leave_v4(port, "watcher", "house/#").await;
    let (_device, _) = V4Client::connect(port, "lamp-1", |o| {
        o.set_last_will(rumqttc::LastWill::new("house/lamp-1/status", "offline", QoS::AtLeastOnce, true));
    })
    .await;
    let (mut publisher, _) = V4Client::connect(port, "publisher", |_| {}).await;
    publish_acked(&mut publisher, "house/door", QoS::ExactlyOnce, false, "open").await;

    // The engine stops under the lamp's connection: the lamp never said goodbye.
    stop_with_sigterm(&mut engine);
    let engine = EngineProcess::spawn_with(&config, &[]);
    let port = engine.mqtt.port();

    let (mut watcher, ack) = V4Client::connect(port, "watcher", v4_persistent).await;
    assert!(ack.session_present);
    let mut got = BTreeSet::new();
    for _ in 0..2 {
        let p = watcher.next_publish().await;
        got.insert((p.topic, String::from_utf8(p.payload.to_vec()).unwrap()));
    }
    let expected: BTreeSet<(String, String)> =
        [("house/door", "open"), ("house/lamp-1/status", "offline")].map(|(t, p)| (t.into(), p.into())).into();
    assert_eq!(got, expected);
    // The will was retained: a newcomer reads the lamp's state.
    let (mut late, _) = V4Client::connect(port, "late", |_| {}).await;
    late.subscribe("house/lamp-1/status", QoS::AtLeastOnce).await;
    let status = late.next_publish().await;
    assert_eq!((&status.payload[..], status.retain), (&b"offline"[..], true));
}
