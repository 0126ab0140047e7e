//! Per step: what the hostile clients got, the step's own checks, the bus checks and the
//! engine's memory; then the gates and the JSON + markdown report.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::ctx::{Check, Outcome};
use super::plan::{Door, Step};
use super::HostileOptions;
use crate::memory::mb;
use crate::ordinary::Through;
use crate::report::{self, Provenance};
use crate::throughput::bullet_list;
use crate::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Held,
    NotHeld,
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: &'static str,
    pub door: Door,
    pub what: &'static str,
    pub status: Status,
    /// Why it was skipped, or why it did not hold.
    pub reasons: Vec<String>,
    pub answers: Vec<String>,
    pub checks: Vec<Check>,
    /// The step itself could not complete (its own clients were refused, a timeout).
    pub error: Option<String>,
    pub alive: Option<bool>,
    pub exit_status: Option<String>,
    /// `200 in 1.2 ms: {...}`; none when the target has no HTTP API.
    pub healthz: Option<String>,
    pub ordinary_client: Option<String>,
    pub rss_after_mb: Option<f64>,
    pub rss_peak_mb: Option<f64>,
    pub seconds: Option<f64>,
    /// The broker was restarted right before this step (the previous one did not hold).
    pub restarted_before: bool,
    /// What the target logged during the step: panics, errors, warnings (each kind once).
    pub log: Vec<String>,
}

/// What the runner measured around one step.
pub struct Ran {
    pub step: Step,
    pub outcome: Result<Outcome, String>,
    pub exit: Option<String>,
    pub healthz: Option<(bool, String)>,
    pub ordinary: Result<Through, String>,
    pub rss_after_kb: Option<u64>,
    pub rss_peak_kb: u64,
    pub max_rss_mb: f64,
    pub seconds: f64,
    pub restarted_before: bool,
    pub log: Vec<String>,
}

impl StepReport {
    pub fn skipped(step: Step, why: String) -> Self {
        StepReport {
            step: step.name(),
            door: step.door(),
            what: step.what(),
            status: Status::Skipped,
            reasons: vec![why],
            answers: vec![],
            checks: vec![],
            error: None,
            alive: None,
            exit_status: None,
            healthz: None,
            ordinary_client: None,
            rss_after_mb: None,
            rss_peak_mb: None,
            seconds: None,
            restarted_before: false,
            log: vec![],
        }
    }

    pub fn ran(r: Ran) -> Self {
        let mut reasons = Vec::new();
        let (outcome, error) = match r.outcome {
            Ok(o) => (o, None),
            Err(e) => {
                reasons.push(format!("the step could not complete: {e}"));
                (Outcome::default(), Some(e))
            }
        };
        if let Some(exit) = &r.exit {
            reasons.push(format!("the process exited: {exit}"));
        }
        if let Some((false, detail)) = &r.healthz {
            reasons.push(format!("/healthz: {detail}"));
        }
        let ordinary_client = match &r.ordinary {
            Ok(t) => {
                let retried = t.first_failure.as_ref().map(|f| format!(" after {} attempts (first: {f})", t.attempts));
                format!("through in {:.1} ms{}", t.round_trip_ms, retried.unwrap_or_default())
            }
            Err(e) => {
                reasons.push(format!("ordinary client: {e}"));
                format!("FAILED: {e}")
            }
        };
        for c in outcome.checks.iter().filter(|c| c.must && !c.passed) {
            reasons.push(format!("{}: {}", c.what, c.detail));
        }
        let peak_mb = mb(r.rss_peak_kb.max(r.rss_after_kb.unwrap_or(0)));
        if peak_mb > r.max_rss_mb {
            reasons.push(format!("RSS peaked at {peak_mb:.0} MB, above --max-rss-mb {}", r.max_rss_mb));
        }
        StepReport {
            step: r.step.name(),
            door: r.step.door(),
            what: r.step.what(),
            status: if reasons.is_empty() { Status::Held } else { Status::NotHeld },
            log: r.log,
            reasons,
            answers: outcome.answers,
            checks: outcome.checks,
            error,
            alive: Some(r.exit.is_none()),
            exit_status: r.exit,
            healthz: r.healthz.map(|(_, d)| d),
            ordinary_client: Some(ordinary_client),
            rss_after_mb: r.rss_after_kb.map(mb),
            rss_peak_mb: Some(peak_mb),
            seconds: Some(r.seconds),
            restarted_before: r.restarted_before,
        }
    }

