//! `[security]` with real clients: a password file made by Debian's `mosquitto_passwd`,
//! an ACL file in mosquitto's syntax; every refusal with the specification's code
//! (rumqttc 3.1.1 and 5, `mosquitto_pub`), counted, and the rest of the bus untouched.
//!
//! Each reason's counter is asserted in one test only: the metrics are the process's.

use std::path::Path;
use std::process::Command;

use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::{http_get, metric, unique_topic};
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode as V5Code, Filter, LastWill, PubAckReason, SubscribeReasonCode as V5Sub,
};
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::QoS;

const ACL: &str = "\
# anonymous clients: nothing (they cannot connect here anyway)
user kitchen
topic readwrite alicia/devices/kitchen/#
topic read alicia/system/#

user satellite
topic write alicia/voice/audio/#
topic write alicia/secret/#
topic write alicia/devices/kitchen/status

user dashboard
topic read alicia/#
topic deny alicia/voice/audio/#
topic deny alicia/secret/#

user probe
topic readwrite e2e/#
";

/// Users and passwords, written by the real `mosquitto_passwd`.
const USERS: [(&str, &str); 4] =
    [("kitchen", "k-pass"), ("satellite", "s-pass"), ("dashboard", "d-pass"), ("probe", "p-pass")];

fn mosquitto_passwd(file: &Path) {
    for (i, (user, password)) in USERS.iter().enumerate() {
        let mut cmd = Command::new("mosquitto_passwd");
        if i == 0 {
            cmd.arg("-c");
        }
        let out = cmd.arg("-b").arg(file).args([user, password]).output().expect("mosquitto_passwd (make deps)");
        assert!(out.status.success(), "mosquitto_passwd: {}", String::from_utf8_lossy(&out.stderr));
    }
}

async fn secured_engine(dir: &Path) -> TestEngine {
    let (passwords, acl) = (dir.join("passwords"), dir.join("acl"));
    mosquitto_passwd(&passwords);
    std::fs::write(&acl, ACL).unwrap();
    let mut config = test_config();
    config.security.allow_anonymous = false;
    config.security.password_file = Some(passwords);
    config.security.acl_file = Some(acl);
    TestEngine::start(config).await
}

fn login(user: &str) -> impl FnOnce(&mut rumqttc::MqttOptions) + '_ {
    move |o| {
        let password = USERS.iter().find(|(u, _)| *u == user).map_or("nope", |(_, p)| p);
        o.set_credentials(user, password);
    }
}

fn login_v5(user: &str, password: &str) -> impl FnOnce(&mut rumqttc::v5::MqttOptions) {
    let (user, password) = (user.to_string(), password.to_string());
    move |o| {
        o.set_credentials(user, password);
    }
}

async fn security_refusals(engine: &TestEngine, reason: &str) -> f64 {
    let name = format!("alicia_security_refusals_total{{listener=\"tcp\",reason=\"{reason}\"}}");
    metric(engine.http_addr(), &name).await.unwrap_or(0.0)
}

