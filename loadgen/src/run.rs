//! One load run: P publishers × S subscribers against one broker, from connect to report.
//!
//! Phases: connect and subscribe everyone (so no message precedes a subscription), then
//! warm-up (sent and delivered, excluded from rates and latency), the measured window,
//! and a drain that waits until every expected delivery and PUBACK arrived, nothing has
//! arrived for a second, or the drain timeout passed. Rates count what happened inside the window; loss counts everything
//! sent during the whole run against everything received by the end of the drain.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::connection::{self, Conn};
use crate::machine;
use crate::pacer::{self, Rate};
use crate::probe::{self, PROBE_LEN};
use crate::progress::Progress;
use crate::publisher::{self, PublisherPlan};
use crate::stats::{merge_latency, DeliverySummary, LatencySummary, Window};
use crate::subscriber::{self, SubscriberPlan};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A drain with no delivery for this long is over: what is missing was dropped.
const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// How long tasks get to finish after the stop signal before their results are abandoned.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The load to apply.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub broker: String,
    pub addr: SocketAddr,
    pub qos: u8,
    pub publishers: usize,
    pub subscribers: usize,
    pub payload: usize,
    pub rate: Rate,
    pub duration: Duration,
    pub warmup: Duration,
    pub drain_timeout: Duration,
    pub inflight: u64,
    /// With `Rate::Max`: messages all publishers together may be ahead of the slowest
    /// subscriber (0 = open loop, publish regardless).
    pub max_lead: u64,
    pub keep_alive: u16,
}

impl RunSpec {
    /// One publisher's share of the lead, or `None` when publishing is not closed-loop.
    fn lead_per_publisher(&self) -> Option<u64> {
        (self.rate == Rate::Max && self.max_lead > 0).then(|| (self.max_lead / self.publishers as u64).max(1))
    }

    pub fn validate(&self) -> Result<()> {
        let mut errors = Vec::new();
        if self.qos > 1 {
            errors.push(format!("qos must be 0 or 1, got {}", self.qos));
        }
        if self.publishers == 0 || self.subscribers == 0 {
            errors.push("publishers and subscribers must be at least 1".to_string());
        }
        if self.payload < PROBE_LEN || self.payload > 256 * 1024 * 1024 {
            errors.push(format!(
                "payload must be {PROBE_LEN} B..256 MiB (it carries a {PROBE_LEN}-byte probe), got {}",
                self.payload
            ));
        }
        if self.duration.is_zero() {
            errors.push("duration must be positive".to_string());
        }
        if self.inflight == 0 || self.inflight > 65_535 {
            errors.push(format!("inflight must be 1..=65535, got {}", self.inflight));
        }
        if self.keep_alive == 0 {
            errors.push("keep-alive must be non-zero (rumqttd closes a CONNECT with keep-alive 0)".to_string());
        }
        anyhow::ensure!(errors.is_empty(), "invalid load: {}", errors.join("; "));
        Ok(())
    }
}

/// Run-wide counters the coordinator polls to know when the drain is over.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
    pub publishers_done: AtomicUsize,
}

/// Everything measured in one run (what the JSON report holds per row).
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub broker: String,
    pub address: String,
    pub qos: u8,
    pub publishers: usize,
    pub subscribers: usize,
    pub payload_bytes: usize,
    /// `max` or msg/s across all publishers.
    pub offered_rate: String,
    /// Closed-loop bound of `max` (messages ahead of the slowest subscriber); 0 = open loop.
    pub max_lead: u64,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub drain_s: f64,
    /// Every expected delivery (and PUBACK) arrived before the drain timeout.
    pub drained: bool,
    pub sent: u64,
    pub sent_in_window: u64,
    pub publish_rate: f64,
    pub acked: u64,
    pub expected_deliveries: u64,
    pub delivered_in_window: u64,
    pub delivery_rate: f64,
    pub deliveries: DeliverySummary,
    pub per_subscriber: Vec<DeliverySummary>,
    pub latency: LatencySummary,
    pub loadgen_cpu_cores: Option<f64>,
    pub broker_cpu_cores: Option<f64>,
    /// Busy cores of the whole machine: more than loadgen + broker means other load.
    pub host_cpu_cores: Option<f64>,
    pub errors: Vec<String>,
}

