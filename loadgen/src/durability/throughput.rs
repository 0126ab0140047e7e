//! QoS 1 rows against the four targets, round after round, the order of the targets
//! rotated every round so a drift of the shared machine favours none of them.
//!
//! Two cases per shape: `online`, persistent subscribers connected (the engine with a
//! store keeps each delivery in flight in the store before the PUBACK), and `offline`,
//! persistent subscribers away while everything is published (every delivery is queued,
//! on disk where the broker writes to disk), then back to drain.

use std::time::Instant;

use serde::Serialize;
use tokio::runtime::Runtime;

use super::targets::{Running, Target};
use super::DurabilityOptions;
use crate::compare::Shape;
use crate::machine;
use crate::pump::{self, PumpResult, PumpSpec};
use crate::report::thousands;
use crate::session::Dialer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Case {
    Online,
    Offline,
}

impl Case {
    pub fn name(self) -> &'static str {
        match self {
            Case::Online => "online",
            Case::Offline => "offline",
        }
    }
}

/// One round of one shape, case and target.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub target: Target,
    pub case: Case,
    pub shape: String,
    pub round: usize,
    #[serde(flatten)]
    pub result: PumpResult,
    /// Cores the broker kept busy (user + system) over the row.
    pub broker_cpu_cores: Option<f64>,
    pub host_cpu_cores: Option<f64>,
}

impl Row {
    /// Nothing acknowledged went missing: every publish acked, every delivery arrived.
    pub fn lossless(&self) -> bool {
        let r = &self.result;
        r.errors.is_empty() && r.acked == r.published && r.delivered == r.expected_deliveries
    }
}

fn label(shape: &Shape) -> String {
    format!("{}×{}", shape.publishers, shape.subscribers)
}

/// Every round: each shape, each case, each target (rotated).
pub fn run(opts: &DurabilityOptions, brokers: &[(Target, &Running)], rt: &Runtime) -> Vec<Row> {
    let mut rows = Vec::new();
    // An unrecorded pass first: a fresh process's first connections and deliveries
    // (allocator, thread pools, the store's first files) are not what is measured.
    if let Some(first) = opts.shapes.first() {
        for (target, broker) in brokers {
            let spec = spec(opts, broker, first, &format!("warmup-{}", target.short()), opts.messages / 10);
            if let Err(e) = rt.block_on(pump::run(&spec)) {
                println!("durability: warm-up of {}: {e:#}", target.name());
            }
        }
    }
    for round in 0..opts.rounds {
        for shape in &opts.shapes {
            for case in [Case::Online, Case::Offline] {
                let n = brokers.len();
                for i in 0..n {
                    let (target, broker) = &brokers[(i + round) % n];
                    let tag = format!(
                        "r{round}-{}x{}-{}-{}",
                        shape.publishers,
                        shape.subscribers,
                        case.name(),
                        target.short()
                    );
                    let spec = spec(opts, broker, shape, &tag, opts.messages);
                    let (pid, cpu0, host0, at) = (
                        broker.pid(),
                        machine::cpu_seconds(Some(broker.pid())),
                        machine::host_busy_seconds(),
                        Instant::now(),
                    );
                    let result = match case {
                        Case::Online => rt.block_on(pump::run(&spec)),
                        Case::Offline => rt.block_on(pump::run_offline(&spec)),
                    };
                    let secs = at.elapsed().as_secs_f64();
                    let cores = |a: Option<f64>, b: Option<f64>| (secs >= 0.1).then_some((b? - a?) / secs);
                    let result = result.unwrap_or_else(|e| failed(&spec, format!("{e:#}")));
                    println!(
                        "round {} {} {} {}: {} PUBACKs/s, {} deliveries/s ({} of {}), PUBACK p50 {:.2} ms p99 {:.2} ms{}",
                        round + 1,
                        label(shape),
                        case.name(),
                        target.name(),
                        thousands(result.publish_rate),
                        thousands(result.delivery_rate),
                        thousands(result.delivered as f64),
                        thousands(result.expected_deliveries as f64),
                        result.puback_latency.p50_ms,
                        result.puback_latency.p99_ms,
                        if result.errors.is_empty() { String::new() } else { format!(" ERRORS: {}", result.errors.join("; ")) }
                    );
                    rows.push(Row {
                        target: *target,
                        case,
                        shape: label(shape),
                        round,
                        broker_cpu_cores: cores(cpu0, machine::cpu_seconds(Some(pid))),
                        host_cpu_cores: cores(host0, machine::host_busy_seconds()),
                        result,
                    });
                }
            }
        }
    }
    rows
}

fn spec(opts: &DurabilityOptions, broker: &Running, shape: &Shape, tag: &str, messages: u64) -> PumpSpec {
    PumpSpec {
        dialer: Dialer { addr: broker.addr(), tls: None },
        publishers: shape.publishers,
        subscribers: shape.subscribers,
        messages: (messages / shape.publishers as u64).max(1),
        payload: opts.payload,
        inflight: opts.inflight,
        lead: opts.lead,
        timeout: opts.row_timeout,
        topic_root: "bench/durability",
        tag: format!("{}-{tag}", std::process::id()),
        persistent: true,
    }
}

/// A row that could not even start (connect, subscribe): counted as nothing delivered.
fn failed(spec: &PumpSpec, why: String) -> PumpResult {
    PumpResult {
        published: 0,
        acked: 0,
        expected_deliveries: spec.messages * spec.publishers as u64 * spec.subscribers as u64,
        delivered: 0,
        duplicates: 0,
        elapsed_s: 0.0,
        delivery_rate: 0.0,
        publish_elapsed_s: 0.0,
        publish_rate: 0.0,
        latency: Default::default(),
        puback_latency: Default::default(),
        errors: vec![why],
    }
}
