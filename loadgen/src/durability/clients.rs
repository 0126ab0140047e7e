//! The MQTT clients of the restart measurement: fill a broker with retained messages,
//! persistent sessions and queued messages; after a restart, time the first retained
//! message and count what came back.
//!
//! Every payload starts with `g<generation> ` so a message queued before an earlier
//! restart (one a broker restored from an older save) is told apart from the one
//! expected now.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Buf, BufMut, BytesMut};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::connection::fill;
use crate::session::{self, Dialer, Stream};
use crate::wire::{self, Packet};

pub const ROOT: &str = "bench/durability/restart";
const HANDSHAKE: Duration = Duration::from_secs(10);
/// A reader that gets nothing this long after its last message stops waiting.
const IDLE: Duration = Duration::from_secs(2);

pub fn retained_topic(i: usize) -> String {
    format!("{ROOT}/r/{i}")
}

pub fn session_topic(i: usize) -> String {
    format!("{ROOT}/q/{i}")
}

pub fn session_client(i: usize) -> String {
    format!("lg-restart-{i}")
}

/// `g<generation> <index>` padded to `size` bytes.
fn payload(generation: u32, index: usize, size: usize) -> Vec<u8> {
    let mut p = format!("g{generation} {index} ").into_bytes();
    p.resize(size.max(p.len()), b'.');
    p
}

fn generation_of(payload: &[u8]) -> Option<u32> {
    let head = payload.strip_prefix(b"g")?;
    let end = head.iter().position(|&b| b == b' ')?;
    std::str::from_utf8(&head[..end]).ok()?.parse().ok()
}

fn index_of(topic: &[u8]) -> Option<usize> {
    let last = topic.rsplit(|&b| b == b'/').next()?;
    std::str::from_utf8(last).ok()?.parse().ok()
}