impl RunResult {
    pub fn loss_ratio(&self) -> f64 {
        if self.expected_deliveries == 0 {
            return 0.0;
        }
        self.deliveries.lost as f64 / self.expected_deliveries as f64
    }
}

/// Applies `spec`; `broker_pid` (a broker this process started) adds its CPU use.
pub async fn run(spec: &RunSpec, broker_pid: Option<u32>) -> Result<RunResult> {
    spec.validate()?;
    let run_id = run_id();
    let prefix = format!("bench/{run_id}/");
    let counters = Arc::new(Counters::default());
    let progress = Arc::new(Progress::new(spec.publishers, spec.subscribers));
    let (stop_tx, stop_rx) = watch::channel(false);

    let (sub_conns, pub_conns) = open_sessions(spec, &run_id, &prefix).await?;

    // A short lead so every task is parked on its start time before the first send.
    let start = Instant::now() + Duration::from_millis(20);
    let measure_start = start + spec.warmup;
    let measure_end = measure_start + spec.duration;
    let window = Window { start_ns: probe::nanos(measure_start), end_ns: probe::nanos(measure_end) };
    let keep_alive = Duration::from_secs(spec.keep_alive.into());

    let subscribers: Vec<_> = sub_conns
        .into_iter()
        .enumerate()
        .map(|(index, conn)| {
            let plan = SubscriberPlan {
                index,
                topic_prefix: prefix.clone().into_bytes(),
                publishers: spec.publishers,
                keep_alive,
                window,
            };
            tokio::spawn(subscriber::run(conn, plan, counters.clone(), progress.clone(), stop_rx.clone()))
        })
        .collect();
    let publishers: Vec<_> = pub_conns
        .into_iter()
        .enumerate()
        .map(|(p, conn)| {
            let plan = PublisherPlan {
                index: p,
                topic: format!("{prefix}{p}").into_bytes(),
                qos: spec.qos,
                payload: spec.payload,
                rate: spec.rate.per_sec().map(|total| pacer::share_of_rate(total, spec.publishers)),
                max_lead: spec.lead_per_publisher(),
                inflight: spec.inflight,
                keep_alive,
                start,
                end: measure_end,
                window,
            };
            tokio::spawn(publisher::run(conn, plan, counters.clone(), progress.clone(), stop_rx.clone()))
        })
        .collect();

    sleep_until(measure_start.into()).await;
    let cpu_start = CpuSample::take(broker_pid);
    sleep_until(measure_end.into()).await;
    let cpu = CpuSample::take(broker_pid).cores_since(&cpu_start);

    let drained = drain(spec, &counters, measure_end + spec.drain_timeout).await;
    let drain_s = measure_end.elapsed().as_secs_f64();
    let _ = stop_tx.send(true);

    let mut errors = Vec::new();
    let mut pub_reports = Vec::with_capacity(publishers.len());
    for (p, handle) in publishers.into_iter().enumerate() {
        let report = tokio::time::timeout(STOP_GRACE, handle).await.context("publisher did not stop")??;
        if let Some(e) = &report.error {
            errors.push(format!("publisher {p}: {e}"));
        }
        pub_reports.push(report);
    }
    let sent_per_publisher: Vec<u64> = pub_reports.iter().map(|r| r.sent).collect();
    let mut sub_reports = Vec::with_capacity(subscribers.len());
    for (s, handle) in subscribers.into_iter().enumerate() {
        let report = tokio::time::timeout(STOP_GRACE, handle).await.context("subscriber did not stop")??;
        if let Some(e) = &report.error {
            errors.push(format!("subscriber {s}: {e}"));
        }
        sub_reports.push(report);
    }

    let per_subscriber: Vec<DeliverySummary> =
        sub_reports.iter().map(|r| r.stats.summary(&sent_per_publisher)).collect();
    let mut deliveries = DeliverySummary::default();
    per_subscriber.iter().for_each(|s| deliveries.add(s));
    let latency = merge_latency(sub_reports.iter().map(|r| &r.stats.latency));
    let sent: u64 = sent_per_publisher.iter().sum();
    let sent_in_window: u64 = pub_reports.iter().map(|r| r.sent_in_window).sum();
    let delivered_in_window: u64 = sub_reports.iter().map(|r| r.stats.received_in_window).sum();
    let duration_s = spec.duration.as_secs_f64();

    Ok(RunResult {
        broker: spec.broker.clone(),
        address: spec.addr.to_string(),
        qos: spec.qos,
        publishers: spec.publishers,
        subscribers: spec.subscribers,
        payload_bytes: spec.payload,
        offered_rate: spec.rate.to_string(),
        max_lead: if spec.rate == Rate::Max { spec.max_lead } else { 0 },
        warmup_s: spec.warmup.as_secs_f64(),
        duration_s,
        drain_s,
        drained,
        sent,
        sent_in_window,
        publish_rate: sent_in_window as f64 / duration_s,
        acked: pub_reports.iter().map(|r| r.acked).sum(),
        expected_deliveries: sent * spec.subscribers as u64,
        delivered_in_window,
        delivery_rate: delivered_in_window as f64 / duration_s,
        deliveries,
        per_subscriber,
        latency: LatencySummary::from_histogram(&latency),
        loadgen_cpu_cores: cpu[0],
        broker_cpu_cores: cpu[1],
        host_cpu_cores: cpu[2],
        errors,
    })
}

