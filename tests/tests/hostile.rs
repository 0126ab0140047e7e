//! The misbehaviours that used to bring the bus down (issue 7's numbered cases), each
//! sent as the exact bytes a client sent, each followed by the proof that an ordinary
//! client still publishes and receives and that health tells the truth.

use std::time::Duration;

use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::raw::RawClient;
use alicia_e2e::{assert_bus_works, http_get, metric, mosquitto, unique_topic, wait_for};
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_in_any_utf8_are_routed_unchanged() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    // The reproduction: a first character that is not ASCII panicked rumqttd's router.
    // The subscriber's SUBACKs say its filters are in place before anything is sent.
    let (mut sub, _) = V4Client::connect(port, "utf8-subscriber", |_| {}).await;
    sub.subscribe("é/#", QoS::AtMostOnce).await;
    sub.subscribe("温度/#", QoS::AtMostOnce).await;
    mosquitto::publish(port, &["-t", "é/x", "-m", "hi"]);
    mosquitto::publish(port, &["-t", "温度/室内", "-m", "21"]);
    let mut got = Vec::new();
    for _ in 0..2 {
        let p = sub.next_publish().await;
        got.push(format!("{} {}", p.topic, String::from_utf8_lossy(&p.payload)));
    }
    assert_eq!(got, ["é/x hi", "温度/室内 21"]);
    assert_bus_works(&engine).await;
    engine.stop().await;
}

/// A v5 PUBLISH with a topic `topic` (as raw bytes) and no properties.
fn v5_publish(topic: &[u8]) -> Vec<u8> {
    let mut p = vec![0x30, (2 + topic.len() + 1 + 2) as u8];
    p.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    p.extend_from_slice(topic);
    p.push(0);
    p.extend_from_slice(b"hi");
    p
}

/// Sends a PUBLISH on a fresh v5 connection and returns the DISCONNECT reason it got.
async fn v5_refusal(port: u16, publish: &[u8]) -> Option<u8> {
    let mut client = RawClient::connect(port).await;
    assert_eq!(client.handshake_v5(&unique_topic("bad-topic").replace('/', "-")).await, 0);
    client.send(publish).await;
    let mut reason = None;
    while let Some((kind, body)) = client.read_packet().await {
        if kind == 0xE0 {
            reason = body.first().copied();
        }
    }
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_publish_topics_get_the_spec_refusal() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    assert_eq!(v5_refusal(port, &v5_publish(b"a/+")).await, Some(0x90), "wildcard: topic name invalid");
    assert_eq!(v5_refusal(port, &v5_publish(b"a/#")).await, Some(0x90), "wildcard: topic name invalid");
    assert_eq!(v5_refusal(port, &v5_publish(b"a\0b")).await, Some(0x81), "U+0000: malformed");
    assert_eq!(v5_refusal(port, &v5_publish(&[0xff, 0xfe])).await, Some(0x81), "not UTF-8: malformed");
    assert_eq!(v5_refusal(port, &v5_publish(b"")).await, Some(0x82), "empty without alias: protocol error");
    // 3.1.1 has no DISCONNECT from a server: the connection is closed.
    let mut v3 = RawClient::connect(port).await;
    assert_eq!(v3.handshake("bad-v3", 30, |_| {}).await, 0);
    v3.send(&[0x30, 5, 0, 3, b'a', b'/', b'#']).await;
    assert!(v3.until_closed().await.is_empty());
    assert_bus_works(&engine).await;
    engine.stop().await;
}