    /// The bus was found down right after this step's checks passed: the step did not hold.
    pub fn broke_later(&mut self, why: String, log: Vec<String>) {
        self.status = Status::NotHeld;
        self.reasons.push(format!("the bus was down before the next step: {why}"));
        self.log.extend(log);
    }

    pub fn held(&self) -> bool {
        self.status == Status::Held
    }

    pub fn print(&self) {
        for a in &self.answers {
            println!("  → {a}");
        }
        for c in &self.checks {
            let mark = if c.passed { "yes" } else { "NO" };
            println!("  {} {}: {mark} ({})", if c.must { "must" } else { "saw " }, c.what, c.detail);
        }
        let mbs = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        println!(
            "  {} in {:.1} s; RSS {} MB after, {} MB peak; ordinary client {}{}",
            self.status_text(),
            self.seconds.unwrap_or(0.0),
            mbs(self.rss_after_mb),
            mbs(self.rss_peak_mb),
            self.ordinary_client.as_deref().unwrap_or("-"),
            self.healthz.as_ref().map(|h| format!("; /healthz {}", first_words(h, 60))).unwrap_or_default(),
        );
        for r in &self.reasons {
            println!("  ✗ {r}");
        }
        for l in &self.log {
            println!("  log: {l}");
        }
    }

    fn status_text(&self) -> &'static str {
        match self.status {
            Status::Held => "held",
            Status::NotHeld => "NOT HELD",
            Status::Skipped => "skipped",
        }
    }
}

fn first_words(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

#[derive(Serialize)]
struct HostileReport<'a> {
    kind: &'static str,
    #[serde(flatten)]
    provenance: Provenance,
    method: &'static str,
    target: &'static str,
    target_version: String,
    target_command: String,
    voice: bool,
    scale: f64,
    max_rss_mb: f64,
    probe_budget_s: f64,
    held: usize,
    not_held: usize,
    skipped: usize,
    steps: &'a [StepReport],
    gate_failures: &'a [String],
}

pub const METHOD: &str = "\
loadgen starts the target on free loopback ports (the engine from the checkout's config, the \
development overlay with --voice, written into one file for the run; or mosquitto as `compare` \
starts it) and replays each step with its own clients, crafted byte for byte where the step is a \
protocol violation. After every step: the process must be alive, GET /healthz must answer 200 \
(engine), and an ordinary client (a fresh MQTT 3.1.1 connection from 127.0.0.2, another device to \
the broker) must connect, subscribe to a topic of its own and receive its own QoS 1 publish, \
retrying for up to the probe budget; steps that hold hostile state open (silent sockets, huge \
CONNECTs, stalled subscribers) also check the bus while it is held. Some steps carry their own \
musts (a message or retained message that must arrive, a connection that must survive); \
observations (`saw`) are reported, not gated. The engine's VmRSS is sampled every 50 ms during \
each step and read after it; the peak must stay under --max-rss-mb. A step that did not hold is \
followed by a fresh process, so each verdict is the step's own. Answers are what the hostile \
clients got: CONNACK / SUBACK / PUBACK / DISCONNECT codes with their names, a closed or reset \
connection, silence (no answer within 2 s), Wyoming events, HTTP statuses.";

