//! N MQTT connections over TLS opened at a bounded concurrency and held idle: each a
//! TCP connect, a full TLS handshake and a CONNECT/CONNACK, every outcome counted.
//!
//! Concurrency, not a paced rate, bounds the opening: a TLS handshake costs the server
//! real CPU, so the question is how many connections per second the engine completes
//! when always `concurrency` are in flight, and how long each takes meanwhile. A
//! connection gives its slot back at its CONNACK and is then held by its own task with a
//! 64-byte read buffer until told to close.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::connections::fleet::{connect_error, hold};
use crate::session::{self, ConnectReply, DialError, Dialer, Stream};
use crate::stats::{new_histogram, LatencySummary};

#[derive(Clone)]
pub struct FleetSpec {
    pub dialer: Dialer,
    pub count: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// 0: the held connections stay silent.
    pub keep_alive: u16,
    /// Longest one connection may take from its TCP connect to its CONNACK.
    pub handshake_timeout: Duration,
    /// Client ids are `<prefix><index>`.
    pub client_prefix: String,
}

/// What the handshakes and the holding came to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsFleetCounts {
    pub attempted: u64,
    pub accepted: u64,
    /// CONNACK return code → connections.
    pub refused: BTreeMap<String, u64>,
    /// TCP connect errors by kind.
    pub tcp_failed: BTreeMap<String, u64>,
    /// TLS handshake errors by message (an alert, the server closing mid-handshake).
    pub tls_failed: BTreeMap<String, u64>,
    pub closed_before_connack: u64,
    pub reset_before_connack: u64,
    pub timed_out: u64,
    pub unexpected: u64,
    /// Accepted, then closed or reset by the engine while held.
    pub dropped_while_held: u64,
}

impl TlsFleetCounts {
    pub fn settled(&self) -> u64 {
        self.accepted
            + self.refused.values().sum::<u64>()
            + self.tcp_failed.values().sum::<u64>()
            + self.tls_failed.values().sum::<u64>()
            + self.closed_before_connack
            + self.reset_before_connack
            + self.timed_out
            + self.unexpected
    }

