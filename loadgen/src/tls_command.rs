//! The command line of `tls` (issue 8): the flags, the `--quick` sizes for CI, and the
//! engine binary and config it starts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use alicia_loadgen::brokers;
use alicia_loadgen::compare::Shape;
use alicia_loadgen::tls::{self, TlsOptions};
use alicia_loadgen::Verdict;

use crate::parse_duration;

#[derive(Args)]
pub(crate) struct TlsArgs {
    /// TLS connections to open and hold (then as many over plain TCP) [default: 1000, 200 with --quick].
    #[arg(long)]
    connections: Option<usize>,
    /// Sockets that send the first bytes of a ClientHello and stall, during the TLS fleet.
    #[arg(long, default_value_t = 50)]
    stalled: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Clients present a certificate issued by `alicia certs issue` (the engine then
    /// requires one and takes its CN as the username, with the CRL).
    #[arg(long)]
    client_cert: bool,
    /// The engine's mqtt.connect_timeout_ms: the TLS handshake deadline.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Longest one connection may take from TCP connect to CONNACK.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// Extra clients timed one by one while the stalled sockets stall.
    #[arg(long, default_value_t = 5)]
    probes: usize,
    /// How long the connections stay open after the engine's memory settled.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    hold: Duration,
    /// Longest wait for the engine's memory to settle.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    settle_timeout: Duration,
    /// PUBLISHERSxSUBSCRIBERS shapes of the throughput phase.
    #[arg(long, value_delimiter = ',', default_value = "1x1,10x10")]
    shapes: Vec<Shape>,
    /// Messages published per row, split across its publishers [default: 500000, 50000 with --quick].
    #[arg(long)]
    messages: Option<u64>,
    /// Payload bytes (at least 16: send time + sequence).
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// QoS 1 unacknowledged messages per publisher (the engine's max_inflight_messages).
    #[arg(long, default_value_t = 100)]
    inflight: u64,
    /// Messages the publishers together may run ahead of the slowest subscriber.
    #[arg(long, default_value_t = 1_000)]
    lead: u64,
    /// Rounds of every shape over each transport [default: 3, 1 with --quick].
    #[arg(long)]
    rounds: Option<usize>,
    /// Longest one throughput row may take.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    row_timeout: Duration,
    /// Small and short, for CI: 200 connections, 20 stalled, 50,000 messages, 1 round,
    /// a 3 s handshake deadline (each unless given).
    #[arg(long)]
    quick: bool,
    /// Engine binary (default: `alicia` next to this executable).
    #[arg(long)]
    alicia_bin: Option<PathBuf>,
    /// Engine config the run's config is written from (default: bus-config/alicia.toml of this checkout).
    #[arg(long)]
    alicia_config: Option<PathBuf>,
    /// Extra argument for `alicia serve` (repeatable).
    #[arg(long = "alicia-arg", allow_hyphen_values = true)]
    alicia_args: Vec<String>,
    /// How long the engine may take to start.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    startup_timeout: Duration,
    /// Report directory.
    #[arg(long, default_value = "perf-report")]
    out: PathBuf,
}

pub(crate) fn run_tls(args: TlsArgs) -> Result<Verdict> {
    let quick = args.quick;
    let pick = |given: Option<usize>, quick_value: usize, normal: usize| {
        given.unwrap_or(if quick { quick_value } else { normal })
    };
    let connections = pick(args.connections, 200, 1_000);
    let stalled = if quick && args.stalled == 50 { 20 } else { args.stalled };
    let connect_timeout = if quick && args.connect_timeout == Duration::from_secs(10) {
        Duration::from_secs(3)
    } else {
        args.connect_timeout
    };
    let messages = args.messages.unwrap_or(if quick { 50_000 } else { 500_000 });
    let rounds = pick(args.rounds, 1, 3);
    let mut problems = Vec::new();
    if connections == 0 || args.concurrency == 0 || rounds == 0 || messages == 0 {
        problems.push("--connections, --concurrency, --rounds and --messages must be positive".to_string());
    }
    if args.payload < 16 {
        problems.push(format!("--payload must be at least 16 (the send time and sequence), got {}", args.payload));
    }
    if args.inflight == 0 || args.inflight > 65_535 || args.lead == 0 {
        problems.push("--inflight must be 1..=65535 and --lead positive".to_string());
    }
    if connect_timeout < Duration::from_millis(100) {
        problems.push("--connect-timeout must be at least 100ms (the engine's own minimum)".to_string());
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    let exe_dir = std::env::current_exe()?.parent().map(PathBuf::from).unwrap_or_default();
    let alicia_bin = args.alicia_bin.unwrap_or_else(|| exe_dir.join("alicia"));
    let alicia_config = args
        .alicia_config
        .or_else(brokers::default_engine_config)
        .context("no engine config found (bus-config/alicia.toml); pass --alicia-config")?;
    let opts = TlsOptions {
        alicia_bin,
        alicia_config,
        alicia_args: args.alicia_args,
        startup_timeout: args.startup_timeout,
        connections,
        stalled,
        concurrency: args.concurrency,
        client_cert: args.client_cert,
        connect_timeout,
        handshake_timeout: args.handshake_timeout,
        probes: args.probes,
        hold: args.hold,
        settle_timeout: args.settle_timeout,
        shapes: args.shapes,
        messages,
        payload: args.payload,
        inflight: args.inflight,
        lead: args.lead,
        rounds,
        row_timeout: args.row_timeout,
        out: args.out,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    tls::run(&opts, &rt)
}
