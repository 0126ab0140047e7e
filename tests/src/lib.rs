//! Harness for the end-to-end tests in `tests/`: an engine on ephemeral loopback
//! ports, real MQTT clients (rumqttc v4 and v5, raw sockets, mosquitto's CLI tools) and
//! waits that poll for a condition with a deadline instead of sleeping.
//!
//! # Layout
//! - [`engine`]: start an in-process engine, or the `alicia` binary as a process.
//! - [`clients`]: rumqttc clients whose events arrive on a channel.
//! - [`config_admin`]: the config service's requests and updates, as an operator's tool.
//! - [`raw`]: hand-written MQTT bytes over a plain TCP socket, for bad input.
//! - [`mosquitto`]: `mosquitto_pub` / `mosquitto_sub` as foreign peers.
//! - [`voice`]: an engine with the real models, espeak speech, a Wyoming client.
//! - [`chat_server`]: an OpenAI-compatible chat server (streamed and plain answers) for
//!   `[voice.chat]`.
//! - [`ai_requests`]: typed requests on `alicia/voice/ai/request` and their answers.
//! - [`signing`]: signing keys, `[security.signing]`, envelopes a device signs in Python.
//! - [`tls`]: a development PKI, `[mqtt.tls]` on it, rustls client configs.
//! - [`bus_death`]: an engine whose fatal exit is caught, and clients that watch alerts.
//! - [`gateway`]: what the security gateway leaves: the audit log read as JSON lines,
//!   the refusal counters; the password files it reads.

pub mod ai_requests;
pub mod bus_death;
pub mod chat_server;
pub mod clients;
pub mod config_admin;
pub mod engine;
pub mod gateway;
pub mod mosquitto;
pub mod raw;
pub mod signing;
pub mod tls;
pub mod voice;

use std::time::Duration;

/// Generous upper bound for anything a test waits on; a healthy run takes milliseconds
/// (seconds with the real models on a busy 2-core machine). Tests fail on a deadline
/// only when the awaited behaviour is missing, never because the machine is slow.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A topic no other test uses.
pub fn unique_topic(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}/{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A plain HTTP/1.1 GET, as Prometheus or a load balancer sends it; (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: alicia\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

/// The value of a metric on `/metrics`, summed over its label sets; `None` when absent.
pub async fn metric(http: std::net::SocketAddr, name: &str) -> Option<f64> {
    let (_, body) = http_get(http, "/metrics").await;
    let values: Vec<f64> = body
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Polls `condition` until it holds; panics after `PATIENCE` naming `what`.
pub async fn wait_for<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An ordinary client still gets through: a fresh 3.1.1 connection subscribes, publishes
/// at QoS 1 and receives its own message; and `/healthz` says healthy.
pub async fn assert_bus_works(engine: &engine::TestEngine) {
    let topic = unique_topic("e2e/probe");
    let id = topic.replace('/', "-");
    let (mut probe, _) = clients::V4Client::connect(engine.mqtt_port(), &id, |_| {}).await;
    probe.subscribe(&topic, rumqttc::QoS::AtLeastOnce).await;
    probe.client.publish(&topic, rumqttc::QoS::AtLeastOnce, false, "probe").await.unwrap();
    let p = probe.next_publish_on(&topic).await;
    assert_eq!(&p.payload[..], b"probe");
    probe.client.disconnect().await.unwrap();
    let (status, body) = http_get(engine.http_addr(), "/healthz").await;
    assert_eq!(status, 200, "healthz: {body}");
}
