//! The two phases of a `tls` run against one engine process.
//!
//! Held: the engine's memory settles; over TLS, the stalled sockets start their
//! ClientHello first, then the fleet opens, then the probe clients are timed while the
//! stalled sockets still stall, and the engine's deadline is awaited before the memory
//! is read again, so the per-connection figure is the fleet's alone. The same fleet then
//! runs over plain TCP for the comparison (each fleet on a fresh engine process, so
//! neither reuses memory the other freed). Throughput: after an unrecorded warm-up pass,
//! every shape over both transports, round after round, the order flipped each round so
//! a drift of the shared machine does not favour one side.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use tokio::runtime::Runtime;

use super::fleet::{self, FleetSpec, TlsFleet, TlsFleetCounts};
use super::stall::{StallSummary, Stalls};
use super::TlsOptions;
use crate::engine_process::EngineProcess;
use crate::machine;
use crate::memory::{self, Memory, Settled};
use crate::pump::{self, PumpResult, PumpSpec};
use crate::report::thousands;
use crate::session::{Dialer, Transport};
use crate::stats::LatencySummary;

/// One fleet held over one transport.
#[derive(Debug, Clone, Serialize)]
pub struct HeldRun {
    pub transport: Transport,
    pub counts: TlsFleetCounts,
    pub open_s: f64,
    /// Accepted connections per second of the opening.
    pub connect_rate: f64,
    /// TCP connect → CONNACK.
    pub connect: LatencySummary,
    /// TCP connect → TLS handshake done (for TCP: the TCP connect alone).
    pub handshake: LatencySummary,
    pub rss_before: Settled,
    pub rss_after: Settled,
    /// VmHWM at the end of the hold: the engine's peak since it started.
    pub peak_kb: Option<u64>,
    /// (after − before) / accepted.
    pub kb_per_connection: Option<f64>,
    pub engine_cpu_cores: Option<f64>,
    pub loadgen_cpu_cores: Option<f64>,
    /// The whole machine; minus the two above, what others ran meanwhile.
    pub host_cpu_cores: Option<f64>,
    /// Over TLS: the stalled sockets.
    pub stalls: Option<StallSummary>,
    /// Stalled sockets still open when the fleet had opened.
    pub stalled_open_after_fleet: Option<usize>,
    pub probes: Vec<Probe>,
}

/// One extra client timed after the fleet opened.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub connect_ms: Option<f64>,
    pub error: Option<String>,
    /// Stalled sockets still open when it started.
    pub stalled_open: usize,
    /// Seconds since the stalled sockets sent their partial ClientHello.
    pub since_stall_s: f64,
    /// TLS version and cipher suite it negotiated.
    pub negotiated: Option<String>,
}

