//! A will on a topic of `[security.signing] require`: the broker publishes it itself,
//! past the check every PUBLISH gets, so it is checked at CONNECT. An unsigned one is
//! refused with the CONNECT (0x87 / 0x05), counted, audited under its topic; a signed
//! one is delivered as it was signed when its client vanishes.
//!
//! Its own test binary: the `unsigned` counter is asserted exactly, and the metrics are
//! the process's.

use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::engine::TestEngine;
use alicia_e2e::gateway::{refusals, AuditFile};
use alicia_e2e::raw::RawClient;
use alicia_e2e::signing::{command, python_sign, signing_config, write_keys, COMMAND};
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::QoS;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_will_on_a_signed_topic_must_be_signed_too() {
    let dir = tempfile::tempdir().unwrap();
    let keys = write_keys(dir.path());
    let audit = AuditFile::in_dir(dir.path());
    let engine = TestEngine::start(signing_config(&keys, &audit)).await;
    let port = engine.mqtt_port();
    let (mut reader, _) = V4Client::connect(port, "will-reader", |_| {}).await;
    reader.subscribe(COMMAND, QoS::AtLeastOnce).await;

    // An unsigned will would be published by the broker itself, past the check every
    // PUBLISH gets: the CONNECT that carries one is refused (0x87 / 0x05).
    let unsigned = command(json!({"action": "unlock", "by": "will"})).to_string();
    let will = rumqttc::v5::mqttbytes::v5::LastWill::new(COMMAND, unsigned.clone(), V5QoS::AtLeastOnce, false, None);
    let mut v5 = V5Client::start(port, "will-v5", |o| {
        o.set_last_will(will);
    });
    match v5.connack().await {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::v5::mqttbytes::v5::ConnectReturnCode::NotAuthorized)
        }
        other => panic!("an unsigned will: expected 0x87, got {other:?}"),
    }
    let mut v4 = V4Client::start(port, "will-v4", |o| {
        o.set_last_will(rumqttc::LastWill::new(COMMAND, unsigned, QoS::AtLeastOnce, false));
    });
    match v4.connack().await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::ConnectReturnCode::NotAuthorized)
        }
        other => panic!("an unsigned will: expected 0x05, got {other:?}"),
    }
    for id in ["will-v5", "will-v4"] {
        let line = audit.wait_for("unsigned", &[("client_id", id)]).await;
        assert_eq!((line["action"].as_str(), line["topic"].as_str()), (Some("connect"), Some(COMMAND)));
    }
    assert_eq!(refusals(engine.http_addr(), "tcp", "unsigned").await, 2.0);

    // A signed will is taken, and delivered as it was signed when the client vanishes.
    let signed = python_sign(&command(json!({"action": "off", "by": "will"})), &keys);
    let mut dying = RawClient::connect(port).await;
    let code = dying
        .handshake("will-signed", 30, |c| {
            c.last_will = Some(rumqttc::LastWill::new(COMMAND, signed.clone(), QoS::AtLeastOnce, false));
        })
        .await;
    assert_eq!(code, 0x00, "a signed will is accepted");
    // Gone without a DISCONNECT: the will is due.
    drop(dying);
    let delivered = reader.next_publish_on(COMMAND).await;
    assert_eq!(&delivered.payload[..], &signed[..], "only the signed will is ever delivered");
    engine.stop().await;
}