pub fn finish(
    opts: &HostileOptions,
    provenance: Provenance,
    command: String,
    steps: Vec<StepReport>,
) -> Result<Verdict> {
    let count = |s: Status| steps.iter().filter(|r| r.status == s).count();
    let mut gate_failures: Vec<String> = steps
        .iter()
        .filter(|r| r.status == Status::NotHeld)
        .map(|r| format!("{}: {}", r.step, r.reasons.join("; ")))
        .collect();
    if count(Status::Held) + count(Status::NotHeld) == 0 {
        gate_failures.push("no step ran: nothing to check the gate against".into());
    }
    let report = HostileReport {
        kind: "hostile",
        provenance,
        method: METHOD,
        target: opts.target.name(),
        target_version: opts.launch.version(opts.target),
        target_command: command,
        voice: opts.voice,
        scale: opts.scale.0,
        max_rss_mb: opts.max_rss_mb,
        probe_budget_s: opts.probe_budget.as_secs_f64(),
        held: count(Status::Held),
        not_held: count(Status::NotHeld),
        skipped: count(Status::Skipped),
        steps: &steps,
        gate_failures: &gate_failures,
    };
    println!("\n{}: {} held, {} not held, {} skipped", report.target, report.held, report.not_held, report.skipped);
    let (json, md) = report::write(&opts.out, "hostile", &report, &markdown(&report))?;
    println!("wrote {} and {}", json.display(), md.display());
    Ok(Verdict { gate_failures, problems: vec![] })
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn markdown(r: &HostileReport<'_>) -> String {
    let rows: Vec<Vec<String>> = r
        .steps
        .iter()
        .map(|s| {
            let checks: Vec<String> = s
                .checks
                .iter()
                .map(|c| {
                    format!(
                        "{} {}: {}",
                        if c.must { "must" } else { "saw" },
                        c.what,
                        if c.passed { "yes" } else { "**no**" }
                    )
                })
                .collect();
            vec![
                format!("`{}`", s.step),
                match s.status {
                    Status::Held => "held".into(),
                    Status::NotHeld => "**not held**".into(),
                    Status::Skipped => "skipped".into(),
                },
                cell(&s.answers.join("; ")),
                cell(&checks.join("; ")),
                s.healthz.as_deref().map(|h| cell(&first_words(h, 40))).unwrap_or_else(|| "-".into()),
                s.ordinary_client.as_deref().map(|o| cell(&first_words(o, 80))).unwrap_or_else(|| "-".into()),
                match (s.rss_after_mb, s.rss_peak_mb) {
                    (Some(a), Some(p)) => format!("{a:.0} / {p:.0}"),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    let mut problems = String::new();
    for s in r.steps.iter().filter(|s| s.status != Status::Held) {
        let _ = writeln!(
            problems,
            "- `{}` ({}): {}",
            s.step,
            if s.status == Status::Skipped { "skipped" } else { "not held" },
            cell(&s.reasons.join("; "))
        );
        for line in &s.log {
            let _ = writeln!(problems, "  - log: `{}`", line.replace('`', "'"));
        }
    }
    let steps_list: String = r.steps.iter().map(|s| format!("- `{}`: {}\n", s.step, s.what)).collect();
    format!(
        "# Hostile clients against {}\n\n{}- target: `{}`\n- voice plane: {}, scale {}, probe budget {} s, --max-rss-mb {}\n\n\
         **{} held, {} not held, {} skipped.**\n\n## Steps\n\n{}\n## Not held or skipped\n\n{}\n## Gate\n\n{}\n\
         ## What each step sends\n\n{}\n## Method\n\n{}\n",
        if r.target == "engine" { "the engine" } else { r.target },
        r.provenance.markdown(),
        r.target_command,
        if r.voice { "on" } else { "off" },
        r.scale,
        r.probe_budget_s,
        r.max_rss_mb,
        r.held,
        r.not_held,
        r.skipped,
        report::markdown_table(
            &["step", "verdict", "answer", "step checks", "/healthz after", "ordinary client after", "RSS MB after / peak"],
            &rows,
            false
        ),
        if problems.is_empty() { "None.\n".to_string() } else { problems },
        if r.gate_failures.is_empty() { "Every step held: **passed**.\n".to_string() } else { bullet_list(r.gate_failures) },
        steps_list,
        r.method,
    )
}
