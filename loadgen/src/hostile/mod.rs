//! `hostile`: replays every misbehaviour of issue 7 ("nothing a client sends can hurt the
//! bus") against a broker loadgen starts, one step at a time, and after every step asks
//! whether the bus still works: the process is alive, `/healthz` answers 200, and an
//! ordinary client connects, subscribes and gets its own QoS 1 message back.
//!
//! | module | concept |
//! |---|---|
//! | `plan` | the closed list of steps, their doors, scaling |
//! | `ctx` | what a step works with and gives back (answers, checks), the in-step bus check |
//! | `rules` | topics, properties, retained messages, malformed packets |
//! | `floods` | resets, client-id churn, silent sockets, huge CONNECTs |
//! | `volume` | topics, filters, retained, wills and aliases by the ten thousand; stalled readers |
//! | `pipeline` | many acknowledged requests on one connection |
//! | `voice`, `web` | the Wyoming server and voice topics; the HTTP API |
//! | `target`, `report` | the broker under attack; the report |
//!
//! A step that did not hold is followed by a fresh broker (unless `--no-restart`), so
//! every step's verdict is its own and not the previous step's damage.

mod ctx;
mod floods;
mod pipeline;
mod plan;
mod report;
mod rules;
mod target;
mod voice;
mod volume;
mod web;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::runtime::Runtime;

use crate::brokers::{BrokerKind, Launch};
use crate::memory::{mb, Memory, PeakSampler};
use crate::ordinary;
use crate::report::Provenance;
use crate::rlimit;
use crate::Verdict;

use ctx::{Ctx, Outcome};
pub use plan::{Door, Scale, Step};
use report::StepReport;
use target::Target;

/// The longest one step may take before it is abandoned (and counted as not held).
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct HostileOptions {
    /// engine or mosquitto.
    pub target: BrokerKind,
    pub launch: Launch,
    /// Start the engine with its voice plane and Wyoming server (`--env development`).
    pub voice: bool,
    /// The models directory for `--voice` (default: the config's, from the checkout).
    pub models: Option<PathBuf>,
    pub steps: Vec<Step>,
    pub scale: Scale,
    /// How long the ordinary client may take to get through after a step.
    pub probe_budget: Duration,
    pub max_rss_mb: f64,
    pub restart: bool,
    pub out: PathBuf,
}

pub fn list() -> String {
    Step::ALL
        .iter()
        .map(|s| format!("{:<30} {:<8} {}\n", s.name(), format!("{:?}", s.door()).to_lowercase(), s.what()))
        .collect()
}

/// Why `step` cannot run against this target, if it cannot.
fn cannot_run(step: Step, opts: &HostileOptions, target: &Target) -> Option<String> {
    let engine = opts.target == BrokerKind::Engine;
    match step.door() {
        Door::Mqtt => None,
        Door::Http if !engine => Some(format!("{} has no HTTP API", opts.target)),
        Door::Http => None,
        Door::Voice | Door::Wyoming if !engine => Some(format!("{} has no voice plane", opts.target)),
        Door::Voice | Door::Wyoming if !opts.voice => Some("voice plane off (run with --voice)".into()),
        Door::Wyoming if target.wyoming().is_none() => Some("the engine reported no Wyoming listener".into()),
        Door::Voice | Door::Wyoming => None,
    }
}

async fn run_step(step: Step, ctx: &Ctx) -> Result<Outcome> {
    use crate::packet::Version::{V311, V5};
    use floods::ResetAt;
    match step {
        Step::Utf8TopicV3 => rules::utf8_topic(ctx, V311).await,
        Step::Utf8TopicV5 => rules::utf8_topic(ctx, V5).await,
        Step::V5PropertiesToV3 => rules::v5_properties_to_v3(ctx, false).await,
        Step::V5PropertiesRetained => rules::v5_properties_to_v3(ctx, true).await,
        Step::ConnectThenReset => floods::resets(ctx, ResetAt::AfterConnect).await,
        Step::ResetAfterAccept => floods::resets(ctx, ResetAt::AfterAccept).await,
        Step::ResetMidConnect => floods::resets(ctx, ResetAt::MidConnect).await,
        Step::EmptyPublishKeepsRetained => rules::empty_publish_keeps_retained(ctx).await,
        Step::ClientIdChurn => floods::client_id_churn(ctx).await,
        Step::DistinctTopics => volume::distinct_topics(ctx).await,
        Step::SubscribeChurn => volume::subscribe_churn(ctx).await,
        Step::ManyRetained => volume::many_retained(ctx).await,
        Step::LargeRetained => volume::large_retained(ctx).await,
        Step::WillMaxDelay => volume::will_max_delay(ctx).await,
        Step::ManyFiltersOneSubscribe => volume::many_filters_one_subscribe(ctx).await,
        Step::TopicAliases => volume::topic_aliases(ctx).await,
        Step::NeverConnect => floods::never_connect(ctx).await,
        Step::HugeConnect => floods::huge_connect(ctx).await,
        Step::StalledSubscribers => volume::stalled_subscribers(ctx).await,
        Step::MalformedLength => rules::malformed_length(ctx).await,
        Step::PublishQos3 => rules::publish_qos3(ctx).await,
        Step::ReservedFlags => rules::reserved_flags(ctx).await,
        Step::GarbageAfterConnect => rules::garbage_after_connect(ctx).await,
        Step::SecondConnect => rules::second_connect(ctx).await,
        Step::WildcardTopic => rules::wildcard_topic(ctx).await,
        Step::NulTopic => rules::nul_topic(ctx).await,
        Step::EmptyTopic => rules::empty_topic(ctx).await,
        Step::WyomingRateOne => voice::wyoming_rate_one(ctx).await,
        Step::WyomingHugeText => voice::wyoming_huge_text(ctx).await,
        Step::WyomingDisconnect => voice::wyoming_disconnect(ctx).await,
        Step::VoiceEmptyFrames => voice::voice_empty_frames(ctx).await,
        Step::VoiceHugeSessionId => voice::voice_huge_session_id(ctx).await,
        Step::VoiceUnknownSites => voice::voice_unknown_sites(ctx).await,
        Step::SttRequestHuge => voice::stt_request_huge(ctx).await,
        Step::HttpSlowloris => web::slowloris(ctx).await,
        Step::HttpFlood => web::flood(ctx).await,
    }
}