pub(super) fn held(opts: &TlsOptions, engine: &EngineProcess, dialer: &Dialer, rt: &Runtime) -> Result<HeldRun> {
    let transport = dialer.transport();
    let name = transport.name();
    let pid = engine.pid();
    let rss_before = settle(pid, opts.settle_timeout);
    let stalled = if transport == Transport::Tls { opts.stalled } else { 0 };
    // Watch well past the deadline, so an engine that never closes them is seen to.
    let watch_for = opts.connect_timeout + Duration::from_secs(10);
    let stalls = (stalled > 0).then(|| rt.block_on(Stalls::open(dialer.addr, stalled, watch_for)));
    let stalled_at = Instant::now();
    if let Some(s) = &stalls {
        println!("{name}: {} sockets stalled mid-ClientHello", s.still_open());
    }
    println!(
        "{name}: RSS {:.1} MB; opening {} connections, {} at once",
        memory::mb(rss_before.rss_kb),
        thousands(opts.connections as f64),
        opts.concurrency
    );
    let spec = FleetSpec {
        dialer: dialer.clone(),
        count: opts.connections,
        concurrency: opts.concurrency,
        keep_alive: 0,
        handshake_timeout: opts.handshake_timeout,
        client_prefix: format!("lg-held-{}-{name}-", std::process::id()),
    };
    let cpu = CpuSample::take(pid);
    let fleet = rt.block_on(TlsFleet::open(&spec));
    let (loadgen_cpu_cores, engine_cpu_cores, host_cpu_cores) = cpu.cores_since(pid);
    let opened = fleet.counts();
    println!(
        "{name}: {} accepted in {:.2} s ({}/s); failures: {}",
        thousands(opened.accepted as f64),
        fleet.open_duration.as_secs_f64(),
        thousands(opened.accepted as f64 / fleet.open_duration.as_secs_f64().max(1e-9)),
        opened.failures()
    );
    let stalled_open_after_fleet = stalls.as_ref().map(Stalls::still_open);
    let mut probes = Vec::with_capacity(opts.probes);
    for i in 0..opts.probes {
        let stalled_open = stalls.as_ref().map_or(0, Stalls::still_open);
        let since_stall_s = stalled_at.elapsed().as_secs_f64();
        let id = format!("lg-probe-{}-{name}-{i}", std::process::id());
        let probe = rt.block_on(fleet::probe(dialer, &id, opts.handshake_timeout));
        probes.push(Probe {
            connect_ms: probe.as_ref().ok().map(|(d, _)| d.as_secs_f64() * 1e3),
            negotiated: probe.as_ref().ok().and_then(|(_, n)| n.clone()),
            error: probe.err(),
            stalled_open,
            since_stall_s,
        });
    }
    let stalls = stalls.map(|s| {
        println!("{name}: waiting for the engine's {:?} deadline to end the stalled sockets", opts.connect_timeout);
        let summary = StallSummary::of(&rt.block_on(s.finish()));
        println!(
            "{name}: {} of {} stalled sockets ended by the engine after {}–{} s, {} still open",
            summary.ended(),
            summary.opened,
            summary.closed_after_min_s.map_or("-".into(), |s| format!("{s:.2}")),
            summary.closed_after_max_s.map_or("-".into(), |s| format!("{s:.2}")),
            summary.still_open
        );
        summary
    });
    let rss_after = settle(pid, opts.settle_timeout);
    rt.block_on(async { tokio::time::sleep(opts.hold).await });
    let counts = fleet.counts();
    let (connect, handshake, open_s) = (fleet.connect_latency(), fleet.handshake_latency(), fleet.open_duration);
    rt.block_on(fleet.close());
    let kb_per_connection =
        (counts.accepted > 0).then(|| (rss_after.rss_kb as f64 - rss_before.rss_kb as f64) / counts.accepted as f64);
    println!(
        "{name}: RSS {:.1} MB held ({} KB per connection), {} dropped while held",
        memory::mb(rss_after.rss_kb),
        kb_per_connection.map_or("-".into(), |k| format!("{k:.1}")),
        counts.dropped_while_held
    );
    Ok(HeldRun {
        transport,
        connect_rate: counts.accepted as f64 / open_s.as_secs_f64().max(1e-9),
        counts,
        open_s: open_s.as_secs_f64(),
        connect,
        handshake,
        rss_before,
        rss_after,
        peak_kb: Memory::of(pid).map(|m| m.hwm_kb),
        kb_per_connection,
        engine_cpu_cores,
        loadgen_cpu_cores,
        host_cpu_cores,
        stalls,
        stalled_open_after_fleet,
        probes,
    })
}

/// Waits for the resident set to settle within max(256 KB, 0.5 %) over 2 s.
fn settle(pid: u32, timeout: Duration) -> Settled {
    let tolerance = Memory::of(pid).map_or(256, |m| (m.rss_kb / 200).max(256));
    memory::wait_until_stable(pid, Duration::from_millis(200), Duration::from_secs(2), tolerance, timeout)
}

/// One shape's rows over both transports.
#[derive(Debug, Clone, Serialize)]
pub struct ShapeResult {
    pub shape: String,
    pub publishers: usize,
    pub subscribers: usize,
    pub tcp: Vec<PumpRow>,
    pub tls: Vec<PumpRow>,
}

/// One round of one shape over one transport.
#[derive(Debug, Clone, Serialize)]
pub struct PumpRow {
    pub round: usize,
    #[serde(flatten)]
    pub result: PumpResult,
    pub engine_cpu_cores: Option<f64>,
    pub loadgen_cpu_cores: Option<f64>,
    pub host_cpu_cores: Option<f64>,
}

/// CPU seconds of loadgen, the engine and the whole machine at one instant.
struct CpuSample {
    loadgen: Option<f64>,
    engine: Option<f64>,
    host: Option<f64>,
    at: Instant,
}

