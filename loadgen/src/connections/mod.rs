//! `connections`: N idle MQTT connections opened at a connect rate and held, broker after
//! broker, each a fresh process: how many were accepted, how the rest were refused, and
//! what one idle connection costs the broker in resident memory.
//!
//! | module | concept |
//! |---|---|
//! | `fleet` | the N connections: paced connects, handshake outcomes, holding |
//! | `summary` | the table, the gates, the markdown report |
//!
//! Memory is the broker's VmRSS once it has settled (no change beyond a tolerance for a
//! while) before the first connect and after the last handshake, so neither start-up nor
//! an allocator that returns memory lazily is counted as per-connection cost.

pub(crate) mod fleet;
mod summary;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::runtime::Runtime;

use crate::brokers::{BrokerKind, BrokerProcess, Launch};
use crate::compare::Status;
use crate::engine_config;
use crate::machine;
use crate::memory::{self, mb, Memory, Settled};
use crate::report::{self, thousands, Provenance};
use crate::rlimit::{self, OpenFiles};
use crate::stats::LatencySummary;
use crate::Verdict;

pub use fleet::FleetCounts;
use fleet::{Fleet, FleetSpec};
use summary::{check_gates, markdown, rows, HEADERS};

/// The engine's own ceiling for `limits.max_connections` (its config check).
const ENGINE_MAX_CONNECTIONS: usize = 1_000_000;
/// Room above N for loadgen's readiness probe.
const CONNECTION_MARGIN: usize = 64;

#[derive(Debug, Clone)]
pub struct ConnectionsOptions {
    pub brokers: Vec<BrokerKind>,
    pub count: usize,
    /// Connects per second.
    pub rate: f64,
    pub keep_alive: u16,
    pub handshake_timeout: Duration,
    /// How long the connections stay open after the broker's memory settled.
    pub hold: Duration,
    /// Longest wait for the broker's resident memory to settle.
    pub settle_timeout: Duration,
    /// `limits.max_connections` for the engine (default N + 64).
    pub engine_max_connections: Option<usize>,
    pub launch: Launch,
    pub gates: ConnectionGates,
    pub out: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionGates {
    pub min_accepted: Option<u64>,
    pub max_kb_per_connection: Option<f64>,
    /// The broker the gates judge.
    #[serde(serialize_with = "serialize_kind")]
    pub broker: BrokerKind,
}

fn serialize_kind<S: serde::Serializer>(k: &BrokerKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.name())
}

#[derive(Debug, Clone, Serialize)]
pub struct BrokerRun {
    pub broker: &'static str,
    pub version: String,
    pub status: Status,
    pub notes: Vec<String>,
    pub command: Option<String>,
    /// The connection limit the broker ran with.
    pub limit: String,
    pub counts: FleetCounts,
    pub open_s: f64,
    /// Handshakes settled per second over the opening phase.
    pub connect_rate: f64,
    pub connack: LatencySummary,
    pub rss_before: Option<Settled>,
    pub rss_after: Option<Settled>,
    /// VmRSS at the end of the hold.
    pub rss_end_kb: Option<u64>,
    /// VmHWM: the broker's peak since it started.
    pub peak_kb: Option<u64>,
    /// (after - before) / accepted.
    pub kb_per_connection: Option<f64>,
    pub loadgen_cpu_cores: Option<f64>,
    pub broker_cpu_cores: Option<f64>,
}

impl BrokerRun {
    fn skipped(kind: BrokerKind, launch: &Launch, status: Status, note: String) -> Self {
        BrokerRun {
            broker: kind.name(),
            version: launch.version(kind),
            status,
            notes: vec![note],
            command: None,
            limit: String::new(),
            counts: FleetCounts::default(),
            open_s: 0.0,
            connect_rate: 0.0,
            connack: LatencySummary::default(),
            rss_before: None,
            rss_after: None,
            rss_end_kb: None,
            peak_kb: None,
            kb_per_connection: None,
            loadgen_cpu_cores: None,
            broker_cpu_cores: None,
        }
    }
}

