//! `tls`: the engine's MQTT-over-TLS listener under load (issue 8), against its plain TCP
//! listener in the same run, same process, same client code.
//!
//! | module | concept |
//! |---|---|
//! | `pki` | the dev PKI made by the binary under test (`alicia certs`), the rustls client config |
//! | `stall` | sockets that start a ClientHello and stall: closed by the engine's deadline? |
//! | `fleet` | N connections opened at a bounded concurrency and held; one more client's latency |
//! | `phases` | (with the crate's `session` and `pump`) the held phase (TLS with stalls, then TCP) and the throughput rounds |
//! | `summary` | the checks, the tables and the markdown report |
//!
//! Why a scenario of its own: a TLS listener adds per-connection CPU (the handshake),
//! memory (record buffers, the session's keys) and a new way to hold a socket without
//! being a client (a handshake that never finishes). The numbers that matter are the
//! cost of each relative to plain TCP, and that the deadline really bounds the last.

mod fleet;
mod phases;
mod pki;
mod stall;
mod summary;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::runtime::Runtime;
use toml::{Table, Value};

use crate::compare::Shape;
use crate::engine_config::{self, repo_of};
use crate::engine_process::{EngineLaunch, EngineProcess};
use crate::report::{self, Provenance};
use crate::rlimit::{self, OpenFiles};
use crate::Verdict;

use crate::session::{Dialer, Transport};
pub use phases::{HeldRun, ShapeResult};

/// Room above N and the stalled sockets in every connection limit: the probe clients
/// and the readiness check.
const CONNECTION_MARGIN: usize = 64;
/// The client certificate `--client-cert` issues (its CN, so the MQTT username).
const CLIENT_NAME: &str = "loadgen-device";

#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub alicia_bin: PathBuf,
    /// The checkout's config; the run's config is written from it.
    pub alicia_config: PathBuf,
    pub alicia_args: Vec<String>,
    pub startup_timeout: Duration,
    /// Held TLS connections (and as many plain TCP ones after).
    pub connections: usize,
    /// Sockets that stall mid-handshake during the TLS fleet.
    pub stalled: usize,
    /// Handshakes in flight at once.
    pub concurrency: usize,
    /// Clients present a certificate (`require_certificate`, CN as username, the CRL).
    pub client_cert: bool,
    /// The engine's `mqtt.connect_timeout_ms`: its TLS handshake deadline.
    pub connect_timeout: Duration,
    /// Loadgen's own limit on one connection's TCP connect → CONNACK.
    pub handshake_timeout: Duration,
    /// Extra clients timed while the stalled sockets stall.
    pub probes: usize,
    /// How long the connections stay open after the engine's memory settled.
    pub hold: Duration,
    pub settle_timeout: Duration,
    pub shapes: Vec<Shape>,
    /// Messages published per row, split across the publishers.
    pub messages: u64,
    pub payload: usize,
    pub inflight: u64,
    pub lead: u64,
    /// Each shape runs this many times per transport, alternating which goes first.
    pub rounds: usize,
    pub row_timeout: Duration,
    pub out: PathBuf,
}

#[derive(Serialize)]
struct TlsReport {
    kind: &'static str,
    #[serde(flatten)]
    provenance: Provenance,
    method: &'static str,
    engine: EngineFacts,
    settings: Settings,
    open_files: OpenFiles,
    held: Vec<HeldRun>,
    throughput: Vec<ShapeResult>,
    ratios: summary::Ratios,
    checks: Vec<summary::Check>,
    notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct EngineFacts {
    version: String,
    /// One per engine process: held TLS, held TCP, throughput.
    commands: Vec<String>,
    io: String,
    /// The overrides written into the run's config, as `key = value`.
    config_overrides: Vec<String>,
    pki_commands: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Settings {
    connections: usize,
    stalled: usize,
    concurrency: usize,
    client_cert: bool,
    connect_timeout_ms: u64,
    probes: usize,
    hold_s: f64,
    shapes: Vec<String>,
    messages_per_row: u64,
    payload_bytes: usize,
    inflight: u64,
    lead: u64,
    rounds: usize,
}

pub fn run(opts: &TlsOptions, rt: &Runtime) -> Result<Verdict> {
    let provenance = Provenance::collect();
    // loadgen holds N + stalled sockets, the engine (which inherits the limit) as many.
    let open_files = rlimit::ensure_open_files((opts.connections + opts.stalled + 256) as u64)?;
    let dir = tempfile::Builder::new().prefix("alicia-loadgen-tls-").tempdir()?;
    let pki_dir = dir.path().join("pki");
    std::fs::create_dir_all(&pki_dir)?;
    println!("tls: dev PKI via `{} certs` in {}", opts.alicia_bin.display(), pki_dir.display());
    let pki = pki::make(&opts.alicia_bin, &pki_dir, opts.client_cert.then_some(CLIENT_NAME))?;

    let (overrides, described) = config_overrides(opts, &pki);
    let config = engine_config::write(&opts.alicia_config, None, &overrides, dir.path())?;
    let launch = EngineLaunch {
        bin: opts.alicia_bin.clone(),
        config,
        env: None,
        cwd: repo_of(&opts.alicia_config),
        extra_args: opts.alicia_args.clone(),
        envs: Vec::new(),
        fresh_store: true,
        startup_timeout: opts.startup_timeout,
    };
    // A fresh engine for each held fleet (so neither inherits the other's freed memory)
    // and one for the throughput rounds, where both transports alternate.
    let mut notes = Vec::new();
    let mut commands = Vec::new();
    let mut io = String::new();
    let mut held = Vec::new();
    for transport in [Transport::Tls, Transport::Tcp] {
        let (engine, tcp, tls) = start_engine(&launch, &pki)?;
        let dialer = if transport == Transport::Tls { &tls } else { &tcp };
        let run = phases::held(opts, &engine, dialer, rt);
        io = engine.io.clone();
        commands.push(engine.command.clone());
        finish(engine, &format!("held {}", transport.name()), &mut notes);
        held.push(run.with_context(|| format!("held phase over {}", transport.name()))?);
    }
    let (engine, tcp, tls) = start_engine(&launch, &pki)?;
    let throughput = phases::throughput(opts, &engine, &tcp, &tls, rt, &mut notes);
    commands.push(engine.command.clone());
    finish(engine, "throughput", &mut notes);
    let facts = EngineFacts {
        version: crate::brokers::Launch {
            mosquitto_bin: PathBuf::new(),
            alicia_bin: opts.alicia_bin.clone(),
            alicia_config: None,
            alicia_args: Vec::new(),
            startup_timeout: opts.startup_timeout,
        }
        .version(crate::brokers::BrokerKind::Engine),
        commands,
        io,
        config_overrides: described,
        pki_commands: pki.commands.clone(),
    };

    let ratios = summary::Ratios::of(&held, &throughput);
    let checks = summary::checks(opts, &held, &throughput);
    let report = TlsReport {
        kind: "tls",
        provenance,
        method: summary::METHOD,
        engine: facts,
        settings: settings(opts),
        open_files,
        held,
        throughput,
        ratios,
        checks,
        notes,
    };
    print!("\n{}", summary::text(&report));
    let (json, md) = report::write(&opts.out, "tls", &report, &summary::markdown(&report))?;
    println!("wrote {} and {}", json.display(), md.display());
    let gate_failures =
        report.checks.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.name, c.detail)).collect();
    Ok(Verdict { gate_failures, problems: Vec::new() })
}

