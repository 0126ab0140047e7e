//! `fuzz`: arbitrary and structurally valid but odd input, fed to a live engine over its
//! real doors (MQTT, and with the voice plane Wyoming), with the engine's vital signs
//! taken after every batch: alive, `/healthz` 200, an ordinary client served, memory
//! under the budget, no panic in its log. On the stable toolchain: proptest supplies
//! the seeded generator, the engine is a plain child process.
//!
//! # Layout
//!
//! | module | concept |
//! |---|---|
//! | `gen` | the generator: one ChaCha stream per (seed, case index); odd text |
//! | `case` | a case: target door, steps, ending; its description and hex |
//! | `mqtt_wire` | MQTT encodings that may lie (remaining lengths) |
//! | `mqtt_props` | MQTT 5 properties: every id, edges, repeats, wrong types, huge |
//! | `mqtt_packets` | odd client packets of every type; CONNECTs; topic names and filters |
//! | `mqtt_cases` | raw bytes, packet sequences, mutation; how connections end |
//! | `envelopes` | JSON envelopes on `alicia/` request topics |
//! | `voice_audio` | `alicia/voice/audio/{site}/start|frame|stop` |
//! | `voice_requests` | `alicia/voice/stt/request` (base64 WAV), `alicia/voice/tts/request` |
//! | `wyoming` | Wyoming events |
//! | `driver` | one case over a socket, every wait bounded |
//! | `campaign` | family choice, workers, per-family counts, recent cases |
//! | `vitals` | the checks between batches |
//! | `engine` | `alicia serve` with small limits on ephemeral ports |
//! | `summary` | the JSON and markdown report |

mod campaign;
mod case;
mod driver;
mod engine;
mod envelopes;
mod gen;
mod mqtt_cases;
mod mqtt_packets;
mod mqtt_props;
mod mqtt_wire;
mod summary;
mod vitals;
mod voice_audio;
mod voice_requests;
mod wyoming;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::report::{self, Provenance};
use crate::Verdict;
use campaign::Campaign;

pub use case::Family;
pub use engine::{FuzzEngine, VoicePaths};
pub use summary::FuzzReport;

/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What `fuzz` runs.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    /// A running engine's MQTT address; `None` starts one.
    pub broker: Option<SocketAddr>,
    /// With `broker`: its HTTP address (for /healthz), Wyoming address, process id.
    pub http: Option<SocketAddr>,
    pub wyoming: Option<SocketAddr>,
    pub pid: Option<u32>,
    /// Start the engine with its voice plane (models in `voice`).
    pub voice: Option<VoicePaths>,
    pub alicia_bin: PathBuf,
    pub seed: u64,
    pub first_case: u64,
    pub max_cases: Option<u64>,
    /// Families to draw from; empty means every one the engine serves.
    pub families: Vec<Family>,
    pub duration: Duration,
    pub connections: usize,
    pub check_every: Duration,
    pub max_rss_mb: f64,
    /// With `broker`: its `max_queued_bytes_total` in MiB, to check its account against.
    pub max_queued_mb: Option<f64>,
    pub startup_timeout: Duration,
    pub out: PathBuf,
}

/// The families a run draws from: those asked for, or every one the engine serves.
fn families(opts: &FuzzOptions, wyoming: Option<SocketAddr>) -> Result<Vec<Family>> {
    let voice = opts.voice.is_some() || opts.broker.is_some() && wyoming.is_some();
    if opts.families.is_empty() {
        return Ok(Family::ALL.into_iter().filter(|f| voice || !f.needs_voice()).collect());
    }
    if let Some(f) = opts.families.iter().find(|f| f.needs_voice() && !voice) {
        bail!("family {} needs the voice plane: pass --voice (or --wyoming with --broker)", f.name());
    }
    if opts.families.contains(&Family::Wyoming) && wyoming.is_none() {
        bail!("family wyoming needs the engine's Wyoming address");
    }
    Ok(opts.families.clone())
}

/// Prints case `index` of `seed` (description and every byte in hex) without running it.
pub fn show_case(seed: u64, index: u64, families: &[Family]) {
    let families = if families.is_empty() { Family::ALL.to_vec() } else { families.to_vec() };
    let case = campaign::generate(seed, index, &families);
    println!("{}", case.describe());
    print!("{}", case.hex(usize::MAX));
}

