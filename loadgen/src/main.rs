//! `alicia-loadgen` command line: parses flags into the library's options and maps the
//! verdict to an exit code (0 ok, 1 the run had errors, 2 a target was missed).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use alicia_loadgen::brokers::BrokerKind;
use alicia_loadgen::compare::{self, CompareOptions, Shape};
use alicia_loadgen::fuzz::{self, Family, FuzzOptions, VoicePaths};
use alicia_loadgen::gates::Gates;
use alicia_loadgen::pacer::Rate;
use alicia_loadgen::run::RunSpec;
use alicia_loadgen::throughput::{self, ThroughputOptions};
use alicia_loadgen::voice::{self, VoiceOptions};
use alicia_loadgen::{baseline, Verdict};

mod durability_command;
mod robustness;
mod tls_command;

use robustness::{run_connections, run_hostile, run_large, BrokerArgs, ConnectionsArgs, HostileArgs, LargeArgs};

#[derive(Parser)]
#[command(name = "alicia-loadgen", version, about = "Load generator and side-by-side benchmark for MQTT brokers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// P publishers × S subscribers against one running broker.
    Throughput(ThroughputArgs),
    /// The same load matrix against mosquitto, rumqttd's own listener and the engine,
    /// each started here on free loopback ports.
    Compare(CompareArgs),
    /// N idle MQTT connections opened at a connect rate and held, broker after broker:
    /// accepted, refused, broker memory per connection.
    Connections(ConnectionsArgs),
    /// One message of S bytes to K subscribers: delivered byte for byte, time, peak broker
    /// memory; optionally with subscribers that stop reading.
    Large(LargeArgs),
    /// Every misbehaviour of issue 7, step by step, against the engine (or mosquitto);
    /// after each: alive, /healthz 200, an ordinary client still gets through.
    Hostile(HostileArgs),
    /// The MQTT-over-TLS listener: N TLS connections held while sockets stall
    /// mid-handshake (closed by the deadline? delaying no one?), then connect rate, memory
    /// and QoS 1 throughput over TLS against plain TCP, same engine, same run.
    Tls(tls_command::TlsArgs),
    /// QoS 1 throughput with the engine's store off, sync=batch and sync=always beside
    /// mosquitto with persistence (persistent subscribers online and offline), then the
    /// restart with 100,000 retained messages and 1,000 sessions after SIGTERM and kill -9;
    /// exits 1 if an acknowledged message is lost or the engine does not restore everything.
    Durability(durability_command::DurabilityArgs),
    /// K satellites speak synthesised requests to the engine's voice plane in real time:
    /// end of speech → first reply audio, word error rate, intent accuracy, engine stage medians.
    Voice(VoiceArgs),
    /// Arbitrary and structurally valid but odd MQTT 3.1.1/5 packets, envelopes, Wyoming
    /// events and voice audio against a live engine; after every batch the engine must be
    /// alive, healthy, serve an ordinary client and stay under --max-rss-mb (else exit 2).
    Fuzz(FuzzArgs),
    /// rumqttd 0.20 with its built-in listener (started by `compare`).
    #[command(hide = true)]
    RumqttdBaseline {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        exit_on_stdin_eof: bool,
    },
}

#[derive(Args)]
struct ThroughputArgs {
    /// Broker to load.
    #[arg(long, default_value = "127.0.0.1:1883")]
    broker: String,
    /// Name in the report (default: the address).
    #[arg(long)]
    label: Option<String>,
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: u8,
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// Total msg/s across publishers, or `max`.
    #[arg(long, default_value = "max")]
    rate: Rate,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args)]
