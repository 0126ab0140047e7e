//! MQTT 5, feature by feature, against a real v5 client (rumqttc's v5 client; raw bytes
//! where rumqttc will not send what a test needs).

use std::time::Duration;

use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::raw::RawClient;
use alicia_e2e::{unique_topic, PATIENCE};
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{
    Filter, LastWill, LastWillProperties, PublishProperties, RetainForwardRule, SubscribeProperties,
};
use rumqttc::v5::mqttbytes::QoS;

fn filter(path: &str, configure: impl FnOnce(&mut Filter)) -> Filter {
    let mut f = Filter::new(path, QoS::AtLeastOnce);
    configure(&mut f);
    f
}

/// Asserts nothing arrives for `quiet`: for what must NOT happen, the only proof is a
/// wait; every test that uses it first saw a later message arrive, so nothing earlier
/// is still in flight.
async fn nothing_within(client: &mut V5Client, quiet: Duration) {
    if let Ok(p) = tokio::time::timeout(quiet, client.next_publish()).await {
        panic!("unexpected delivery on {:?}", p.topic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_keeps_a_clients_own_messages_from_it() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/nolocal");
    let (mut me, _) = V5Client::connect(port, "nolocal-me", |_| {}).await;
    me.subscribe_filters(vec![filter(&topic, |f| f.nolocal = true), filter("e2e/nolocal-marker", |_| {})]).await;
    let (mut other, _) = V5Client::connect(port, "nolocal-other", |_| {}).await;
    other.subscribe(&topic, QoS::AtLeastOnce).await;
    me.client.publish(&topic, QoS::AtLeastOnce, false, "mine").await.unwrap();
    assert_eq!(&other.next_publish().await.payload[..], b"mine");
    // Published after "mine": when it arrives, "mine" would have too.
    other.client.publish("e2e/nolocal-marker", QoS::AtLeastOnce, false, "marker").await.unwrap();
    other.client.publish(&topic, QoS::AtLeastOnce, false, "theirs").await.unwrap();
    let p = me.next_publish().await;
    assert_eq!(&p.payload[..], b"marker", "my own message never came back");
    assert_eq!(&me.next_publish().await.payload[..], b"theirs", "other clients' messages still do");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_as_published_and_retain_handling() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/retain-options");
    let (publisher, _) = V5Client::connect(port, "rap-pub", |_| {}).await;
    publisher.client.publish(&topic, QoS::AtLeastOnce, true, "kept").await.unwrap();

    // Retain As Published: a live retained message keeps RETAIN=1 only when asked.
    let (mut keeps, _) = V5Client::connect(port, "rap-1", |_| {}).await;
    keeps.subscribe_filters(vec![filter(&topic, |f| f.preserve_retain = true)]).await;
    assert!(keeps.next_publish().await.retain, "the retained message on subscribe");
    let (mut clears, _) = V5Client::connect(port, "rap-0", |_| {}).await;
    clears.subscribe_filters(vec![filter(&topic, |_| {})]).await;
    assert!(clears.next_publish().await.retain);
    publisher.client.publish(&topic, QoS::AtLeastOnce, true, "again").await.unwrap();
    assert!(keeps.next_publish().await.retain, "RAP=1: as published");
    assert!(!clears.next_publish().await.retain, "RAP=0: cleared for a live message");

    // Retain Handling 0: on every subscribe; 1: only a new subscription; 2: never.
    let (mut handling, _) = V5Client::connect(port, "rh", |_| {}).await;
    let rule = |rule: RetainForwardRule| filter(&topic, move |f| f.retain_forward_rule = rule);
    handling.subscribe_filters(vec![rule(RetainForwardRule::OnEverySubscribe)]).await;
    assert_eq!(&handling.next_publish().await.payload[..], b"again");
    handling.subscribe_filters(vec![rule(RetainForwardRule::OnEverySubscribe)]).await;
    assert_eq!(&handling.next_publish().await.payload[..], b"again", "0: again on a repeated subscribe");
    handling.subscribe_filters(vec![rule(RetainForwardRule::OnNewSubscribe), filter("e2e/rh-marker", |_| {})]).await;
    publisher.client.publish("e2e/rh-marker", QoS::AtLeastOnce, false, "marker").await.unwrap();
    assert_eq!(&handling.next_publish().await.payload[..], b"marker", "1: not for an existing subscription");
    let (mut never, _) = V5Client::connect(port, "rh-2", |_| {}).await;
    never.subscribe_filters(vec![rule(RetainForwardRule::Never), filter("e2e/rh-marker", |_| {})]).await;
    publisher.client.publish("e2e/rh-marker", QoS::AtLeastOnce, false, "marker").await.unwrap();
    assert_eq!(&never.next_publish().await.payload[..], b"marker", "2: never");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_deliver_once_with_every_identifier_and_the_highest_qos() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let base = unique_topic("e2e/subid");
    let (mut sub, _) = V5Client::connect(port, "subid", |_| {}).await;
    let props = |id| SubscribeProperties { id: Some(id), user_properties: vec![] };
    sub.subscribe_with(Filter::new(format!("{base}/+"), QoS::AtMostOnce), props(7)).await;
    sub.subscribe_with(Filter::new(format!("{base}/a"), QoS::ExactlyOnce), props(268_435_455)).await;
    let (publisher, _) = V5Client::connect(port, "subid-pub", |_| {}).await;
    publisher.client.publish(format!("{base}/a"), QoS::AtLeastOnce, false, "x").await.unwrap();
    publisher.client.publish(format!("{base}/b"), QoS::ExactlyOnce, false, "y").await.unwrap();
    let p = sub.next_publish().await;
    assert_eq!(&p.payload[..], b"x");
    assert_eq!(p.qos, QoS::AtLeastOnce, "the highest granted, capped at the published QoS 1");
    let mut ids = p.properties.unwrap().subscription_identifiers;
    ids.sort_unstable();
    assert_eq!(ids, [7, 268_435_455], "one copy, both identifiers");
    let p = sub.next_publish().await;
    assert_eq!(&p.payload[..], b"y", "no second copy of x came first");
    assert_eq!(p.qos, QoS::AtMostOnce, "min(published 2, granted 0)");
    assert_eq!(p.properties.unwrap().subscription_identifiers, [7]);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_receive_maximum_and_maximum_packet_size_are_honoured() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/window");
    let (mut slow, _) = V5Client::connect(port, "window", |o| {
        o.set_receive_maximum(Some(2));
        o.set_max_packet_size(Some(200));
        o.set_manual_acks(true);
    })
    .await;
    slow.subscribe(&topic, QoS::AtLeastOnce).await;
    let (publisher, _) = V5Client::connect(port, "window-pub", |_| {}).await;
    publisher.client.publish(&topic, QoS::AtLeastOnce, false, vec![b'x'; 400]).await.unwrap();
    for i in 0..5u8 {
        publisher.client.publish(&topic, QoS::AtLeastOnce, false, vec![i]).await.unwrap();
    }
    // Too large for the client: never sent. Then only two until one is acknowledged.
    let first = slow.next_publish().await;
    let second = slow.next_publish().await;
    assert_eq!((&first.payload[..], &second.payload[..]), (&[0u8][..], &[1u8][..]));
    nothing_within(&mut slow, Duration::from_millis(300)).await;
    slow.client.ack(&first).await.unwrap();
    assert_eq!(&slow.next_publish().await.payload[..], &[2u8]);
    nothing_within(&mut slow, Duration::from_millis(300)).await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keep_alive_caps_what_a_client_asks() {
    let mut config = test_config();
    config.limits.max_keep_alive_secs = 5;
    let engine = TestEngine::start(config).await;
    let (_client, ack) = V5Client::connect(engine.mqtt_port(), "keepalive", |o| {
        o.set_keep_alive(Duration::from_secs(60));
    })
    .await;
    assert_eq!(ack.properties.and_then(|p| p.server_keep_alive), Some(5));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_zero_n_and_never() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    for (id, expiry) in [("expiry-zero", Some(0)), ("expiry-one", Some(1)), ("expiry-never", Some(u32::MAX))] {
        let (first, ack) = V5Client::connect(port, id, |o| {
            o.set_clean_start(true);
            o.set_session_expiry_interval(expiry);
        })
        .await;
        assert!(!ack.session_present);
        first.client.disconnect().await.unwrap();
        let resumed = |present: bool| async move {
            let (client, ack) = V5Client::connect(port, id, |o| {
                o.set_clean_start(false);
                o.set_session_expiry_interval(expiry);
            })
            .await;
            assert_eq!(ack.session_present, present, "{id}");
            client.client.disconnect().await.unwrap();
        };
        match expiry {
            Some(0) => resumed(false).await,
            Some(1) => {
                // Expiry is about time: the session must outlive its 1 s, then not.
                tokio::time::sleep(Duration::from_millis(2200)).await;
                resumed(false).await;
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                resumed(true).await;
            }
        }
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_and_retained_messages_expire() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/expire");
    let (away, _) = V5Client::connect(port, "expire-away", |o| {
        o.set_clean_start(true);
        o.set_session_expiry_interval(Some(60));
    })
    .await;
    let mut away = away;
    away.subscribe(&topic, QoS::AtLeastOnce).await;
    away.client.disconnect().await.unwrap();
    let (publisher, _) = V5Client::connect(port, "expire-pub", |_| {}).await;
    let expiring = |seconds| PublishProperties { message_expiry_interval: Some(seconds), ..Default::default() };
    for (payload, seconds, retain) in [("short", 1, false), ("long", 60, false), ("retained-short", 1, true)] {
        let topic = if retain { format!("{topic}/retained") } else { topic.clone() };
        publisher
            .client
            .publish_with_properties(topic, QoS::AtLeastOnce, retain, payload, expiring(seconds))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (mut back, ack) = V5Client::connect(port, "expire-away", |o| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(60));
    })
    .await;
    assert!(ack.session_present);
    let p = back.next_publish().await;
    assert_eq!(&p.payload[..], b"long", "the expired one was not delivered");
    let left = p.properties.unwrap().message_expiry_interval.unwrap();
    assert!((55..=58).contains(&left), "the time it waited is taken off: {left}");
    back.subscribe(&format!("{topic}/retained"), QoS::AtLeastOnce).await;
    publisher.client.publish(format!("{topic}/retained"), QoS::AtLeastOnce, false, "live").await.unwrap();
    assert_eq!(&back.next_publish().await.payload[..], b"live", "the retained message had expired");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_aliases_work_both_ways() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/alias");
    let (mut sub, ack) = V5Client::connect(port, "alias-sub", |o| {
        o.set_topic_alias_max(Some(4));
    })
    .await;
    let properties = ack.properties.unwrap();
    assert_eq!(properties.topic_alias_max, Some(10), "the broker offers 10");
    // The default limit (256 MiB) is past what a packet can encode: the largest
    // remaining length is offered (paho-mqtt refuses a CONNACK with more).
    assert_eq!(properties.max_packet_size, Some(268_435_455));
    sub.subscribe(&topic, QoS::AtLeastOnce).await;
    // Client → broker, in raw bytes: set alias 3, then use it with an empty topic.
    let mut raw = RawClient::connect(port).await;
    assert_eq!(raw.handshake_v5("alias-pub").await, 0);
    let publish = |topic: &[u8], payload: &[u8]| {
        let mut p = vec![0x30, (2 + topic.len() + 4 + payload.len()) as u8];
        p.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        p.extend_from_slice(topic);
        p.extend_from_slice(&[3, 0x23, 0, 3]);
        p.extend_from_slice(payload);
        p
    };
    raw.send(&publish(topic.as_bytes(), b"first")).await;
    raw.send(&publish(b"", b"second")).await;
    // Broker → client: the first delivery carries the topic and sets an alias, the next
    // carries only the alias (rumqttc reports the packet as it came).
    let first = sub.next_publish().await;
    let second = sub.next_publish().await;
    assert_eq!((first.topic.as_ref(), &first.payload[..]), (topic.as_bytes(), &b"first"[..]));
    assert_eq!((second.topic.as_ref(), &second.payload[..]), (&b""[..], &b"second"[..]));
    let alias = first.properties.and_then(|p| p.topic_alias).expect("an alias from the broker");
    assert_eq!(second.properties.and_then(|p| p.topic_alias), Some(alias));
    // An alias above the maximum is refused.
    let mut bad = RawClient::connect(port).await;
    assert_eq!(bad.handshake_v5("alias-bad").await, 0);
    bad.send(&[0x30, 9, 0, 1, b't', 3, 0x23, 0, 11, b'h', b'i']).await;
    let mut reason = None;
    while let Some((kind, body)) = bad.read_packet().await {
        if kind == 0xE0 {
            reason = body.first().copied();
        }
    }
    assert_eq!(reason, Some(0x94), "topic alias invalid");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_will_waits_for_its_delay_and_a_reconnect_cancels_it() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/will-delay");
    let (mut watcher, _) = V4Client::connect(port, "will-watcher", |_| {}).await;
    watcher.subscribe(&format!("{topic}/#"), rumqttc::QoS::AtLeastOnce).await;
    let will = |name: &str, delay: u32| {
        let props = LastWillProperties {
            delay_interval: Some(delay),
            payload_format_indicator: None,
            message_expiry_interval: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: vec![],
        };
        LastWill::new(format!("{topic}/{name}"), Bytes::from(name.to_string()), QoS::AtLeastOnce, false, Some(props))
    };
    // Delay 60 s but a session of 1 s: the will goes when the session ends.
    let (short, _) = V5Client::connect(port, "will-short-session", |o| {
        o.set_session_expiry_interval(Some(1));
        o.set_last_will(will("session-end", 60));
    })
    .await;
    // Delay 1 s, session 60 s, and the client comes back in time: no will.
    let (cancelled, _) = V5Client::connect(port, "will-cancelled", |o| {
        o.set_session_expiry_interval(Some(60));
        o.set_last_will(will("cancelled", 1));
    })
    .await;
    let started = std::time::Instant::now();
    drop(short);
    drop(cancelled);
    let (_back, ack) = V5Client::connect(port, "will-cancelled", |o| {
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(60));
    })
    .await;
    assert!(ack.session_present);
    let p = tokio::time::timeout(PATIENCE, watcher.next_publish()).await.unwrap();
    assert_eq!(p.topic, format!("{topic}/session-end"));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "not before the session ended: {waited:?}");
    // Had "cancelled" not been cancelled it would have come at 1 s, before this marker.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    watcher.client.publish(format!("{topic}/marker"), rumqttc::QoS::AtLeastOnce, false, "m").await.unwrap();
    assert_eq!(watcher.next_publish().await.topic, format!("{topic}/marker"));
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_reason_strings() {
    let mut config = test_config();
    config.limits.max_retained_messages = 0;
    let engine = TestEngine::start(config).await;
    let (publisher, _) = V5Client::connect(engine.mqtt_port(), "reasons", |_| {}).await;
    let mut publisher = publisher;
    publisher.client.publish("e2e/reasons", QoS::AtLeastOnce, true, "kept?").await.unwrap();
    let ack = publisher.puback().await;
    assert_eq!(ack.reason, rumqttc::v5::mqttbytes::v5::PubAckReason::QuotaExceeded);
    assert_eq!(ack.properties.and_then(|p| p.reason_string).as_deref(), Some("retained message limit reached"));
    engine.stop().await;
}