/// Publishes `(topic, retain)` messages at QoS 1 over `connections` clients, each at most
/// `inflight` unacknowledged; returns how many were acknowledged.
pub async fn publish_all(
    dialer: &Dialer,
    messages: Vec<(String, bool)>,
    generation: u32,
    size: usize,
    connections: usize,
    inflight: u64,
    timeout: Duration,
) -> Result<u64> {
    let messages = Arc::new(messages);
    let acked = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..connections.max(1) {
        let (dialer, messages, acked) = (dialer.clone(), messages.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("lg-restart-fill-{}-{c}", std::process::id());
            let (stream, rbuf) = session::open(&dialer, &id, 60, HANDSHAKE).await?;
            let mine = (c..messages.len()).step_by(connections.max(1)).map(|i| (i, &messages[i]));
            let got = tokio::time::timeout(timeout, pipeline(stream, rbuf, mine, generation, size, inflight))
                .await
                .with_context(|| format!("{id}: not every PUBACK within {timeout:?}"))??;
            acked.fetch_add(got, Ordering::AcqRel);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(acked.load(Ordering::Acquire))
}

async fn pipeline<'a>(
    mut stream: Stream,
    mut rbuf: BytesMut,
    mut items: impl Iterator<Item = (usize, &'a (String, bool))>,
    generation: u32,
    size: usize,
    inflight: u64,
) -> Result<u64> {
    let (mut sent, mut acked, mut pkid, mut more) = (0u64, 0u64, 0u16, true);
    let mut out = BytesMut::with_capacity(64 * 1024);
    while more || acked < sent {
        out.clear();
        while more && sent - acked < inflight {
            let Some((index, (topic, retain))) = items.next() else {
                more = false;
                break;
            };
            pkid = pkid % 65_535 + 1;
            let body = payload(generation, index, size);
            if *retain {
                wire::encode_retained_publish_head(&mut out, topic.as_bytes(), 1, pkid, body.len());
            } else {
                wire::encode_publish_head(&mut out, topic.as_bytes(), 1, pkid, body.len());
            }
            out.put_slice(&body);
            sent += 1;
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
        }
        if acked == sent {
            continue;
        }
        if fill(&mut stream, &mut rbuf).await? == 0 {
            bail!("closed with {} of {sent} acknowledged", acked);
        }
        while let Some((packet, used)) = wire::decode(&rbuf)? {
            if let Packet::PubAck { .. } = packet {
                acked += 1;
            }
            rbuf.advance(used);
        }
    }
    session::disconnect(stream).await;
    Ok(acked)
}

/// Opens `count` persistent sessions, each subscribed at QoS 1 to its own topic, and
/// leaves them (DISCONNECT), `concurrency` at a time.
pub async fn create_sessions(dialer: &Dialer, count: usize, concurrency: usize) -> Result<()> {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let (dialer, slot) = (dialer.clone(), slots.clone().acquire_owned().await?);
        tasks.push(tokio::spawn(async move {
            let (mut stream, mut rbuf, _) =
                session::open_session(&dialer, &session_client(i), 60, HANDSHAKE, false).await?;
            session::subscribe(&mut stream, &mut rbuf, &session_topic(i), HANDSHAKE).await?;
            session::disconnect(stream).await;
            drop(slot);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Reads PUBLISHes (acknowledging QoS 1 ones), calling `seen(topic, payload)` for each,
/// until it answers `true` (enough), nothing came for [`IDLE`], or the deadline.
async fn read_publishes(
    stream: &mut Stream,
    rbuf: &mut BytesMut,
    deadline: Instant,
    mut seen: impl FnMut(&[u8], &[u8]) -> bool,
) -> Result<()> {
    let mut acks = BytesMut::with_capacity(4096);
    loop {
        acks.clear();
        let mut enough = false;
        while let Some((packet, used)) = wire::decode(rbuf)? {
            if let Packet::Publish(p) = packet {
                if p.qos == 1 {
                    wire::encode_puback(&mut acks, p.pkid);
                }
                enough |= seen(p.topic, p.payload);
            }
            rbuf.advance(used);
        }
        if !acks.is_empty() {
            stream.write_all(&acks).await?;
        }
        if enough {
            return Ok(());
        }
        let wait = tokio::time::Instant::from_std(deadline.min(Instant::now() + IDLE));
        match tokio::time::timeout_at(wait, fill(stream, rbuf)).await {
            Ok(Ok(0)) => bail!("closed by the broker"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Ok(()),
        }
    }
}

/// A fresh client subscribes to one retained topic: how long until the message came.
pub async fn first_retained(dialer: &Dialer, index: usize, timeout: Duration) -> Result<Duration> {
    let started = Instant::now();
    let id = format!("lg-restart-first-{}", std::process::id());
    let (mut stream, mut rbuf) = session::open(dialer, &id, 60, HANDSHAKE).await?;
    session::subscribe(&mut stream, &mut rbuf, &retained_topic(index), HANDSHAKE).await?;
    let mut got = false;
    read_publishes(&mut stream, &mut rbuf, started + timeout, |_, _| {
        got = true;
        true
    })
    .await?;
    session::disconnect(stream).await;
    if !got {
        bail!("no retained message on {} within {timeout:?}", retained_topic(index));
    }
    Ok(started.elapsed())
}

/// Retained messages a subscriber to `<root>/r/#` got back.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetainedCount {
    pub expected: usize,
    /// Distinct topics with the expected generation.
    pub found: usize,
    pub seconds: f64,
    pub error: Option<String>,
}

pub async fn count_retained(dialer: &Dialer, expected: usize, generation: u32, timeout: Duration) -> RetainedCount {
    let started = Instant::now();
    let mut seen = HashSet::with_capacity(expected);
    let attempt = async {
        let id = format!("lg-restart-count-{}", std::process::id());
        let (mut stream, mut rbuf) = session::open(dialer, &id, 60, HANDSHAKE).await?;
        session::subscribe(&mut stream, &mut rbuf, &format!("{ROOT}/r/#"), HANDSHAKE).await?;
        read_publishes(&mut stream, &mut rbuf, started + timeout, |topic, payload| {
            if generation_of(payload) == Some(generation) {
                if let Some(i) = index_of(topic) {
                    seen.insert(i);
                }
            }
            seen.len() >= expected
        })
        .await?;
        session::disconnect(stream).await;
        anyhow::Ok(())
    };
    let error = attempt.await.err().map(|e| format!("{e:#}"));
    RetainedCount { expected, found: seen.len(), seconds: started.elapsed().as_secs_f64(), error }
}

/// What the persistent sessions got back after a restart.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionsCount {
    pub sessions: usize,
    /// CONNACK said `session present`.
    pub present: usize,
    pub queued_expected: u64,
    /// Deliveries of the expected generation.
    pub queued_delivered: u64,
    /// Deliveries of an earlier generation (restored from an older save).
    pub stale_delivered: u64,
    pub seconds: f64,
    pub errors: Vec<String>,
}

/// Each session reconnects (clean session off), takes its queued messages and leaves.
pub async fn drain_sessions(
    dialer: &Dialer,
    count: usize,
    per_session: u64,
    generation: u32,
    concurrency: usize,
    timeout: Duration,
) -> SessionsCount {
    let started = Instant::now();
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let Ok(slot) = slots.clone().acquire_owned().await else { break };
        let dialer = dialer.clone();
        tasks.push(tokio::spawn(async move {
            let (mut stream, mut rbuf, present) =
                session::open_session(&dialer, &session_client(i), 60, HANDSHAKE, false).await?;
            let (mut current, mut stale) = (0u64, 0u64);
            if per_session > 0 {
                read_publishes(&mut stream, &mut rbuf, started + timeout, |_, payload| {
                    match generation_of(payload) == Some(generation) {
                        true => current += 1,
                        false => stale += 1,
                    }
                    current >= per_session
                })
                .await?;
            }
            session::disconnect(stream).await;
            drop(slot);
            anyhow::Ok((present, current, stale))
        }));
    }
    let mut out = SessionsCount { sessions: count, queued_expected: count as u64 * per_session, ..Default::default() };
    for t in tasks {
        match t.await {
            Ok(Ok((present, current, stale))) => {
                out.present += present as usize;
                out.queued_delivered += current;
                out.stale_delivered += stale;
            }
            Ok(Err(e)) => out.errors.push(format!("{e:#}")),
            Err(e) => out.errors.push(format!("session task: {e}")),
        }
    }
    out.errors.truncate(5);
    out.seconds = started.elapsed().as_secs_f64();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_carry_their_generation_and_topics_their_index() {
        let p = payload(7, 42, 100);
        assert_eq!(p.len(), 100);
        assert_eq!(generation_of(&p), Some(7));
        assert_eq!(generation_of(b"x7 1"), None);
        assert_eq!(index_of(retained_topic(99_999).as_bytes()), Some(99_999));
        assert_eq!(index_of(b"a/b/"), None);
    }
}