#[derive(Serialize)]
struct ConnectionsReport {
    kind: &'static str,
    #[serde(flatten)]
    provenance: Provenance,
    method: &'static str,
    connections: usize,
    connect_rate: f64,
    keep_alive_s: u16,
    hold_s: f64,
    open_files: OpenFiles,
    runs: Vec<BrokerRun>,
    /// engine KB per connection / mosquitto KB per connection.
    engine_vs_mosquitto: Option<f64>,
    gates: ConnectionGates,
    gate_failures: Vec<String>,
}

pub const METHOD: &str = "\
For each broker in turn (a fresh process on free loopback ports, started as `compare` starts it), \
loadgen opens N TCP connections from one process at a fixed connect rate (paced from elapsed \
time), each sending an MQTT 3.1.1 CONNECT with a distinct client id and a clean session and \
waiting for its CONNACK, then holds every accepted connection idle (keep-alive 0: silent; \
otherwise a PINGREQ every half keep-alive). Broker memory is VmRSS from /proc/PID/status, read \
every 100-200 ms until it moved less than max(256 KB, 0.5 %) over a 1-2 s window (or the settle \
timeout passed): once before the first connect and once after the last handshake. KB per \
connection = (settled RSS after - settled RSS before) / accepted connections. The connections \
then stay open for the hold time; any the broker closes meanwhile are counted as dropped. \
mosquitto runs with `max_connections -1`; the engine with `limits.max_connections` raised to N + \
64 in a config written for the run (the checkout's config otherwise). loadgen raises its \
open-file limit to the hard limit, which the brokers it starts inherit.";

pub fn run(opts: &ConnectionsOptions, rt: &Runtime) -> Result<Verdict> {
    let provenance = Provenance::collect();
    // Loadgen holds N sockets, the broker N more; both need the descriptors.
    let open_files = rlimit::ensure_open_files(opts.count as u64 + 256)?;
    let dir = tempfile::Builder::new().prefix("alicia-loadgen-connections-").tempdir()?;
    let mut runs = Vec::new();
    let mut problems = Vec::new();
    for &kind in &opts.brokers {
        if let Some(why) = opts.launch.unavailable(kind) {
            println!("skipping {kind}: {why}");
            runs.push(BrokerRun::skipped(kind, &opts.launch, Status::Skipped, why));
            continue;
        }
        match run_broker(kind, opts, rt, &dir) {
            Ok(r) => runs.push(r),
            Err(e) => {
                println!("  {kind} failed: {e:#}");
                problems.push(format!("{kind}: {e:#}"));
                runs.push(BrokerRun::skipped(kind, &opts.launch, Status::Failed, format!("{e:#}")));
            }
        }
    }
    let kb = |name: &str| runs.iter().find(|r| r.broker == name).and_then(|r| r.kb_per_connection);
    let engine_vs_mosquitto = match (kb("engine"), kb("mosquitto")) {
        (Some(e), Some(m)) if m > 0.0 => Some(e / m),
        _ => None,
    };
    let gate_failures = check_gates(&opts.gates, &runs);
    let report = ConnectionsReport {
        kind: "connections",
        provenance,
        method: METHOD,
        connections: opts.count,
        connect_rate: opts.rate,
        keep_alive_s: opts.keep_alive,
        hold_s: opts.hold.as_secs_f64(),
        open_files,
        runs,
        engine_vs_mosquitto,
        gates: opts.gates.clone(),
        gate_failures,
    };
    println!("\n{}", report::text_table(&HEADERS, &rows(&report.runs)));
    if let Some(r) = engine_vs_mosquitto {
        println!("engine / mosquitto memory per connection: {r:.1}×");
    }
    let (json, md) = report::write(&opts.out, "connections", &report, &markdown(&report))?;
    println!("wrote {} and {}", json.display(), md.display());
    Ok(Verdict { gate_failures: report.gate_failures, problems })
}

