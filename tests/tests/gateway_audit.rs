//! The security gateway's audit log with real clients: every refusal is one JSON line
//! saying who, where, what and why, whatever the client put in its strings; and the
//! engine's in-process services obey the ACL under their own usernames, their refusals
//! audited like anyone's.
//!
//! Each reason's counter is asserted in one test only: the metrics are the process's.

use std::path::Path;
use std::process::Command;

use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::engine::{bus_config_dir, test_config, TestEngine};
use alicia_e2e::gateway::{refusals, write_passwords, AuditFile};
use alicia_e2e::gateway::{v4_login, v5_login};
use alicia_e2e::raw::RawClient;
use alicia_e2e::unique_topic;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as V5Code, PubAckReason, SubscribeReasonCode as V5Sub};
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::QoS;

const ACL: &str = "\
user kitchen
topic readwrite alicia/devices/kitchen/#

user probe
topic readwrite e2e/#
";

/// A line's fields every refusal has: an RFC 3339 time, the listener, a loopback peer.
fn assert_is_a_refusal_from_here(line: &serde_json::Value) {
    let time = line["time"].as_str().expect("time");
    assert!(time.len() >= 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "time {time:?}");
    assert_eq!(line["listener"], "tcp", "{line}");
    let peer: std::net::SocketAddr = line["peer"].as_str().expect("peer").parse().expect("peer is an address");
    assert!(peer.ip().is_loopback() && peer.port() != 0, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_one_audit_line() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditFile::in_dir(dir.path());
    let (passwords, acl) = (dir.path().join("passwords"), dir.path().join("acl"));
    write_passwords(&passwords, &[("kitchen", "k-pass"), ("probe", "p-pass")]);
    std::fs::write(&acl, ACL).unwrap();
    let mut config = test_config();
    config.security.allow_anonymous = false;
    config.security.password_file = Some(passwords);
    config.security.acl_file = Some(acl);
    config.security.audit_file = Some(audit.path.clone());
    // The hostile id below must reach the password check, not the id length check.
    config.limits.max_client_id_length = 4096;
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();

    // A bystander connected before any of it, and still served after.
    let (mut probe, _) = V4Client::connect(port, "audit-probe", v4_login("probe", "p-pass")).await;
    let probe_topic = unique_topic("e2e/audit");
    probe.subscribe(&probe_topic, QoS::AtLeastOnce).await;

    // Wrong password (MQTT 5: 0x86).
    let mut wrong = V5Client::start(port, "audit-wrong", v5_login("kitchen", "nope"));
    match wrong.connack().await {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => assert_eq!(code, V5Code::BadUserNamePassword),
        other => panic!("wrong password: expected 0x86, got {other:?}"),
    }
    let line = audit.wait_for("wrong_password", &[("client_id", "audit-wrong")]).await;
    assert_is_a_refusal_from_here(&line);
    assert_eq!((line["username"].as_str(), line["action"].as_str()), (Some("kitchen"), Some("connect")));
    assert!(line["topic"].is_null(), "{line}");

    // Unknown user (3.1.1: 0x04).
    let mut stranger = V4Client::start(port, "audit-stranger", v4_login("stranger", "k-pass"));
    match stranger.connack().await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::ConnectReturnCode::BadUserNamePassword)
        }
        other => panic!("unknown user: expected 0x04, got {other:?}"),
    }
    let line = audit.wait_for("unknown_user", &[("client_id", "audit-stranger")]).await;
    assert_is_a_refusal_from_here(&line);
    assert_eq!((line["username"].as_str(), line["action"].as_str()), (Some("stranger"), Some("connect")));

    // Denied subscribe (0x87) and denied publish (PUBACK 0x87), from a client that stays.
    let (mut kitchen, _) = V5Client::connect(port, "audit-kitchen", v5_login("kitchen", "k-pass")).await;
    let codes = kitchen.subscribe("alicia/system/#", V5QoS::AtLeastOnce).await;
    assert_eq!(codes, [V5Sub::NotAuthorized]);
    let line = audit.wait_for("subscribe_denied", &[("client_id", "audit-kitchen")]).await;
    assert_is_a_refusal_from_here(&line);
    assert_eq!(
        (line["username"].as_str(), line["action"].as_str(), line["topic"].as_str()),
        (Some("kitchen"), Some("subscribe"), Some("alicia/system/#"))
    );
    kitchen.client.publish("alicia/devices/hall/command", V5QoS::AtLeastOnce, false, "on").await.unwrap();
    assert_eq!(kitchen.puback().await.reason, PubAckReason::NotAuthorized);
    let line = audit.wait_for("publish_denied", &[("client_id", "audit-kitchen")]).await;
    assert_is_a_refusal_from_here(&line);
    assert_eq!(
        (line["username"].as_str(), line["action"].as_str(), line["topic"].as_str()),
        (Some("kitchen"), Some("publish"), Some("alicia/devices/hall/command"))
    );
    // The foreign peer: mosquitto_pub (3.1.1) is acknowledged, and audited all the same.
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-u", "kitchen", "-P", "k-pass"])
        .args(["-i", "audit-mosquitto", "-t", "alicia/secret/code", "-m", "1234", "-q", "1"])
        .output()
        .expect("mosquitto_pub (make deps)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = audit.wait_for("publish_denied", &[("client_id", "audit-mosquitto")]).await;
    assert_eq!(line["topic"], "alicia/secret/code");

    // A hostile client id: newlines, quotes, a forged record, 2 KB. One line, valid JSON,
    // the id's start kept (cut at the audit log's field limit).
    let lines_before = audit.lines().len();
    let hostile = format!("evil\n{{\"reason\":\"forged\"}}\r\n\"quoted\"\\{}", "x".repeat(2048));
    let mut raw = RawClient::connect(port).await;
    let code = raw
        .handshake(&hostile, 30, |c| {
            c.set_login("kitchen", "still-wrong");
        })
        .await;
    assert_eq!(code, 0x04, "3.1.1 bad user name or password");
    let line = audit
        .wait_for_line("the hostile id's line", |l| {
            l["reason"] == "wrong_password" && l["client_id"].as_str().is_some_and(|id| id.starts_with("evil"))
        })
        .await;
    let id = line["client_id"].as_str().unwrap();
    let kept = id.strip_suffix('…').expect("a cut string ends in an ellipsis");
    assert!(id.len() <= alicia_audit::MAX_FIELD_BYTES, "cut to the field limit: {} bytes", id.len());
    assert!(hostile.starts_with(kept) && kept.contains("\n{\"reason\":\"forged\"}\r\n\"quoted\"\\"), "{id:?}");
    let text = std::fs::read_to_string(&audit.path).unwrap();
    assert_eq!(text.lines().count(), lines_before + 1, "the hostile id made exactly one line");
    assert!(!text.lines().any(|l| l.starts_with("{\"reason\":\"forged\"")), "a forged line got in");
    assert_eq!(audit.lines().iter().filter(|l| l["reason"] == "forged").count(), 0);

    // Counted once each, on the listener it happened on.
    let http = engine.http_addr();
    assert_eq!(refusals(http, "tcp", "wrong_password").await, 2.0);
    assert_eq!(refusals(http, "tcp", "unknown_user").await, 1.0);
    assert_eq!(refusals(http, "tcp", "subscribe_denied").await, 1.0);
    assert_eq!(refusals(http, "tcp", "publish_denied").await, 2.0);
    // The in-process services this ACL gives nothing add lines of their own (listener
    // "local"); the clients' refusals are one line each.
    let tcp_lines = audit.lines().into_iter().filter(|l| l["listener"] == "tcp").count();
    assert_eq!(tcp_lines, 6, "one line per refusal:\n{text}");

    // The refused clients left everyone else alone.
    probe.client.publish(&probe_topic, QoS::AtLeastOnce, false, "still here").await.unwrap();
    assert_eq!(&probe.next_publish_on(&probe_topic).await.payload[..], b"still here");
    kitchen.client.publish("alicia/devices/kitchen/status", V5QoS::AtLeastOnce, false, "on").await.unwrap();
    assert_eq!(kitchen.puback().await.reason, PubAckReason::Success);
    engine.stop().await;
}

