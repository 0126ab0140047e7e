//! `[mqtt.websocket]` with a real WebSocket MQTT client (paho-mqtt, 3.1.1 and 5), plain
//! and over TLS with a client certificate, talking with plain-TCP clients through the
//! same bus; upgrades that are not MQTT are refused with their reason counted.

use std::path::PathBuf;
use std::process::Stdio;

use alicia_config::MqttWebSocketSection;
use alicia_e2e::clients::V4Client;
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::gateway::AuditFile;
use alicia_e2e::tls::DevPki;
use alicia_e2e::{metric, unique_topic, wait_for, PATIENCE};
use rumqttc::QoS;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

fn paho_script() -> PathBuf {
    // At run time (cargo test sets it), so a shared build cache never points elsewhere.
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    PathBuf::from(dir).join("scripts/paho_ws.py")
}

/// Runs paho over WebSocket: it subscribes to `topic/#`, publishes `message` to
/// `topic/ws` once subscribed; then `tcp` publishes `topic/tcp`. Returns what paho got.
async fn round_trip(port: u16, version: &str, tls: &[String], tcp: &mut V4Client, topic: &str) -> Vec<String> {
    let message = format!("from paho {version}");
    let mut child = // Debian's python, where `make deps` installs python3-paho-mqtt.
        tokio::process::Command::new("/usr/bin/python3")
        .arg(paho_script())
        .args(["--port", &port.to_string(), "--version", version, "--count", "2"])
        .args(["--subscribe", &format!("{topic}/#"), "--publish", &format!("{topic}/ws"), "--message", &message])
        .args(tls)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("/usr/bin/python3 with python3-paho-mqtt (make deps)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "subscribed" {
                tcp.client.publish(format!("{topic}/tcp"), QoS::AtLeastOnce, false, "from tcp").await.unwrap();
            }
            seen.push(line);
        }
    };
    tokio::time::timeout(PATIENCE, read).await.expect("paho finished");
    assert!(child.wait().await.unwrap().success(), "paho failed: {seen:?}");
    // The TCP subscriber got paho's message too.
    let p = tcp.next_publish_on(&format!("{topic}/ws")).await;
    assert_eq!(String::from_utf8_lossy(&p.payload), message);
    seen
}

