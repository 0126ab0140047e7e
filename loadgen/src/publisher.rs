//! One publishing connection: paced or flat-out PUBLISH batches on the write half, PUBACK
//! counting on the read half.
//!
//! Many messages are encoded into one reused buffer and written with one syscall, so the
//! client costs a few tens of nanoseconds per message and the broker, not the load tool,
//! sets the pace. QoS 1 keeps at most `inflight` unacknowledged messages, as a real client
//! honouring the broker's `max_inflight_messages` would; the reader releases the window.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{watch, Notify};
use tokio::time::{sleep_until, MissedTickBehavior};

use crate::connection::{self, Conn};
use crate::pacer::{Pacer, TICK};
use crate::probe::{self, PROBE_LEN};
use crate::progress::Progress;
use crate::run::Counters;
use crate::stats::Window;
use crate::wire::{self, Packet};

/// Bytes encoded per write when there is more than one message to send.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// What one publisher does.
#[derive(Debug, Clone)]
pub struct PublisherPlan {
    pub index: usize,
    pub topic: Vec<u8>,
    pub qos: u8,
    pub payload: usize,
    /// This publisher's msg/s; `None` publishes as fast as the broker accepts.
    pub rate: Option<f64>,
    /// Flat out only: how far this publisher may run ahead of its slowest subscriber.
    pub max_lead: Option<u64>,
    pub inflight: u64,
    pub keep_alive: Duration,
    pub start: Instant,
    pub end: Instant,
    pub window: Window,
}

#[derive(Debug, Default, Clone)]
pub struct PublisherReport {
    pub sent: u64,
    pub sent_in_window: u64,
    pub acked: u64,
    pub error: Option<String>,
}

/// The QoS 1 window shared by the writer and the reader of one connection.
#[derive(Default)]
struct AckWindow {
    acked: AtomicU64,
    closed: AtomicBool,
    notify: Notify,
}

