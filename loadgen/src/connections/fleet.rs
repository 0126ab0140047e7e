//! N MQTT 3.1.1 connections opened at a fixed connect rate, each a CONNECT and its
//! CONNACK, then held idle until told to close; every outcome counted.
//!
//! One tokio task per connection with a 64-byte read buffer: a held connection costs
//! loadgen a socket and a few hundred bytes, so the tool runs out of neither memory nor
//! CPU long before a broker does. Connects are paced from elapsed time ([`Pacer`]), so a
//! slow accept loop shows up as handshake latency, not as a lower offered rate.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::pacer::{Pacer, TICK};
use crate::stats::{new_histogram, LatencySummary};
use crate::wire::{self, Packet};

#[derive(Debug, Clone)]
pub struct FleetSpec {
    pub addr: SocketAddr,
    pub count: usize,
    /// Connects per second.
    pub rate: f64,
    /// 0: no keep-alive, the connections stay silent; else each pings at half of it.
    pub keep_alive: u16,
    pub handshake_timeout: Duration,
    /// Client ids are `<prefix><index>`, distinct per run.
    pub client_prefix: String,
}

/// What the handshakes and the holding came to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FleetCounts {
    pub attempted: u64,
    pub accepted: u64,
    /// CONNACK return code (e.g. `0x03 (server unavailable)`) → connections.
    pub refused: BTreeMap<String, u64>,
    pub closed_before_connack: u64,
    pub reset_before_connack: u64,
    pub timed_out: u64,
    /// TCP connect errors by kind (refused, no local port, out of descriptors…).
    pub connect_failed: BTreeMap<String, u64>,
    /// Anything else the broker answered a CONNECT with.
    pub unexpected: u64,
    /// Accepted, then closed or reset by the broker while held idle.
    pub dropped_while_held: u64,
}

impl FleetCounts {
    pub fn settled(&self) -> u64 {
        self.accepted
            + self.refused.values().sum::<u64>()
            + self.closed_before_connack
            + self.reset_before_connack
            + self.timed_out
            + self.connect_failed.values().sum::<u64>()
            + self.unexpected
    }

    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    /// Accepted and still open.
    pub fn held(&self) -> u64 {
        self.accepted - self.dropped_while_held
    }
}

enum Handshake {
    Accepted,
    Refused(u8),
    Closed,
    Reset,
    TimedOut,
    ConnectFailed(String),
    Unexpected,
}

struct Shared {
    counts: Mutex<FleetCounts>,
    connack_us: Mutex<Histogram<u64>>,
    settled: AtomicU64,
}

pub struct Fleet {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// From the first connect to the last handshake outcome.
    pub open_duration: Duration,
}

impl Fleet {
    /// Opens `spec.count` connections at `spec.rate` and returns once every handshake has
    /// an outcome; `progress` is called about once a second meanwhile.
    pub async fn open(spec: &FleetSpec, mut progress: impl FnMut(&FleetCounts)) -> Fleet {
        let shared = Arc::new(Shared {
            counts: Mutex::new(FleetCounts::default()),
            connack_us: Mutex::new(new_histogram()),
            settled: AtomicU64::new(0),
        });
        let (stop, stop_rx) = watch::channel(false);
        let start = Instant::now();
        let pacer = Pacer::new(start, spec.rate);
        let mut tasks = Vec::with_capacity(spec.count);
        let mut last_progress = start;
        let spec = Arc::new(spec.clone());
        while tasks.len() < spec.count || shared.settled.load(Ordering::Acquire) < spec.count as u64 {
            let due = (pacer.due(Instant::now()) as usize).min(spec.count);
            while tasks.len() < due {
                let index = tasks.len();
                shared.counts.lock().unwrap().attempted += 1;
                tasks.push(tokio::spawn(connection(spec.clone(), index, shared.clone(), stop_rx.clone())));
            }
            if last_progress.elapsed() >= Duration::from_secs(1) {
                last_progress = Instant::now();
                progress(&shared.counts.lock().unwrap());
            }
            tokio::time::sleep(TICK).await;
        }
        Fleet { shared, stop, tasks, open_duration: start.elapsed() }
    }

    pub fn counts(&self) -> FleetCounts {
        self.shared.counts.lock().unwrap().clone()
    }

    /// CONNACK latency of the accepted connections, from TCP connect to CONNACK.
    pub fn connack_latency(&self) -> LatencySummary {
        LatencySummary::from_histogram(&self.shared.connack_us.lock().unwrap())
    }