struct CompareArgs {
    /// Brokers to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "mosquitto,rumqttd,engine")]
    brokers: Vec<BrokerKind>,
    #[arg(long, value_delimiter = ',', default_value = "0,1", value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: Vec<u8>,
    /// PUBLISHERSxSUBSCRIBERS shapes.
    #[arg(long, value_delimiter = ',', default_value = "1x1,10x10")]
    shapes: Vec<Shape>,
    /// Offered rates (total msg/s or `max`).
    #[arg(long, value_delimiter = ',', default_value = "max,10000")]
    rates: Vec<Rate>,
    /// Short runs for CI: --duration 2s --warmup 0.5s --drain-timeout 3s unless given.
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    brokers_from: BrokerArgs,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args)]
struct VoiceArgs {
    /// A running engine (voice on) instead of starting one; K is then at most its home's sites.
    #[arg(long)]
    broker: Option<String>,
    /// One K: concurrent satellites, each with its own site (instead of --sessions-list).
    #[arg(long, conflicts_with = "sessions_list")]
    sessions: Option<usize>,
    /// Several K in one invocation, reported side by side. Beyond the home's sites loadgen
    /// gives the engine it starts a home with more (one site and speaker per satellite).
    #[arg(long, value_delimiter = ',', default_value = "1,5,10")]
    sessions_list: Vec<usize>,
    /// Requests per satellite.
    #[arg(long, default_value_t = 5)]
    utterances: usize,
    /// Mean pause of a user between a reply and their next request: each think time is
    /// uniform in [0.5, 1.5] × this, and satellites start at random offsets in [0, this).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    interval: Duration,
    /// Seed of the random offsets and think times (the same seed repeats a run's schedule).
    #[arg(long, default_value_t = voice::DEFAULT_SEED)]
    seed: u64,
    /// 1 satellite, 3 requests.
    #[arg(long)]
    quick: bool,
    /// Longest the whole measurement may take.
    #[arg(long, default_value = "900s", value_parser = parse_duration)]
    timeout: Duration,
    /// How long the engine may take to load its models and get ready.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    startup_timeout: Duration,
    /// Engine binary (default: `alicia` next to this executable).
    #[arg(long)]
    alicia_bin: Option<PathBuf>,
    /// Engine config (default: bus-config/alicia.toml of this checkout).
    #[arg(long)]
    alicia_config: Option<PathBuf>,
    /// Home with the sites and their speakers (default: bus-config/home.toml beside the config).
    #[arg(long)]
    home: Option<PathBuf>,
    /// Fail (exit 2) if the p95 end-of-speech → first-audio latency of the smallest K
    /// (1 by default) is above this.
    #[arg(long)]
    max_p95_ms: Option<f64>,
    /// Apply --max-p95-ms to every K, not only the smallest.
    #[arg(long, requires = "max_p95_ms")]
    gate_all: bool,
    /// Recorded human speech (`make speech-corpus`: DIR/corpus.tsv and DIR/{id}.wav)
    /// sent to alicia/voice/stt/request after the runs: WER, loops, latency.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// The reference decoder's transcripts of the corpus (`make speech-reference`:
    /// faster-whisper, id TAB ms TAB text), reported beside the engine's.
    #[arg(long, requires = "corpus")]
    reference: Option<PathBuf>,
    /// Report directory.
    #[arg(long, default_value = "perf-report")]
    out: PathBuf,
}

#[derive(Args)]
struct FuzzArgs {
    /// A running engine's MQTT address instead of starting one.
    #[arg(long)]
    broker: Option<String>,
    /// With --broker: its HTTP address, for /healthz.
    #[arg(long, requires = "broker")]
    http: Option<String>,
    /// With --broker: its Wyoming address (adds the voice families).
    #[arg(long, requires = "broker")]
    wyoming: Option<String>,
    /// With --broker: its process id, for liveness and memory.
    #[arg(long, requires = "broker")]
    pid: Option<u32>,
    /// Start the engine with its voice plane (Whisper, Piper, Wyoming) and fuzz those doors too.
    #[arg(long, conflicts_with = "broker")]
    voice: bool,
    /// With --voice: the models [default: models/ of this checkout].
    #[arg(long, requires = "voice")]
    models: Option<PathBuf>,
    /// With --voice: the home [default: bus-config/home.toml of this checkout].
    #[arg(long, requires = "voice")]
    home: Option<PathBuf>,
    /// Engine binary (default: `alicia` next to this executable).
    #[arg(long)]
    alicia_bin: Option<PathBuf>,
    /// Seed of every case [default: from the clock; printed, and in the report].
    #[arg(long)]
    seed: Option<u64>,
    /// Index of the first case (with --max-cases: replay a range of a seed's cases).
    #[arg(long, default_value_t = 0)]
    first_case: u64,
    /// Stop after this many cases.
    #[arg(long)]
    max_cases: Option<u64>,
    /// Families to draw from (raw-connect, raw-after-connect, packets, mutated, envelopes,
    /// voice-audio, voice-requests, wyoming) [default: all the engine serves].
    #[arg(long, value_delimiter = ',')]
    families: Vec<Family>,
    /// How long to fuzz.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Cases running side by side, each on its own connection.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Time between checks of the engine's vitals.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    check_every: Duration,
    /// Most resident memory the engine may reach (VmRSS and VmHWM) [default: 512, 2048 with --voice].
    #[arg(long)]
    max_rss_mb: Option<f64>,
    /// With --broker: its limits.max_queued_bytes_total in MiB; the engine's account of
    /// held message bytes (alicia_mqtt_queued_bytes) may not exceed it by more than 16 MiB.
    #[arg(long, requires = "broker")]
    max_queued_mb: Option<f64>,
    /// How long the engine may take to start (and load its models).
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    startup_timeout: Duration,
    /// Print case N of --seed (what it is and every byte in hex) and exit without running it.
    #[arg(long, requires = "seed")]
    show_case: Option<u64>,
    /// Report directory.
    #[arg(long, default_value = "perf-report")]
    out: PathBuf,
}

