//! `[mqtt.tls]` with real clients: rumqttc over rustls and Debian's `mosquitto_pub`
//! with `--cafile --cert --key`. A client certificate's CN is the username and the ACL
//! applies to it; a missing, foreign or revoked certificate is refused at the
//! handshake, counted by reason; a client that stalls mid-handshake delays no one.
//!
//! Each reason's counter is asserted in one test only: the metrics are the process's.

use std::path::Path;

use alicia_e2e::clients::V4Client;
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::gateway::AuditFile;
use alicia_e2e::tls::DevPki;
use alicia_e2e::{metric, mosquitto, wait_for, PATIENCE};
use rumqttc::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ACL: &str = "\
user kitchen-sensor
topic readwrite alicia/devices/kitchen-sensor/#

user dashboard
topic read alicia/devices/#
";

async fn tls_engine(pki: &DevPki, dir: &Path) -> TestEngine {
    tls_engine_with(pki, dir, |_| {}).await
}

async fn tls_engine_with(pki: &DevPki, dir: &Path, tweak: impl FnOnce(&mut alicia_config::AliciaConfig)) -> TestEngine {
    let acl = dir.join("acl");
    std::fs::write(&acl, ACL).unwrap();
    let mut config = test_config();
    pki.configure(&mut config);
    config.mqtt.connect_timeout_ms = 1_000;
    config.security.allow_anonymous = false;
    config.security.acl_file = Some(acl);
    config.security.audit_file = Some(dir.join("audit.log"));
    tweak(&mut config);
    TestEngine::start(config).await
}

fn tls_port(engine: &TestEngine) -> u16 {
    engine.engine.mqtt_tls_addr().expect("tls listener").port()
}

/// A TLS client as `name`; its CONNECT username claims to be someone else.
async fn tls_client(pki: &DevPki, port: u16, name: &str) -> V4Client {
    let transport = pki.transport(Some(name));
    let (client, _) = V4Client::connect(port, name, |o| {
        o.set_transport(transport);
        o.set_credentials("dashboard", "not-a-password");
    })
    .await;
    client
}