    /// Closes every held connection (FIN, no DISCONNECT: the broker sees idle devices go).
    pub async fn close(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn connection(spec: Arc<FleetSpec>, index: usize, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let started = Instant::now();
    let mut rbuf = BytesMut::with_capacity(64);
    let handshake = tokio::time::timeout(spec.handshake_timeout, handshake(&spec, index, &mut rbuf)).await;
    let (outcome, stream) = match handshake {
        Ok((outcome, stream)) => (outcome, stream),
        Err(_) => (Handshake::TimedOut, None),
    };
    {
        let mut counts = shared.counts.lock().unwrap();
        match outcome {
            Handshake::Accepted => {
                counts.accepted += 1;
                let us = started.elapsed().as_micros() as u64;
                let _ = shared.connack_us.lock().unwrap().record(us.max(1));
            }
            Handshake::Refused(code) => *counts.refused.entry(connack_name(code)).or_default() += 1,
            Handshake::Closed => counts.closed_before_connack += 1,
            Handshake::Reset => counts.reset_before_connack += 1,
            Handshake::TimedOut => counts.timed_out += 1,
            Handshake::ConnectFailed(kind) => *counts.connect_failed.entry(kind).or_default() += 1,
            Handshake::Unexpected => counts.unexpected += 1,
        }
    }
    shared.settled.fetch_add(1, Ordering::AcqRel);
    if let Some(stream) = stream {
        if !hold(stream, spec.keep_alive, stop).await {
            shared.counts.lock().unwrap().dropped_while_held += 1;
        }
    }
}

fn connack_name(code: u8) -> String {
    crate::packet::Incoming::ConnAck { session_present: false, code, properties: vec![] }
        .describe(crate::packet::Version::V311)
        .trim_start_matches("CONNACK ")
        .to_string()
}

async fn handshake(spec: &FleetSpec, index: usize, rbuf: &mut BytesMut) -> (Handshake, Option<TcpStream>) {
    let mut stream = match TcpStream::connect(spec.addr).await {
        Ok(s) => s,
        Err(e) => return (Handshake::ConnectFailed(connect_error(&e)), None),
    };
    let mut out = BytesMut::with_capacity(32 + spec.client_prefix.len());
    wire::encode_connect(&mut out, &format!("{}{index}", spec.client_prefix), spec.keep_alive);
    if let Err(e) = stream.write_all(&out).await {
        return (read_error(&e), None);
    }
    loop {
        match wire::decode(rbuf) {
            Ok(Some((Packet::ConnAck { code: 0, .. }, used))) => {
                rbuf.advance(used);
                return (Handshake::Accepted, Some(stream));
            }
            Ok(Some((Packet::ConnAck { code, .. }, _))) => return (Handshake::Refused(code), None),
            Ok(Some(_)) | Err(_) => return (Handshake::Unexpected, None),
            Ok(None) => {}
        }
        match stream.read_buf(rbuf).await {
            Ok(0) => return (Handshake::Closed, None),
            Ok(_) => {}
            Err(e) => return (read_error(&e), None),
        }
    }
}

fn read_error(e: &std::io::Error) -> Handshake {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => Handshake::Reset,
        _ => Handshake::Closed,
    }
}

/// A failed TCP connect, in words (a TLS fleet's too).
pub(crate) fn connect_error(e: &std::io::Error) -> String {
    match (e.kind(), e.raw_os_error()) {
        (ErrorKind::ConnectionRefused, _) => "connection refused".into(),
        (ErrorKind::TimedOut, _) => "tcp connect timed out".into(),
        (ErrorKind::AddrNotAvailable, _) => "no free local port".into(),
        (_, Some(24)) => "loadgen out of file descriptors (EMFILE)".into(),
        _ => format!("{e}"),
    }
}

/// Holds an accepted connection (plain or TLS) until `stop`, pinging at half its
/// keep-alive; false if the broker ended it first.
pub(crate) async fn hold<S>(mut stream: S, keep_alive: u16, mut stop: watch::Receiver<bool>) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut sink = [0u8; 64];
    let ping_every = Duration::from_secs(u64::from(keep_alive.max(1))) / 2;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    loop {
        tokio::select! {
            _ = stop.changed() => return true,
            read = stream.read(&mut sink) => match read {
                Ok(0) | Err(_) => return false,
                Ok(_) => {} // PINGRESP
            },
            _ = ping.tick(), if keep_alive > 0 => {
                if stream.write_all(&[0xc0, 0x00]).await.is_err() {
                    return false;
                }
            }
        }
    }
}
