//! QoS 1 throughput over one transport: P publishers × S subscribers move a fixed number
//! of messages through the engine, and the delivery rate is what the engine sustained.
//!
//! The run-based machinery of `compare` owns its `TcpStream`s; this pump is the same
//! idea over [`Stream`], so TLS and TCP rows run the very same client code. Like
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

use super::session::{self, Dialer, Stream};
use crate::connection::fill;
use crate::probe::{self, PROBE_LEN};
use crate::stats::{merge_latency, new_histogram, LatencySummary, SeqTracker};
use crate::wire::{self, Packet};

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
    /// Distinguishes topics and client ids of rows.
    pub tag: String,
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
    pub latency: LatencySummary,
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

/// Connects everyone, releases the publishers and waits for the last delivery.
pub async fn run(spec: &PumpSpec) -> Result<PumpResult> {
    let handshake = Duration::from_secs(10);
    let prefix = format!("bench/tls/{}", spec.tag);
    let mut subscribers = Vec::with_capacity(spec.subscribers);
    for s in 0..spec.subscribers {
        let id = format!("lg-{}-s{s}", spec.tag);
        let (mut stream, mut rbuf) = session::open(&spec.dialer, &id, 60, handshake).await?;
        session::subscribe(&mut stream, &mut rbuf, &format!("{prefix}/+"), handshake).await?;
        subscribers.push((stream, rbuf));
    }
    let mut publishers = Vec::with_capacity(spec.publishers);
    for p in 0..spec.publishers {
        let id = format!("lg-{}-p{p}", spec.tag);
        publishers.push(session::open(&spec.dialer, &id, 60, handshake).await?);
    }
    let shared = Arc::new(Shared {
        sent: AtomicU64::new(0),
        done: AtomicU64::new(0),
        received: (0..spec.subscribers).map(|_| AtomicU64::new(0)).collect(),
        wake: Notify::new(),
    });
    let expected = spec.messages * spec.publishers as u64;
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + spec.timeout);
    let subs: Vec<_> = subscribers
        .into_iter()
        .enumerate()
        .map(|(i, (stream, rbuf))| {
            let (shared, publishers) = (shared.clone(), spec.publishers);
            tokio::spawn(subscribe_loop(stream, rbuf, i, publishers as u64, expected, shared, deadline))
        })
        .collect();
    let pubs: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(p, (stream, rbuf))| {
            let topic = format!("{prefix}/{p}");
            tokio::spawn(publish_loop(stream, rbuf, topic, spec.clone(), shared.clone(), deadline))
        })
        .collect();
    let (mut published, mut acked, mut errors) = (0, 0, Vec::new());
    for p in pubs {
        match p.await {
            Ok(Ok((sent, got))) => (published, acked) = (published + sent, acked + got),
            Ok(Err(e)) => errors.push(format!("publisher: {e:#}")),
            Err(e) => errors.push(format!("publisher task: {e}")),
        }
    }
    let (mut delivered, mut duplicates, mut last, mut hists) = (0, 0, start, Vec::new());
    for s in subs {
        match s.await {
            Ok(end) => {
                delivered += end.unique;
                duplicates += end.duplicates;
                last = last.max(end.last_delivery);
                hists.push(end.latency);
                errors.extend(end.error.map(|e| format!("subscriber: {e}")));
            }
            Err(e) => errors.push(format!("subscriber task: {e}")),
        }
    }
    let elapsed_s = last.duration_since(start).as_secs_f64();
    Ok(PumpResult {
        published,
        acked,
        expected_deliveries: expected * spec.subscribers as u64,
        delivered,
        duplicates,
        elapsed_s,
        delivery_rate: if elapsed_s > 0.0 { delivered as f64 / elapsed_s } else { 0.0 },
        latency: LatencySummary::from_histogram(&merge_latency(&hists)),
        errors,
    })
}

/// Returns (published, PUBACKs received).
async fn publish_loop(
    stream: Stream,
    rbuf: BytesMut,
    topic: String,
    spec: PumpSpec,
    shared: Arc<Shared>,
    deadline: tokio::time::Instant,
) -> Result<(u64, u64)> {
    let (reader, mut writer) = tokio::io::split(stream);
    let acked = Arc::new(AtomicU64::new(0));
    let acks = tokio::spawn(read_acks(reader, rbuf, spec.messages, acked.clone(), shared.clone(), deadline));
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
        for _ in 0..room {
            let pkid = (seq % 65_535) as u16 + 1;
            wire::encode_publish_head(&mut out, topic.as_bytes(), 1, pkid, spec.payload);
            let mut head = [0u8; PROBE_LEN];
            probe::write(&mut head, probe::nanos(Instant::now()), seq);
            out.put_slice(&head);
            out.put_slice(&filler);
            seq += 1;
        }
        if let Err(e) = writer.write_all(&out).await {
            break Err(anyhow::anyhow!("{topic}: write: {e}"));
        }
    };
    let got = acks.await.unwrap_or(0);
    result.map(|()| (seq, got))
}