    /// Every outcome but acceptance, in words: `"3 tls: …, 1 no CONNACK in time"`.
    pub fn failures(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |n: u64, what: &str| {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        };
        for (code, n) in &self.refused {
            add(*n, &format!("refused {code}"));
        }
        for (kind, n) in &self.tcp_failed {
            add(*n, &format!("tcp: {kind}"));
        }
        for (kind, n) in &self.tls_failed {
            add(*n, &format!("tls: {kind}"));
        }
        add(self.closed_before_connack, "closed before CONNACK");
        add(self.reset_before_connack, "reset before CONNACK");
        add(self.timed_out, "no CONNACK in time");
        add(self.unexpected, "unexpected answer");
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

struct Shared {
    counts: Mutex<TlsFleetCounts>,
    /// TCP connect → CONNACK, µs.
    connect_us: Mutex<Histogram<u64>>,
    /// TCP connect → TLS handshake done, µs.
    handshake_us: Mutex<Histogram<u64>>,
}

pub struct TlsFleet {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// From the first connect to the last handshake outcome.
    pub open_duration: Duration,
}

impl TlsFleet {
    /// Opens `spec.count` connections, at most `spec.concurrency` in their handshake at
    /// once, and returns when every one has an outcome.
    pub async fn open(spec: &FleetSpec) -> TlsFleet {
        let shared = Arc::new(Shared {
            counts: Mutex::new(TlsFleetCounts::default()),
            connect_us: Mutex::new(new_histogram()),
            handshake_us: Mutex::new(new_histogram()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let concurrency = spec.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(concurrency));
        let spec = Arc::new(spec.clone());
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(spec.count);
        for index in 0..spec.count {
            let slot = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
            shared.counts.lock().unwrap().attempted += 1;
            let (spec, shared, stop) = (spec.clone(), shared.clone(), stop_rx.clone());
            tasks.push(tokio::spawn(async move {
                let stream = connection(&spec, index, &shared).await;
                drop(slot);
                if let Some(stream) = stream {
                    if !hold(stream, spec.keep_alive, stop).await {
                        shared.counts.lock().unwrap().dropped_while_held += 1;
                    }
                }
            }));
        }
        // Every slot back: every handshake has its outcome.
        let all = slots.acquire_many(concurrency as u32).await.expect("the semaphore is never closed");
        drop(all);
        TlsFleet { shared, stop, tasks, open_duration: start.elapsed() }
    }

    pub fn counts(&self) -> TlsFleetCounts {
        self.shared.counts.lock().unwrap().clone()
    }

    /// TCP connect → CONNACK of the accepted connections.
    pub fn connect_latency(&self) -> LatencySummary {
        LatencySummary::from_histogram(&self.shared.connect_us.lock().unwrap())
    }

    /// TCP connect → TLS handshake done, of the accepted connections.
    pub fn handshake_latency(&self) -> LatencySummary {
        LatencySummary::from_histogram(&self.shared.handshake_us.lock().unwrap())
    }

    /// Closes every held connection (FIN, no DISCONNECT) and waits for their tasks.
    pub async fn close(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// One connection's handshakes; the stream if the engine accepted it.
async fn connection(spec: &FleetSpec, index: usize, shared: &Shared) -> Option<Stream> {
    let started = Instant::now();
    let attempt = async {
        let (mut stream, handshaken) = match spec.dialer.dial().await {
            Ok(s) => s,
            Err(e) => return (Err(e), None, None),
        };
        let mut rbuf = BytesMut::with_capacity(64);
        let client_id = format!("{}{index}", spec.client_prefix);
        let reply = session::connect(&mut stream, &mut rbuf, &client_id, spec.keep_alive).await;
        (Ok(reply), Some(handshaken), Some(stream))
    };
    let outcome = tokio::time::timeout(spec.handshake_timeout, attempt).await;
    let mut counts = shared.counts.lock().unwrap();
    match outcome {
        Err(_) => counts.timed_out += 1,
        Ok((Err(DialError::Tcp(e)), _, _)) => *counts.tcp_failed.entry(connect_error(&e)).or_default() += 1,
        Ok((Err(DialError::Tls(e)), _, _)) => *counts.tls_failed.entry(e.to_string()).or_default() += 1,
        Ok((Ok(ConnectReply::Accepted), Some(handshaken), Some(stream))) => {
            counts.accepted += 1;
            let us = |d: Duration| (d.as_micros() as u64).max(1);
            let _ = shared.connect_us.lock().unwrap().record(us(started.elapsed()));
            let _ = shared.handshake_us.lock().unwrap().record(us(handshaken - started));
            return Some(stream);
        }
        Ok((Ok(ConnectReply::Refused(code)), _, _)) => *counts.refused.entry(format!("{code:#04x}")).or_default() += 1,
        Ok((Ok(ConnectReply::Closed), _, _)) => counts.closed_before_connack += 1,
        Ok((Ok(ConnectReply::Reset), _, _)) => counts.reset_before_connack += 1,
        Ok(_) => counts.unexpected += 1,
    }
    None
}

/// One more client, timed from its TCP connect to its CONNACK: does it get through
/// while others stall or are held? Also what TLS it negotiated; the reason if it failed.
pub async fn probe(dialer: &Dialer, client_id: &str, timeout: Duration) -> Result<(Duration, Option<String>), String> {
    let started = Instant::now();
    match session::open(dialer, client_id, 0, timeout).await {
        Ok((stream, _)) => {
            let took = started.elapsed();
            Ok((took, stream.negotiated()))
        }
        Err(e) => Err(format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_settle_and_describe_failures() {
        let mut c = TlsFleetCounts { attempted: 7, accepted: 3, timed_out: 1, ..Default::default() };
        c.tls_failed.insert("received fatal alert: BadCertificate".into(), 2);
        c.refused.insert("0x03".into(), 1);
        assert_eq!(c.settled(), 7);
        assert_eq!(c.failures(), "1 refused 0x03, 2 tls: received fatal alert: BadCertificate, 1 no CONNACK in time");
        assert_eq!(TlsFleetCounts::default().failures(), "none");
    }
}
