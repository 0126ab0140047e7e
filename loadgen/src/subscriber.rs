//! One subscribing connection: parse every delivery in place, account for it, and PUBACK
//! QoS 1 deliveries in one write per read.
//!
//! The receive time is taken once per read, not per message: every message in a read
//! arrived no later than that instant, and a clock call per message would be a large part
//! of the per-message cost at hundreds of thousands of deliveries per second.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::connection::Conn;
use crate::probe;
use crate::progress::Progress;
use crate::run::Counters;
use crate::stats::{SubscriberStats, Window};
use crate::wire::{self, Packet, Publish};

#[derive(Debug, Clone)]
pub struct SubscriberPlan {
    pub index: usize,
    /// `bench/<run-id>/`: the publisher index follows it.
    pub topic_prefix: Vec<u8>,
    pub publishers: usize,
    pub keep_alive: Duration,
    pub window: Window,
}

pub struct SubscriberReport {
    pub stats: SubscriberStats,
    pub error: Option<String>,
}

/// Receives until `stop`, then disconnects.
pub async fn run(
    mut conn: Conn,
    plan: SubscriberPlan,
    counters: Arc<Counters>,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> SubscriberReport {
    let mut stats = SubscriberStats::new(plan.publishers);
    let error = receive(&mut conn, &plan, &mut stats, &counters, &progress, &mut stop).await.err();
    let mut out = BytesMut::with_capacity(2);
    wire::encode_disconnect(&mut out);
    let _ = conn.stream.write_all(&out).await;
    let _ = conn.stream.shutdown().await;
    SubscriberReport { stats, error }
}

async fn receive(
    conn: &mut Conn,
    plan: &SubscriberPlan,
    stats: &mut SubscriberStats,
    counters: &Counters,
    progress: &Progress,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let mut acks = BytesMut::with_capacity(16 * 1024);
    let mut reported = vec![0u64; plan.publishers];
    let ping_every = plan.keep_alive / 2;
    let mut ping = tokio::time::interval_at((Instant::now() + ping_every).into(), ping_every);
    loop {
        // Bytes may already be buffered from the handshake, so parse before reading.
        let now_ns = probe::nanos(Instant::now());
        let mut used_total = 0;
        let mut delivered = 0;
        loop {
            match wire::decode(&conn.rbuf[used_total..]) {
                Ok(Some((packet, used))) => {
                    used_total += used;
                    match packet {
                        Packet::Publish(p) => {
                            delivered += 1;
                            account(&p, plan, stats, now_ns);
                            if p.qos > 0 {
                                wire::encode_puback(&mut acks, p.pkid);
                            }
                        }
                        Packet::PingResp => {}
                        other => return Err(format!("unexpected packet to a subscriber: {other:?}")),
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        conn.rbuf.advance(used_total);
        if delivered > 0 {
            counters.delivered.fetch_add(delivered, Ordering::Release);
            for (p, (tracker, last)) in stats.per_publisher.iter().zip(reported.iter_mut()).enumerate() {
                if tracker.next() > *last {
                    *last = tracker.next();
                    progress.advance(p, plan.index, *last);
                }
            }
        }
        if !acks.is_empty() {
            conn.stream.write_all(&acks).await.map_err(|e| format!("subscriber write failed: {e}"))?;
            acks.clear();
        }
        tokio::select! {
            r = conn.read_more() => match r {
                Ok(0) if *stop.borrow() => return Ok(()),
                Ok(0) => return Err("broker closed the subscriber connection".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("subscriber read failed: {e}")),
            },
            _ = ping.tick() => {
                let mut out = BytesMut::with_capacity(2);
                wire::encode_pingreq(&mut out);
                conn.stream.write_all(&out).await.map_err(|e| format!("subscriber ping failed: {e}"))?;
            }
            _ = stop.changed() => return Ok(()),
        }
    }
}

fn account(p: &Publish<'_>, plan: &SubscriberPlan, stats: &mut SubscriberStats, now_ns: u64) {
    let publisher = p.topic.strip_prefix(plan.topic_prefix.as_slice()).and_then(parse_index);
    match (publisher, probe::read(p.payload)) {
        (Some(publisher), Some((sent_ns, seq))) => stats.record(publisher, seq, sent_ns, now_ns, &plan.window),
        _ => {
            stats.received += 1;
            stats.foreign += 1;
        }
    }
}

fn parse_index(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    digits.iter().try_fold(0usize, |n, &d| d.is_ascii_digit().then(|| n * 10 + (d - b'0') as usize))
}

#[cfg(test)]
mod tests {
    use super::parse_index;

    #[test]
    fn parses_publisher_index_from_topic_tail() {
        assert_eq!(parse_index(b"0"), Some(0));
        assert_eq!(parse_index(b"42"), Some(42));
        assert_eq!(parse_index(b""), None);
        assert_eq!(parse_index(b"4x"), None);
        assert_eq!(parse_index(b"1/2"), None);
    }
}