fn websocket_section(tls: bool) -> MqttWebSocketSection {
    MqttWebSocketSection { listen: "127.0.0.1:0".parse().unwrap(), tls }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_over_websocket_talks_with_tcp_clients_in_3_1_1_and_5() {
    let mut config = test_config();
    config.mqtt.websocket = Some(websocket_section(false));
    let engine = TestEngine::start(config).await;
    let ws_port = engine.engine.mqtt_websocket_addr().unwrap().port();
    for version in ["3.1.1", "5"] {
        let topic = unique_topic("e2e/ws");
        let (mut tcp, _) =
            V4Client::connect(engine.mqtt_port(), &format!("tcp-{}", topic.replace('/', "-")), |_| {}).await;
        tcp.subscribe(&format!("{topic}/ws"), QoS::AtLeastOnce).await;
        let seen = round_trip(ws_port, version, &[], &mut tcp, &topic).await;
        assert_eq!(seen[0], r#"{"connack": 0}"#, "{version}");
        let payloads: Vec<&String> = seen.iter().filter(|l| l.contains("payload")).collect();
        assert_eq!(payloads.len(), 2, "{version}: {seen:?}");
        assert!(seen.iter().any(|l| l.contains("from tcp")), "{version}: {seen:?}");
    }
    // Counted under the listener they came through.
    let sent = metric(engine.http_addr(), "alicia_mqtt_publishes_received_total{listener=\"websocket\"}").await;
    assert_eq!(sent, Some(2.0));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_websocket_takes_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::new(dir.path(), &["dashboard"]);
    let mut config = test_config();
    pki.configure(&mut config);
    config.mqtt.websocket = Some(websocket_section(true));
    let engine = TestEngine::start(config).await;
    let ws_port = engine.engine.mqtt_websocket_addr().unwrap().port();
    let topic = unique_topic("e2e/wss");
    let (mut tcp, _) = V4Client::connect(engine.mqtt_port(), "wss-tcp-peer", |_| {}).await;
    tcp.subscribe(&format!("{topic}/ws"), QoS::AtLeastOnce).await;
    let tls =
        ["--cafile", &pki.path("ca.crt"), "--cert", &pki.path("dashboard.crt"), "--key", &pki.path("dashboard.key")]
            .map(String::from);
    let seen = round_trip(ws_port, "5", &tls, &mut tcp, &topic).await;
    assert!(seen.iter().any(|l| l.contains("from tcp")), "{seen:?}");
    engine.stop().await;
}

/// Sends `request` to the WebSocket port; returns what came back before the close.
async fn raw_upgrade(port: u16, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut answer)).await.expect("closed");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_that_are_not_mqtt_are_refused_and_counted() {
    let mut config = test_config();
    config.mqtt.websocket = Some(websocket_section(false));
    let engine = TestEngine::start(config).await;
    let port = engine.engine.mqtt_websocket_addr().unwrap().port();
    let refusals = |reason: &'static str| {
        let http = engine.http_addr();
        async move {
            let name = format!("alicia_mqtt_refusals_total{{listener=\"websocket\",reason=\"{reason}\"}}");
            metric(http, &name).await.unwrap_or(0.0)
        }
    };

    let upgrade = "GET /mqtt HTTP/1.1\r\nHost: alicia\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    let answer = raw_upgrade(port, format!("{upgrade}\r\n").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("mqtt subprotocol is required"), "{answer}");
    wait_for("websocket_subprotocol counted", || async { refusals("websocket_subprotocol").await >= 1.0 }).await;

    // Plain MQTT on the WebSocket port, and an endless header.
    raw_upgrade(port, b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd").await;
    let endless = format!("{upgrade}X-Filler: {}\r\n\r\n", "a".repeat(64 * 1024));
    raw_upgrade(port, endless.as_bytes()).await;
    wait_for("websocket_upgrade counted", || async { refusals("websocket_upgrade").await >= 2.0 }).await;

    // With the subprotocol, the upgrade is answered 101 naming it.
    let answer = raw_upgrade(port, format!("{upgrade}Sec-WebSocket-Protocol: mqtt\r\n\r\n").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("sec-websocket-protocol: mqtt"), "{answer}");
    alicia_e2e::assert_bus_works(&engine).await;
    engine.stop().await;
}

/// Runs paho over WebSocket with credentials; returns the CONNACK code it got.
async fn paho_connack(port: u16, version: &str, username: &str, password: &str) -> u64 {
    let out = tokio::process::Command::new("/usr/bin/python3")
        .arg(paho_script())
        .args(["--port", &port.to_string(), "--version", version, "--connect-only"])
        .args(["--username", username, "--password", password])
        .output();
    let out = tokio::time::timeout(PATIENCE, out).await.expect("paho finished").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(first).unwrap_or_else(|_| panic!("paho said {stdout:?}"));
    parsed["connack"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_meet_the_same_password_checks() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    let made = std::process::Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwords)
        .args(["dashboard", "d-pass"])
        .output()
        .expect("mosquitto_passwd (make deps)");
    assert!(made.status.success());
    let mut config = test_config();
    config.mqtt.websocket = Some(websocket_section(false));
    config.security.allow_anonymous = false;
    config.security.password_file = Some(passwords);
    config.security.audit_file = Some(dir.path().join("audit.log"));
    let engine = TestEngine::start(config).await;
    let port = engine.engine.mqtt_websocket_addr().unwrap().port();
    // 3.1.1: 0x04 bad user name or password; 5: 0x86.
    assert_eq!(paho_connack(port, "3.1.1", "dashboard", "wrong").await, 4);
    assert_eq!(paho_connack(port, "5", "dashboard", "wrong").await, 0x86);
    assert_eq!(paho_connack(port, "5", "nobody", "d-pass").await, 0x86);
    assert_eq!(paho_connack(port, "3.1.1", "dashboard", "d-pass").await, 0);
    let refused =
        metric(engine.http_addr(), "alicia_security_refusals_total{listener=\"websocket\",reason=\"wrong_password\"}")
            .await;
    assert_eq!(refused, Some(2.0));
    let audit = AuditFile::in_dir(dir.path());
    audit.wait_for("wrong_password", &[("listener", "websocket"), ("client_id", "paho-ws-3.1.1")]).await;
    let line = audit.wait_for("wrong_password", &[("listener", "websocket"), ("client_id", "paho-ws-5")]).await;
    assert_eq!(line["username"], "dashboard");
    audit.wait_for("unknown_user", &[("listener", "websocket"), ("username", "nobody")]).await;
    engine.stop().await;
}