impl CpuSample {
    fn take(pid: u32) -> CpuSample {
        CpuSample {
            loadgen: machine::cpu_seconds(None),
            engine: machine::cpu_seconds(Some(pid)),
            host: machine::host_busy_seconds(),
            at: Instant::now(),
        }
    }

    /// Cores busy since the sample: (loadgen, engine, host); none for a window under
    /// 100 ms, which /proc's 10 ms ticks cannot resolve.
    fn cores_since(&self, pid: u32) -> (Option<f64>, Option<f64>, Option<f64>) {
        let now = CpuSample::take(pid);
        let elapsed = now.at.duration_since(self.at).as_secs_f64();
        let cores = |a: Option<f64>, b: Option<f64>| (elapsed >= 0.1).then_some((b? - a?) / elapsed);
        (cores(self.loadgen, now.loadgen), cores(self.engine, now.engine), cores(self.host, now.host))
    }
}

pub(super) fn throughput(
    opts: &TlsOptions,
    engine: &EngineProcess,
    tcp: &Dialer,
    tls: &Dialer,
    rt: &Runtime,
    notes: &mut Vec<String>,
) -> Vec<ShapeResult> {
    let mut shapes: Vec<ShapeResult> = opts
        .shapes
        .iter()
        .map(|s| ShapeResult {
            shape: format!("{}×{}", s.publishers, s.subscribers),
            publishers: s.publishers,
            subscribers: s.subscribers,
            tcp: Vec::new(),
            tls: Vec::new(),
        })
        .collect();
    let pid = engine.pid();
    // One short unrecorded pass per transport first: the first connections and
    // deliveries of a fresh process (allocator, thread pools) are not what is measured.
    if let Some(first) = opts.shapes.first() {
        for dialer in [tcp, tls] {
            let spec = PumpSpec {
                dialer: dialer.clone(),
                publishers: first.publishers,
                subscribers: first.subscribers,
                messages: (opts.messages / 10 / first.publishers as u64).max(1),
                payload: opts.payload,
                inflight: opts.inflight,
                lead: opts.lead,
                timeout: opts.row_timeout,
                topic_root: "bench/tls",
                tag: format!("{}-warmup-{}", std::process::id(), dialer.transport().name()),
                persistent: false,
            };
            if let Err(e) = rt.block_on(pump::run(&spec)) {
                notes.push(format!("warm-up over {}: {e:#}", dialer.transport().name()));
            }
        }
    }
    for round in 0..opts.rounds {
        for shape in shapes.iter_mut() {
            let order = if round % 2 == 0 { [tcp, tls] } else { [tls, tcp] };
            for dialer in order {
                let name = dialer.transport().name();
                let spec = PumpSpec {
                    dialer: dialer.clone(),
                    publishers: shape.publishers,
                    subscribers: shape.subscribers,
                    messages: (opts.messages / shape.publishers as u64).max(1),
                    payload: opts.payload,
                    inflight: opts.inflight,
                    lead: opts.lead,
                    timeout: opts.row_timeout,
                    topic_root: "bench/tls",
                    tag: format!("{}-r{round}-{}x{}-{name}", std::process::id(), shape.publishers, shape.subscribers),
                    persistent: false,
                };
                let cpu = CpuSample::take(pid);
                let result = rt.block_on(pump::run(&spec));
                let (loadgen_cpu_cores, engine_cpu_cores, host_cpu_cores) = cpu.cores_since(pid);
                match result {
                    Ok(result) => {
                        println!(
                            "round {} {} QoS 1 {name}: {} deliveries/s ({} of {}), p50 {:.2} ms p99 {:.2} ms",
                            round + 1,
                            shape.shape,
                            thousands(result.delivery_rate),
                            thousands(result.delivered as f64),
                            thousands(result.expected_deliveries as f64),
                            result.latency.p50_ms,
                            result.latency.p99_ms
                        );
                        let row = PumpRow { round, engine_cpu_cores, loadgen_cpu_cores, host_cpu_cores, result };
                        match dialer.transport() {
                            Transport::Tcp => shape.tcp.push(row),
                            Transport::Tls => shape.tls.push(row),
                        }
                    }
                    Err(e) => notes.push(format!("round {} {} {name}: {e:#}", round + 1, shape.shape)),
                }
            }
        }
    }
    shapes
}
