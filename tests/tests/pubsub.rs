//! Publish/subscribe through the engine with real clients: rumqttc (3.1.1 and 5) and
//! mosquitto's CLI tools, over both socket backends.

use alicia_e2e::clients::{V4Client, V5Client};
use alicia_e2e::engine::{test_config, TestEngine, BACKENDS};
use alicia_e2e::{mosquitto, unique_topic};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_qos_round_trips_on_both_backends() {
    for backend in BACKENDS {
        let mut config = test_config();
        config.mqtt.io = backend;
        let engine = TestEngine::start(config).await;
        let port = engine.mqtt_port();
        let topic = unique_topic("e2e/qos");
        let (mut sub, _) = V4Client::connect(port, "qos-sub", |_| {}).await;
        assert_eq!(
            sub.subscribe(&topic, QoS::ExactlyOnce).await,
            [rumqttc::SubscribeReasonCode::Success(QoS::ExactlyOnce)]
        );
        let (mut publisher, _) = V4Client::connect(port, "qos-pub", |_| {}).await;
        for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce].into_iter().enumerate() {
            let body = format!("{backend:?}-{i}");
            publisher.client.publish(&topic, qos, false, body.clone()).await.unwrap();
            if qos != QoS::AtMostOnce {
                publisher.acked().await;
            }
            let got = sub.next_publish().await;
            assert_eq!(got.payload, body.as_bytes(), "{backend:?} {qos:?}");
        }
        engine.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_and_v311_clients_share_the_bus() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/mixed");
    let (mut sub5, ack) = V5Client::connect(port, "mixed-sub5", |_| {}).await;
    assert!(!ack.session_present);
    sub5.subscribe(&topic, QoS5::AtLeastOnce).await;
    let (mut pub4, _) = V4Client::connect(port, "mixed-pub4", |_| {}).await;
    pub4.client.publish(&topic, QoS::AtLeastOnce, false, "from 3.1.1").await.unwrap();
    pub4.acked().await;
    assert_eq!(sub5.next_publish().await.payload, "from 3.1.1".as_bytes());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_talk_through_the_engine() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/mosquitto");

    // mosquitto_pub → rumqttc
    let (mut sub, _) = V4Client::connect(port, "mosq-sub", |_| {}).await;
    sub.subscribe(&topic, QoS::AtLeastOnce).await;
    mosquitto::publish(port, &["-t", &topic, "-m", "hello from mosquitto_pub", "-q", "1"]);
    assert_eq!(sub.next_publish().await.payload, "hello from mosquitto_pub".as_bytes());

    // rumqttc → mosquitto_sub (v5), which exits after one message
    let other = unique_topic("e2e/mosquitto");
    let child = mosquitto::subscribe(port, &["-t", &other, "-C", "1", "-q", "1", "-V", "mqttv5"]);
    let (mut publisher, _) = V4Client::connect(port, "mosq-pub", |_| {}).await;
    // mosquitto_sub subscribes asynchronously: a retained message reaches it whenever it
    // arrives, so nothing here races its SUBACK.
    publisher.client.publish(&other, QoS::AtLeastOnce, true, "hello mosquitto_sub").await.unwrap();
    publisher.acked().await;
    assert_eq!(mosquitto::lines(child).await, ["hello mosquitto_sub"]);
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_reaches_a_later_subscriber_and_can_be_cleared() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/retained");
    let (mut publisher, _) = V4Client::connect(port, "ret-pub", |_| {}).await;
    publisher.client.publish(&topic, QoS::AtLeastOnce, true, "kitchen light on").await.unwrap();
    publisher.acked().await;

    let (mut late, _) = V4Client::connect(port, "ret-late", |_| {}).await;
    late.subscribe(&topic, QoS::AtLeastOnce).await;
    let got = late.next_publish().await;
    assert!(got.retain, "delivered as retained");
    assert_eq!(got.payload, "kitchen light on".as_bytes());

    // An empty retained payload deletes it: a new subscriber then gets only what follows.
    publisher.client.publish(&topic, QoS::AtLeastOnce, true, "").await.unwrap();
    publisher.acked().await;
    let (mut later, _) = V4Client::connect(port, "ret-later", |_| {}).await;
    later.subscribe(&topic, QoS::AtLeastOnce).await;
    publisher.client.publish(&topic, QoS::AtLeastOnce, false, "fresh").await.unwrap();
    assert_eq!(later.next_publish().await.payload, "fresh".as_bytes());
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_delivers_each_message_to_one_member() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/shared");
    let filter = format!("$share/workers/{topic}");
    let (mut a, _) = V4Client::connect(port, "share-a", |_| {}).await;
    let (mut b, _) = V4Client::connect(port, "share-b", |_| {}).await;
    a.subscribe(&filter, QoS::AtLeastOnce).await;
    b.subscribe(&filter, QoS::AtLeastOnce).await;
    let (mut publisher, _) = V4Client::connect(port, "share-pub", |_| {}).await;
    const N: usize = 20;
    for i in 0..N {
        publisher.client.publish(&topic, QoS::AtLeastOnce, false, i.to_string()).await.unwrap();
        publisher.acked().await;
    }
    // Collect until all N arrived across both members; none may arrive twice.
    let mut seen = std::collections::BTreeMap::new();
    let (mut from_a, mut from_b) = (0, 0);
    while seen.len() < N {
        let p = tokio::select! {
            p = a.next_publish() => { from_a += 1; p }
            p = b.next_publish() => { from_b += 1; p }
        };
        let n: usize = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
        assert!(seen.insert(n, ()).is_none(), "message {n} delivered twice");
    }
    assert_eq!(from_a + from_b, N);
    assert!(from_a > 0 && from_b > 0, "both group members got work: a={from_a} b={from_b}");
    engine.stop().await;
}
