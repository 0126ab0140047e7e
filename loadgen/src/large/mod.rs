//! `large`: one message of S bytes (256 MiB by default) to K subscribers, broker after
//! broker: was it delivered, byte for byte, how long did it take, and how much memory
//! did the broker need for it. The `stalled` variant has the subscribers stop reading
//! while the message is published, to show whether the broker's memory stays bounded and
//! what it does with readers that do not read.
//!
//! | module | concept |
//! |---|---|
//! | `pattern` | the payload every receiver regenerates and checks at any offset; a digest |
//! | `transfer` | the streaming publisher and subscribers |
//! | `summary` | rows, gates and the markdown report |

pub(crate) mod pattern;
mod summary;
pub(crate) mod transfer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::brokers::{BrokerKind, BrokerProcess, Launch};
use crate::memory::{self, mb, Memory, PeakSampler};
use crate::ordinary;
use crate::packet::{self, Properties, Publish, Version};
use crate::report::Provenance;
use crate::Verdict;

use pattern::Pattern;
pub use summary::LargeRun;
use transfer::{Published, Receipt};

/// The engine's default `limits.message_size_limit`, which counts the whole packet.
pub const ENGINE_PACKET_LIMIT: usize = 268_435_456;
/// 256 MiB less 1 KiB: the whole PUBLISH (fixed header, topic, packet id, MQTT 5
/// properties) then fits the engine's 256 MiB packet limit and MQTT's largest remaining
/// length (268,435,455).
pub const DEFAULT_SIZE: usize = 256 * 1024 * 1024 - 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Subscribers read as fast as they can.
    Normal,
    /// Subscribers read nothing for `stall_for` after the publish starts.
    Stalled,
}

impl std::str::FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normal" => Ok(Variant::Normal),
            "stalled" => Ok(Variant::Stalled),
            _ => Err(format!("variant must be normal or stalled, got `{s}`")),
        }
    }
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Normal => "normal",
            Variant::Stalled => "stalled",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LargeOptions {
    pub brokers: Vec<BrokerKind>,
    pub size: usize,
    pub subscribers: usize,
    /// Subscriber i speaks `protocols[i % len]`.
    pub protocols: Vec<Version>,
    pub publisher_protocol: Version,
    pub qos: u8,
    pub variants: Vec<Variant>,
    pub stall_for: Duration,
    /// Longest a delivery may take (from the publish start, or from the end of a stall).
    pub timeout: Duration,
    pub launch: Launch,
    pub max_peak_rss_ratio: Option<f64>,
    /// The broker the gates judge.
    pub gate_broker: BrokerKind,
    pub out: PathBuf,
}

impl LargeOptions {
    pub fn validate(&self) -> Result<()> {
        // The longest topic a run uses: its seed in hex.
        let longest = topic(&format!("{:x}", u64::MAX));
        let head =
            Publish { topic: longest.as_bytes(), qos: self.qos, properties: Properties::new(), ..Default::default() };
        let remaining = packet::publish_remaining(Version::V5, &head, self.size);
        if remaining > crate::wire::MAX_REMAINING_LENGTH {
            bail!(
                "a {}-byte payload does not fit one MQTT packet (remaining length {remaining} > {}); at most {} bytes",
                self.size,
                crate::wire::MAX_REMAINING_LENGTH,
                self.size - (remaining - crate::wire::MAX_REMAINING_LENGTH)
            );
        }
        if self.subscribers == 0 || self.protocols.is_empty() || self.variants.is_empty() {
            bail!("need at least one subscriber, protocol and variant");
        }
        if self.qos > 1 {
            bail!("qos must be 0 or 1");
        }
        Ok(())
    }
}

fn topic(run: &str) -> String {
    format!("loadgen/large/{}/{run}", std::process::id())
}

pub fn run(opts: &LargeOptions, rt: &Runtime) -> Result<Verdict> {
    opts.validate()?;
    let provenance = Provenance::collect();
    let mut runs = Vec::new();
    let mut problems = Vec::new();
    for &kind in &opts.brokers {
        for &variant in &opts.variants {
            if let Some(why) = opts.launch.unavailable(kind) {
                println!("skipping {kind}: {why}");
                runs.push(LargeRun::not_run(kind, variant, opts, "skipped", why));
                continue;
            }
            match run_one(kind, variant, opts, rt) {
                Ok(r) => runs.push(r),
                Err(e) => {
                    println!("  {kind} {}: failed: {e:#}", variant.name());
                    problems.push(format!("{kind} {}: {e:#}", variant.name()));
                    runs.push(LargeRun::not_run(kind, variant, opts, "failed", format!("{e:#}")));
                }
            }
        }
    }
    summary::finish(opts, provenance, runs, problems)
}

