//! `compare`: one load matrix, three brokers, one run, side by side.
//!
//! The engine's targets are relative ("within 10 % of rumqttd's own listener, ≥ 3×
//! mosquitto"), so the comparison is only fair when the same tool drives every broker on
//! the same machine at the same moment. Each scenario therefore runs broker after broker,
//! each a fresh process on fresh ports (no state carried over between scenarios), before
//! the next scenario starts. A broker that cannot run here is reported as skipped, never
//! replaced by a guess.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Result;
use serde::Serialize;
use tokio::runtime::Runtime;

use crate::brokers::{BrokerKind, BrokerProcess, Launch};
use crate::gates::{GateOutcome, GateScope, Gates};
use crate::pacer::Rate;
use crate::report::{self, ms, thousands, LoadSettings, Provenance};
use crate::run::{self, RunResult, RunSpec};
use crate::throughput::bullet_list;
use crate::Verdict;

/// Publishers × subscribers, written `PxS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub publishers: usize,
    pub subscribers: usize,
}

impl FromStr for Shape {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|n| *n > 0);
        match s.split_once(['x', 'X', '×']).map(|(p, q)| (parse(p), parse(q))) {
            Some((Some(publishers), Some(subscribers))) => Ok(Shape { publishers, subscribers }),
            _ => Err(format!("shape must be PUBLISHERSxSUBSCRIBERS like 10x10, got `{s}`")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub brokers: Vec<BrokerKind>,
    pub qos: Vec<u8>,
    pub shapes: Vec<Shape>,
    pub rates: Vec<Rate>,
    /// Payload, timings, window and keep-alive; broker, qos, shape and rate come from the matrix.
    pub template: RunSpec,
    pub launch: Launch,
    pub gates: Gates,
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ran,
    /// Cannot run here (binary or config missing): reported, never faked.
    Skipped,
    /// Started but broke; its remaining scenarios are not attempted.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ran => "ran",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct BrokerEntry {
    name: &'static str,
    version: String,
    status: Status,
    notes: Vec<String>,
    command: Option<String>,
}

/// One scenario across brokers, in the order engine, rumqttd, mosquitto.
#[derive(Debug, Clone, Serialize)]
struct Ratio {
    scenario: String,
    delivery_rate: [Option<f64>; 3],
    engine_vs_rumqttd: Option<f64>,
    engine_vs_mosquitto: Option<f64>,
    rumqttd_vs_mosquitto: Option<f64>,
    p50_ms: [Option<f64>; 3],
    p99_ms: [Option<f64>; 3],
}

#[derive(Serialize)]
struct CompareReport {
    kind: &'static str,
    #[serde(flatten)]
    provenance: Provenance,
    method: String,
    load: LoadSettings,
    brokers: Vec<BrokerEntry>,
    ratios: Vec<Ratio>,
    runs: Vec<RunResult>,
    gates: GateOutcome,
    notes: Vec<String>,
}

pub fn run(opts: &CompareOptions, rt: &Runtime) -> Result<Verdict> {
    let provenance = Provenance::collect();
    let mut brokers: Vec<BrokerEntry> = opts
        .brokers
        .iter()
        .map(|&kind| {
            let skipped = opts.launch.unavailable(kind);
            if let Some(why) = &skipped {
                println!("skipping {kind}: {why}");
            }
            BrokerEntry {
                name: kind.name(),
                version: opts.launch.version(kind),
                status: if skipped.is_some() { Status::Skipped } else { Status::Ran },
                notes: skipped.into_iter().collect(),
                command: None,
            }
        })
        .collect();

    let (mut runs, mut log_notes) = (Vec::new(), Vec::new());
    for &qos in &opts.qos {
        for shape in &opts.shapes {
            for &rate in &opts.rates {
                for (entry, &kind) in brokers.iter_mut().zip(&opts.brokers) {
                    if entry.status != Status::Ran {
                        continue;
                    }
                    let spec = RunSpec {
                        broker: kind.name().to_string(),
                        qos,
                        publishers: shape.publishers,
                        subscribers: shape.subscribers,
                        rate,
                        ..opts.template.clone()
                    };
                    runs.extend(run_one(spec, kind, entry, &mut log_notes, opts, rt));
                }
            }
        }
    }

    let engine_rows: Vec<&RunResult> = runs.iter().filter(|r| r.broker == "engine").collect();
    let gates = opts.gates.check(&engine_rows, GateScope::ByOfferedRate);
    let mut notes = report::row_notes(&runs);
    notes.extend(log_notes);
    let report = CompareReport {
        kind: "compare",
        provenance,
        method: format!("{}\n\n{}", report::METHOD, COMPARE_METHOD),
        load: LoadSettings::of(&opts.template),
        brokers,
        ratios: ratios(&runs),
        runs,
        gates,
        notes,
    };

    println!("\n{}", report::results_text(&report.runs));
    println!("{}", report::text_table(&RATIO_HEADERS, &ratio_cells(&report.ratios)));
    report.notes.iter().for_each(|n| println!("note: {n}"));
    let (json_path, md_path) = report::write(&opts.out, "compare", &report, &markdown(&report))?;
    println!("wrote {} and {}", json_path.display(), md_path.display());

    let mut problems: Vec<String> =
        report.runs.iter().flat_map(|r| r.errors.iter().map(move |e| format!("{}: {e}", r.broker))).collect();
    for b in report.brokers.iter().filter(|b| b.status != Status::Skipped) {
        problems.extend(b.notes.iter().map(|n| format!("{}: {}", b.name, n.lines().next().unwrap_or(""))));
    }
    Ok(Verdict { gate_failures: report.gates.failures, problems })
}

/// Starts `kind`, applies `spec` to it and stops it; `None` if the broker or the run failed
/// (recorded in `entry`).
fn run_one(
    mut spec: RunSpec,
    kind: BrokerKind,
    entry: &mut BrokerEntry,
    log_notes: &mut Vec<String>,
    opts: &CompareOptions,
    rt: &Runtime,
) -> Option<RunResult> {
    let label = format!("{kind} qos{} {}x{} @{}", spec.qos, spec.publishers, spec.subscribers, spec.rate);
    println!("running {label}");
    let broker = match BrokerProcess::start(kind, &opts.launch) {
        Ok(b) => b,
        Err(e) => {
            println!("  {kind} failed to start: {e:#}");
            entry.status = Status::Failed;
            entry.notes.push(format!("failed to start: {e:#}"));
            return None;
        }
    };
    entry.command.get_or_insert_with(|| broker.command.clone());
    spec.addr = broker.addr;
    let result = match rt.block_on(run::run(&spec, Some(broker.pid()))) {
        Ok(result) => {
            print!("{}", report::results_text(std::slice::from_ref(&result)));
            let drops = broker.drop_lines();
            if let Some(first) = drops.first() {
                log_notes.push(format!(
                    "{label}: the broker logged {} drop line(s), e.g. `{}`",
                    drops.len(),
                    first.trim()
                ));
            }
            Some(result)
        }
        Err(e) => {
            println!("  {label} failed: {e:#}");
            entry.notes.push(format!("{label} failed: {e:#} ({})", broker.log_tail()));
            None
        }
    };
    if let Err(e) = broker.stop() {
        entry.notes.push(format!("stopping after {label}: {e:#}"));
    }
    result
}

const COMPARE_METHOD: &str = "\
Every scenario of the matrix runs against each broker in turn, each broker a fresh process on \
free loopback ports, loaded only after it answered an MQTT CONNECT and stopped with SIGTERM \
(SIGKILL after 5 s) afterwards. mosquitto runs from a generated config (anonymous, \
max_inflight_messages 100, max_queued_messages 1000, message_size_limit 268435455 (its \
maximum), no persistence); rumqttd is rumqttd 0.20 behind its own built-in listener with the \
engine's router sizing; the engine is `alicia serve` with its MQTT and HTTP listeners on free \
ports. Gates apply to the engine's rows: --min-rate to rows offered `max`, --max-p99-ms to \
fixed-rate rows.";

const RATIO_HEADERS: [&str; 9] = [
    "scenario",
    "engine/s",
    "rumqttd/s",
    "mosquitto/s",
    "engine/rumqttd",
    "engine/mosquitto",
    "rumqttd/mosquitto",
    "p50 ms e / r / m",
    "p99 ms e / r / m",
];

fn ratios(runs: &[RunResult]) -> Vec<Ratio> {
    let scenario = |r: &RunResult| format!("qos{} {}x{} @{}", r.qos, r.publishers, r.subscribers, r.offered_rate);
    let mut out: Vec<Ratio> = Vec::new();
    for r in runs {
        let name = scenario(r);
        if out.iter().any(|x| x.scenario == name) {
            continue;
        }
        let [e, q, m] =
            ["engine", "rumqttd", "mosquitto"].map(|b| runs.iter().find(|x| x.broker == b && scenario(x) == name));
        let ratio = |a: Option<&RunResult>, b: Option<&RunResult>| {
            Some(a?.delivery_rate / b?.delivery_rate).filter(|v| v.is_finite())
        };
        out.push(Ratio {
            delivery_rate: [e, q, m].map(|x| x.map(|x| x.delivery_rate)),
            engine_vs_rumqttd: ratio(e, q),
            engine_vs_mosquitto: ratio(e, m),
            rumqttd_vs_mosquitto: ratio(q, m),
            p50_ms: [e, q, m].map(|x| x.map(|x| x.latency.p50_ms)),
            p99_ms: [e, q, m].map(|x| x.map(|x| x.latency.p99_ms)),
            scenario: name,
        });
    }
    out
}

fn ratio_cells(ratios: &[Ratio]) -> Vec<Vec<String>> {
    let dash = || "-".to_string();
    let times = |v: Option<f64>| v.map(|v| format!("{v:.2}×")).unwrap_or_else(dash);
    let three = |v: [Option<f64>; 3]| v.map(|x| x.map(ms).unwrap_or_else(dash)).join(" / ");
    ratios
        .iter()
        .map(|r| {
            let mut row = vec![r.scenario.clone()];
            row.extend(r.delivery_rate.map(|v| v.map(thousands).unwrap_or_else(dash)));
            row.extend([r.engine_vs_rumqttd, r.engine_vs_mosquitto, r.rumqttd_vs_mosquitto].map(times));
            row.extend([three(r.p50_ms), three(r.p99_ms)]);
            row
        })
        .collect()
}

fn markdown(r: &CompareReport) -> String {
    let escape = |s: &str| s.lines().next().unwrap_or("").replace('|', "\\|");
    let broker_rows: Vec<Vec<String>> = r
        .brokers
        .iter()
        .map(|b| {
            let notes = b.notes.iter().map(|n| escape(n)).collect::<Vec<_>>().join("; ");
            let command = b.command.as_ref().map(|c| format!("`{c}`")).unwrap_or_default();
            vec![b.name.to_string(), b.status.as_str().into(), escape(&b.version), notes, command]
        })
        .collect();
    format!(
        "# Broker comparison: engine vs rumqttd vs mosquitto\n\n{}{}\n## Brokers\n\n{}\n## Side by side\n\n\
         Delivery rate (msg/s, delivered to all subscribers) and latency; e / r / m = engine / rumqttd / mosquitto.\n\n{}\n\
         ## All runs\n\n{}\n## Gates (engine rows)\n\n{}\n## Notes\n\n{}\n## Method\n\n{}\n",
        r.provenance.markdown(),
        r.load.markdown(),
        report::markdown_table(&["broker", "status", "version", "notes", "command (first run)"], &broker_rows, false),
        report::markdown_table(&RATIO_HEADERS, &ratio_cells(&r.ratios), true),
        report::results_markdown(&r.runs),
        report::gates_markdown(&r.gates),
        bullet_list(&r.notes),
        r.method,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shapes() {
        assert_eq!("10x10".parse::<Shape>(), Ok(Shape { publishers: 10, subscribers: 10 }));
        assert_eq!("1×3".parse::<Shape>(), Ok(Shape { publishers: 1, subscribers: 3 }));
        assert!("0x1".parse::<Shape>().is_err());
        assert!("10".parse::<Shape>().is_err());
    }
}
