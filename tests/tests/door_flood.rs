//! One address flooding the MQTT door with silent sockets: past its cap they never take
//! the handshake slots other devices need. A file of its own because the engine's
//! metrics are global to the test process, and this test counts exactly.

use alicia_config::AliciaConfig;
use alicia_e2e::engine::{test_config, TestEngine};
use alicia_e2e::raw::RawClient;
use alicia_e2e::{assert_bus_works, metric, wait_for};

async fn engine_with(tweak: impl FnOnce(&mut AliciaConfig)) -> TestEngine {
    let mut config = test_config();
    tweak(&mut config);
    TestEngine::start(config).await
}

async fn refusals(engine: &TestEngine, reason: &str) -> f64 {
    let name = format!("alicia_mqtt_refusals_total{{listener=\"tcp\",reason=\"{reason}\"}}");
    metric(engine.http_addr(), &name).await.unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_flooding_silent_sockets_leaves_the_door_open_to_others() {
    let engine = engine_with(|c| {
        c.limits.max_pending_connections = 4;
        c.limits.max_connections_per_ip = 2;
    })
    .await;
    let port = engine.mqtt_port();
    // 127.0.0.1 opens ten sockets and says nothing: two take pending slots, the rest are
    // past the address's cap and never take one.
    let mut flood = Vec::new();
    for _ in 0..10 {
        flood.push(RawClient::connect(port).await);
    }
    wait_for("eight refused for the address", || async { refusals(&engine, "per_ip_limit").await == 8.0 }).await;
    assert_eq!(metric(engine.http_addr(), "alicia_mqtt_connections_pending").await, Some(2.0));
    // Another device gets in while the flood is held open.
    let mut other = RawClient::connect_from(port, std::net::Ipv4Addr::new(127, 0, 0, 2)).await;
    assert_eq!(other.handshake("another-device", 30, |_| {}).await, 0);
    // A socket past the cap that does send its CONNECT is told why (3.1.1: 0x03).
    let mut late = RawClient::connect(port).await;
    assert_eq!(late.handshake("one-too-many", 30, |_| {}).await, 3);
    assert_eq!(refusals(&engine, "pending_limit").await, 0.0);
    drop(flood);
    // The engine gives the address's places back as it sees the sockets close.
    wait_for("the flood's places given back", || async {
        RawClient::connect(port).await.handshake("after-the-flood", 30, |_| {}).await == 0
    })
    .await;
    assert_bus_works(&engine).await;
    engine.stop().await;
}