fn rich_properties() -> PublishProperties {
    PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(3600),
        topic_alias: None,
        response_topic: Some("reply/here".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        user_properties: vec![("room".into(), "kitchen".into()), ("温度".into(), "21".into())],
        subscription_identifiers: vec![],
        content_type: Some("text/plain".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_properties_reach_v5_subscribers_and_are_stripped_for_3_1_1() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/props");
    let (mut old, _) = V4Client::connect(port, "ha-like-311", |_| {}).await;
    old.subscribe(&topic, QoS::AtLeastOnce).await;
    let (mut new, _) = V5Client::connect(port, "v5-sub", |_| {}).await;
    new.subscribe(&topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await;
    let (publisher, _) = V5Client::connect(port, "v5-pub", |_| {}).await;
    for (n, retain) in [(1, false), (2, true)] {
        publisher
            .client
            .publish_with_properties(
                &topic,
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                retain,
                format!("m{n}"),
                rich_properties(),
            )
            .await
            .unwrap();
        // The 3.1.1 subscriber (the reproduction panicked its io worker) gets both.
        let p = old.next_publish_on(&topic).await;
        assert_eq!(&p.payload[..], format!("m{n}").as_bytes());
        let p = new.next_publish().await;
        let props = p.properties.expect("properties forwarded");
        assert_eq!(props.user_properties, rich_properties().user_properties);
        assert_eq!(props.content_type.as_deref(), Some("text/plain"));
        assert_eq!(props.response_topic.as_deref(), Some("reply/here"));
        assert_eq!(props.correlation_data, rich_properties().correlation_data);
        assert_eq!(props.payload_format_indicator, Some(1));
        assert!(props.message_expiry_interval.is_some_and(|e| e <= 3600 && e > 3500));
    }
    // The retained v5 message goes to every 3.1.1 client that subscribes later.
    for i in 0..3 {
        let (mut later, _) = V4Client::connect(port, &format!("later-311-{i}"), |_| {}).await;
        later.subscribe(&topic, QoS::AtLeastOnce).await;
        let p = later.next_publish_on(&topic).await;
        assert!(p.retain);
        assert_eq!(&p.payload[..], b"m2");
    }
    let (mut later5, _) = V5Client::connect(port, "later-5", |_| {}).await;
    later5.subscribe(&topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce).await;
    let p = later5.next_publish().await;
    assert!(p.retain);
    assert_eq!(p.properties.expect("retained with its properties").user_properties, rich_properties().user_properties);
    assert_bus_works(&engine).await;
    engine.stop().await;
}

/// CONNECT, then a TCP reset (linger 0), at every step of the handshake.
async fn reset_storm(port: u16, n: usize) {
    let connect = RawClient::connect_packet("storm", 30, |_| {});
    for i in 0..n {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let std = stream.into_std().unwrap();
        let socket = socket2::Socket::from(std);
        socket.set_linger(Some(Duration::ZERO)).unwrap();
        let mut stream = tokio::net::TcpStream::from_std(socket.into()).unwrap();
        use tokio::io::AsyncWriteExt;
        match i % 3 {
            0 => {
                let id = format!("storm-{i}");
                stream.write_all(&RawClient::connect_packet(&id, 30, |_| {})).await.ok();
            }
            1 => {
                stream.write_all(&connect[..connect.len() / 2]).await.ok();
            }
            _ => {}
        }
        drop(stream);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_storm_leaves_nothing_behind() {
    let mut config = test_config();
    config.limits.max_connections = 100;
    config.limits.max_connections_per_ip = 10_000;
    config.limits.max_pending_connections = 10_000;
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();
    reset_storm(port, 1200).await;
    // Every one of them is gone again: no connection, no session is left over.
    wait_for("connections and sessions back to none", || async {
        let active = metric(engine.http_addr(), "alicia_mqtt_connections_active").await;
        let sessions = metric(engine.http_addr(), "alicia_mqtt_sessions").await;
        let pending = metric(engine.http_addr(), "alicia_mqtt_connections_pending").await;
        active == Some(0.0) && sessions == Some(0.0) && pending == Some(0.0)
    })
    .await;
    // 1,200 resets against a limit of 100: a new client still gets in.
    assert_bus_works(&engine).await;
    let (status, _) = http_get(engine.http_addr(), "/healthz").await;
    assert_eq!(status, 200);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_publish_without_retain_keeps_the_retained_message() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/keep");
    mosquitto::publish(port, &["-t", &topic, "-m", "on", "-r", "-q", "1"]);
    // The reproduction: an empty non-retained PUBLISH erased it.
    mosquitto::publish(port, &["-t", &topic, "-n", "-q", "1"]);
    let (mut later, _) = V4Client::connect(port, "later", |_| {}).await;
    later.subscribe(&topic, QoS::AtLeastOnce).await;
    let p = later.next_publish_on(&topic).await;
    assert!(p.retain);
    assert_eq!(&p.payload[..], b"on");
    // An empty retained PUBLISH does clear it.
    mosquitto::publish(port, &["-t", &topic, "-n", "-r", "-q", "1"]);
    let (mut last, _) = V4Client::connect(port, "last", |_| {}).await;
    last.subscribe(&topic, QoS::AtLeastOnce).await;
    mosquitto::publish(port, &["-t", &topic, "-m", "live", "-q", "1"]);
    let p = last.next_publish_on(&topic).await;
    assert!(!p.retain, "no retained message before the live one");
    assert_eq!(&p.payload[..], b"live");
    assert_bus_works(&engine).await;
    engine.stop().await;
}
