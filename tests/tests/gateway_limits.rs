//! The gateway's limits on who may come in and how fast, with real clients: device
//! tokens as MQTT passwords, a client past its publish rate (v5 DISCONNECT 0x96), an
//! address past its connection rate (CONNACK 0x9F / 0x03) and the failed-login
//! back-off (0x9F / 0x03); each refusal counted and audited, and the others untouched.
//!
//! Each reason's counter is asserted in one test only: the metrics are the process's.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use alicia_auth::device_token::{self, TokenKey};
use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::gateway::{refusals, write_passwords, AuditFile};
use alicia_e2e::gateway::{v4_login, v5_login};
use alicia_e2e::raw::RawClient;
use alicia_e2e::{unique_topic, wait_for};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as V5Code, DisconnectReasonCode};
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::{ConnectReturnCode as V4Code, QoS};

/// The CONNACK refusal code a v5 CONNECT gets.
async fn v5_refusal(port: u16, id: &str, user: &str, password: &str) -> V5Code {
    match V5Client::start(port, id, v5_login(user, password)).connack().await {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => code,
        other => panic!("{id}: expected a refusal, got {other:?}"),
    }
}

/// The CONNACK refusal code a 3.1.1 CONNECT gets.
async fn v4_refusal(port: u16, id: &str, user: &str, password: &str) -> V4Code {
    match V4Client::start(port, id, v4_login(user, password)).connack().await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => code,
        other => panic!("{id}: expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tokens_are_mqtt_passwords_for_their_device_only() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditFile::in_dir(dir.path());
    let key = TokenKey::generate().unwrap();
    let key_file = dir.path().join("token.key");
    std::fs::write(&key_file, format!("{}\n", key.to_base64())).unwrap();
    let passwords = dir.path().join("passwords");
    write_passwords(&passwords, &[("probe", "p-pass")]);
    let mut config = test_config();
    config.security.allow_anonymous = false;
    config.security.token_key_file = Some(key_file);
    config.security.password_file = Some(passwords);
    config.security.audit_file = Some(audit.path.clone());
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();

    // The device's token is its password, over 3.1.1, 5 and mosquitto_pub.
    let token = device_token::issue(&key, "kitchen-sensor", Duration::from_secs(600), SystemTime::now());
    let (mut v4, _) = V4Client::connect(port, "sensor-v4", v4_login("kitchen-sensor", &token)).await;
    let (v5, _) = V5Client::connect(port, "sensor-v5", v5_login("kitchen-sensor", &token)).await;
    let topic = unique_topic("e2e/token");
    v4.subscribe(&topic, QoS::AtLeastOnce).await;
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-u", "kitchen-sensor", "-P", &token])
        .args(["-t", &topic, "-m", "from mosquitto", "-q", "1"])
        .output()
        .expect("mosquitto_pub (make deps)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(&v4.next_publish_on(&topic).await.payload[..], b"from mosquitto");

    // Another device's name with it: 0x86 / 0x04, bad_token.
    assert_eq!(v5_refusal(port, "thief-v5", "pantry-sensor", &token).await, V5Code::BadUserNamePassword);
    assert_eq!(v4_refusal(port, "thief-v4", "pantry-sensor", &token).await, V4Code::BadUserNamePassword);
    let line = audit.wait_for("bad_token", &[("client_id", "thief-v5")]).await;
    assert_eq!((line["username"].as_str(), line["action"].as_str()), (Some("pantry-sensor"), Some("connect")));
    audit.wait_for("bad_token", &[("client_id", "thief-v4")]).await;

    // An expired token: 0x86 / 0x04, token_expired.
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let expired = device_token::issue(&key, "kitchen-sensor", Duration::from_secs(60), an_hour_ago);
    assert_eq!(v5_refusal(port, "late-v5", "kitchen-sensor", &expired).await, V5Code::BadUserNamePassword);
    assert_eq!(v4_refusal(port, "late-v4", "kitchen-sensor", &expired).await, V4Code::BadUserNamePassword);
    let line = audit.wait_for("token_expired", &[("client_id", "late-v5")]).await;
    assert_eq!(line["username"], "kitchen-sensor");

    // A password that is no token goes to the password file.
    let (_probe, _) = V5Client::connect(port, "probe", v5_login("probe", "p-pass")).await;
    assert_eq!(v5_refusal(port, "probe-wrong", "probe", "not-p-pass").await, V5Code::BadUserNamePassword);
    audit.wait_for("wrong_password", &[("client_id", "probe-wrong")]).await;

    let http = engine.http_addr();
    assert_eq!(refusals(http, "tcp", "bad_token").await, 2.0);
    assert_eq!(refusals(http, "tcp", "token_expired").await, 2.0);

    // The devices that came in with their token were not disturbed.
    v5.client.publish(&topic, V5QoS::AtLeastOnce, false, "from v5").await.unwrap();
    assert_eq!(&v4.next_publish_on(&topic).await.payload[..], b"from v5");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_publish_rate_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditFile::in_dir(dir.path());
    let mut config = test_config();
    config.limits.max_messages_per_second = 5;
    config.security.audit_file = Some(audit.path.clone());
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();

    let topic = unique_topic("e2e/rate");
    let (mut calm, _) = V4Client::connect(port, "calm", |_| {}).await;
    calm.subscribe(&topic, QoS::AtLeastOnce).await;

    // MQTT 5: told why, DISCONNECT 0x96.
    let (mut flooder, _) = V5Client::connect(port, "flooder-v5", |_| {}).await;
    for i in 0..50 {
        flooder.client.publish(&topic, V5QoS::AtMostOnce, false, format!("{i}")).await.unwrap();
    }
    let (reason, _) = flooder.closed().await;
    assert_eq!(reason, Some(DisconnectReasonCode::MessageRateTooHigh));
    let line = audit.wait_for("message_rate", &[("client_id", "flooder-v5")]).await;
    assert_eq!((line["action"].as_str(), line["topic"].as_str()), (Some("publish"), Some(topic.as_str())));

    // 3.1.1: the connection is closed.
    let (mut flooder3, _) = V4Client::connect(port, "flooder-v4", |_| {}).await;
    for i in 0..50 {
        flooder3.client.publish(&topic, QoS::AtMostOnce, false, format!("{i}")).await.unwrap();
    }
    let error = flooder3.closed().await;
    assert!(!matches!(error, rumqttc::ConnectionError::ConnectionRefused(_)), "{error:?}");
    audit.wait_for("message_rate", &[("client_id", "flooder-v4")]).await;
    assert_eq!(refusals(engine.http_addr(), "tcp", "message_rate").await, 2.0);

    // The calm client, publishing within its rate, is served throughout.
    calm.client.publish(&topic, QoS::AtLeastOnce, false, "calm").await.unwrap();
    loop {
        if &calm.next_publish_on(&topic).await.payload[..] == b"calm" {
            break;
        }
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_past_its_connection_rate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditFile::in_dir(dir.path());
    let mut config = test_config();
    config.limits.max_connects_per_ip_per_minute = 3;
    config.limits.rate_limit_loopback = true;
    config.security.audit_file = Some(audit.path.clone());
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();

    // Three connections a minute from 127.0.0.1 are fine.
    let topic = unique_topic("e2e/connect-rate");
    let (mut first, _) = V4Client::connect(port, "rate-1", |_| {}).await;
    let (second, _) = V5Client::connect(port, "rate-2", |_| {}).await;
    let (_third, _) = V4Client::connect(port, "rate-3", |_| {}).await;
    first.subscribe(&topic, QoS::AtLeastOnce).await;

    // The fourth (MQTT 5) gets 0x9F, the fifth (3.1.1) 0x03.
    let mut fourth = V5Client::start(port, "rate-4", |_| {});
    match fourth.connack().await {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => assert_eq!(code, V5Code::ConnectionRateExceeded),
        other => panic!("expected 0x9F, got {other:?}"),
    }
    let mut fifth = V4Client::start(port, "rate-5", |_| {});
    match fifth.connack().await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => assert_eq!(code, V4Code::ServiceUnavailable),
        other => panic!("expected 0x03, got {other:?}"),
    }
    // Refused at accept, before the CONNECT is read: the address is what the line names.
    let line = audit.wait_for("connect_rate", &[("action", "connect")]).await;
    assert_eq!(line["listener"], "tcp");
    assert!(line["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{line}");
    wait_for("two connect_rate lines", || {
        let n = audit.count("connect_rate");
        async move { n == 2 }
    })
    .await;
    assert_eq!(refusals(engine.http_addr(), "tcp", "connect_rate").await, 2.0);

    // Who came in before stays; another address is not held to this one's rate.
    second.client.publish(&topic, V5QoS::AtLeastOnce, false, "still on").await.unwrap();
    assert_eq!(&first.next_publish_on(&topic).await.payload[..], b"still on");
    let mut neighbour = RawClient::connect_from(port, [127, 0, 0, 2].into()).await;
    assert_eq!(neighbour.handshake_v5("neighbour").await, 0x00);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_back_off_and_then_let_the_right_password_in() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditFile::in_dir(dir.path());
    let passwords = dir.path().join("passwords");
    write_passwords(&passwords, &[("probe", "p-pass"), ("kitchen", "k-pass")]);
    let mut config = test_config();
    config.security.allow_anonymous = false;
    config.security.password_file = Some(passwords);
    config.security.login_failures_before_backoff = 2;
    config.security.login_backoff_max_ms = 1000;
    config.security.audit_file = Some(audit.path.clone());
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();

    // Two wrong passwords; then the right one, within the 1 s the back-off lasts, is
    // refused with 0x9F (5) / 0x03 (3.1.1). A machine stalled past that second makes
    // the right password work, which says nothing: the sequence is tried again.
    let mut backoffs = 0;
    for attempt in 0.. {
        assert!(attempt < 5, "never managed two failures and a retry within a second");
        assert_eq!(v5_refusal(port, "guess-1", "probe", "nope").await, V5Code::BadUserNamePassword);
        assert_eq!(v5_refusal(port, "guess-2", "probe", "nope").await, V5Code::BadUserNamePassword);
        let refused_at = Instant::now();
        let mut right = V5Client::start(port, "probe-v5", v5_login("probe", "p-pass"));
        match right.connack().await {
            Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
                assert_eq!(code, V5Code::ConnectionRateExceeded);
                backoffs += 1;
            }
            Ok(_) if refused_at.elapsed() >= Duration::from_millis(900) => continue,
            other => panic!("the right password during the back-off: expected 0x9F, got {other:?}"),
        }
        let mut right3 = V4Client::start(port, "probe-v4", v4_login("probe", "p-pass"));
        match right3.connack().await {
            Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                assert_eq!(code, V4Code::ServiceUnavailable);
                backoffs += 1;
            }
            Ok(_) if refused_at.elapsed() >= Duration::from_millis(900) => {}
            other => panic!("3.1.1 during the back-off: expected 0x03, got {other:?}"),
        }
        break;
    }
    // Only that username waits: another user logs in meanwhile.
    let (_kitchen, _) = V5Client::connect(port, "kitchen", v5_login("kitchen", "k-pass")).await;
    let line = audit.wait_for("login_backoff", &[("client_id", "probe-v5")]).await;
    assert_eq!((line["username"].as_str(), line["action"].as_str()), (Some("probe"), Some("connect")));

    // Once the back-off has passed, the right password works again.
    let mut polls = 0;
    let (mut probe, _) = loop {
        let mut client = V5Client::start(port, "probe-back", v5_login("probe", "p-pass"));
        match client.connack().await {
            Ok(ack) => break (client, ack),
            Err(rumqttc::v5::ConnectionError::ConnectionRefused(V5Code::ConnectionRateExceeded)) => {
                backoffs += 1;
                polls += 1;
                assert!(polls < 100, "still backing off after {polls} polls");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("after the back-off: {e:?}"),
        }
    };
    let topic = unique_topic("e2e/backoff");
    probe.subscribe(&topic, V5QoS::AtLeastOnce).await;
    assert_eq!(refusals(engine.http_addr(), "tcp", "login_backoff").await, f64::from(backoffs));
    wait_for("one audit line per back-off refusal", || {
        let n = audit.count("login_backoff");
        async move { n == backoffs as usize }
    })
    .await;
    engine.stop().await;
}