/// Connects every subscriber (subscribed, so no message precedes a subscription), then
/// every publisher.
async fn open_sessions(spec: &RunSpec, run_id: &str, prefix: &str) -> Result<(Vec<Conn>, Vec<Conn>)> {
    let mut subscribers = Vec::with_capacity(spec.subscribers);
    for s in 0..spec.subscribers {
        let id = format!("lg-{run_id}-s{s}");
        let mut conn = connection::connect(spec.addr, &id, spec.keep_alive, HANDSHAKE_TIMEOUT).await?;
        connection::subscribe(&mut conn, &format!("{prefix}+"), spec.qos, HANDSHAKE_TIMEOUT).await?;
        subscribers.push(conn);
    }
    let mut publishers = Vec::with_capacity(spec.publishers);
    for p in 0..spec.publishers {
        let id = format!("lg-{run_id}-p{p}");
        publishers.push(connection::connect(spec.addr, &id, spec.keep_alive, HANDSHAKE_TIMEOUT).await?);
    }
    Ok((subscribers, publishers))
}

/// Waits until publishers stopped and everything they sent was delivered (and, for QoS 1,
/// acknowledged), until nothing arrived for `DRAIN_IDLE` (the rest was dropped), or until
/// `deadline`. True if the run drained completely.
async fn drain(spec: &RunSpec, counters: &Counters, deadline: Instant) -> bool {
    let mut last = (counters.delivered.load(Ordering::Acquire), counters.acked.load(Ordering::Acquire), Instant::now());
    loop {
        let (delivered, acked) = (counters.delivered.load(Ordering::Acquire), counters.acked.load(Ordering::Acquire));
        let now = Instant::now();
        if counters.publishers_done.load(Ordering::Acquire) == spec.publishers {
            let sent = counters.sent.load(Ordering::Acquire);
            if delivered >= sent * spec.subscribers as u64 && (spec.qos == 0 || acked >= sent) {
                return true;
            }
            if (delivered, acked) != (last.0, last.1) {
                last = (delivered, acked, now);
            } else if now.duration_since(last.2) >= DRAIN_IDLE {
                return false;
            }
        }
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// CPU seconds of loadgen, the broker and the whole host at one instant.
struct CpuSample {
    at: Instant,
    seconds: [Option<f64>; 3],
}

impl CpuSample {
    fn take(broker_pid: Option<u32>) -> Self {
        let seconds = [
            machine::cpu_seconds(None),
            broker_pid.and_then(|p| machine::cpu_seconds(Some(p))),
            machine::host_busy_seconds(),
        ];
        CpuSample { at: Instant::now(), seconds }
    }

    /// Cores used by each since `start`.
    fn cores_since(&self, start: &CpuSample) -> [Option<f64>; 3] {
        let elapsed = self.at.duration_since(start.at).as_secs_f64();
        std::array::from_fn(|i| Some((self.seconds[i]? - start.seconds[i]?) / elapsed))
    }
}

/// Short and unique enough that concurrent runs on one broker never share topics.
fn run_id() -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
    format!("{:x}", (nanos ^ (u64::from(std::process::id()) << 40)) & 0xffff_ffff_ffff)
}
