//! The command line of the robustness scenarios (issue 7: `connections`, `large`,
//! `hostile`) and of where the brokers loadgen starts come from.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use alicia_loadgen::brokers::{self, BrokerKind, Launch};
use alicia_loadgen::connections::{self, ConnectionGates, ConnectionsOptions};
use alicia_loadgen::hostile::{self, HostileOptions, Scale, Step};
use alicia_loadgen::large::{self, LargeOptions, Variant};
use alicia_loadgen::{Verdict, Version};

use crate::parse_duration;

/// Where the brokers loadgen starts come from.
#[derive(Args)]
pub(crate) struct BrokerArgs {
    /// mosquitto binary (default: on PATH, else /usr/sbin/mosquitto).
    #[arg(long)]
    mosquitto_bin: Option<PathBuf>,
    /// Engine binary (default: `alicia` next to this executable).
    #[arg(long)]
    alicia_bin: Option<PathBuf>,
    /// Engine config (default: bus-config/alicia.toml of this checkout).
    #[arg(long)]
    alicia_config: Option<PathBuf>,
    /// Extra argument for `alicia serve` (repeatable).
    #[arg(long = "alicia-arg", allow_hyphen_values = true)]
    alicia_args: Vec<String>,
    /// How long a broker may take to answer its first CONNECT.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    startup_timeout: Duration,
}

impl BrokerArgs {
    pub(crate) fn launch(self) -> Result<Launch> {
        let exe_dir = std::env::current_exe()?.parent().map(PathBuf::from).unwrap_or_default();
        Ok(Launch {
            mosquitto_bin: self
                .mosquitto_bin
                .unwrap_or_else(|| brokers::find_program("mosquitto", &["/usr/sbin/mosquitto"])),
            alicia_bin: self.alicia_bin.unwrap_or_else(|| exe_dir.join("alicia")),
            alicia_config: self.alicia_config.or_else(brokers::default_engine_config),
            alicia_args: self.alicia_args,
            startup_timeout: self.startup_timeout,
        })
    }
}

#[derive(Args)]
pub(crate) struct ConnectionsArgs {
    /// Brokers to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "mosquitto,engine")]
    brokers: Vec<BrokerKind>,
    /// Idle connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Connects per second.
    #[arg(long, default_value_t = 2_000.0)]
    rate: f64,
    /// MQTT keep-alive of every connection (0: none, the connections stay silent).
    #[arg(long, default_value_t = 0)]
    keep_alive: u16,
    /// Longest wait for one CONNACK.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// How long the connections stay open after the broker's memory settled.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    hold: Duration,
    /// Longest wait for the broker's memory to settle.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    settle_timeout: Duration,
    /// The engine's limits.max_connections for the run [default: connections + 64].
    #[arg(long)]
    engine_max_connections: Option<usize>,
    /// Fail (exit 2) if the gated broker accepted (and held) fewer connections.
    #[arg(long)]
    min_accepted: Option<u64>,
    /// Fail (exit 2) if the gated broker's memory per connection is above this (KB).
    #[arg(long)]
    max_kb_per_connection: Option<f64>,
    /// The broker the gates judge.
    #[arg(long, default_value = "engine")]
    gate_on: BrokerKind,
    #[command(flatten)]
    brokers_from: BrokerArgs,
    /// Report directory.
    #[arg(long, default_value = "perf-report")]
    out: PathBuf,
}

#[derive(Args)]
pub(crate) struct HostileArgs {
    /// engine or mosquitto.
    #[arg(long, default_value = "engine")]
    target: BrokerKind,
    /// Also start the engine's voice plane and Wyoming server (the development overlay)
    /// and run the voice and Wyoming steps.
    #[arg(long)]
    voice: bool,
    /// The models directory for --voice [default: the config's, models/ of the checkout].
    #[arg(long, requires = "voice")]
    models: Option<PathBuf>,
    /// Steps to run, in this order [default: all; see --list].
    #[arg(long, value_delimiter = ',')]
    steps: Vec<Step>,
    /// Print every step with what it sends, and exit.
    #[arg(long)]
    list: bool,
    /// Multiply every count and size by this (0.01 for a quick run), never below 1.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// How long the ordinary client may take to get through after a step.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    probe_timeout: Duration,
    /// A step whose broker RSS peaks above this did not hold [default: 1024, 1536 with --voice].
    #[arg(long)]
    max_rss_mb: Option<f64>,
    /// Keep the same broker after a step that did not hold (default: start a fresh one).
    #[arg(long)]
    no_restart: bool,
    #[command(flatten)]
    brokers_from: BrokerArgs,
    /// Report directory.
    #[arg(long, default_value = "perf-report")]
    out: PathBuf,
}

