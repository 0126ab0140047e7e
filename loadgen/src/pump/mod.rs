//! QoS 1 throughput over one transport: P publishers × S subscribers move a fixed number
//! of messages through a broker, and the delivery rate is what the broker sustained.
//!
//! The run-based machinery of `compare` owns its `TcpStream`s; this pump is the same
//! idea over [`Stream`], so TLS and TCP rows (`tls`) and the store's sync modes
//! (`durability`) run the very same client code. Each publisher also times every
//! PUBLISH to its PUBACK: with a durable store that is what the store's commit costs.
//! Subscribers may hold persistent sessions, and [`run_offline`] publishes while they are
//! away, so their deliveries are queued by the broker, then counts what the reconnected
//! subscribers get. Like
//! `compare`'s `max` rows it is closed loop: the publishers together stay at most `lead`
//! messages ahead of the slowest subscriber and each at most `inflight` PUBACKs behind,
//! so the engine's queues stay bounded and nothing is dropped for being late. Every wait
//! ends at the row's deadline: a stuck row reports what it got, it never hangs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::{Buf, BufMut, BytesMut};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncWriteExt, ReadHalf};
use tokio::sync::Notify;

use crate::connection::fill;
use crate::probe::{self, PROBE_LEN};
use crate::session::{self, Dialer, Stream};
use crate::stats::{new_histogram, LatencySummary};
use crate::wire::{self, Packet};

mod subscriber;

use subscriber::{subscribe_loop, SubscriberEnd};

/// Publishes encoded per write at most.
const BATCH: u64 = 64;
/// A subscriber that gets nothing this long after every PUBACK arrived stops waiting.
const DRAIN_IDLE: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct PumpSpec {
    pub dialer: Dialer,
    pub publishers: usize,
    pub subscribers: usize,
    /// Messages per publisher.
    pub messages: u64,
    pub payload: usize,
    pub inflight: u64,
    pub lead: u64,
    /// Longest the row may take once publishing starts.
    pub timeout: Duration,
    /// Topics are `<topic_root>/<tag>/<publisher>`.
    pub topic_root: &'static str,
    /// Distinguishes topics and client ids of rows.
    pub tag: String,
    /// Subscribers hold persistent sessions (clean session off).
    pub persistent: bool,
}

/// One row's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct PumpResult {
    pub published: u64,
    pub acked: u64,
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub duplicates: u64,
    /// From the release of the publishers to the last delivery.
    pub elapsed_s: f64,
    /// Deliveries per second (S × publishes per second when nothing is lost).
    pub delivery_rate: f64,
    /// From the release of the publishers to the last PUBACK.
    pub publish_elapsed_s: f64,
    /// PUBACKs per second, all publishers together.
    pub publish_rate: f64,
    /// Send time → receive time of the deliveries.
    pub latency: LatencySummary,
    /// PUBLISH written → its PUBACK read.
    pub puback_latency: LatencySummary,
    pub errors: Vec<String>,
}

struct Shared {
    sent: AtomicU64,
    /// Publishers whose every message is acknowledged.
    done: AtomicU64,
    /// Deliveries per subscriber.
    received: Vec<AtomicU64>,
    wake: Notify,
}

impl Shared {
    fn new(subscribers: usize) -> Shared {
        Shared {
            sent: AtomicU64::new(0),
            done: AtomicU64::new(0),
            received: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
            wake: Notify::new(),
        }
    }

    fn slowest(&self) -> u64 {
        self.received.iter().map(|r| r.load(Ordering::Acquire)).min().unwrap_or(0)
    }

    /// Takes up to `want` messages of the publishers' common lead over the slowest
    /// subscriber; 0 when the lead is used up. Reserved before sending, so publishers
    /// racing for the last of it cannot overshoot it together.
    fn reserve(&self, want: u64, lead: u64) -> u64 {
        let slowest = self.slowest();
        let free = |sent: u64| lead.saturating_sub(sent.saturating_sub(slowest)).min(want);
        match self.sent.fetch_update(Ordering::AcqRel, Ordering::Acquire, |sent| {
            let take = free(sent);
            (take > 0).then_some(sent + take)
        }) {
            Ok(before) => free(before),
            Err(_) => 0,
        }
    }
}