/// An engine whose ACL is `acl`, with a reader (`watcher`) who may read and write
/// everything under `alicia/`.
async fn engine_with_acl(dir: &Path, acl: &str) -> (TestEngine, AuditFile) {
    let audit = AuditFile::in_dir(dir);
    let (passwords, acl_file) = (dir.join("passwords"), dir.join("acl"));
    write_passwords(&passwords, &[("watcher", "w-pass")]);
    std::fs::write(&acl_file, acl).unwrap();
    let mut config = test_config();
    config.security.allow_anonymous = false;
    config.security.password_file = Some(passwords);
    config.security.acl_file = Some(acl_file);
    config.security.audit_file = Some(audit.path.clone());
    (TestEngine::start(config).await, audit)
}

/// The health service under an ACL that does not let it register: the refusal is
/// audited under its username, and no registration reaches a reader who may read it.
async fn health_is_refused(acl: &str, reason: &str, topic: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, audit) = engine_with_acl(dir.path(), acl).await;

    let line = audit.wait_for(reason, &[("username", "health_monitor"), ("topic", topic)]).await;
    assert_eq!((line["listener"].as_str(), line["client_id"].as_str()), (Some("local"), Some("health")));

    // The registration is retained when it is published: a reader that subscribes now
    // gets it before anything published after its SUBACK, such as this fence.
    let (mut watcher, _) = V4Client::connect(engine.mqtt_port(), "watcher", v4_login("watcher", "w-pass")).await;
    let codes = watcher.subscribe("alicia/system/discovery/#", QoS::AtLeastOnce).await;
    assert_eq!(codes, [rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    watcher.client.publish("alicia/system/discovery/fence", QoS::AtLeastOnce, false, "fence").await.unwrap();
    loop {
        let p = watcher.next_publish().await;
        assert_ne!(p.topic, "alicia/system/discovery/register", "a refused registration got through");
        if p.topic == "alicia/system/discovery/fence" {
            break;
        }
    }
    assert!(refusals(engine.http_addr(), "local", reason).await >= 1.0);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_service_granted_nothing_cannot_even_listen() {
    // Its first act, subscribing to health checks, is refused; it goes no further.
    let acl = "user watcher\ntopic readwrite alicia/#\n";
    health_is_refused(acl, "subscribe_denied", "alicia/system/health/check").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_service_may_not_register_without_its_grant() {
    // health_monitor may hear health checks and nothing else: its registration is refused.
    let acl = "user health_monitor\ntopic read alicia/system/health/check\n\nuser watcher\ntopic readwrite alicia/#\n";
    health_is_refused(acl, "publish_denied", "alicia/system/discovery/register").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_shipped_acl_the_engine_registers() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditFile::in_dir(dir.path());
    // The development password file: every user of the shipped ACL, password
    // "dev-<username>" (its header says so).
    let passwords = dir.path().join("passwords");
    std::fs::copy(bus_config_dir().join("passwords.example"), &passwords).unwrap();
    let mut config = test_config();
    config.security.allow_anonymous = false;
    config.security.password_file = Some(passwords);
    config.security.acl_file = Some(bus_config_dir().join("acl"));
    config.security.audit_file = Some(audit.path.clone());
    let engine = TestEngine::start(config).await;

    let (mut dashboard, _) =
        V4Client::connect(engine.mqtt_port(), "dashboard", v4_login("dashboard", "dev-dashboard")).await;
    let codes = dashboard.subscribe("alicia/system/discovery/register", QoS::AtLeastOnce).await;
    assert_eq!(codes, [rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]);
    let registration = dashboard.next_publish_on("alicia/system/discovery/register").await;
    let envelope: serde_json::Value = serde_json::from_slice(&registration.payload).unwrap();
    assert_eq!(envelope["source"], "alicia", "{envelope}");
    assert_eq!(audit.find("publish_denied", &[("username", "health_monitor")]), None);
    assert_eq!(audit.find("subscribe_denied", &[("username", "health_monitor")]), None);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_rotates_by_size_and_keeps_what_it_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditFile::in_dir(dir.path());
    let mut config = test_config();
    config.security.allow_anonymous = false;
    config.security.audit_file = Some(audit.path.clone());
    config.security.audit_max_bytes = 4096;
    config.security.audit_keep = 2;
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();

    // 40 anonymous CONNECTs with 200-byte ids: about 14 KB of audit lines, 0x05 each.
    const ATTEMPTS: usize = 40;
    for i in 0..ATTEMPTS {
        let id = format!("anonymous-{i:03}-{}", "a".repeat(186));
        let mut raw = RawClient::connect(port).await;
        assert_eq!(raw.handshake(&id, 30, |_| {}).await, 0x05, "3.1.1 not authorized");
    }
    alicia_e2e::wait_for("every refusal counted", || async {
        refusals(engine.http_addr(), "tcp", "anonymous").await == ATTEMPTS as f64
    })
    .await;
    // The newest line is in the live file once all are written.
    let last = format!("anonymous-{:03}-", ATTEMPTS - 1);
    audit.wait_for_line("the last refusal", |l| l["client_id"].as_str().is_some_and(|id| id.starts_with(&last))).await;

    // audit.log, .1 and .2, each at most max_bytes; no .3; the newest lines in the live
    // file, older ones in .1, the oldest kept in .2; every line whole JSON.
    let numbered = |n: u32| dir.path().join(format!("audit.log.{n}"));
    assert!(numbered(1).exists() && numbered(2).exists(), "rotated files");
    assert!(!numbered(3).exists(), "audit_keep = 2 keeps two rotated files");
    let mut ids = Vec::new();
    for path in [numbered(2), numbered(1), audit.path.clone()] {
        let bytes = std::fs::metadata(&path).unwrap().len();
        assert!(bytes <= 4096, "{} has {bytes} bytes", path.display());
        for line in (AuditFile { path }).lines() {
            assert_eq!(line["reason"], "anonymous");
            ids.push(line["client_id"].as_str().unwrap()[10..13].parse::<usize>().unwrap());
        }
    }
    assert!(
        !ids.is_empty() && ids.windows(2).all(|w| w[1] == w[0] + 1),
        "oldest to newest, none lost between: {ids:?}"
    );
    assert_eq!(ids.last(), Some(&(ATTEMPTS - 1)));
    assert!(ids[0] > 0, "the oldest lines went with the oldest file");
    engine.stop().await;
}