#[derive(Args)]
struct LoadArgs {
    /// Payload bytes (at least 16: send time + sequence).
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Measured window [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Load before the window, excluded from results [default: 1s].
    #[arg(long, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Longest wait for outstanding deliveries after the window [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    drain_timeout: Option<Duration>,
    /// QoS 1 unacknowledged messages per publisher (the broker's max_inflight_messages).
    #[arg(long, default_value_t = 100)]
    inflight: u64,
    /// With rate `max`: messages the publishers together may run ahead of the slowest
    /// subscriber (closed loop, keeps queues bounded); 0 = open loop.
    #[arg(long, default_value_t = 1_000)]
    max_lead: u64,
    /// MQTT keep-alive seconds (non-zero: rumqttd refuses 0).
    #[arg(long, default_value_t = 60)]
    keep_alive: u16,
    /// loadgen runtime worker threads [default: number of cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Report directory.
    #[arg(long, default_value = "perf-report")]
    out: PathBuf,
    /// Fail (exit 2) if the delivery rate is below this many msg/s (compare: the engine's
    /// rows offered `max`).
    #[arg(long)]
    min_rate: Option<f64>,
    /// Fail (exit 2) if p99 latency is above this many ms (compare: the engine's fixed-rate
    /// rows).
    #[arg(long)]
    max_p99_ms: Option<f64>,
}

impl LoadArgs {
    fn spec(&self, quick: bool, broker: String, addr: SocketAddr) -> RunSpec {
        let pick = |given: Option<Duration>, quick_value: f64, normal: f64| {
            given.unwrap_or_else(|| Duration::from_secs_f64(if quick { quick_value } else { normal }))
        };
        RunSpec {
            broker,
            addr,
            qos: 1,
            publishers: 1,
            subscribers: 1,
            payload: self.payload,
            rate: Rate::Max,
            duration: pick(self.duration, 2.0, 10.0),
            warmup: pick(self.warmup, 0.5, 1.0),
            drain_timeout: pick(self.drain_timeout, 3.0, 5.0),
            inflight: self.inflight,
            max_lead: self.max_lead,
            keep_alive: self.keep_alive,
        }
    }

    fn gates(&self) -> Gates {
        Gates { min_rate: self.min_rate, max_p99_ms: self.max_p99_ms }
    }

    fn runtime(&self) -> Result<tokio::runtime::Runtime> {
        let threads =
            self.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build()?)
    }
}

/// `10`, `1.5`, `1.5s`, `500ms`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, scale) = match s.strip_suffix("ms") {
        Some(n) => (n, 1e-3),
        None => (s.strip_suffix('s').unwrap_or(s), 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(Duration::from_secs_f64(v * scale)),
        _ => Err(format!("expected a duration like 10, 1.5s or 500ms, got `{s}`")),
    }
}

fn main() {
    let verdict = match run(Cli::parse().command) {
        Ok(verdict) => verdict,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    };
    verdict.print();
    std::process::exit(verdict.exit_code());
}

