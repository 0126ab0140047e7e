//! Bad input gets a clear refusal, only the offender is affected, and nothing else on
//! the bus is lost.

use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::raw::RawClient;
use alicia_e2e::unique_topic;
use rumqttc::v5::mqttbytes::v5::DisconnectReasonCode;
use rumqttc::QoS;

/// A publisher/subscriber pair that proves the bus still flows.
struct Bystanders {
    publisher: V4Client,
    subscriber: V4Client,
    topic: String,
    sent: u32,
}

impl Bystanders {
    async fn start(port: u16, name: &str) -> Bystanders {
        let topic = unique_topic("e2e/bystander");
        let (mut subscriber, _) = V4Client::connect(port, &format!("{name}-sub"), |_| {}).await;
        subscriber.subscribe(&topic, QoS::AtLeastOnce).await;
        let (publisher, _) = V4Client::connect(port, &format!("{name}-pub"), |_| {}).await;
        let mut b = Bystanders { publisher, subscriber, topic, sent: 0 };
        b.round_trip().await;
        b
    }

    /// One more message, which must arrive in order after all the earlier ones.
    async fn round_trip(&mut self) {
        self.sent += 1;
        let body = self.sent.to_string();
        self.publisher.client.publish(&self.topic, QoS::AtLeastOnce, false, body.clone()).await.unwrap();
        self.publisher.acked().await;
        assert_eq!(self.subscriber.next_publish().await.payload, body.as_bytes(), "bystander message {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packet_closes_only_that_connection() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let mut bystanders = Bystanders::start(port, "malformed").await;

    let mut bad = RawClient::connect(port).await;
    assert_eq!(bad.handshake("malformed-client", 30, |_| {}).await, 0);
    // A SUBSCRIBE whose remaining length promises more than its fields hold together:
    // topic length 0x00ff but only 3 bytes follow.
    bad.send(&[0x82, 0x07, 0x00, 0x01, 0x00, 0xff, b'a', b'/', b'b']).await;
    assert!(bad.until_closed().await.is_empty(), "v3.1.1: closed without a reply");

    bystanders.round_trip().await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_connect_is_closed() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let mut bystanders = Bystanders::start(port, "garbage").await;
    let mut http = RawClient::connect(port).await;
    http.send(b"GET / HTTP/1.1\r\nHost: alicia\r\n\r\n").await;
    assert!(http.until_closed().await.is_empty());
    bystanders.round_trip().await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_protocol_level_gets_connack_0x01() {
    let engine = TestEngine::with_defaults().await;
    let mut old = RawClient::connect(engine.mqtt_port()).await;
    // MQTT 3.1 ("MQIsdp", level 3).
    old.send(&[
        0x10, 0x12, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x02, 0x00, 0x3c, 0x00, 0x04, b'o', b'l', b'd',
        b'1',
    ])
    .await;
    assert_eq!(old.until_closed().await, [0x20, 0x02, 0x00, 0x01]);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_is_refused_while_others_flow() {
    let mut config = test_config();
    config.limits.message_size_limit = 4096;
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();
    let mut bystanders = Bystanders::start(port, "oversized").await;

    // MQTT 5: the CONNACK advertises the limit (rumqttc then refuses to send more)...
    let (_polite5, ack) = V5Client::connect(port, "oversized-polite", |_| {}).await;
    assert_eq!(ack.properties.and_then(|p| p.max_packet_size), Some(4096));
    // ...and a client that sends more anyway is told why: DISCONNECT 0x95.
    let topic = unique_topic("e2e/oversized");
    let mut big5 = RawClient::connect(port).await;
    assert_eq!(big5.handshake_v5("oversized-v5").await, 0);
    big5.send(&[0x30, 0x90, 0x4e, 0x00, 0x01, b'x', 0x00]).await; // PUBLISH, 10,000 bytes announced
    let (kind, body) = big5.read_packet().await.expect("a DISCONNECT");
    assert_eq!((kind, body[0]), (0xE0, DisconnectReasonCode::PacketTooLarge as u8));
    assert!(String::from_utf8_lossy(&body).contains("maximum packet size"), "reason string says why");
    assert!(big5.until_closed().await.is_empty());

    // MQTT 3.1.1 has no way to say why: the connection is closed.
    let mut big4 = RawClient::connect(port).await;
    assert_eq!(big4.handshake("oversized-v4", 30, |_| {}).await, 0);
    let mut publish = bytes::BytesMut::new();
    rumqttc::Publish::new(&topic, QoS::AtMostOnce, vec![7u8; 10_000]).write(&mut publish).unwrap();
    big4.send(&publish[..64]).await; // the header alone announces the size
    assert!(big4.until_closed().await.is_empty());

    // Right at the limit still goes through.
    let (mut sub, _) = V4Client::connect(port, "at-limit-sub", |_| {}).await;
    sub.subscribe(&topic, QoS::AtLeastOnce).await;
    let fits = vec![1u8; 4096 - 2 - topic.len() - 2 - 5];
    bystanders.publisher.client.publish(&topic, QoS::AtLeastOnce, false, fits.clone()).await.unwrap();
    assert_eq!(sub.next_publish().await.payload.len(), fits.len());
    bystanders.round_trip().await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_over_max_connections_gets_server_unavailable() {
    let mut config = test_config();
    config.limits.max_connections = 2;
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();
    let (_a, _) = V4Client::connect(port, "limit-a", |_| {}).await;
    let (_b, _) = V4Client::connect(port, "limit-b", |_| {}).await;

    let mut third = RawClient::connect(port).await;
    assert_eq!(third.handshake("limit-c", 30, |_| {}).await, 3, "3.1.1: 0x03 server unavailable");
    let mut fifth = V5Client::start(port, "limit-d", |_| {});
    let refused = fifth.connack().await.expect_err("refused");
    assert!(format!("{refused:?}").contains("QuotaExceeded"), "MQTT 5: 0x97 quota exceeded, got {refused:?}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connect_is_a_protocol_error() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let mut twice = RawClient::connect(port).await;
    assert_eq!(twice.handshake("connect-twice", 30, |_| {}).await, 0);
    twice.send(&RawClient::connect_packet("connect-twice", 30, |_| {})).await;
    assert!(twice.until_closed().await.is_empty());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_envelope_gets_an_error_event_naming_the_field() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let (mut listener, _) = V4Client::connect(port, "envelope-listener", |_| {}).await;
    listener.subscribe("alicia/voice/stt/error", QoS::AtLeastOnce).await;
    let (sender, _) = V4Client::connect(port, "envelope-sender", |_| {}).await;
    let bad = serde_json::json!({
        "message_id": "not-a-uuid",
        "timestamp": "2026-11-23T10:00:00Z",
        "source": "kitchen_satellite",
        "destination": "stt_service",
        "message_type": "request",
        "payload": {"data": {}}
    });
    sender.client.publish("alicia/voice/stt/request", QoS::AtLeastOnce, false, bad.to_string()).await.unwrap();
    let event = listener.next_publish_on("alicia/voice/stt/error").await;
    let event: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(event["source"], "alicia");
    assert_eq!(event["destination"], "kitchen_satellite", "addressed to the sender");
    assert_eq!(event["message_type"], "event");
    assert_eq!(event["payload"]["data"]["field"], "message_id");
    assert_eq!(event["payload"]["data"]["topic"], "alicia/voice/stt/request");
    assert_eq!(event["payload"]["data"]["original_message_id"], "not-a-uuid");

    // Not even JSON: still answered, on the legacy alias's canonical error topic.
    sender.client.publish("alicia/voice/stt/result", QoS::AtLeastOnce, false, "{{{").await.unwrap();
    let event = listener.next_publish_on("alicia/voice/stt/error").await;
    let event: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(event["payload"]["data"]["error_type"], "not_json");
    assert_eq!(event["destination"], "broadcast", "no readable source: broadcast");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_topic_filters_get_failure_codes_and_the_connection_stays() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/filters");
    // rumqttc refuses to send broken filters, so this client speaks raw 3.1.1.
    let mut client = RawClient::connect(port).await;
    assert_eq!(client.handshake("filter-client", 30, |_| {}).await, 0);
    let mut subscribe = rumqttc::Subscribe::new("$SYS/#", QoS::AtLeastOnce);
    subscribe.pkid = 9;
    subscribe.add("a/#/b".into(), QoS::AtLeastOnce);
    subscribe.add(topic.clone(), QoS::AtLeastOnce);
    let mut bytes = bytes::BytesMut::new();
    subscribe.write(&mut bytes).unwrap();
    client.send(&bytes).await;
    let (kind, body) = client.read_packet().await.expect("a SUBACK");
    assert_eq!((kind, body), (0x90, vec![0, 9, 0x01, 0x80, 0x01]), "granted, failure, granted");
    // Still connected, and the accepted filter works.
    let mut publish = bytes::BytesMut::new();
    rumqttc::Publish::new(&topic, QoS::AtMostOnce, "still here").write(&mut publish).unwrap();
    client.send(&publish).await;
    let (kind, body) = client.read_packet().await.expect("the publish");
    assert_eq!(kind >> 4, 3);
    assert!(body.ends_with(b"still here"));

    // `$SYS/#` is a valid filter (mosquitto_sub -t '$SYS/#'); a broken one is refused
    // with the MQTT 5 code.
    let (mut sys, _) = V5Client::connect(port, "sys-watcher", |_| {}).await;
    let codes = sys.subscribe("$SYS/#", rumqttc::v5::mqttbytes::QoS::AtMostOnce).await;
    assert_eq!(
        codes,
        [rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(rumqttc::v5::mqttbytes::QoS::AtMostOnce)]
    );
    let codes = sys.subscribe("$share//a", rumqttc::v5::mqttbytes::QoS::AtMostOnce).await;
    assert_eq!(codes, [rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::TopicFilterInvalid]);
    engine.stop().await;
}