/// What the publishers of a row came to.
struct Published {
    published: u64,
    acked: u64,
    last_ack: Instant,
    puback_us: Histogram<u64>,
    errors: Vec<String>,
}

/// What the subscribers of a row came to.
struct Delivered {
    delivered: u64,
    duplicates: u64,
    last: Instant,
    latency: Histogram<u64>,
    errors: Vec<String>,
}

const HANDSHAKE: Duration = Duration::from_secs(10);

fn topic_prefix(spec: &PumpSpec) -> String {
    format!("{}/{}", spec.topic_root, spec.tag)
}

/// Subscribers, connected (and subscribed when `subscribe`) in order.
async fn open_subscribers(spec: &PumpSpec, subscribe: bool) -> Result<Vec<(Stream, BytesMut)>> {
    let mut subscribers = Vec::with_capacity(spec.subscribers);
    for s in 0..spec.subscribers {
        let id = format!("lg-{}-s{s}", spec.tag);
        let (mut stream, mut rbuf, _) =
            session::open_session(&spec.dialer, &id, 60, HANDSHAKE, !spec.persistent).await?;
        if subscribe {
            session::subscribe(&mut stream, &mut rbuf, &format!("{}/+", topic_prefix(spec)), HANDSHAKE).await?;
        }
        subscribers.push((stream, rbuf));
    }
    Ok(subscribers)
}

async fn open_publishers(spec: &PumpSpec) -> Result<Vec<(Stream, BytesMut)>> {
    let mut publishers = Vec::with_capacity(spec.publishers);
    for p in 0..spec.publishers {
        let id = format!("lg-{}-p{p}", spec.tag);
        publishers.push(session::open(&spec.dialer, &id, 60, HANDSHAKE).await?);
    }
    Ok(publishers)
}

fn spawn_subscribers(
    subscribers: Vec<(Stream, BytesMut)>,
    spec: &PumpSpec,
    shared: &Arc<Shared>,
    deadline: tokio::time::Instant,
) -> Vec<tokio::task::JoinHandle<SubscriberEnd>> {
    let expected = spec.messages * spec.publishers as u64;
    subscribers
        .into_iter()
        .enumerate()
        .map(|(i, (stream, rbuf))| {
            let (shared, publishers) = (shared.clone(), spec.publishers as u64);
            tokio::spawn(subscribe_loop(stream, rbuf, i, publishers, expected, shared, deadline))
        })
        .collect()
}

/// Releases the publishers and waits until each has all its PUBACKs (or gave up).
async fn publish(
    publishers: Vec<(Stream, BytesMut)>,
    spec: &PumpSpec,
    shared: &Arc<Shared>,
    start: Instant,
    deadline: tokio::time::Instant,
) -> Published {
    let prefix = topic_prefix(spec);
    let pubs: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(p, (stream, rbuf))| {
            let topic = format!("{prefix}/{p}");
            tokio::spawn(publish_loop(stream, rbuf, topic, spec.clone(), shared.clone(), deadline))
        })
        .collect();
    let mut out = Published { published: 0, acked: 0, last_ack: start, puback_us: new_histogram(), errors: Vec::new() };
    for p in pubs {
        match p.await {
            Ok(Ok(end)) => {
                out.published += end.sent;
                out.acked += end.acked;
                out.last_ack = out.last_ack.max(end.last_ack);
                let _ = out.puback_us.add(&end.puback_us);
            }
            Ok(Err(e)) => out.errors.push(format!("publisher: {e:#}")),
            Err(e) => out.errors.push(format!("publisher task: {e}")),
        }
    }
    out
}

