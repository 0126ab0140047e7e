//! The in-flight and queue limits: a clear refusal for the offender, nothing lost for
//! anyone else.

use alicia_e2e::clients::V4Client;
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::raw::RawClient;
use alicia_e2e::unique_topic;
use rumqttc::QoS;

fn publish_qos2(topic: &str, pkid: u16, payload: &[u8]) -> Vec<u8> {
    // v5 PUBLISH: topic, packet id, empty properties, payload.
    let remaining = 2 + topic.len() + 2 + 1 + payload.len();
    assert!(remaining < 128);
    let mut p = vec![0x34, remaining as u8];
    p.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    p.extend_from_slice(topic.as_bytes());
    p.extend_from_slice(&pkid.to_be_bytes());
    p.push(0);
    p.extend_from_slice(payload);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_unacknowledged_publishes_than_receive_maximum_is_refused() {
    let mut config = test_config();
    config.limits.max_inflight_messages = 5;
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();
    let mut greedy = RawClient::connect(port).await;
    assert_eq!(greedy.handshake_v5("greedy").await, 0);
    // Six QoS 2 publishes and no PUBREL: the server has completed (PUBCOMP) none of them.
    // (QoS 1 publishes are acknowledged as they are read, so they never pile up.)
    let topic = unique_topic("e2e/inflight");
    let burst: Vec<u8> = (1..=6).flat_map(|pkid| publish_qos2(&topic, pkid, b"x")).collect();
    greedy.send(&burst).await;
    let mut reason = None;
    while let Some((kind, body)) = greedy.read_packet().await {
        if kind == 0xE0 {
            reason = Some(body[0]);
        }
    }
    assert_eq!(reason, Some(0x93), "DISCONNECT receive maximum exceeded");

    // A client that waits for its acks never hits the limit.
    let (mut polite, _) = V4Client::connect(port, "polite", |o| {
        o.set_inflight(5);
    })
    .await;
    for i in 0..20 {
        polite.client.publish(&topic, QoS::AtLeastOnce, false, vec![i]).await.unwrap();
    }
    for _ in 0..20 {
        polite.acked().await;
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_loses_qos0_beyond_its_queue_but_not_qos1() {
    let mut config = test_config();
    config.limits.max_queued_messages = 10;
    let engine = TestEngine::start(config).await;
    let port = engine.mqtt_port();
    let flood = unique_topic("e2e/queue");

    // The stalled subscriber: subscribes, then does not read while the flood runs.
    let mut stalled = RawClient::connect(port).await;
    assert_eq!(stalled.handshake("stalled", 30, |_| {}).await, 0);
    let marker = format!("{flood}-marker");
    let mut subscribe = bytes::BytesMut::new();
    let mut packet = rumqttc::Subscribe::new(format!("{flood}/#"), QoS::AtMostOnce);
    packet.pkid = 1;
    packet.add(marker.clone(), QoS::AtLeastOnce);
    packet.write(&mut subscribe).unwrap();
    stalled.send(&subscribe).await;
    let (kind, _) = stalled.read_packet().await.unwrap();
    assert_eq!(kind, 0x90, "SUBACK");

    // 20 MB of QoS 0 fills the socket buffers, then the session's queue.
    const FLOOD: usize = 20_000;
    let (mut publisher, _) = V4Client::connect(port, "flooder", |o| {
        o.set_max_packet_size(2048, 2048);
    })
    .await;
    let body = vec![0u8; 1000];
    for _ in 0..FLOOD {
        publisher.client.publish(format!("{flood}/x"), QoS::AtMostOnce, false, body.clone()).await.unwrap();
    }
    publisher.client.publish(&marker, QoS::AtLeastOnce, false, "marker").await.unwrap();
    publisher.acked().await;

    // Now read everything: the QoS 1 marker must be there, the flood cut short.
    let mut flood_received = 0;
    loop {
        let (kind, body) = stalled.read_packet().await.expect("stream continues until the marker");
        match kind >> 4 {
            3 if body.ends_with(b"marker") => break,
            3 => flood_received += 1,
            _ => {}
        }
    }
    assert!(flood_received > 0, "the queue delivered what it held");
    assert!(flood_received < FLOOD, "QoS 0 beyond max_queued_messages was dropped ({flood_received} of {FLOOD})");

    // The flooder's own session and everyone else are unharmed.
    let (mut watcher, _) = V4Client::connect(port, "queue-watcher", |_| {}).await;
    watcher.subscribe(&marker, QoS::AtLeastOnce).await;
    publisher.client.publish(&marker, QoS::AtLeastOnce, false, "again").await.unwrap();
    assert_eq!(watcher.next_publish().await.payload, "again".as_bytes());
    engine.stop().await;
}
