//! `/metrics` and `/healthz` as Prometheus and a load balancer see them.

use alicia_e2e::clients::V4Client;
use alicia_e2e::engine::TestEngine;
use alicia_e2e::{http_get as get, unique_topic};
use rumqttc::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_naming_contract_and_count_traffic() {
    let engine = TestEngine::with_defaults().await;
    let port = engine.mqtt_port();
    let topic = unique_topic("e2e/metrics");
    let (mut sub, _) = V4Client::connect(port, "metrics-sub", |_| {}).await;
    sub.subscribe(&topic, QoS::AtLeastOnce).await;
    let (publisher, _) = V4Client::connect(port, "metrics-pub", |_| {}).await;
    publisher.client.publish(&topic, QoS::AtLeastOnce, false, "count me").await.unwrap();
    sub.next_publish().await;

    let (status, page) = get(engine.http_addr(), "/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "alicia_mqtt_connections_active",
        "alicia_mqtt_publishes_received_total",
        "alicia_mqtt_publishes_sent_total",
        "alicia_mqtt_received_bytes_total",
        "alicia_mqtt_sent_bytes_total",
        "alicia_mqtt_refusals_total",
        "alicia_mqtt_io_backend_info",
    ] {
        assert!(page.lines().any(|l| l.starts_with(name)), "{name} missing from /metrics");
    }
    // Summed over the listeners (tcp, local, and tls / websocket when configured).
    let received: f64 = page
        .lines()
        .filter(|l| l.starts_with("alicia_mqtt_publishes_received_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(received >= 1.0);

    // The contract: alicia_<area>_<name>_<unit>; counters end in _total; no unbounded labels.
    for line in page.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(name.starts_with("alicia_"), "{name} is not alicia_*");
        assert!(name.split('_').count() >= 3, "{name} lacks area/name parts");
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter {name} must end in _total");
        }
        if kind == "histogram" || kind == "summary" {
            assert!(name.ends_with("_seconds") || name.ends_with("_bytes"), "{name} must be in base units");
        }
    }
    for label in ["client_id", "topic", "session_id"] {
        assert!(!page.contains(&format!("{label}=")), "unbounded label {label} exported");
    }
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_the_engine() {
    let engine = TestEngine::with_defaults().await;
    let (status, body) = get(engine.http_addr(), "/healthz").await;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["mqtt"]["listen"], engine.mqtt_addr().to_string());
    assert!(["uring", "epoll"].contains(&health["mqtt"]["io_backend"].as_str().unwrap()));
    engine.stop().await;
}