/// `[mqtt.tls]` on a free loopback port with the run's PKI, the handshake deadline, and
/// every connection limit raised to N + stalled + margin (all clients come from 127.0.0.1).
fn config_overrides(opts: &TlsOptions, pki: &pki::DevPki) -> (Vec<engine_config::Override>, Vec<String>) {
    let path = |p: &std::path::Path| Value::String(p.display().to_string());
    let mut section = Table::new();
    section.insert("listen".into(), Value::String("127.0.0.1:0".into()));
    section.insert("cert".into(), path(&pki.server_cert));
    section.insert("key".into(), path(&pki.server_key));
    if opts.client_cert {
        section.insert("ca".into(), path(&pki.ca));
        section.insert("crl".into(), path(&pki.crl));
        section.insert("require_certificate".into(), Value::Boolean(true));
        section.insert("use_identity_as_username".into(), Value::Boolean(true));
    }
    let limit = (opts.connections + opts.stalled + CONNECTION_MARGIN) as i64;
    let mut overrides = vec![
        ("mqtt.tls".to_string(), Value::Table(section)),
        ("mqtt.connect_timeout_ms".to_string(), Value::Integer(opts.connect_timeout.as_millis() as i64)),
        ("voice.enabled".to_string(), Value::Boolean(false)),
    ];
    for key in [
        "limits.max_connections",
        "limits.max_connections_per_ip",
        "limits.max_pending_connections",
        "limits.max_sessions",
    ] {
        overrides.push((key.to_string(), Value::Integer(limit.max(1_000))));
    }
    let described = overrides
        .iter()
        .map(|(k, v)| match v {
            Value::Table(t) => format!("[{k}] {}", toml::to_string(t).unwrap_or_default().replace('\n', "; ")),
            v => format!("{k} = {v}"),
        })
        .collect();
    (overrides, described)
}

/// Starts the engine and the dialers of its two MQTT doors.
fn start_engine(launch: &EngineLaunch, pki: &pki::DevPki) -> Result<(EngineProcess, Dialer, Dialer)> {
    let engine = EngineProcess::start(launch)?;
    let tls_addr = engine.mqtt_tls.context("the engine printed no mqtt-tls address: is [mqtt.tls] supported?")?;
    println!("tls: engine pid {} mqtt {} mqtt-tls {} io {}", engine.pid(), engine.mqtt, tls_addr, engine.io);
    let (connector, name) = pki::connector(pki, tls_addr.ip())?;
    let tls = Dialer { addr: tls_addr, tls: Some((connector, name)) };
    let tcp = Dialer { addr: engine.mqtt, tls: None };
    Ok((engine, tcp, tls))
}

/// Stops the engine; what its log and its exit say goes into the notes.
fn finish(mut engine: EngineProcess, phase: &str, notes: &mut Vec<String>) {
    if let Some(status) = engine.exited() {
        notes.push(format!("{phase}: the engine exited during the phase ({status}): {}", engine.log_tail()));
    }
    notes.extend(crate::engine_process::log_findings(&engine.log_text()).into_iter().map(|n| format!("{phase}: {n}")));
    if let Err(e) = engine.stop() {
        notes.push(format!("{phase}: stopping the engine: {e:#}"));
    }
}

fn settings(opts: &TlsOptions) -> Settings {
    Settings {
        connections: opts.connections,
        stalled: opts.stalled,
        concurrency: opts.concurrency,
        client_cert: opts.client_cert,
        connect_timeout_ms: opts.connect_timeout.as_millis() as u64,
        probes: opts.probes,
        hold_s: opts.hold.as_secs_f64(),
        shapes: opts.shapes.iter().map(|s| format!("{}x{}", s.publishers, s.subscribers)).collect(),
        messages_per_row: opts.messages,
        payload_bytes: opts.payload,
        inflight: opts.inflight,
        lead: opts.lead,
        rounds: opts.rounds,
    }
}
