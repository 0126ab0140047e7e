//! The command line of `durability` (issue 9): the flags, the `--quick` sizes for CI,
//! and the engine and mosquitto binaries it starts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use alicia_loadgen::brokers;
use alicia_loadgen::compare::Shape;
use alicia_loadgen::durability::{self, DurabilityOptions, RestartSize};
use alicia_loadgen::Verdict;

use crate::parse_duration;

#[derive(Args)]
pub(crate) struct DurabilityArgs {
    /// PUBLISHERSxSUBSCRIBERS shapes [default: 1x1,10x10; 4x4 with --quick].
    #[arg(long, value_delimiter = ',')]
    shapes: Vec<Shape>,
    /// Messages published per row, split across its publishers [default: 50000, 5000 with --quick].
    #[arg(long)]
    messages: Option<u64>,
    /// Payload bytes (at least 16: send time + sequence).
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// QoS 1 unacknowledged messages per publisher (both brokers' max_inflight_messages).
    #[arg(long, default_value_t = 100)]
    inflight: u64,
    /// Messages the publishers together may run ahead of the slowest subscriber (online rows).
    #[arg(long, default_value_t = 1_000)]
    lead: u64,
    /// Rounds of every shape and case [default: 3, 1 with --quick].
    #[arg(long)]
    rounds: Option<usize>,
    /// Longest one row (or one restart step) may take.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    row_timeout: Duration,
    /// Retained messages of the restart [default: 100000, 10000 with --quick].
    #[arg(long)]
    retained: Option<usize>,
    /// Persistent sessions of the restart [default: 1000, 100 with --quick].
    #[arg(long)]
    sessions: Option<usize>,
    /// QoS 1 messages queued to each session before each stop.
    #[arg(long, default_value_t = 10)]
    queued: u64,
    /// Sessions connected or drained at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Small and short, for CI: 4x4, 5,000 messages, 1 round, 10,000 retained, 100 sessions (each unless given).
    #[arg(long)]
    quick: bool,
    /// Engine binary (default: `alicia` next to this executable).
    #[arg(long)]
    alicia_bin: Option<PathBuf>,
    /// Engine config the run's configs are written from (default: bus-config/alicia.toml of this checkout).
    #[arg(long)]
    alicia_config: Option<PathBuf>,
    /// Extra argument for `alicia serve` (repeatable).
    #[arg(long = "alicia-arg", allow_hyphen_values = true)]
    alicia_args: Vec<String>,
    /// mosquitto binary [default: on PATH, else /usr/sbin/mosquitto].
    #[arg(long)]
    mosquitto_bin: Option<PathBuf>,
    /// How long a broker may take to start (the restart of a full store included).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    startup_timeout: Duration,
    /// Report directory.
    #[arg(long, default_value = "perf-report")]
    out: PathBuf,
}

pub(crate) fn run_durability(args: DurabilityArgs) -> Result<Verdict> {
    let quick = args.quick;
    let shapes = match (args.shapes.is_empty(), quick) {
        (false, _) => args.shapes,
        (true, true) => vec![Shape { publishers: 4, subscribers: 4 }],
        (true, false) => vec![Shape { publishers: 1, subscribers: 1 }, Shape { publishers: 10, subscribers: 10 }],
    };
    let messages = args.messages.unwrap_or(if quick { 5_000 } else { 50_000 });
    let rounds = args.rounds.unwrap_or(if quick { 1 } else { 3 });
    let restart = RestartSize {
        retained: args.retained.unwrap_or(if quick { 10_000 } else { 100_000 }),
        sessions: args.sessions.unwrap_or(if quick { 100 } else { 1_000 }),
        queued_per_session: args.queued,
    };
    let mut problems = Vec::new();
    if messages == 0 || rounds == 0 || args.concurrency == 0 || restart.retained == 0 {
        problems.push("--messages, --rounds, --concurrency and --retained must be positive".to_string());
    }
    if args.payload < 16 {
        problems.push(format!("--payload must be at least 16 (the send time and sequence), got {}", args.payload));
    }
    if args.inflight == 0 || args.inflight > 65_535 || args.lead == 0 {
        problems.push("--inflight must be 1..=65535 and --lead positive".to_string());
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    let exe_dir = std::env::current_exe()?.parent().map(PathBuf::from).unwrap_or_default();
    let opts = DurabilityOptions {
        alicia_bin: args.alicia_bin.unwrap_or_else(|| exe_dir.join("alicia")),
        alicia_config: args
            .alicia_config
            .or_else(brokers::default_engine_config)
            .context("no engine config found (bus-config/alicia.toml); pass --alicia-config")?,
        alicia_args: args.alicia_args,
        mosquitto_bin: args.mosquitto_bin.unwrap_or_else(|| {
            brokers::find_program("mosquitto", &["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"])
        }),
        startup_timeout: args.startup_timeout,
        shapes,
        messages,
        payload: args.payload,
        inflight: args.inflight,
        lead: args.lead,
        rounds,
        row_timeout: args.row_timeout,
        restart,
        concurrency: args.concurrency,
        out: args.out,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    durability::run(&opts, &rt)
}