fn run_one(kind: BrokerKind, variant: Variant, opts: &LargeOptions, rt: &Runtime) -> Result<LargeRun> {
    let mut broker = BrokerProcess::start(kind, &opts.launch)?;
    let pid = broker.pid();
    let before = memory::wait_until_stable(
        pid,
        Duration::from_millis(100),
        Duration::from_secs(1),
        256,
        Duration::from_secs(10),
    );
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let pattern = Pattern::new(seed);
    let topic = topic(&format!("{seed:x}"));
    println!(
        "{kind} {}: {} subscribers, {:.1} MiB, qos {}; RSS before {:.1} MB",
        variant.name(),
        opts.subscribers,
        opts.size as f64 / (1 << 20) as f64,
        opts.qos,
        mb(before.rss_kb)
    );
    let addr = broker.addr;
    let (resume_tx, resume_rx) = watch::channel(variant == Variant::Normal);
    let start: transfer::Start = Arc::new(std::sync::OnceLock::new());
    let subscribers = rt.block_on(async {
        let mut subs = Vec::new();
        for i in 0..opts.subscribers {
            subs.push(transfer::subscribe(addr, i, opts.protocols[i % opts.protocols.len()], opts.qos, &topic).await?);
        }
        anyhow::Ok(subs)
    })?;
    let sampler = PeakSampler::start(pid, Duration::from_millis(20));
    let budget = opts.timeout + if variant == Variant::Stalled { opts.stall_for } else { Duration::ZERO };
    let deadline = Instant::now() + budget;
    let expected = opts.size as u64;
    let receivers: Vec<_> = subscribers
        .into_iter()
        .map(|s| rt.spawn(s.receive(expected, pattern, start.clone(), resume_rx.clone(), deadline)))
        .collect();
    let message = transfer::Message { topic: topic.clone(), qos: opts.qos, size: opts.size, pattern };
    let publisher = rt.spawn(transfer::publish(addr, opts.publisher_protocol, message, start.clone(), deadline));
    let mut stalled_rss_kb = None;
    if variant == Variant::Stalled {
        // The stall runs from the publish start, whether or not the broker took it all.
        rt.block_on(async {
            while start.get().is_none() && !publisher.is_finished() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(opts.stall_for).await;
        });
        stalled_rss_kb = Memory::of(pid).map(|m| m.rss_kb);
        println!(
            "  stalled {:?}: broker RSS {:.1} MB, peak so far {:.1} MB; resuming the subscribers",
            opts.stall_for,
            mb(stalled_rss_kb.unwrap_or(0)),
            mb(sampler.peak_kb())
        );
        let _ = resume_tx.send(true);
    }
    let published: Published = rt.block_on(publisher)?;
    let receipts: Vec<Receipt> = rt.block_on(async {
        let mut out = Vec::new();
        for r in receivers {
            out.push(r.await?);
        }
        anyhow::Ok(out)
    })?;
    let peak_sampled_kb = sampler.finish();
    let peak = Memory::of(pid);
    let alive = broker.exited().is_none();
    let ordinary =
        if alive { rt.block_on(ordinary::through(addr, Duration::from_secs(5))) } else { Err("broker exited".into()) };
    let after = memory::wait_until_stable(
        pid,
        Duration::from_millis(100),
        Duration::from_secs(1),
        1024,
        Duration::from_secs(10),
    );
    let exit = broker.exited();
    let log_tail = broker.log_tail();
    broker.stop()?;
    let run = LargeRun::measured(summary::Measured {
        kind,
        variant,
        opts,
        command: opts.launch.version(kind),
        published,
        receipts,
        rss_before_kb: before.rss_kb,
        peak_hwm_kb: peak.map(|m| m.hwm_kb),
        peak_sampled_kb,
        stalled_rss_kb,
        rss_after_kb: (after.rss_kb > 0).then_some(after.rss_kb),
        exit: exit.map(|s| s.to_string()),
        ordinary_after: ordinary.map(|t| format!("through in {:.1} ms", t.round_trip_ms)),
        log_tail,
    });
    summary::print_run(&run);
    Ok(run)
}
