//! One subscriber of a pump row: PUBACKs every QoS 1 delivery, tracks each publisher's
//! sequence numbers (duplicates, loss) and the delivery latency, and tells the
//! publishers how far it got, so they stay within their lead.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;

use super::{Shared, DRAIN_IDLE};
use crate::connection::fill;
use crate::probe;
use crate::session::Stream;
use crate::stats::{new_histogram, SeqTracker};
use crate::wire::{self, Packet};

pub(super) struct SubscriberEnd {
    pub(super) unique: u64,
    pub(super) duplicates: u64,
    pub(super) last_delivery: Instant,
    pub(super) latency: Histogram<u64>,
    pub(super) error: Option<String>,
}

pub(super) async fn subscribe_loop(
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

/// The publisher index at the end of `<topic_root>/<tag>/<p>`.
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
}
