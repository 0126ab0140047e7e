//! Session life cycle: last wills, persistent sessions, keep-alive, client ids.

use std::time::Duration;

use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::engine::TestEngine;
use alicia_e2e::raw::RawClient;
use alicia_e2e::unique_topic;
use rumqttc::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_fires_on_abrupt_disconnect_but_not_on_clean_disconnect() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/will");
    let (mut watcher, _) = V4Client::connect(port, "will-watcher", |_| {}).await;
    watcher.subscribe(&format!("{topic}/#"), QoS::AtLeastOnce).await;

    // A client that says goodbye properly: its will must not fire.
    let mut polite = RawClient::connect(port).await;
    let will = rumqttc::LastWill::new(format!("{topic}/polite"), "polite gone", QoS::AtLeastOnce, false);
    assert_eq!(polite.handshake("will-polite", 30, |c| c.last_will = Some(will)).await, 0);
    polite.send(&[0xE0, 0x00]).await; // DISCONNECT
    polite.until_closed().await;

    // A client whose socket just drops: its will fires.
    let mut abrupt = RawClient::connect(port).await;
    let will = rumqttc::LastWill::new(format!("{topic}/abrupt"), "abrupt gone", QoS::AtLeastOnce, false);
    assert_eq!(abrupt.handshake("will-abrupt", 30, |c| c.last_will = Some(will)).await, 0);
    drop(abrupt);

    let got = watcher.next_publish().await;
    assert_eq!(got.topic, format!("{topic}/abrupt"), "only the abrupt client's will is published");
    assert_eq!(got.payload, "abrupt gone".as_bytes());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_resumes_with_messages_sent_while_away() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/persistent");
    let persistent = |o: &mut rumqttc::MqttOptions| {
        o.set_clean_session(false);
    };
    let (mut device, ack) = V4Client::connect(port, "persistent-device", persistent).await;
    assert!(!ack.session_present, "first connection has no session");
    device.subscribe(&topic, QoS::AtLeastOnce).await;
    device.client.disconnect().await.unwrap();
    device.closed().await;

    let (mut publisher, _) = V4Client::connect(port, "persistent-pub", |_| {}).await;
    publisher.client.publish(&topic, QoS::AtLeastOnce, false, "while you were away").await.unwrap();
    publisher.acked().await;

    let (mut device, ack) = V4Client::connect(port, "persistent-device", persistent).await;
    assert!(ack.session_present, "the session was kept");
    assert_eq!(device.next_publish().await.payload, "while you were away".as_bytes());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_closed_after_one_and_a_half_keep_alives() {
    let engine = TestEngine::with_defaults().await;
    let mut silent = RawClient::connect(engine.mqtt_port()).await;
    assert_eq!(silent.handshake("keepalive-silent", 1, |_| {}).await, 0);
    // 1.5 s allowed by the spec; the bound here only catches "never closed".
    let rest = silent.until_closed_within(Duration::from_secs(8)).await;
    assert!(rest.is_empty(), "a v3.1.1 client just sees the socket close, got {rest:?}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_zero_is_accepted_and_served() {
    let engine = TestEngine::with_defaults().await;
    let mut client = RawClient::connect(engine.mqtt_port()).await;
    assert_eq!(client.handshake("keepalive-zero", 0, |_| {}).await, 0, "keep-alive 0 means none, not an error");
    client.send(&[0xC0, 0x00]).await; // PINGREQ
    assert_eq!(client.read_exact(2).await.unwrap(), [0xD0, 0x00], "PINGRESP");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_follow_the_spec() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();

    // 3.1.1: an empty id with a clean session is accepted...
    let mut empty = RawClient::connect(port).await;
    assert_eq!(empty.handshake("", 30, |_| {}).await, 0);
    // ...and refused with 0x02 when a persistent session is asked for.
    let mut empty_persistent = RawClient::connect(port).await;
    assert_eq!(empty_persistent.handshake("", 30, |c| c.clean_session = false).await, 2);
    assert!(empty_persistent.until_closed().await.is_empty());

    // MQTT 5: the server assigns an id and says which.
    let (_c, ack) = V5Client::connect(port, "", |_| {}).await;
    let assigned = ack.properties.and_then(|p| p.assigned_client_identifier).expect("assigned id in CONNACK");
    assert!(assigned.starts_with("alicia-"), "{assigned}");

    // Characters rumqttd's router would reject are valid MQTT client ids.
    let topic = unique_topic("e2e/ids");
    let (mut odd, _) = V4Client::connect(port, "kitchen/speaker+1#$", |_| {}).await;
    odd.subscribe(&topic, QoS::AtLeastOnce).await;
    let (publisher, _) = V4Client::connect(port, "ids-pub", |_| {}).await;
    publisher.client.publish(&topic, QoS::AtLeastOnce, false, "hi").await.unwrap();
    assert_eq!(odd.next_publish().await.payload, "hi".as_bytes());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connection_with_same_id_takes_over_and_the_first_is_told() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let (mut first, _) = V5Client::connect(port, "takeover", |_| {}).await;
    let (_second, _) = V5Client::connect(port, "takeover", |_| {}).await;
    let (reason, _) = first.closed().await;
    assert_eq!(reason, Some(rumqttc::v5::mqttbytes::v5::DisconnectReasonCode::SessionTakenOver));
    engine.stop().await;
}