#[derive(Args)]
pub(crate) struct LargeArgs {
    /// Brokers to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "mosquitto,engine")]
    brokers: Vec<BrokerKind>,
    /// Payload bytes [default: 256 MiB less 1 KiB, so the whole packet fits the engine's
    /// 256 MiB message_size_limit]; accepts K, M, MiB suffixes.
    #[arg(long, value_parser = parse_size)]
    size: Option<usize>,
    #[arg(long, default_value_t = 3)]
    subscribers: usize,
    /// Subscriber protocol versions, used in turn.
    #[arg(long, value_delimiter = ',', default_value = "3.1.1,5")]
    protocols: Vec<Version>,
    #[arg(long, default_value = "3.1.1")]
    publisher_protocol: Version,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    /// normal: subscribers read; stalled: they stop reading for --stall-for.
    #[arg(long, value_delimiter = ',', default_value = "normal")]
    variants: Vec<Variant>,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    stall_for: Duration,
    /// Longest a delivery may take (from the publish, or from the end of a stall).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    timeout: Duration,
    /// Fail (exit 2) if the gated broker's peak RSS exceeds this many times the payload.
    #[arg(long)]
    max_peak_rss_ratio: Option<f64>,
    /// The broker the gates judge (delivery and memory).
    #[arg(long, default_value = "engine")]
    gate_on: BrokerKind,
    #[command(flatten)]
    brokers_from: BrokerArgs,
    /// Report directory.
    #[arg(long, default_value = "perf-report")]
    out: PathBuf,
}

/// `268434432`, `64M`, `64MiB`, `512K` (binary units).
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim().trim_end_matches("iB").trim_end_matches('B');
    let (digits, scale) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 1usize << 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    digits
        .replace('_', "")
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("expected a size like 268434432, 64M or 256MiB, got `{s}`"))
}

pub(crate) fn run_connections(args: ConnectionsArgs) -> Result<Verdict> {
    if args.connections == 0 || args.rate.is_nan() || args.rate <= 0.0 {
        anyhow::bail!("--connections and --rate must be positive");
    }
    let opts = ConnectionsOptions {
        brokers: args.brokers,
        count: args.connections,
        rate: args.rate,
        keep_alive: args.keep_alive,
        handshake_timeout: args.handshake_timeout,
        hold: args.hold,
        settle_timeout: args.settle_timeout,
        engine_max_connections: args.engine_max_connections,
        launch: args.brokers_from.launch()?,
        gates: ConnectionGates {
            min_accepted: args.min_accepted,
            max_kb_per_connection: args.max_kb_per_connection,
            broker: args.gate_on,
        },
        out: args.out,
    };
    connections::run(&opts, &runtime()?)
}

pub(crate) fn run_large(args: LargeArgs) -> Result<Verdict> {
    let opts = LargeOptions {
        brokers: args.brokers,
        size: args.size.unwrap_or(large::DEFAULT_SIZE),
        subscribers: args.subscribers,
        protocols: args.protocols,
        publisher_protocol: args.publisher_protocol,
        qos: args.qos,
        variants: args.variants,
        stall_for: args.stall_for,
        timeout: args.timeout,
        launch: args.brokers_from.launch()?,
        max_peak_rss_ratio: args.max_peak_rss_ratio,
        gate_broker: args.gate_on,
        out: args.out,
    };
    large::run(&opts, &runtime()?)
}

pub(crate) fn run_hostile(args: HostileArgs) -> Result<Verdict> {
    if args.list {
        print!("{}", hostile::list());
        return Ok(Verdict::default());
    }
    if args.target == BrokerKind::Rumqttd {
        anyhow::bail!("hostile runs against the engine or mosquitto");
    }
    if args.scale.is_nan() || args.scale <= 0.0 || args.scale > 1.0 {
        anyhow::bail!("--scale must be in (0, 1]");
    }
    let opts = HostileOptions {
        target: args.target,
        launch: args.brokers_from.launch()?,
        voice: args.voice,
        models: args.models,
        steps: if args.steps.is_empty() { Step::ALL.to_vec() } else { args.steps },
        scale: Scale(args.scale),
        probe_budget: args.probe_timeout,
        max_rss_mb: args.max_rss_mb.unwrap_or(if args.voice { 1536.0 } else { 1024.0 }),
        restart: !args.no_restart,
        out: args.out,
    };
    hostile::run(&opts, &runtime()?)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}