async fn collect(subs: Vec<tokio::task::JoinHandle<SubscriberEnd>>, start: Instant) -> Delivered {
    let mut out = Delivered { delivered: 0, duplicates: 0, last: start, latency: new_histogram(), errors: Vec::new() };
    for s in subs {
        match s.await {
            Ok(end) => {
                out.delivered += end.unique;
                out.duplicates += end.duplicates;
                out.last = out.last.max(end.last_delivery);
                let _ = out.latency.add(&end.latency);
                out.errors.extend(end.error.map(|e| format!("subscriber: {e}")));
            }
            Err(e) => out.errors.push(format!("subscriber task: {e}")),
        }
    }
    out
}

fn result(spec: &PumpSpec, published: Published, delivered: Delivered, start: Instant, drain: Instant) -> PumpResult {
    let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let elapsed_s = delivered.last.saturating_duration_since(drain).as_secs_f64();
    let publish_elapsed_s = published.last_ack.duration_since(start).as_secs_f64();
    let mut errors = published.errors;
    errors.extend(delivered.errors);
    PumpResult {
        published: published.published,
        acked: published.acked,
        expected_deliveries: spec.messages * spec.publishers as u64 * spec.subscribers as u64,
        delivered: delivered.delivered,
        duplicates: delivered.duplicates,
        elapsed_s,
        delivery_rate: rate(delivered.delivered, elapsed_s),
        publish_elapsed_s,
        publish_rate: rate(published.acked, publish_elapsed_s),
        latency: LatencySummary::from_histogram(&delivered.latency),
        puback_latency: LatencySummary::from_histogram(&published.puback_us),
        errors,
    }
}

/// Connects everyone, releases the publishers and waits for the last delivery.
pub async fn run(spec: &PumpSpec) -> Result<PumpResult> {
    let subscribers = open_subscribers(spec, true).await?;
    let publishers = open_publishers(spec).await?;
    let shared = Arc::new(Shared::new(spec.subscribers));
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + spec.timeout);
    let subs = spawn_subscribers(subscribers, spec, &shared, deadline);
    let published = publish(publishers, spec, &shared, start, deadline).await;
    let delivered = collect(subs, start).await;
    Ok(result(spec, published, delivered, start, start))
}

/// The subscribers (persistent sessions) subscribe and leave; the publishers publish
/// everything while they are away, so the broker queues S × M deliveries; then the
/// subscribers come back and drain. Rates: PUBACKs/s while they are away, and
/// deliveries/s from their return to the last delivery. Delivery latency is left empty:
/// it would be how long they were away.
pub async fn run_offline(spec: &PumpSpec) -> Result<PumpResult> {
    anyhow::ensure!(spec.persistent, "offline subscribers need persistent sessions");
    for (stream, _) in open_subscribers(spec, true).await? {
        session::disconnect(stream).await;
    }
    let publishers = open_publishers(spec).await?;
    // Nobody to stay ahead of: the publishers are only bounded by their in-flight window.
    let away = PumpSpec { lead: u64::MAX, ..spec.clone() };
    let shared = Arc::new(Shared::new(spec.subscribers));
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + spec.timeout);
    let published = publish(publishers, &away, &shared, start, deadline).await;
    let drain = Instant::now();
    let subscribers = open_subscribers(spec, false).await?;
    let subs = spawn_subscribers(subscribers, spec, &shared, deadline);
    let mut delivered = collect(subs, drain).await;
    delivered.latency = new_histogram();
    Ok(result(spec, published, delivered, start, drain))
}

/// What one publisher came to.
struct PublisherEnd {
    sent: u64,
    acked: u64,
    last_ack: Instant,
    puback_us: Histogram<u64>,
}

