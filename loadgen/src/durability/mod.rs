//! `durability`: what the engine's durable store (issue 9) costs and what it buys, beside
//! mosquitto with persistence as the seeds run it, in one run on one machine.
//!
//! | module | concept |
//! |---|---|
//! | `targets` | the engine with the store off, `sync = "batch"`, `sync = "always"`; mosquitto with persistence; their data directories |
//! | `throughput` | QoS 1 rows, persistent subscribers online and offline, rounds with the targets' order rotated |
//! | `clients` | the restart's MQTT clients: fill, first retained message, count what came back |
//! | `restart` | R retained messages and N sessions: SIGTERM and kill -9, time to ready, restored or not |
//! | `summary` | medians, ratios, checks, the text and markdown report |
//!
//! Every number comes with its correctness count: a row that lost an acknowledged
//! message, or a restart of the engine that did not bring everything back, makes the
//! run fail (exit 1) whatever the speed. mosquitto losing messages to `kill -9` is what it
//! promises (it saves every `autosave_interval`), so that is reported, not failed.

mod clients;
mod restart;
mod summary;
mod targets;
mod throughput;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use tokio::runtime::Runtime;

use crate::brokers::{BrokerKind, Launch};
use crate::compare::Shape;
use crate::report::{self, Provenance};
use crate::Verdict;

pub use restart::RestartSize;
use targets::{Home, Target};

#[derive(Debug, Clone)]
pub struct DurabilityOptions {
    pub alicia_bin: PathBuf,
    pub alicia_config: PathBuf,
    pub alicia_args: Vec<String>,
    pub mosquitto_bin: PathBuf,
    pub startup_timeout: Duration,
    pub shapes: Vec<Shape>,
    /// Messages published per row, split across its publishers.
    pub messages: u64,
    pub payload: usize,
    pub inflight: u64,
    pub lead: u64,
    pub rounds: usize,
    pub row_timeout: Duration,
    pub restart: RestartSize,
    /// Connections opened or drained at once for the restart's sessions.
    pub concurrency: usize,
    pub out: PathBuf,
}

impl DurabilityOptions {
    /// Per-client queue limit of both brokers: an offline row's whole share, and the
    /// retained messages a subscriber to all of them is sent.
    fn max_queued_messages(&self) -> u64 {
        (self.messages + self.restart.retained as u64 + 1_000).max(10_000)
    }
}

#[derive(Serialize)]
struct TargetFacts {
    target: Target,
    name: &'static str,
    promise: String,
    version: String,
    command: String,
    config_overrides: Vec<String>,
}

#[derive(Serialize)]
struct DurabilityReport {
    kind: &'static str,
    #[serde(flatten)]
    provenance: Provenance,
    method: &'static str,
    settings: summary::Settings,
    targets: Vec<TargetFacts>,
    throughput: Vec<summary::Median>,
    ratios: Vec<summary::Ratio>,
    restarts: Vec<restart::TargetRestarts>,
    checks: Vec<summary::Check>,
    notes: Vec<String>,
    rows: Vec<throughput::Row>,
}

pub fn run(opts: &DurabilityOptions, rt: &Runtime) -> Result<Verdict> {
    let provenance = Provenance::collect();
    let dir = tempfile::Builder::new().prefix("alicia-loadgen-durability-").tempdir()?;
    let launch = Launch {
        mosquitto_bin: opts.mosquitto_bin.clone(),
        alicia_bin: opts.alicia_bin.clone(),
        alicia_config: Some(opts.alicia_config.clone()),
        alicia_args: Vec::new(),
        startup_timeout: opts.startup_timeout,
    };
    let mut notes = Vec::new();
    let mut facts = Vec::new();
    let mut brokers = Vec::new();
    for target in Target::ALL {
        let kind = if target == Target::MosquittoPersistence { BrokerKind::Mosquitto } else { BrokerKind::Engine };
        if let Some(why) = launch.unavailable(kind) {
            anyhow::bail!("{} cannot run here: {why}", target.name());
        }
        let home = Home::new(target, opts, &dir.path().join("throughput"))?;
        let broker = home.start(opts)?;
        println!("durability: {} on {} (pid {})", target.name(), broker.addr(), broker.pid());
        facts.push(TargetFacts {
            target,
            name: target.name(),
            promise: target.promise(),
            version: launch.version(kind),
            command: broker.command(),
            config_overrides: home.described.clone(),
        });
        brokers.push((target, broker, home));
    }
    let running: Vec<_> = brokers.iter().map(|(t, b, _)| (*t, b)).collect();
    let rows = throughput::run(opts, &running, rt);
    for (target, broker, _home) in brokers {
        notes.extend(summary::log_findings(target, &broker.log_text()));
        if let Err(e) = broker.stop() {
            notes.push(format!("stopping {}: {e:#}", target.name()));
        }
    }

    let mut restarts = Vec::new();
    for target in [Target::EngineBatch, Target::MosquittoPersistence] {
        match restart::run(opts, target, dir.path(), rt) {
            Ok(r) => restarts.push(r),
            Err(e) => notes.push(format!("restart of {}: {e:#}", target.name())),
        }
    }

    let throughput = summary::medians(&rows);
    let ratios = summary::ratios(&throughput);
    let (checks, problems) = summary::checks(&rows, &restarts, &notes);
    let report = DurabilityReport {
        kind: "durability",
        provenance,
        method: summary::METHOD,
        settings: summary::Settings::of(opts),
        targets: facts,
        throughput,
        ratios,
        restarts,
        checks,
        notes,
        rows,
    };
    print!("\n{}", summary::text(&report));
    let (json, md) = report::write(&opts.out, "durability", &report, &summary::markdown(&report))?;
    println!("wrote {} and {}", json.display(), md.display());
    Ok(Verdict { gate_failures: Vec::new(), problems })
}