pub fn run(opts: &FuzzOptions) -> Result<Verdict> {
    if opts.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let mut engine = match opts.broker {
        Some(_) => None,
        None => Some(FuzzEngine::start(&opts.alicia_bin, opts.voice.as_ref(), opts.startup_timeout)?),
    };
    let (mqtt, http, wyoming, pid, engine_desc) = match (&engine, opts.broker) {
        (Some(e), _) => (e.doors.mqtt, Some(e.doors.http), e.doors.wyoming, Some(e.pid()), e.command.clone()),
        (None, Some(addr)) => (addr, opts.http, opts.wyoming, opts.pid, format!("running engine at {addr}")),
        (None, None) => unreachable!("an engine is started when none is given"),
    };
    let families = families(opts, wyoming)?;
    let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
    eprintln!(
        "fuzz: seed {} from case {}, families {}; engine {engine_desc}",
        opts.seed,
        opts.first_case,
        names.join(",")
    );
    let max_queued_mb = if engine.is_some() { Some(engine::MAX_QUEUED_MB) } else { opts.max_queued_mb };
    let watch = vitals::Watch { pid, mqtt, http, wyoming, max_rss_mb: opts.max_rss_mb, max_queued_mb };
    let end = opts.max_cases.map_or(u64::MAX, |n| opts.first_case.saturating_add(n));
    let campaign = Arc::new(Campaign::new(opts.seed, families.clone(), opts.first_case, end, mqtt, wyoming));
    let mut notes = Vec::new();
    if pid.is_none() {
        notes.push("no --pid: the engine's memory and process state were not checked".into());
    }
    if http.is_none() {
        notes.push("no --http: /healthz was not checked".into());
    }
    if engine.is_none() {
        notes.push("engine not started by loadgen: its log was not searched for panics".into());
    }

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let started = tokio::time::Instant::now();
    let Batches { checks, panics, failed_at, verdict } = batches(&rt, &campaign, &watch, engine.as_mut(), opts);
    let duration_s = started.elapsed().as_secs_f64();
    let limits_hit = match http {
        Some(h) if failed_at.is_none() => match rt.block_on(vitals::http_get(h, "/metrics")) {
            Ok((200, body)) => summary::limits_from_metrics(&body),
            _ => Default::default(),
        },
        _ => Default::default(),
    };
    let suspects = failed_at.map(|from| campaign.recent_since(from)).unwrap_or_default();
    let engine_log_tail = match (&engine, failed_at) {
        (Some(e), Some(_)) => Some(e.log_tail(30)),
        _ => None,
    };
    if let (Some(e), Some(_)) = (&engine, failed_at) {
        // The engine's directory goes with it: keep what explains the failure.
        std::fs::create_dir_all(&opts.out)?;
        let (log, config) = (opts.out.join("fuzz-engine.log"), opts.out.join("fuzz-engine.toml"));
        if std::fs::copy(e.log_path(), &log).is_ok() && std::fs::copy(e.config_path(), &config).is_ok() {
            notes.push(format!("engine log and config kept as {} and {}", log.display(), config.display()));
        }
    }
    let log_lines = engine.as_ref().map(|e| e.log_lines().clone()).unwrap_or_default();
    if let Some(e) = engine.take() {
        e.stop()?;
    }
    let stats = campaign.stats();
    let cases: u64 = stats.values().map(|s| s.cases).sum();
    let reproduce = failed_at.map(|from| {
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        let count = campaign.next_index() - from;
        format!(
            "alicia-loadgen fuzz --seed {} --families {} --first-case {from} --max-cases {count}{} (one case's bytes: --show-case N)",
            opts.seed,
            names.join(","),
            if opts.voice.is_some() { " --voice" } else { "" }
        )
    });
    let rss: Vec<f64> = checks.iter().filter_map(|c| c.rss_mb).collect();
    let report = FuzzReport {
        scenario: "fuzz",
        method: summary::METHOD,
        provenance: Provenance::collect(),
        engine: engine_desc,
        voice: opts.voice.is_some() || wyoming.is_some(),
        seed: opts.seed,
        first_case: opts.first_case,
        families,
        connections: opts.connections,
        check_every_s: opts.check_every.as_secs_f64(),
        duration_s,
        cases,
        cases_per_s: cases as f64 / duration_s.max(1e-3),
        bytes_sent: stats.values().map(|s| s.bytes_sent).sum(),
        per_family: stats,
        memory: summary::MemorySummary {
            start_mb: rss.first().copied(),
            peak_rss_mb: rss.iter().copied().reduce(f64::max),
            hwm_mb: checks.iter().filter_map(|c| c.hwm_mb).reduce(f64::max),
            last_mb: rss.last().copied(),
            max_rss_mb: opts.max_rss_mb,
        },
        checks,
        limits_hit,
        panics,
        log_lines,
        gate_failures: verdict.gate_failures.clone(),
        engine_log_tail,
        suspects,
        reproduce,
        notes,
    };
    print_outcome(&report);
    let (json_path, md_path) = report::write(&opts.out, "fuzz", &report, &summary::markdown(&report))?;
    if !report.suspects.is_empty() {
        let path = opts.out.join("fuzz-suspects.txt");
        std::fs::write(&path, summary::suspects_text(&report.suspects, true))?;
        eprintln!("suspect cases with their bytes: {}", path.display());
    }
    eprintln!("wrote {} and {}", json_path.display(), md_path.display());
    Ok(verdict)
}