pub fn run(opts: &HostileOptions, rt: &Runtime) -> Result<Verdict> {
    let provenance = Provenance::collect();
    // 2,000 silent sockets, 1,000 HTTP workers, the broker's own share.
    rlimit::ensure_open_files(8_192)?;
    let dir = tempfile::Builder::new().prefix("alicia-loadgen-hostile-").tempdir()?;
    let mut target = Target::start(opts, dir.path())?;
    let first_command = target.command().to_string();
    let base_rss = Memory::of(target.pid()).map_or(0, |m| m.rss_kb);
    println!("{}: {} (RSS {:.0} MB)", opts.target, target.describe(), mb(base_rss));
    let run_id =
        format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() & 0xff_ffff);
    let mut reports = Vec::new();
    let mut restarted_before = false;
    let mut log_mark = 0;
    for (i, &step) in opts.steps.iter().enumerate() {
        if let Some(why) = cannot_run(step, opts, &target) {
            println!("[{}/{}] {}: skipped ({why})", i + 1, opts.steps.len(), step.name());
            reports.push(StepReport::skipped(step, why));
            continue;
        }
        // Damage that shows only after a step's own checks belongs to that step: look
        // again before the next one, and start afresh if the bus is down.
        if let Some(broken) = broken_now(&mut target, opts, rt) {
            if let Some(last) = reports.iter_mut().rev().find(|r| r.status != report::Status::Skipped) {
                last.broke_later(broken.clone(), target::log_highlights(&target.log_since(log_mark)));
            }
            println!("  the bus is down before {} ({broken}): restarting {}", step.name(), opts.target);
            target = restart(target, opts, dir.path())?;
            restarted_before = true;
        }
        println!("[{}/{}] {}: {}", i + 1, opts.steps.len(), step.name(), step.what());
        let ctx = Ctx {
            mqtt: target.mqtt(),
            http: target.http(),
            wyoming: target.wyoming(),
            scale: opts.scale,
            run: format!("{run_id}-{i}"),
            probe_budget: opts.probe_budget,
        };
        let pid = target.pid();
        let log_start = target.log_len();
        log_mark = log_start;
        let sampler = PeakSampler::start(pid, Duration::from_millis(50));
        let started = Instant::now();
        let outcome = rt.block_on(async { tokio::time::timeout(STEP_TIMEOUT, run_step(step, &ctx)).await });
        let seconds = started.elapsed().as_secs_f64();
        let outcome = match outcome {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!("the step did not finish within {STEP_TIMEOUT:?}")),
        };
        let alive_before_checks = target.exit_status().is_none();
        let healthz = match (alive_before_checks, target.http()) {
            (true, Some(http)) => Some(rt.block_on(ctx::healthz(http))),
            (false, Some(_)) => Some((false, "process gone".into())),
            (_, None) => None,
        };
        let ordinary = match alive_before_checks {
            true => rt.block_on(ordinary::through(target.mqtt(), opts.probe_budget)),
            false => Err("process gone".into()),
        };
        // A process that is dying may still be there when the step ends: look again.
        let exit = target.exit_status();
        let rss_after = Memory::of(pid).map(|m| m.rss_kb);
        let peak = sampler.finish();
        let report = StepReport::ran(report::Ran {
            step,
            outcome,
            exit,
            healthz,
            ordinary,
            rss_after_kb: rss_after,
            rss_peak_kb: peak,
            max_rss_mb: opts.max_rss_mb,
            seconds,
            restarted_before,
            log: target::log_highlights(&target.log_since(log_start)),
        });
        report.print();
        restarted_before = false;
        let held = report.held();
        reports.push(report);
        if !held && opts.restart && i + 1 < opts.steps.len() {
            println!("  restarting {} so the next step starts from a healthy bus", opts.target);
            target = restart(target, opts, dir.path())?;
            restarted_before = true;
        }
    }
    let _ = target.stop();
    report::finish(opts, provenance, first_command, reports)
}

/// Why the bus is unusable right now, if it is: the process gone, or no ordinary client
/// through.
fn broken_now(target: &mut Target, opts: &HostileOptions, rt: &Runtime) -> Option<String> {
    if let Some(exit) = target.exit_status() {
        return Some(format!("the process exited: {exit}"));
    }
    rt.block_on(ordinary::through(target.mqtt(), opts.probe_budget)).err().map(|e| format!("ordinary client: {e}"))
}

fn restart(old: Target, opts: &HostileOptions, dir: &std::path::Path) -> Result<Target> {
    let _ = old.stop();
    Target::start(opts, dir)
}
