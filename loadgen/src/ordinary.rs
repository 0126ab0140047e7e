//! The question every hostile step ends with: can an ordinary client still use the bus?
//! A fresh MQTT 3.1.1 connection subscribes to a probe topic of its own and must get its
//! own QoS 1 publish back.
//!
//! It connects from another loopback address (127.0.0.2 when the broker is on 127.0.0.1):
//! to the broker it is another device, so a limit on the attacker's address is not
//! mistaken for the bus being down.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::Client;
use crate::packet::{Connect, Incoming, Properties, Version};

/// Pause between attempts while the bus recovers.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Serialize)]
pub struct Through {
    /// Connect to delivery of the attempt that got through.
    pub round_trip_ms: f64,
    pub attempts: u32,
    /// Why earlier attempts failed (the first one), if any did.
    pub first_failure: Option<String>,
}

/// The source address an ordinary client uses toward `broker`.
pub fn source_for(broker: SocketAddr) -> Option<IpAddr> {
    (broker.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST)).then_some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
}

/// Round trips until one succeeds or `budget` is spent; Err carries the last failure.
pub async fn through(broker: SocketAddr, budget: Duration) -> Result<Through, String> {
    let start = Instant::now();
    let mut attempts = 0;
    let mut first_failure = None;
    loop {
        attempts += 1;
        let left = budget.saturating_sub(start.elapsed()).max(Duration::from_millis(500));
        match round_trip(broker, left).await {
            Ok(ms) => return Ok(Through { round_trip_ms: ms, attempts, first_failure }),
            Err(e) => {
                if start.elapsed() + RETRY_PAUSE >= budget {
                    return Err(format!("{e} ({attempts} attempts in {:.1} s)", start.elapsed().as_secs_f64()));
                }
                first_failure.get_or_insert(e);
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// One connect, subscribe, publish, receive, disconnect.
pub async fn round_trip(broker: SocketAddr, timeout: Duration) -> Result<f64, String> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let id = format!("lg-ordinary-{}-{n}", std::process::id());
    let topic = format!("loadgen/ordinary/{}/{n}", std::process::id());
    let v = Version::V311;
    let exchange = async {
        let mut c = Client::connect_from(broker, source_for(broker), &Connect::new(v, id, 30), timeout)
            .await
            .map_err(|e| format!("{e:#}"))?;
        match c.subscribe(&[(&topic, 1)], timeout).await {
            Ok(codes) if codes.first().is_some_and(|c| *c <= 2) => {}
            Ok(codes) => return Err(format!("SUBACK {codes:02x?}")),
            Err(next) => return Err(format!("subscribe: {}", next.describe(v))),
        }
        let payload = format!("ordinary {n}");
        match c.publish(topic.as_bytes(), 1, false, Properties::new(), payload.as_bytes(), timeout).await {
            Ok(Some(0)) => {}
            Ok(code) => return Err(format!("PUBACK {code:02x?}")),
            Err(next) => return Err(format!("publish: {}", next.describe(v))),
        }
        let own = |p: &Incoming| matches!(p, Incoming::Publish(d) if d.topic == topic.as_bytes());
        match c.expect(deadline, own).await {
            Ok(Incoming::Publish(d)) if d.payload == payload.as_bytes() => {}
            Ok(other) => return Err(format!("wrong delivery: {}", other.describe(v))),
            Err(next) => return Err(format!("own message not delivered: {}", next.describe(v))),
        }
        c.disconnect().await;
        Ok(started.elapsed().as_secs_f64() * 1_000.0)
    };
    tokio::time::timeout_at(deadline, exchange).await.map_err(|_| format!("no round trip within {timeout:?}"))?
}