/// A user with rights publishes and receives, and health says 200.
async fn assert_bus_works_for_probe(engine: &TestEngine) {
    let topic = unique_topic("e2e/secured");
    let (mut probe, _) = V4Client::connect(engine.mqtt_port(), &topic.replace('/', "-"), login("probe")).await;
    probe.subscribe(&topic, QoS::AtLeastOnce).await;
    probe.client.publish(&topic, QoS::AtLeastOnce, false, "probe").await.unwrap();
    assert_eq!(&probe.next_publish_on(&topic).await.payload[..], b"probe");
    let (status, body) = http_get(engine.http_addr(), "/healthz").await;
    assert_eq!(status, 200, "healthz: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_checked_with_the_specs_codes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = secured_engine(dir.path()).await;
    let port = engine.mqtt_port();

    // MQTT 5: wrong password and unknown user 0x86, no username 0x87.
    for (user, password, code) in
        [("kitchen", "wrong", V5Code::BadUserNamePassword), ("stranger", "k-pass", V5Code::BadUserNamePassword)]
    {
        let mut client = V5Client::start(port, "v5-login", login_v5(user, password));
        match client.connack().await {
            Err(rumqttc::v5::ConnectionError::ConnectionRefused(got)) => assert_eq!(got, code, "{user}"),
            other => panic!("{user}: expected a refusal, got {other:?}"),
        }
    }
    let mut anonymous = V5Client::start(port, "v5-anonymous", |_| {});
    match anonymous.connack().await {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(got)) => assert_eq!(got, V5Code::NotAuthorized),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // 3.1.1: 0x04 and 0x05.
    let mut wrong = V4Client::start(port, "v4-login", |o| {
        o.set_credentials("kitchen", "wrong");
    });
    match wrong.connack().await {
        Err(rumqttc::ConnectionError::ConnectionRefused(got)) => {
            assert_eq!(got, rumqttc::ConnectReturnCode::BadUserNamePassword)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut anonymous = V4Client::start(port, "v4-anonymous", |_| {});
    match anonymous.connack().await {
        Err(rumqttc::ConnectionError::ConnectionRefused(got)) => {
            assert_eq!(got, rumqttc::ConnectReturnCode::NotAuthorized)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The foreign peer: mosquitto_pub with the right password gets through, with a
    // wrong one it is told so.
    let pub_with = |password: &str| {
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-u", "kitchen", "-P", password])
            .args(["-t", "alicia/devices/kitchen/status", "-m", "on", "-q", "1"])
            .output()
            .expect("mosquitto_pub (make deps)")
    };
    let ok = pub_with("k-pass");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let refused = pub_with("wrong");
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(said.contains("bad user name or password"), "{said}");

    assert_eq!(security_refusals(&engine, "wrong_password").await, 3.0);
    assert_eq!(security_refusals(&engine, "unknown_user").await, 1.0);
    assert_eq!(security_refusals(&engine, "anonymous").await, 2.0);
    assert_bus_works_for_probe(&engine).await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_decides_subscribe_publish_delivery_retained_and_wills() {
    let dir = tempfile::tempdir().unwrap();
    let engine = secured_engine(dir.path()).await;
    let port = engine.mqtt_port();

    // SUBSCRIBE: a filter with nothing readable under it, 0x87 (5) / 0x80 (3.1.1); the
    // readable one in the same packet is granted.
    let (mut kitchen5, _) = V5Client::connect(port, "kitchen-5", login_v5("kitchen", "k-pass")).await;
    let filters = vec![
        Filter::new("alicia/voice/#", V5QoS::AtLeastOnce),
        Filter::new("alicia/devices/kitchen/#", V5QoS::AtLeastOnce),
    ];
    let codes = kitchen5.subscribe_filters(filters).await;
    assert_eq!(codes, [V5Sub::NotAuthorized, V5Sub::Success(V5QoS::AtLeastOnce)]);
    let (mut kitchen4, _) = V4Client::connect(port, "kitchen-4", login("kitchen")).await;
    let codes = kitchen4.subscribe("alicia/voice/#", QoS::AtLeastOnce).await;
    assert_eq!(codes, [rumqttc::SubscribeReasonCode::Failure]);

    // A wider filter never carries a denied topic, live or retained.
    let (mut satellite, _) = V4Client::connect(port, "satellite", login("satellite")).await;
    satellite.client.publish("alicia/secret/code", QoS::AtLeastOnce, true, "1234").await.unwrap();
    satellite.acked().await;
    let (mut dashboard, _) = V4Client::connect(port, "dashboard", login("dashboard")).await;
    dashboard.subscribe("alicia/#", QoS::AtLeastOnce).await;
    satellite
        .client
        .publish("alicia/voice/audio/kitchen/frame", QoS::AtLeastOnce, false, vec![0u8; 640])
        .await
        .unwrap();
    satellite.client.publish("alicia/devices/kitchen/status", QoS::AtLeastOnce, false, "on").await.unwrap();
    loop {
        let p = dashboard.next_publish().await;
        assert!(!p.topic.starts_with("alicia/secret/"), "retained {} leaked", p.topic);
        assert!(!p.topic.starts_with("alicia/voice/audio/"), "{} leaked", p.topic);
        if p.topic == "alicia/devices/kitchen/status" {
            break;
        }
    }

    // PUBLISH: MQTT 5 is told 0x87; 3.1.1 is acknowledged and the message goes nowhere
    // (the allowed one the same client sends next is the first the reader gets).
    kitchen5.client.publish("alicia/devices/hall/command", V5QoS::AtLeastOnce, false, "on").await.unwrap();
    assert_eq!(kitchen5.puback().await.reason, PubAckReason::NotAuthorized);
    let (mut reader, _) = V4Client::connect(port, "dashboard-2", login("dashboard")).await;
    reader.subscribe("alicia/devices/#", QoS::AtLeastOnce).await;
    kitchen4.client.publish("alicia/devices/hall/command", QoS::AtLeastOnce, false, "denied").await.unwrap();
    kitchen4.client.publish("alicia/devices/kitchen/status", QoS::AtLeastOnce, false, "allowed").await.unwrap();
    let p = reader.next_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("alicia/devices/kitchen/status", &b"allowed"[..]));

    // A will on a topic the client may not publish: the CONNECT is refused.
    let mut willful = V5Client::start(port, "kitchen-will", |o| {
        o.set_credentials("kitchen", "k-pass");
        o.set_last_will(LastWill::new("alicia/devices/hall/status", "gone", V5QoS::AtLeastOnce, false, None));
    });
    match willful.connack().await {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(got)) => assert_eq!(got, V5Code::NotAuthorized),
        other => panic!("expected a refusal, got {other:?}"),
    }

    assert_eq!(security_refusals(&engine, "subscribe_denied").await, 2.0);
    assert_eq!(security_refusals(&engine, "publish_denied").await, 2.0);
    assert_eq!(security_refusals(&engine, "will_denied").await, 1.0);
    assert_bus_works_for_probe(&engine).await;
    engine.stop().await;
}
