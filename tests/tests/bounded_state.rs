//! What any anonymous client can make the engine keep, measured on the real process
//! (its resident memory from /proc): client ids by the thousand, topics and filters by
//! the ten thousand, a message of many megabytes to several subscribers. Before the
//! engine owned its state, rumqttd kept an entry per client id ever seen, a cache entry
//! per topic, a log per filter ever subscribed, and copied a message per subscriber.

use std::time::Duration;

use alicia_e2e::clients::V4Client;
use alicia_e2e::engine::EngineProcess;
use alicia_e2e::raw::RawClient;
use alicia_e2e::{metric, wait_for};
use rumqttc::QoS;

fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn rss_mb(engine: &EngineProcess) -> f64 {
    status_kb(engine.child.id(), "VmRSS:") as f64 / 1024.0
}

/// Connects and disconnects `n` clients with distinct ids, `parallel` at a time.
async fn churn(port: u16, prefix: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let mut clients = Vec::new();
        for i in chunk {
            let mut c = RawClient::connect(port).await;
            assert_eq!(c.handshake(&format!("{prefix}-{i}"), 30, |_| {}).await, 0);
            clients.push(c);
        }
        for mut c in clients {
            c.send(&[0xE0, 0]).await;
            assert!(c.until_closed().await.is_empty());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_topics_and_filters_by_the_thousand_leave_nothing_behind() {
    let engine = EngineProcess::spawn(&[]);
    let port = engine.mqtt.port();
    // Warm up the allocator and the engine's own tables first.
    churn(port, "warm", 1000).await;
    let (publisher, _) = V4Client::connect(port, "topic-flood", |_| {}).await;
    let (mut subscriber, _) = V4Client::connect(port, "filter-flood", |_| {}).await;
    // The gatekeeper subscribes to `alicia/` request topics: long topics under it.
    let long = "x".repeat(900);
    for i in 0..2000 {
        publisher.client.publish(format!("alicia/warm/{long}/{i}"), QoS::AtMostOnce, false, "v").await.unwrap();
    }
    let before = rss_mb(&engine);

    churn(port, "id", 10_000).await;
    for i in 0..100_000 {
        publisher.client.publish(format!("alicia/flood/{long}/{i}"), QoS::AtMostOnce, false, "v").await.unwrap();
    }
    for i in 0..20_000 {
        let filter = format!("flood/{long}/{i}/#");
        subscriber.subscribe(&filter, QoS::AtMostOnce).await;
        subscriber.client.unsubscribe(&filter).await.unwrap();
    }
    // Everything read and routed before measuring.
    wait_for("the log read to its end", || async {
        metric(engine.http, "alicia_bus_log_lag_bytes").await == Some(0.0)
    })
    .await;
    let after = rss_mb(&engine);
    assert_eq!(metric(engine.http, "alicia_mqtt_sessions").await, Some(2.0), "only the two still connected");
    // 10,000 ids, ~100 MB of distinct topics, 20,000 distinct filters (~20 MB): what
    // stays is the router's window (4 MiB counted) at most, and allocator slack.
    let grown = after - before;
    assert!(grown < 40.0, "resident memory grew {grown:.1} MB ({before:.1} → {after:.1})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_to_several_subscribers_is_held_once() {
    let engine = EngineProcess::spawn(&[]);
    let port = engine.mqtt.port();
    const SIZE: usize = 48 * 1024 * 1024;
    let mut subscribers = Vec::new();
    for i in 0..3 {
        let (mut s, _) = V4Client::connect(port, &format!("large-{i}"), |o| {
            o.set_max_packet_size(SIZE + 1024, 1024);
        })
        .await;
        s.subscribe("e2e/large", QoS::AtLeastOnce).await;
        subscribers.push(s);
    }
    let (publisher, _) = V4Client::connect(port, "large-pub", |o| {
        o.set_max_packet_size(1024, SIZE + 1024);
    })
    .await;
    let baseline = status_kb(engine.child.id(), "VmRSS:") as f64 / 1024.0;
    let payload: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    publisher.client.publish("e2e/large", QoS::AtLeastOnce, false, payload.clone()).await.unwrap();
    for s in &mut subscribers {
        let p = tokio::time::timeout(Duration::from_secs(120), s.next_publish()).await.unwrap();
        assert!(p.payload[..] == payload[..], "exactly the bytes sent");
    }
    let peak = status_kb(engine.child.id(), "VmHWM:") as f64 / 1024.0;
    let mb = SIZE as f64 / (1024.0 * 1024.0);
    // Read once into a buffer of its own, written to every subscriber from there.
    assert!(peak - baseline < 2.0 * mb, "peak {peak:.0} MB over a {baseline:.0} MB baseline for a {mb:.0} MB message");
}