/// Counts PUBACKs until all `messages` are acknowledged, the stream ends or the deadline.
async fn read_acks(
    mut reader: ReadHalf<Stream>,
    mut rbuf: BytesMut,
    messages: u64,
    acked: Arc<AtomicU64>,
    shared: Arc<Shared>,
    deadline: tokio::time::Instant,
) -> u64 {
    let mut got = 0;
    while got < messages {
        while let Ok(Some((packet, used))) = wire::decode(&rbuf) {
            if let Packet::PubAck { .. } = packet {
                got += 1;
            }
            rbuf.advance(used);
        }
        acked.store(got, Ordering::Release);
        shared.wake.notify_waiters();
        if got == messages {
            shared.done.fetch_add(1, Ordering::AcqRel);
            break;
        }
        match tokio::time::timeout_at(deadline, fill(&mut reader, &mut rbuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
    got
}

struct SubscriberEnd {
    unique: u64,
    duplicates: u64,
    last_delivery: Instant,
    latency: Histogram<u64>,
    error: Option<String>,
}

async fn subscribe_loop(
    mut stream: Stream,
    mut rbuf: BytesMut,
    index: usize,
    publishers: u64,
    expected: u64,
    shared: Arc<Shared>,
    deadline: tokio::time::Instant,
) -> SubscriberEnd {
    let mut trackers = vec![SeqTracker::default(); publishers as usize];
    let mut end = SubscriberEnd {
        unique: 0,
        duplicates: 0,
        last_delivery: Instant::now(),
        latency: new_histogram(),
        error: None,
    };
    let mut acks = BytesMut::with_capacity(4096);
    while end.unique < expected {
        let now_ns = probe::nanos(Instant::now());
        acks.clear();
        loop {
            let (used, pkid, qos, publisher, probe) = match wire::decode(&rbuf) {
                Ok(Some((Packet::Publish(p), used))) => {
                    (used, p.pkid, p.qos, publisher_of(p.topic), probe::read(p.payload))
                }
                Ok(Some((_, used))) => {
                    rbuf.advance(used);
                    continue;
                }
                Ok(None) => break,
                Err(e) => {
                    end.error = Some(e.to_string());
                    return end;
                }
            };
            rbuf.advance(used);
            if qos == 1 {
                wire::encode_puback(&mut acks, pkid);
            }
            if let (Some(p), Some((sent_ns, seq))) = (publisher.filter(|&p| p < publishers as usize), probe) {
                trackers[p].record(seq);
                let _ = end.latency.record((now_ns.saturating_sub(sent_ns) / 1_000).max(1));
            }
        }
        end.unique = trackers.iter().map(|t| t.unique).sum();
        end.duplicates = trackers.iter().map(|t| t.duplicates).sum();
        if shared.received[index].swap(end.unique, Ordering::AcqRel) != end.unique {
            end.last_delivery = Instant::now();
            shared.wake.notify_waiters();
        }
        if !acks.is_empty() && stream.write_all(&acks).await.is_err() {
            end.error = Some("write PUBACK failed".into());
            return end;
        }
        if end.unique >= expected {
            break;
        }
        match read_or_give_up(&mut stream, &mut rbuf, &shared, publishers, deadline).await {
            Ok(n) if n > 0 => {}
            Ok(_) => {
                end.error = Some(format!("closed after {} of {expected} deliveries", end.unique));
                break;
            }
            Err(why) => {
                end.error = Some(format!("{why} after {} of {expected} deliveries", end.unique));
                break;
            }
        }
    }
    end
}

/// Reads more, unless the row's deadline passes or nothing came for [`DRAIN_IDLE`]
/// although every publisher has all its PUBACKs: what is missing then was dropped.
async fn read_or_give_up(
    stream: &mut Stream,
    rbuf: &mut BytesMut,
    shared: &Shared,
    publishers: u64,
    deadline: tokio::time::Instant,
) -> Result<usize, String> {
    loop {
        let wait = deadline.min(tokio::time::Instant::now() + DRAIN_IDLE);
        match tokio::time::timeout_at(wait, fill(stream, rbuf)).await {
            Ok(Ok(n)) => return Ok(n),
            Ok(Err(e)) => return Err(format!("read failed ({e})")),
            Err(_) if tokio::time::Instant::now() >= deadline => return Err("deadline".into()),
            Err(_) if shared.done.load(Ordering::Acquire) == publishers => {
                return Err(format!("nothing for {DRAIN_IDLE:?} once every publish was acknowledged"))
            }
            Err(_) => {}
        }
    }
}

/// The publisher index at the end of `bench/tls/<tag>/<p>`.
fn publisher_of(topic: &[u8]) -> Option<usize> {
    let last = topic.rsplit(|&b| b == b'/').next()?;
    std::str::from_utf8(last).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_publisher_from_the_topic() {
        assert_eq!(publisher_of(b"bench/tls/x-1/7"), Some(7));
        assert_eq!(publisher_of(b"bench/tls/x-1/"), None);
        assert_eq!(publisher_of(b"12"), Some(12));
        assert_eq!(publisher_of(b"a/b/c"), None);
    }

    #[test]
    fn publishers_share_the_lead_without_overshooting_it() {
        let shared = Shared {
            sent: AtomicU64::new(0),
            done: AtomicU64::new(0),
            received: vec![AtomicU64::new(0), AtomicU64::new(0)],
            wake: Notify::new(),
        };
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
