//! Every limit of `[limits]`, hit on purpose: the exact refusal the client sees (per
//! MQTT version), the counter that says so, and an ordinary client still getting
//! through afterwards.

use std::time::Duration;

use alicia_config::AliciaConfig;
use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::raw::RawClient;
use alicia_e2e::{assert_bus_works, metric, unique_topic, wait_for, PATIENCE};
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode as V5Code, PubAckReason, SubscribeReasonCode as V5Sub};
use rumqttc::v5::mqttbytes::QoS as V5QoS;
use rumqttc::QoS;

async fn engine_with(tweak: impl FnOnce(&mut AliciaConfig)) -> TestEngine {
    let mut config = test_config();
    tweak(&mut config);
    TestEngine::start(config).await
}

async fn refusals(engine: &TestEngine, reason: &str) -> f64 {
    let name = format!("alicia_mqtt_refusals_total{{listener=\"tcp\",reason=\"{reason}\"}}");
    metric(engine.http_addr(), &name).await.unwrap_or(0.0)
}

/// The refusals of `reason` once they reach `expected` (or after 10 s, whatever they
/// are): a refusal is counted as its connection closes, so a client can see the close
/// a moment before the count.
async fn refusals_reaching(engine: &TestEngine, reason: &str, expected: f64) -> f64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let seen = refusals(engine, reason).await;
        if seen >= expected || std::time::Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A v5 CONNECT's refusal code (rumqttc reports it as the error).