/// Publishes `spec.messages` to `topic` within the window and the lead.
async fn publish_loop(
    stream: Stream,
    rbuf: BytesMut,
    topic: String,
    spec: PumpSpec,
    shared: Arc<Shared>,
    deadline: tokio::time::Instant,
) -> Result<PublisherEnd> {
    let (reader, mut writer) = tokio::io::split(stream);
    let acked = Arc::new(AtomicU64::new(0));
    // Write time of each packet id in flight (ids are never reused within the window).
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..=u16::MAX).map(|_| AtomicU64::new(0)).collect());
    let acks =
        tokio::spawn(read_acks(reader, rbuf, spec.messages, acked.clone(), sent_at.clone(), shared.clone(), deadline));
    let mut out = BytesMut::with_capacity(BATCH as usize * wire::publish_len(topic.len(), 1, spec.payload));
    let filler = vec![0x5a; spec.payload - PROBE_LEN];
    let mut seq = 0u64;
    let result = loop {
        if seq == spec.messages {
            break Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            break Err(anyhow::anyhow!("{topic}: deadline with {seq} of {} published", spec.messages));
        }
        let wake = shared.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let window = spec.inflight.saturating_sub(seq - acked.load(Ordering::Acquire));
        let room = if window == 0 { 0 } else { shared.reserve(window.min(BATCH).min(spec.messages - seq), spec.lead) };
        if room == 0 {
            let _ = tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + Duration::from_millis(5)), wake)
                .await;
            continue;
        }
        out.clear();
        let now = Instant::now();
        for _ in 0..room {
            let pkid = (seq % 65_535) as u16 + 1;
            sent_at[pkid as usize].store(probe::nanos(now), Ordering::Release);
            wire::encode_publish_head(&mut out, topic.as_bytes(), 1, pkid, spec.payload);
            let mut head = [0u8; PROBE_LEN];
            probe::write(&mut head, probe::nanos(now), seq);
            out.put_slice(&head);
            out.put_slice(&filler);
            seq += 1;
        }
        if let Err(e) = writer.write_all(&out).await {
            break Err(anyhow::anyhow!("{topic}: write: {e}"));
        }
    };
    let end = acks.await.unwrap_or_else(|_| AckEnd { got: 0, last: Instant::now(), puback_us: new_histogram() });
    result.map(|()| PublisherEnd { sent: seq, acked: end.got, last_ack: end.last, puback_us: end.puback_us })
}

struct AckEnd {
    got: u64,
    last: Instant,
    puback_us: Histogram<u64>,
}

/// Counts and times PUBACKs until all `messages` are acknowledged, the stream ends or
/// the deadline.
async fn read_acks(
    mut reader: ReadHalf<Stream>,
    mut rbuf: BytesMut,
    messages: u64,
    acked: Arc<AtomicU64>,
    sent_at: Arc<Vec<AtomicU64>>,
    shared: Arc<Shared>,
    deadline: tokio::time::Instant,
) -> AckEnd {
    let mut end = AckEnd { got: 0, last: Instant::now(), puback_us: new_histogram() };
    while end.got < messages {
        let now_ns = probe::nanos(Instant::now());
        let before = end.got;
        while let Ok(Some((packet, used))) = wire::decode(&rbuf) {
            if let Packet::PubAck { pkid } = packet {
                end.got += 1;
                let sent_ns = sent_at[pkid as usize].load(Ordering::Acquire);
                let _ = end.puback_us.record((now_ns.saturating_sub(sent_ns) / 1_000).max(1));
            }
            rbuf.advance(used);
        }
        if end.got != before {
            end.last = Instant::now();
        }
        acked.store(end.got, Ordering::Release);
        shared.wake.notify_waiters();
        if end.got == messages {
            shared.done.fetch_add(1, Ordering::AcqRel);
            break;
        }
        match tokio::time::timeout_at(deadline, fill(&mut reader, &mut rbuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishers_share_the_lead_without_overshooting_it() {
        let shared = Shared::new(2);
        assert_eq!(shared.reserve(64, 100), 64);
        assert_eq!(shared.reserve(64, 100), 36, "only what is left of the lead");
        assert_eq!(shared.reserve(64, 100), 0);
        shared.received[0].store(50, Ordering::Release);
        assert_eq!(shared.reserve(64, 100), 0, "the slowest subscriber bounds it");
        shared.received[1].store(10, Ordering::Release);
        assert_eq!(shared.reserve(64, 100), 10);
        assert_eq!(shared.sent.load(Ordering::Acquire), 110);
    }
}
