//! `alicia backup` and `alicia restore` on the real process's durable store: online
//! while the engine runs, offline when it does not, a restore that brings back exactly
//! the state of the backup, and refusals that leave the store alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use alicia_e2e::clients::V4Client;
use alicia_e2e::engine::{alicia_binary, EngineProcess};
use rumqttc::QoS;

fn config(dir: &Path) -> PathBuf {
    let path = dir.join("alicia.toml");
    let text = format!(
        "[mqtt]\nio_threads = 2\nsys_interval_secs = 0\n\n[storage]\ndir = \"{}\"\n",
        dir.join("store").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn alicia(args: &[&str]) -> Output {
    Command::new(alicia_binary()).args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

async fn publish(port: u16, topic: &str, retain: bool) {
    let (mut c, _) = V4Client::connect(port, "bk-publisher", |_| {}).await;
    c.client.publish(topic, QoS::AtLeastOnce, retain, topic.as_bytes().to_vec()).await.unwrap();
    c.acked().await;
}

fn sigterm(engine: &mut EngineProcess) {
    let pid = engine.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(engine.child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_online_restores_the_store_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let cfg = config.to_str().unwrap();
    let online = dir.path().join("online.backup");
    let mut engine = EngineProcess::spawn_with(&config, &[]);
    let port = engine.mqtt.port();

    let (mut sub, _) = V4Client::connect(port, "bk-sub", |o| {
        o.set_clean_session(false);
    })
    .await;
    sub.subscribe("bk/#", QoS::AtLeastOnce).await;
    sub.client.disconnect().await.unwrap();
    sub.closed().await;
    publish(port, "bk/state", true).await;
    publish(port, "bk/queued", false).await;

    let http = engine.http.to_string();
    let out = alicia(&["backup", online.to_str().unwrap(), "--config", cfg, "--http", &http]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("records"), "{}", text(&out));
    assert!(!dir.path().join("online.backup.partial").exists());

    let out = alicia(&["restore", online.to_str().unwrap(), "--config", cfg]);
    assert!(!out.status.success());
    assert!(text(&out).contains("an engine is running on"), "{}", text(&out));

    // After the backup: not in it.
    publish(port, "bk/later", true).await;
    sigterm(&mut engine);

    // Offline, the store is read by the command itself.
    let offline = dir.path().join("offline.backup");
    let out = alicia(&["backup", offline.to_str().unwrap(), "--config", cfg]);
    assert!(out.status.success(), "{}", text(&out));

    // A damaged file is refused before anything changes.
    let damaged = dir.path().join("damaged.backup");
    let bytes = std::fs::read(&online).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let out = alicia(&["restore", damaged.to_str().unwrap(), "--config", cfg]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not a whole Alicia store backup"), "{}", text(&out));

    let out = alicia(&["restore", online.to_str().unwrap(), "--config", cfg]);
    assert!(out.status.success(), "{}", text(&out));

    let engine = EngineProcess::spawn_with(&config, &[]);
    let port = engine.mqtt.port();
    let (mut sub, ack) = V4Client::connect(port, "bk-sub", |o| {
        o.set_clean_session(false);
    })
    .await;
    assert!(ack.session_present, "the session in the backup came back");
    let mut topics = vec![sub.next_publish().await.topic, sub.next_publish().await.topic];
    topics.sort();
    assert_eq!(topics, ["bk/queued", "bk/state"], "what was queued when the backup was taken");
    let (mut late, _) = V4Client::connect(port, "bk-late", |_| {}).await;
    late.subscribe("bk/+", QoS::AtLeastOnce).await;
    let retained = late.next_publish().await;
    assert_eq!(retained.topic, "bk/state");
    // bk/later was retained after the backup: a marker published now arrives next,
    // with nothing retained before it.
    publish(port, "bk/marker", false).await;
    assert_eq!(late.next_publish().await.topic, "bk/marker", "bk/later is not in the restored store");
}