/// Publishes until `plan.end`, then waits for `stop` and disconnects.
pub async fn run(
    conn: Conn,
    plan: PublisherPlan,
    counters: Arc<Counters>,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> PublisherReport {
    let (rd, mut wr) = conn.stream.into_split();
    let acks = Arc::new(AckWindow::default());
    let reader = tokio::spawn(read_acks(rd, conn.rbuf, acks.clone(), counters.clone(), stop.clone()));

    let mut report = PublisherReport::default();
    if let Err(e) = publish(&mut wr, &plan, &acks, &counters, &progress, &mut stop, &mut report).await {
        report.error = Some(format!("publisher write failed: {e}"));
    }
    counters.publishers_done.fetch_add(1, Ordering::Release);

    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    let mut out = BytesMut::with_capacity(2);
    wire::encode_disconnect(&mut out);
    let _ = wr.write_all(&out).await;
    let _ = wr.shutdown().await;

    report.acked = acks.acked.load(Ordering::Acquire);
    if let Ok(Some(e)) = reader.await {
        report.error.get_or_insert(e);
    }
    report
}

async fn publish(
    wr: &mut OwnedWriteHalf,
    plan: &PublisherPlan,
    acks: &AckWindow,
    counters: &Counters,
    progress: &Progress,
    stop: &mut watch::Receiver<bool>,
    report: &mut PublisherReport,
) -> std::io::Result<()> {
    let msg_len = wire::publish_len(plan.topic.len(), plan.qos, plan.payload);
    let per_write = (WRITE_BATCH_BYTES / msg_len).max(1) as u64;
    let filler = vec![0u8; plan.payload - PROBE_LEN];
    let mut buf = BytesMut::with_capacity(msg_len * per_write as usize);
    let pacer = plan.rate.map(|r| Pacer::new(plan.start, r));
    let mut ticker = tokio::time::interval_at(plan.start.into(), TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let ping_every = plan.keep_alive / 2;
    let (mut seq, mut pkid, mut last_write) = (0u64, 0u16, plan.start);

    sleep_until(plan.start.into()).await;
    loop {
        let now = Instant::now();
        if now >= plan.end || *stop.borrow() {
            return Ok(());
        }
        let mut n = per_write;
        if let Some(pacer) = &pacer {
            n = n.min(pacer.due(now).saturating_sub(seq));
        }
        if let Some(max_lead) = plan.max_lead {
            n = n.min(max_lead.saturating_sub(seq - progress.slowest(plan.index).min(seq)));
        }
        if plan.qos > 0 {
            if acks.closed.load(Ordering::Acquire) {
                return Ok(());
            }
            let in_flight = seq - acks.acked.load(Ordering::Acquire).min(seq);
            n = n.min(plan.inflight.saturating_sub(in_flight));
        }
        if n == 0 {
            if now.duration_since(last_write) >= ping_every {
                buf.clear();
                wire::encode_pingreq(&mut buf);
                wr.write_all(&buf).await?;
                last_write = now;
            }
            // Owed nothing (wait for the next tick), the QoS 1 window is full (wait for
            // acks) or the lead is used up (wait for the subscribers).
            tokio::select! {
                _ = ticker.tick(), if pacer.is_some() => {}
                _ = acks.notify.notified(), if plan.qos > 0 => {}
                _ = progress.advanced(plan.index), if plan.max_lead.is_some() => {}
                _ = sleep_until(plan.end.into()) => {}
                _ = stop.changed() => {}
            }
            continue;
        }

        let sent_ns = probe::nanos(now);
        buf.clear();
        let mut head = [0u8; PROBE_LEN];
        for _ in 0..n {
            if plan.qos > 0 {
                pkid = pkid.checked_add(1).unwrap_or(1);
            }
            probe::write(&mut head, sent_ns, seq);
            wire::encode_publish_head(&mut buf, &plan.topic, plan.qos, pkid, plan.payload);
            buf.extend_from_slice(&head);
            buf.extend_from_slice(&filler);
            seq += 1;
        }
        tokio::select! {
            r = wr.write_all(&buf) => r?,
            _ = stop.changed() => return Ok(()),
        }
        last_write = now;
        report.sent = seq;
        if plan.window.contains(sent_ns) {
            report.sent_in_window += n;
        }
        counters.sent.fetch_add(n, Ordering::Release);
    }
}

/// Counts PUBACKs (releasing the window) until `stop`; returns why it ended early, if it did.
async fn read_acks(
    mut rd: OwnedReadHalf,
    mut rbuf: BytesMut,
    acks: Arc<AckWindow>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> Option<String> {
    let error = loop {
        let mut acked = 0;
        let mut used_total = 0;
        loop {
            match wire::decode(&rbuf[used_total..]) {
                Ok(Some((packet, used))) => {
                    used_total += used;
                    match packet {
                        Packet::PubAck { .. } => acked += 1,
                        Packet::PingResp => {}
                        other => return close(&acks, format!("unexpected packet to a publisher: {other:?}")),
                    }
                }
                Ok(None) => break,
                Err(e) => return close(&acks, e.to_string()),
            }
        }
        rbuf.advance(used_total);
        if acked > 0 {
            acks.acked.fetch_add(acked, Ordering::Release);
            counters.acked.fetch_add(acked, Ordering::Release);
            acks.notify.notify_one();
        }
        tokio::select! {
            r = connection::fill(&mut rd, &mut rbuf) => match r {
                Ok(0) => break "broker closed the publisher connection".to_string(),
                Ok(_) => {}
                Err(e) => break format!("publisher read failed: {e}"),
            },
            _ = stop.changed() => return None,
        }
    };
    if *stop.borrow() {
        return None;
    }
    close(&acks, error)
}

fn close(acks: &AckWindow, error: String) -> Option<String> {
    acks.closed.store(true, Ordering::Release);
    acks.notify.notify_one();
    Some(error)
}