fn run_broker(kind: BrokerKind, opts: &ConnectionsOptions, rt: &Runtime, dir: &tempfile::TempDir) -> Result<BrokerRun> {
    let mut launch = opts.launch.clone();
    let limit = match kind {
        BrokerKind::Engine => {
            let max = opts.engine_max_connections.unwrap_or(opts.count + CONNECTION_MARGIN).min(ENGINE_MAX_CONNECTIONS);
            let base = launch.alicia_config.clone().context("no engine config")?;
            // Every connection comes from 127.0.0.1, so the per-address cap and the
            // session table rise with the connection limit.
            let overrides = ["limits.max_connections", "limits.max_connections_per_ip", "limits.max_sessions"]
                .map(|key| (key.to_string(), toml::Value::Integer(max as i64)));
            launch.alicia_config = Some(engine_config::write(&base, None, &overrides, dir.path())?);
            format!("limits.max_connections = max_connections_per_ip = max_sessions = {max}")
        }
        BrokerKind::Mosquitto => "max_connections -1".to_string(),
        BrokerKind::Rumqttd => "router max_connections 10,010".to_string(),
    };
    println!("{kind}: starting ({limit})");
    let broker = BrokerProcess::start(kind, &launch)?;
    let pid = broker.pid();
    let before = settle(pid, opts.settle_timeout);
    println!("{kind}: RSS {:.1} MB before; opening {} connections at {}/s", mb(before.rss_kb), opts.count, opts.rate);

    let spec = FleetSpec {
        addr: broker.addr,
        count: opts.count,
        rate: opts.rate,
        keep_alive: opts.keep_alive,
        handshake_timeout: opts.handshake_timeout,
        client_prefix: format!("lg-idle-{}-", std::process::id()),
    };
    let cpu_start = (machine::cpu_seconds(None), machine::cpu_seconds(Some(pid)), std::time::Instant::now());
    let fleet = rt.block_on(Fleet::open(&spec, |c| {
        println!(
            "  {kind}: {}/{} connects, {} accepted, {} refused, {} other",
            thousands(c.attempted as f64),
            thousands(opts.count as f64),
            thousands(c.accepted as f64),
            c.refused_total(),
            c.settled() - c.accepted - c.refused_total()
        )
    }));
    let elapsed = cpu_start.2.elapsed().as_secs_f64();
    let cores = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / elapsed);
    let loadgen_cpu_cores = cores(cpu_start.0, machine::cpu_seconds(None));
    let broker_cpu_cores = cores(cpu_start.1, machine::cpu_seconds(Some(pid)));
    let after = settle(pid, opts.settle_timeout);
    let counts = fleet.counts();
    println!(
        "{kind}: {} accepted in {:.1} s; RSS {:.1} MB after (settled: {})",
        thousands(counts.accepted as f64),
        fleet.open_duration.as_secs_f64(),
        mb(after.rss_kb),
        after.settled
    );
    rt.block_on(async { tokio::time::sleep(opts.hold).await });
    let end = Memory::of(pid);
    let counts = fleet.counts();
    let connack = fleet.connack_latency();
    let open_s = fleet.open_duration.as_secs_f64();
    rt.block_on(fleet.close());

    let mut notes = Vec::new();
    if !before.settled || !after.settled {
        notes.push(format!(
            "RSS still moving after {:?} (before settled: {}, after settled: {}): per-connection cost is approximate",
            opts.settle_timeout, before.settled, after.settled
        ));
    }
    let command = broker.command.clone();
    let log_tail = broker.log_tail();
    if let Err(e) = broker.stop() {
        notes.push(format!("stopping: {e:#}"));
    }
    if counts.accepted < opts.count as u64 {
        notes.push(format!("{} of {} not accepted ({log_tail})", opts.count as u64 - counts.accepted, opts.count));
    }
    let kb_per_connection =
        (counts.accepted > 0).then(|| (after.rss_kb as f64 - before.rss_kb as f64) / counts.accepted as f64);
    Ok(BrokerRun {
        broker: kind.name(),
        version: opts.launch.version(kind),
        status: Status::Ran,
        notes,
        command: Some(command),
        limit,
        connect_rate: counts.settled() as f64 / open_s.max(1e-9),
        counts,
        open_s,
        connack,
        rss_before: Some(before),
        rss_after: Some(after),
        rss_end_kb: end.map(|m| m.rss_kb),
        peak_kb: end.map(|m| m.hwm_kb),
        kb_per_connection,
        loadgen_cpu_cores,
        broker_cpu_cores,
    })
}

/// Waits for the resident set to settle within max(256 KB, 0.5 %) over 2 s.
fn settle(pid: u32, timeout: Duration) -> Settled {
    let tolerance = Memory::of(pid).map_or(256, |m| (m.rss_kb / 200).max(256));
    memory::wait_until_stable(pid, Duration::from_millis(200), Duration::from_secs(2), tolerance, timeout)
}