/// The security refusals of the TLS listener for `reason`.
async fn tls_refusals(engine: &TestEngine, reason: &str) -> f64 {
    let name = format!("alicia_security_refusals_total{{listener=\"tls\",reason=\"{reason}\"}}");
    metric(engine.http_addr(), &name).await.unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_holders_get_in_as_their_cn_and_the_acl_applies() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::new(dir.path(), &["kitchen-sensor", "dashboard"]);
    let engine = tls_engine(&pki, dir.path()).await;
    let port = tls_port(&engine);
    let mut dashboard = tls_client(&pki, port, "dashboard").await;
    assert_eq!(
        dashboard.subscribe("alicia/devices/#", QoS::AtLeastOnce).await,
        [rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );

    // mosquitto_pub as kitchen-sensor: its own topic passes; a neighbour's is dropped
    // (3.1.1 has no code for it), even though it claims the dashboard's username.
    let mut args = pki.mosquitto_args("kitchen-sensor");
    args.extend(["-u", "dashboard", "-P", "x", "-q", "1"].map(String::from));
    let publish = |topic: &str, message: &str| {
        let mut all = args.clone();
        all.extend(["-t".to_string(), topic.to_string(), "-m".to_string(), message.to_string()]);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        mosquitto::publish(port, &refs);
    };
    publish("alicia/devices/hall/status", "spoofed");
    publish("alicia/devices/kitchen-sensor/status", "on");
    let p = dashboard.next_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("alicia/devices/kitchen-sensor/status", &b"on"[..]));

    // The dashboard may read but not write: its publish never arrives.
    dashboard.client.publish("alicia/devices/kitchen-sensor/status", QoS::AtLeastOnce, false, "forged").await.unwrap();
    dashboard.acked().await;
    publish("alicia/devices/kitchen-sensor/status", "fence");
    let p = dashboard.next_publish().await;
    assert_eq!(&p.payload[..], b"fence");
    // Counted under the listener they came through.
    let received = metric(engine.http_addr(), "alicia_mqtt_publishes_received_total{listener=\"tls\"}").await;
    assert!(received.unwrap_or(0.0) >= 4.0, "{received:?}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_foreign_and_plain_text_clients_are_refused_at_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::new(dir.path(), &["kitchen-sensor"]);
    let other = tempfile::tempdir().unwrap();
    let stranger = DevPki::new(other.path(), &["kitchen-sensor"]);
    let engine = tls_engine(&pki, dir.path()).await;
    let port = tls_port(&engine);

    // No certificate: rustls refuses before any MQTT byte.
    let mut bare = V4Client::start(port, "bare", |o| {
        o.set_transport(pki.transport(None));
    });
    assert!(bare.connack().await.is_err());
    wait_for("certificate_required counted", || async { tls_refusals(&engine, "certificate_required").await >= 1.0 })
        .await;

    // A certificate with the right CN from another CA.
    let mut args = stranger.mosquitto_args("kitchen-sensor");
    args[1] = pki.path("ca.crt");
    let out = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "alicia/devices/kitchen-sensor/x", "-m", "1"])
        .args(&args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a foreign certificate got in");
    wait_for("certificate_untrusted counted", || async { tls_refusals(&engine, "certificate_untrusted").await >= 1.0 })
        .await;
    let audit = AuditFile::in_dir(dir.path());
    for reason in ["certificate_required", "certificate_untrusted"] {
        let line = audit.wait_for(reason, &[("listener", "tls"), ("action", "connect")]).await;
        assert!(line["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{line}");
    }

    // Plain MQTT on the TLS port.
    let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain.write_all(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, plain.read_to_end(&mut rest)).await.expect("closed");
    wait_for("tls_protocol counted", || async { tls_refusals(&engine, "tls_protocol").await >= 1.0 }).await;

    // The rightful owner still gets in.
    let mut owner = tls_client(&pki, port, "kitchen-sensor").await;
    owner.subscribe("alicia/devices/kitchen-sensor/#", QoS::AtLeastOnce).await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_after_reload_and_live_clients_stay() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::new(dir.path(), &["kitchen-sensor", "dashboard"]);
    let engine = tls_engine(&pki, dir.path()).await;
    let port = tls_port(&engine);
    let mut dashboard = tls_client(&pki, port, "dashboard").await;
    dashboard.subscribe("alicia/devices/#", QoS::AtLeastOnce).await;
    let sensor = tls_client(&pki, port, "kitchen-sensor").await;

    alicia_tls::pki::revoke(dir.path(), "kitchen-sensor").unwrap();
    engine.engine.reload().expect("reload");
    // A broken CRL on a later reload keeps the revocation in force.
    std::fs::write(dir.path().join("crl.pem"), "not a crl").unwrap();
    assert!(engine.engine.reload().unwrap_err().contains("crl"), "a broken file is named");

    let mut again = V4Client::start(port, "kitchen-sensor-2", |o| {
        o.set_transport(pki.transport(Some("kitchen-sensor")));
    });
    assert!(again.connack().await.is_err(), "the revoked certificate got in");
    wait_for("certificate_revoked counted", || async { tls_refusals(&engine, "certificate_revoked").await >= 1.0 })
        .await;
    AuditFile::in_dir(dir.path()).wait_for("certificate_revoked", &[("listener", "tls")]).await;

    // The connection made before the revocation is not dropped.
    sensor.client.publish("alicia/devices/kitchen-sensor/status", QoS::AtLeastOnce, false, "still here").await.unwrap();
    let p = dashboard.next_publish().await;
    assert_eq!(&p.payload[..], b"still here");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_stalled_mid_handshake_lock_no_one_out_and_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::new(dir.path(), &["dashboard"]);
    let passwords = dir.path().join("passwords");
    let mut file = alicia_auth::PasswordFile::new();
    file.set("plain", b"p-pass").unwrap();
    file.save(&passwords).unwrap();
    // The TLS listener's pool of sockets still in their handshake is exactly full.
    let engine = tls_engine_with(&pki, dir.path(), |c| {
        c.limits.max_pending_connections = 50;
        c.security.password_file = Some(passwords);
    })
    .await;
    let port = tls_port(&engine);

    // 50 sockets that send the first bytes of a ClientHello and then nothing.
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
        stalled.push(s);
    }
    // Meanwhile a plain MQTT client gets in (each listener has its own pool)...
    let plain = V4Client::connect(engine.mqtt_port(), "plain", |o| {
        o.set_credentials("plain", "p-pass");
    });
    let (_plain, ack) = plain.await;
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);

    // Each stalled socket is closed by its own deadline (connect_timeout_ms = 1 s).
    for mut s in stalled {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(PATIENCE, s.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a stalled handshake was never closed");
    }
    wait_for("handshake_timeout counted", || async { tls_refusals(&engine, "handshake_timeout").await >= 50.0 }).await;
    // ... and once they are gone, a TLS client too.
    let mut dashboard = tls_client(&pki, port, "dashboard").await;
    dashboard.subscribe("alicia/devices/#", QoS::AtLeastOnce).await;
    engine.stop().await;
}