/// What the batches found.
struct Batches {
    checks: Vec<vitals::Check>,
    panics: Vec<String>,
    /// The first case since the last good check, when a check failed.
    failed_at: Option<u64>,
    verdict: Verdict,
}

/// Batches of cases until the time or the cases run out, each followed by a check;
/// stops at the first failed check.
fn batches(
    rt: &tokio::runtime::Runtime,
    campaign: &Arc<Campaign>,
    watch: &vitals::Watch,
    mut engine: Option<&mut FuzzEngine>,
    opts: &FuzzOptions,
) -> Batches {
    let mut out = Batches { checks: Vec::new(), panics: Vec::new(), failed_at: None, verdict: Verdict::default() };
    let started = tokio::time::Instant::now();
    let deadline = started + opts.duration;
    let mut last_good = opts.first_case;
    let first = rt.block_on(watch.check(0.0, 0, 0));
    if !first.failures.is_empty() {
        out.verdict.problems.push(format!("the engine was not healthy before fuzzing: {}", first.failures.join("; ")));
        out.checks.push(first);
        return out;
    }
    out.checks.push(first);
    let mut next_progress = started + PROGRESS_EVERY;
    while !campaign.exhausted() && tokio::time::Instant::now() < deadline {
        let batch_end = (tokio::time::Instant::now() + opts.check_every).min(deadline);
        rt.block_on(campaign.run_until(batch_end, opts.connections));
        let at_s = started.elapsed().as_secs_f64();
        let cases = campaign.next_index() - opts.first_case;
        let mut check = rt.block_on(watch.check(at_s, cases, out.checks.len() as u64));
        if let Some(e) = engine.as_deref_mut() {
            if let Some(why) = e.exited() {
                check.failures.insert(0, why);
            }
            let found = e.new_panics();
            check.failures.extend(found.iter().map(|p| format!("the engine logged a panic: {p}")));
            out.panics.extend(found);
        }
        if !check.failures.is_empty() {
            out.verdict.gate_failures.extend(check.failures.iter().cloned());
            out.failed_at = Some(last_good);
            out.checks.push(check);
            return out;
        }
        last_good = campaign.next_index();
        if tokio::time::Instant::now() >= next_progress {
            next_progress += PROGRESS_EVERY;
            eprintln!(
                "fuzz: {at_s:.0} s, {cases} cases ({:.0}/s), rss {}",
                cases as f64 / at_s.max(1e-3),
                check.rss_mb.map_or("-".into(), |m| format!("{m:.0} MB"))
            );
        }
        out.checks.push(check);
    }
    out
}

fn print_outcome(r: &FuzzReport) {
    println!(
        "fuzz: seed {}, {} cases in {:.1} s ({:.0} cases/s), {} checks, memory peak {}",
        r.seed,
        r.cases,
        r.duration_s,
        r.cases_per_s,
        r.checks.len(),
        r.memory
            .hwm_mb
            .or(r.memory.peak_rss_mb)
            .map_or("-".into(), |m| format!("{m:.0} MB (budget {} MB)", r.memory.max_rss_mb)),
    );
    for (family, s) in &r.per_family {
        println!("  {:<18} {:>8} cases, engine closed {:>6}", family.name(), s.cases, s.closed_by_engine);
    }
    if !r.suspects.is_empty() {
        const SHOWN: usize = 10;
        let last = &r.suspects[r.suspects.len().saturating_sub(SHOWN)..];
        eprintln!(
            "the last {} of {} cases since the last good check (seed {}):\n{}",
            last.len(),
            r.suspects.len(),
            r.seed,
            summary::suspects_text(last, true)
        );
    }
    if let Some(cmd) = &r.reproduce {
        eprintln!("reproduce: {cmd}");
    }
}