fn run(command: Command) -> Result<Verdict> {
    match command {
        Command::Throughput(args) => run_throughput(args),
        Command::Compare(args) => run_compare(args),
        Command::Voice(args) => run_voice(args),
        Command::Connections(args) => run_connections(args),
        Command::Large(args) => run_large(args),
        Command::Hostile(args) => run_hostile(args),
        Command::Tls(args) => tls_command::run_tls(args),
        Command::Durability(args) => durability_command::run_durability(args),
        Command::Fuzz(args) => run_fuzz(args),
        Command::RumqttdBaseline { listen, exit_on_stdin_eof } => {
            baseline::serve(listen, exit_on_stdin_eof)?;
            Ok(Verdict::default())
        }
    }
}

fn run_throughput(args: ThroughputArgs) -> Result<Verdict> {
    let addr = args
        .broker
        .to_socket_addrs()
        .with_context(|| format!("resolve --broker {}", args.broker))?
        .next()
        .with_context(|| format!("--broker {} resolves to no address", args.broker))?;
    let mut spec = args.load.spec(false, args.label.unwrap_or(args.broker), addr);
    spec.qos = args.qos;
    spec.publishers = args.publishers;
    spec.subscribers = args.subscribers;
    spec.rate = args.rate;
    spec.validate()?;
    let opts = ThroughputOptions { spec, gates: args.load.gates(), out: args.load.out.clone() };
    args.load.runtime()?.block_on(throughput::run(&opts))
}

fn run_compare(args: CompareArgs) -> Result<Verdict> {
    let launch = args.brokers_from.launch()?;
    let template = args.load.spec(args.quick, String::new(), ([127, 0, 0, 1], 0).into());
    template.validate()?;
    let opts = CompareOptions {
        brokers: args.brokers,
        qos: args.qos,
        shapes: args.shapes,
        rates: args.rates,
        template,
        launch,
        gates: args.load.gates(),
        out: args.load.out.clone(),
    };
    compare::run(&opts, &args.load.runtime()?)
}

fn resolve(flag: &str, addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("resolve --{flag} {addr}"))?
        .next()
        .with_context(|| format!("--{flag} {addr} resolves to no address"))
}

fn run_fuzz(args: FuzzArgs) -> Result<Verdict> {
    if let (Some(index), Some(seed)) = (args.show_case, args.seed) {
        fuzz::show_case(seed, index, &args.families);
        return Ok(Verdict::default());
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("fuzz: seed {seed}");
    let voice = args.voice.then(|| VoicePaths::of_checkout(args.models, args.home));
    let opts = FuzzOptions {
        broker: args.broker.as_deref().map(|b| resolve("broker", b)).transpose()?,
        http: args.http.as_deref().map(|h| resolve("http", h)).transpose()?,
        wyoming: args.wyoming.as_deref().map(|w| resolve("wyoming", w)).transpose()?,
        pid: args.pid,
        max_rss_mb: args.max_rss_mb.unwrap_or(if voice.is_some() { 2048.0 } else { 512.0 }),
        max_queued_mb: args.max_queued_mb,
        voice,
        alicia_bin: voice::default_alicia_bin(args.alicia_bin),
        seed,
        first_case: args.first_case,
        max_cases: args.max_cases,
        families: args.families,
        duration: Duration::from_secs_f64(args.seconds.max(0.0)),
        connections: args.connections,
        check_every: args.check_every,
        startup_timeout: args.startup_timeout,
        out: args.out,
    };
    fuzz::run(&opts)
}

fn run_voice(args: VoiceArgs) -> Result<Verdict> {
    let broker = match &args.broker {
        Some(b) => Some(
            b.to_socket_addrs()
                .with_context(|| format!("resolve --broker {b}"))?
                .next()
                .with_context(|| format!("--broker {b} resolves to no address"))?,
        ),
        None => None,
    };
    let (sessions, utterances) = match (args.quick, args.sessions) {
        (true, _) => (vec![1], 3),
        (false, Some(k)) => (vec![k], args.utterances),
        (false, None) => (args.sessions_list, args.utterances),
    };
    let opts = VoiceOptions {
        broker,
        alicia_bin: voice::default_alicia_bin(args.alicia_bin),
        alicia_config: args.alicia_config,
        home: args.home,
        sessions,
        utterances,
        interval: args.interval,
        seed: args.seed,
        timeout: args.timeout,
        startup_timeout: args.startup_timeout,
        max_p95_ms: args.max_p95_ms,
        gate_all: args.gate_all,
        corpus: args.corpus,
        reference: args.reference,
        out: args.out,
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    voice::run(&opts, &rt)
}