async fn v5_refused(port: u16, id: &str, tweak: impl FnOnce(&mut rumqttc::v5::MqttOptions)) -> V5Code {
    let mut client = V5Client::start(port, id, tweak);
    match client.connack().await {
        Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn v4_refused(port: u16, id: &str) -> rumqttc::ConnectReturnCode {
    let mut client = V4Client::start(port, id, |_| {});
    match client.connack().await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_over_the_limit_is_not_valid() {
    let engine = engine_with(|c| c.limits.max_client_id_length = 30).await;
    let port = engine.mqtt_port();
    let long = "x".repeat(31);
    assert_eq!(v5_refused(port, &long, |_| {}).await, V5Code::ClientIdentifierNotValid);
    assert_eq!(v4_refused(port, &long).await, rumqttc::ConnectReturnCode::BadClientId);
    assert_eq!(refusals_reaching(&engine, "client_id_rejected", 2.0).await, 2.0);
    V5Client::connect(port, &"y".repeat(30), |_| {}).await;
    assert_bus_works(&engine).await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_over_the_length_limit_are_refused() {
    let engine = engine_with(|c| c.limits.max_topic_length = 20).await;
    let port = engine.mqtt_port();
    let (mut v5, _) = V5Client::connect(port, "long-filter-5", |_| {}).await;
    let codes = v5.subscribe(&"f".repeat(21), V5QoS::AtMostOnce).await;
    assert_eq!(codes, [V5Sub::TopicFilterInvalid]);
    let (mut v4, _) = V4Client::connect(port, "long-filter-4", |_| {}).await;
    assert_eq!(v4.subscribe(&"f".repeat(21), QoS::AtMostOnce).await, [rumqttc::SubscribeReasonCode::Failure]);
    // A PUBLISH topic over the limit: DISCONNECT 0x90.
    let mut raw = RawClient::connect(port).await;
    assert_eq!(raw.handshake_v5("long-topic").await, 0);
    let topic = "t".repeat(21);
    let mut publish = vec![0x30, (2 + topic.len() + 1) as u8];
    publish.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    publish.extend_from_slice(topic.as_bytes());
    publish.push(0);
    raw.send(&publish).await;
    let (kind, body) = raw.read_packet().await.expect("a DISCONNECT");
    assert_eq!((kind, body[0]), (0xE0, 0x90));
    assert_bus_works(&engine).await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_per_client_and_filters_per_subscribe_are_capped() {
    let engine = engine_with(|c| {
        c.limits.max_subscriptions_per_client = 3;
        c.limits.max_filters_per_subscribe = 2;
    })
    .await;
    let port = engine.mqtt_port();
    let (mut v5, _) = V5Client::connect(port, "many-filters", |_| {}).await;
    let filters: Vec<_> =
        ["a", "b", "c", "d"].iter().map(|f| rumqttc::v5::mqttbytes::v5::Filter::new(*f, V5QoS::AtLeastOnce)).collect();
    let codes = v5.subscribe_filters(filters).await;
    assert_eq!(
        codes,
        [
            V5Sub::Success(V5QoS::AtLeastOnce),
            V5Sub::Success(V5QoS::AtLeastOnce),
            V5Sub::QuotaExceeded,
            V5Sub::QuotaExceeded
        ]
    );
    assert_eq!(v5.subscribe("c", V5QoS::AtMostOnce).await, [V5Sub::Success(V5QoS::AtMostOnce)]);
    assert_eq!(v5.subscribe("d", V5QoS::AtMostOnce).await, [V5Sub::QuotaExceeded], "a fourth subscription");
    assert_eq!(
        v5.subscribe("a", V5QoS::AtMostOnce).await,
        [V5Sub::Success(V5QoS::AtMostOnce)],
        "a repeat is no new one"
    );
    let (mut v4, _) = V4Client::connect(port, "many-filters-4", |_| {}).await;
    for f in ["a", "b", "c"] {
        v4.subscribe(f, QoS::AtMostOnce).await;
    }
    assert_eq!(v4.subscribe("d", QoS::AtMostOnce).await, [rumqttc::SubscribeReasonCode::Failure]);
    assert!(refusals_reaching(&engine, "subscription_limit", 4.0).await >= 4.0);
    assert_bus_works(&engine).await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_past_their_limits_are_refused() {
    // The engine's own health report and registration are retained: room for one more.
    let engine = engine_with(|c| {
        c.limits.max_retained_messages = 3;
        c.limits.max_retained_bytes = 16 * 1024;
    })
    .await;
    let port = engine.mqtt_port();
    wait_for("the engine's own retained messages", || async {
        metric(engine.http_addr(), "alicia_mqtt_retained_messages").await == Some(2.0)
    })
    .await;
    let base = unique_topic("e2e/retained-limit");
    let (mut publisher, _) = V5Client::connect(port, "retainer", |o| {
        o.set_max_packet_size(Some(1 << 20));
    })
    .await;
    publisher.client.publish(format!("{base}/one"), V5QoS::AtLeastOnce, true, "1").await.unwrap();
    assert_eq!(publisher.puback().await.reason, PubAckReason::Success);
    let (mut live, _) = V4Client::connect(port, "retained-live", |_| {}).await;
    live.subscribe(&format!("{base}/#"), QoS::AtLeastOnce).await;
    // MQTT 5: a second topic is refused with 0x97 and not published at all.
    publisher.client.publish(format!("{base}/two"), V5QoS::AtLeastOnce, true, "2").await.unwrap();
    assert_eq!(publisher.puback().await.reason, PubAckReason::QuotaExceeded);
    // Too many bytes for the one that fits is refused the same way.
    publisher.client.publish(format!("{base}/one"), V5QoS::AtLeastOnce, true, vec![b'x'; 20_000]).await.unwrap();
    assert_eq!(publisher.puback().await.reason, PubAckReason::QuotaExceeded);
    // 3.1.1 cannot be told: today's subscribers get it, it is not kept.
    let (v4, _) = V4Client::connect(port, "retainer-4", |_| {}).await;
    v4.client.publish(format!("{base}/three"), QoS::AtLeastOnce, true, "3").await.unwrap();
    loop {
        let p = live.next_publish().await;
        assert_ne!(p.topic, format!("{base}/two"), "a refused MQTT 5 publish is not delivered");
        if p.topic == format!("{base}/three") {
            assert_eq!((&p.payload[..], p.retain), (&b"3"[..], false));
            break;
        }
    }
    let (mut later, _) = V4Client::connect(port, "retained-later", |_| {}).await;
    later.subscribe(&format!("{base}/#"), QoS::AtLeastOnce).await;
    let p = later.next_publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        (format!("{base}/one").as_str(), &b"1"[..]),
        "only the first is kept"
    );
    assert_eq!(refusals_reaching(&engine, "retained_limit", 3.0).await, 3.0);
    assert_bus_works(&engine).await;
    engine.stop().await;
}

/// A dashboard subscribing to a wide filter gets every retained message under it at once;
/// the per-client message count, meant for live traffic, must not drop them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_subscriber_gets_every_retained_message_past_the_queue_count() {
    const RETAINED: usize = 60;
    let engine = engine_with(|c| {
        c.limits.max_queued_messages = 5;
        c.limits.max_inflight_messages = 10;
    })
    .await;
    let port = engine.mqtt_port();
    let base = unique_topic("e2e/retained-wide");
    let (mut publisher, _) = V4Client::connect(port, "retained-many", |_| {}).await;
    for i in 0..RETAINED {
        publisher.client.publish(format!("{base}/{i}"), QoS::AtLeastOnce, true, format!("{i}")).await.unwrap();
        publisher.acked().await;
    }
    for (qos, id) in [(QoS::AtMostOnce, "wide-qos0"), (QoS::AtLeastOnce, "wide-qos1")] {
        let (mut wide, _) = V4Client::connect(port, id, |_| {}).await;
        // A fence: each node applies retained messages as it reads them from the log, and
        // the subscriber's node has read all 60 once it gets what the publisher sent next.
        let fence = format!("{base}-fence");
        wide.subscribe(&fence, QoS::AtLeastOnce).await;
        publisher.client.publish(&fence, QoS::AtLeastOnce, false, "fence").await.unwrap();
        wide.next_publish_on(&fence).await;
        wide.subscribe(&format!("{base}/#"), qos).await;
        let mut seen = std::collections::BTreeSet::new();
        let all = async {
            while seen.len() < RETAINED {
                let p = wide.next_publish().await;
                assert!(p.retain, "{id}: only retained messages are under {base}");
                assert_eq!(p.payload, p.topic.rsplit('/').next().unwrap(), "{id}: payload of {}", p.topic);
                assert!(seen.insert(p.topic.clone()), "{id}: {} twice", p.topic);
            }
        };
        // Keep-alive traffic would keep a per-event wait alive for ever: one deadline.
        let got_all = tokio::time::timeout(PATIENCE, all).await.is_ok();
        assert!(got_all, "{id}: {} of the {RETAINED} retained messages arrived", seen.len());
    }
    assert_bus_works(&engine).await;
    engine.stop().await;
}

// Sessions and connections per address are two tests on two engines: a connection the
// client has closed is given back by the engine a moment later, so one engine with both
// caps would count a closing socket against the address, by the machine's timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_capped_persistent_ones_included() {
    let engine = engine_with(|c| c.limits.max_sessions = 3).await;
    let port = engine.mqtt_port();
    let persistent = |o: &mut rumqttc::v5::MqttOptions| {
        o.set_session_expiry_interval(Some(600));
    };
    // Two persistent sessions outlive their connections and still count.
    for id in ["kept-1", "kept-2"] {
        let (client, _) = V5Client::connect(port, id, persistent).await;
        client.client.disconnect().await.unwrap();
    }
    let (_s1, _) = V5Client::connect(port, "s1", |_| {}).await;
    // A fourth session: 0x97 (v5), 0x03 (3.1.1).
    assert_eq!(v5_refused(port, "s2", |_| {}).await, V5Code::QuotaExceeded);
    assert_eq!(v4_refused(port, "s2").await, rumqttc::ConnectReturnCode::ServiceUnavailable);
    assert_eq!(refusals_reaching(&engine, "session_limit", 2.0).await, 2.0);
    // Taking up a kept session needs no new one.
    let (_kept, ack) = V5Client::connect(port, "kept-1", |o| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(600));
    })
    .await;
    assert!(ack.session_present);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped() {
    let engine = engine_with(|c| c.limits.max_connections_per_ip = 2).await;
    let port = engine.mqtt_port();
    let (_first, _) = V5Client::connect(port, "first", |_| {}).await;
    let (_second, _) = V4Client::connect(port, "second", |_| {}).await;
    // A third open connection from the same address: 0x97 (v5), 0x03 (3.1.1). A socket
    // refused at the door never takes a place, so the two refusals cannot crowd out
    // each other.
    assert_eq!(v5_refused(port, "third", |_| {}).await, V5Code::QuotaExceeded);
    assert_eq!(v4_refused(port, "third").await, rumqttc::ConnectReturnCode::ServiceUnavailable);
    assert_eq!(refusals_reaching(&engine, "per_ip_limit", 2.0).await, 2.0);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_that_never_connect_are_capped_and_timed_out() {
    let engine = engine_with(|c| {
        c.limits.max_pending_connections = 3;
        c.mqtt.connect_timeout_ms = 500;
    })
    .await;
    let port = engine.mqtt_port();
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(RawClient::connect(port).await);
    }
    wait_for("three pending", || async {
        metric(engine.http_addr(), "alicia_mqtt_connections_pending").await == Some(3.0)
    })
    .await;
    // A fourth socket is closed at once, with nothing sent.
    let mut extra = RawClient::connect(port).await;
    assert!(extra.until_closed_within(Duration::from_secs(5)).await.is_empty());
    assert_eq!(refusals_reaching(&engine, "pending_limit", 1.0).await, 1.0);
    // The silent ones are closed at the connect timeout, and clients get in again.
    for mut s in silent {
        assert!(s.until_closed_within(Duration::from_secs(5)).await.is_empty());
    }
    assert_eq!(refusals_reaching(&engine, "connect_timeout", 3.0).await, 3.0);
    assert_bus_works(&engine).await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_over_its_byte_limit_is_too_large() {
    let engine = engine_with(|c| c.limits.max_connect_bytes = 256).await;
    let port = engine.mqtt_port();
    let will = |o: &mut rumqttc::v5::MqttOptions| {
        o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
            "w",
            vec![b'x'; 1000],
            V5QoS::AtMostOnce,
            false,
            None,
        ));
    };
    assert_eq!(v5_refused(port, "big-will", will).await, V5Code::PacketTooLarge);
    // 3.1.1 has no code for it: the connection is closed.
    let mut raw = RawClient::connect(port).await;
    let packet = RawClient::connect_packet("big-will-4", 30, |c| {
        c.last_will = Some(rumqttc::LastWill::new("w", vec![b'x'; 1000], QoS::AtMostOnce, false));
    });
    raw.send(&packet).await;
    assert!(raw.until_closed().await.is_empty());
    assert_eq!(refusals_reaching(&engine, "packet_too_large", 2.0).await, 2.0);
    assert_bus_works(&engine).await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_bounded_in_bytes_then_dropped() {
    let engine = engine_with(|c| {
        c.limits.max_queued_bytes = 256 * 1024;
        c.mqtt.write_timeout_ms = 1000;
    })
    .await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/stalled");
    // Subscribes, then never reads a byte.
    let mut stalled = RawClient::connect_with_small_window(port).await;
    assert_eq!(stalled.handshake("stalled", 0, |_| {}).await, 0);
    let mut subscribe = bytes::BytesMut::new();
    rumqttc::Subscribe::new(&topic, QoS::AtMostOnce).write(&mut subscribe).unwrap();
    stalled.send(&subscribe).await;
    // Its SUBACK is the last thing it reads: the subscription is in place.
    let (kind, _) = stalled.read_packet().await.expect("a SUBACK");
    assert_eq!(kind >> 4, 9, "SUBACK");
    let (publisher, _) = V4Client::connect(port, "flooder", |o| {
        o.set_max_packet_size(1 << 20, 1 << 20);
    })
    .await;
    // 64 MiB at it: socket buffers fill (the engine's send buffer may grow to the host's
    // tcp_wmem maximum, commonly 4 MiB), the queue holds 256 KiB, the rest is dropped.
    for _ in 0..1024 {
        publisher.client.publish(&topic, QoS::AtMostOnce, false, vec![b'x'; 64 * 1024]).await.unwrap();
    }
    wait_for("drops counted by bytes", || async {
        let name = "alicia_mqtt_messages_dropped_total{reason=\"queue_bytes\"}";
        metric(engine.http_addr(), name).await.is_some_and(|n| n > 0.0)
    })
    .await;
    // Its socket takes nothing for the write timeout: it is disconnected.
    wait_for("the write timeout", || async {
        let name = "alicia_mqtt_disconnects_total{reason=\"write_timeout\"}";
        metric(engine.http_addr(), name).await == Some(1.0)
    })
    .await;
    assert_bus_works(&engine).await;
    engine.stop().await;
}
