//! The `tls` report: the ratios TLS / TCP, the checks a run must pass, the tables and
//! the markdown page.

use serde::Serialize;

use super::phases::{HeldRun, PumpRow, ShapeResult};
use super::{TlsOptions, TlsReport};
use crate::memory::mb;
use crate::report::{markdown_table, ms, text_table, thousands};
use crate::session::Transport;
use crate::stats::median;
use crate::throughput::bullet_list;

pub const METHOD: &str = "\
The engine (`alicia serve`, release build) started by loadgen three times, a fresh process for \
the held TLS fleet, for the held TCP fleet and for the throughput phase, each with a config \
written for the run: the checkout's config plus `[mqtt.tls]` on a free loopback port with a dev PKI made by \
the binary under test (`alicia certs init`, and with --client-cert `alicia certs issue`, \
`require_certificate`, `use_identity_as_username` and the CRL), `mqtt.connect_timeout_ms` (the \
TLS handshake deadline) and every connection limit (`max_connections`, `max_connections_per_ip`, \
`max_pending_connections`, `max_sessions`) raised to N + stalled + 64, since every client comes \
from 127.0.0.1. Clients are loadgen's own MQTT 3.1.1 codec over tokio, plain or over rustls 0.23 \
with the ring provider against the engine's ECDSA P-256 certificate (the version and cipher \
suite negotiated are in the extra clients' lines; session resumption off: every connection is a full \
handshake, as for N distinct devices); one client code path for both transports. \
Held phase, TLS: the engine's VmRSS settles (moved < max(256 KB, 0.5 %) over 2 s); S raw TCP \
sockets send the first 21 bytes of a ClientHello (a record announcing 512 bytes) and then nothing; \
then N connections open with at most C in their handshake at once, each timed from its TCP \
connect to its TLS handshake and to its CONNACK (HDR histograms, µs). Connect rate = accepted / \
time from the first connect to the last outcome. Then K more clients connect one by one while \
the stalled sockets still stall; their connect time is compared with the fleet's median. Then \
loadgen waits until the engine has closed every stalled socket (or the deadline + 10 s), records \
when, lets the RSS settle again: KB per connection = (RSS after - RSS before) / accepted, with \
every connection held (keep-alive 0, silent). The same fleet (without stalled sockets) then \
opens over the plain TCP listener of a fresh engine, for the comparison. Throughput phase: P publishers x S \
subscribers, QoS 1 both ways, publisher p publishes M / P messages of B bytes to \
bench/tls/<tag>/<p>, every subscriber subscribes bench/tls/<tag>/+, so S x M deliveries per row; \
closed loop (publishers at most `inflight` PUBACKs behind each and `lead` messages ahead of the \
slowest subscriber together); rate = deliveries / (last delivery - release of the publishers); \
latency from the send time in the first 16 payload bytes. After one unrecorded warm-up pass per transport (the first shape, M / 10 messages), each shape \
runs R rounds over both transports against the same process, the order flipped every round; the table gives the median round and TLS / TCP the \
ratio of the medians. CPU columns are cores busy (user + system from /proc) during the opening \
or the row (the median over the rounds): loadgen and the engine share the machine's 2 cores, and \
host minus loadgen and engine is what other processes ran meanwhile.";

/// TLS relative to TCP, measured minutes apart against the same process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ratios {
    pub connect_rate_tls_vs_tcp: Option<f64>,
    pub connect_p50_tls_vs_tcp: Option<f64>,
    pub kb_per_connection_tls_vs_tcp: Option<f64>,
    /// Median connect time of the probe clients (during the stall) / the TLS fleet's p50.
    pub probe_vs_fleet_p50: Option<f64>,
    pub throughput: Vec<ShapeRatio>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShapeRatio {
    pub shape: String,
    /// Median deliveries/s over the rounds.
    pub tcp_rate: Option<f64>,
    pub tls_rate: Option<f64>,
    pub tls_vs_tcp: Option<f64>,
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn median_rate(rows: &[PumpRow]) -> Option<f64> {
    median(rows.iter().map(|r| r.result.delivery_rate))
}

impl Ratios {
    pub fn of(held: &[HeldRun], shapes: &[ShapeResult]) -> Ratios {
        let run = |t: Transport| held.iter().find(|h| h.transport == t);
        let (tls, tcp) = (run(Transport::Tls), run(Transport::Tcp));
        let probe_median = tls.and_then(|h| median(h.probes.iter().filter_map(|p| p.connect_ms)));
        Ratios {
            connect_rate_tls_vs_tcp: ratio(tls.map(|h| h.connect_rate), tcp.map(|h| h.connect_rate)),
            connect_p50_tls_vs_tcp: ratio(tls.map(|h| h.connect.p50_ms), tcp.map(|h| h.connect.p50_ms)),
            kb_per_connection_tls_vs_tcp: ratio(
                tls.and_then(|h| h.kb_per_connection),
                tcp.and_then(|h| h.kb_per_connection),
            ),
            probe_vs_fleet_p50: ratio(probe_median, tls.map(|h| h.connect.p50_ms)),
            throughput: shapes
                .iter()
                .map(|s| {
                    let (tcp_rate, tls_rate) = (median_rate(&s.tcp), median_rate(&s.tls));
                    ShapeRatio { shape: s.shape.clone(), tcp_rate, tls_rate, tls_vs_tcp: ratio(tls_rate, tcp_rate) }
                })
                .collect(),
        }
    }
}

/// Something a run must show; a failed check exits 2.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

pub(super) fn checks(opts: &TlsOptions, held: &[HeldRun], shapes: &[ShapeResult]) -> Vec<Check> {
    let mut checks = Vec::new();
    let n = opts.connections as u64;
    for h in held {
        let c = &h.counts;
        checks.push(Check {
            name: if h.transport == Transport::Tls {
                "every TLS connection accepted and held"
            } else {
                "every TCP connection accepted and held"
            },
            passed: c.accepted == n && c.dropped_while_held == 0,
            detail: format!(
                "{} of {n} accepted, {} dropped while held; failures: {}",
                c.accepted,
                c.dropped_while_held,
                c.failures()
            ),
        });
    }
    let deadline_s = opts.connect_timeout.as_secs_f64();
    if let Some(s) = held.iter().find_map(|h| h.stalls.as_ref()) {
        let latest = s.closed_after_max_s.unwrap_or(f64::INFINITY);
        checks.push(Check {
            name: "stalled handshakes ended by the engine's deadline",
            passed: s.opened == opts.stalled && s.ended() == s.opened && latest <= deadline_s + 2.0,
            detail: format!(
                "{} opened, {} closed + {} reset by the engine after {}–{} s (deadline {deadline_s} s), {} still open",
                s.opened,
                s.closed_by_engine,
                s.reset_by_engine,
                s.closed_after_min_s.map_or("-".into(), |v| format!("{v:.2}")),
                s.closed_after_max_s.map_or("-".into(), |v| format!("{v:.2}")),
                s.still_open
            ),
        });
    }
    if let Some(h) = held.iter().find(|h| h.transport == Transport::Tls && opts.probes > 0) {
        let bound_ms = deadline_s * 1e3 / 10.0;
        let during = h.probes.iter().filter(|p| p.stalled_open > 0).count();
        let slowest = h.probes.iter().map(|p| p.connect_ms.unwrap_or(f64::INFINITY)).fold(0.0, f64::max);
        let failed: Vec<&str> = h.probes.iter().filter_map(|p| p.error.as_deref()).collect();
        checks.push(Check {
            name: "stalled handshakes delay no one",
            passed: failed.is_empty() && during == h.probes.len() && slowest <= bound_ms,
            detail: format!(
                "{} of {} extra clients connected while stalled sockets were open, slowest {} ms (bound {} ms: a \
                 tenth of the deadline), TLS fleet p50 {} ms{}",
                during,
                h.probes.len(),
                ms(slowest),
                ms(bound_ms),
                ms(h.connect.p50_ms),
                if failed.is_empty() { String::new() } else { format!("; failed: {}", failed.join("; ")) }
            ),
        });
    }
    let rows: Vec<&PumpRow> = shapes.iter().flat_map(|s| s.tcp.iter().chain(&s.tls)).collect();
    let incomplete: Vec<String> = shapes
        .iter()
        .flat_map(|s| {
            s.tcp.iter().map(|r| ("tcp", r)).chain(s.tls.iter().map(|r| ("tls", r))).filter_map(move |(t, r)| {
                let p = &r.result;
                (p.delivered != p.expected_deliveries || !p.errors.is_empty()).then(|| {
                    format!(
                        "{} {t} round {}: {} of {} delivered",
                        s.shape,
                        r.round + 1,
                        p.delivered,
                        p.expected_deliveries
                    )
                })
            })
        })
        .collect();
    let expected_rows = opts.shapes.len() * opts.rounds * 2;
    checks.push(Check {
        name: "every QoS 1 message delivered",
        passed: incomplete.is_empty() && rows.len() == expected_rows,
        detail: if incomplete.is_empty() {
            format!("{} of {expected_rows} rows ran, each delivered all it should", rows.len())
        } else {
            incomplete.join("; ")
        },
    });
    checks
}

const HELD_HEADERS: [&str; 10] = [
    "transport",
    "accepted / N",
    "dropped while held",
    "connects/s",
    "handshake p50 / p99 ms",
    "CONNACK p50 / p99 ms",
    "RSS before → held MB",
    "KB per connection",
    "cpu loadgen / engine / host",
    "other outcomes",
];

fn held_rows(held: &[HeldRun], n: usize) -> Vec<Vec<String>> {
    let cores = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    held.iter()
        .map(|h| {
            vec![
                h.transport.name().to_string(),
                format!("{} / {}", thousands(h.counts.accepted as f64), thousands(n as f64)),
                thousands(h.counts.dropped_while_held as f64),
                thousands(h.connect_rate),
                format!("{} / {}", ms(h.handshake.p50_ms), ms(h.handshake.p99_ms)),
                format!("{} / {}", ms(h.connect.p50_ms), ms(h.connect.p99_ms)),
                format!("{:.1} → {:.1}", mb(h.rss_before.rss_kb), mb(h.rss_after.rss_kb)),
                h.kb_per_connection.map_or("-".into(), |k| format!("{k:.1}")),
                format!("{} / {} / {}", cores(h.loadgen_cpu_cores), cores(h.engine_cpu_cores), cores(h.host_cpu_cores)),
                h.counts.failures(),
            ]
        })
        .collect()
}

const THROUGHPUT_HEADERS: [&str; 10] = [
    "QoS 1, P×S",
    "TCP deliveries/s",
    "TLS deliveries/s",
    "TLS / TCP",
    "TCP p50 / p99 ms",
    "TLS p50 / p99 ms",
    "cpu engine / host TCP",
    "cpu engine / host TLS",
    "rounds TCP / TLS",
    "TLS rounds, deliveries/s",
];

fn throughput_rows(shapes: &[ShapeResult], ratios: &Ratios) -> Vec<Vec<String>> {
    let rate = |v: Option<f64>| v.map_or("-".into(), thousands);
    let lat = |rows: &[PumpRow]| {
        let p50 = median(rows.iter().map(|r| r.result.latency.p50_ms));
        let p99 = median(rows.iter().map(|r| r.result.latency.p99_ms));
        match (p50, p99) {
            (Some(a), Some(b)) => format!("{} / {}", ms(a), ms(b)),
            _ => "-".into(),
        }
    };
    let cpu = |rows: &[PumpRow]| {
        let of = |f: fn(&PumpRow) -> Option<f64>| median(rows.iter().filter_map(f));
        match (of(|r| r.engine_cpu_cores), of(|r| r.host_cpu_cores)) {
            (Some(e), Some(h)) => format!("{e:.2} / {h:.2}"),
            _ => "-".into(),
        }
    };
    shapes
        .iter()
        .zip(&ratios.throughput)
        .map(|(s, r)| {
            vec![
                s.shape.clone(),
                rate(r.tcp_rate),
                rate(r.tls_rate),
                r.tls_vs_tcp.map_or("-".into(), |x| format!("**{x:.2}×**")),
                lat(&s.tcp),
                lat(&s.tls),
                cpu(&s.tcp),
                cpu(&s.tls),
                format!("{} / {}", s.tcp.len(), s.tls.len()),
                s.tls.iter().map(|r| thousands(r.result.delivery_rate)).collect::<Vec<_>>().join(", "),
            ]
        })
        .collect()
}

fn ratio_lines(r: &Ratios) -> Vec<String> {
    let x = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}×"));
    let mut lines = vec![
        format!("connect rate TLS / TCP: {}", x(r.connect_rate_tls_vs_tcp)),
        format!("connect time (p50, to CONNACK) TLS / TCP: {}", x(r.connect_p50_tls_vs_tcp)),
        format!("engine memory per held connection TLS / TCP: {}", x(r.kb_per_connection_tls_vs_tcp)),
        format!("extra client during the stall / TLS fleet p50: {}", x(r.probe_vs_fleet_p50)),
    ];
    lines.extend(r.throughput.iter().map(|s| format!("QoS 1 {} deliveries/s TLS / TCP: {}", s.shape, x(s.tls_vs_tcp))));
    lines
}

fn stall_lines(report: &TlsReport) -> Vec<String> {
    let mut lines = Vec::new();
    for h in &report.held {
        if let Some(s) = &h.stalls {
            lines.push(format!(
                "{} sockets sent 21 bytes of a ClientHello and stalled; {} were still open when the fleet had \
                 opened; the engine closed {} and reset {} of them, {}–{} s after their bytes (deadline {} ms), \
                 sent {} bytes on them; {} still open after the deadline + 10 s",
                s.opened,
                h.stalled_open_after_fleet.unwrap_or(0),
                s.closed_by_engine,
                s.reset_by_engine,
                s.closed_after_min_s.map_or("-".into(), |v| format!("{v:.2}")),
                s.closed_after_max_s.map_or("-".into(), |v| format!("{v:.2}")),
                report.settings.connect_timeout_ms,
                s.bytes_from_engine,
                s.still_open
            ));
        }
        for (i, p) in h.probes.iter().enumerate() {
            let when = if h.stalls.is_some() {
                format!("{:.2} s into the stall ({} stalled open)", p.since_stall_s, p.stalled_open)
            } else {
                "with the fleet held (no stalled sockets)".to_string()
            };
            lines.push(format!(
                "extra client {} over {}, {when}: {}",
                i + 1,
                h.transport.name(),
                match (&p.connect_ms, &p.error) {
                    (Some(v), _) => format!(
                        "CONNACK after {} ms (fleet p50 {} ms){}",
                        ms(*v),
                        ms(h.connect.p50_ms),
                        p.negotiated.as_ref().map(|n| format!(", {n}")).unwrap_or_default()
                    ),
                    (None, Some(e)) => format!("failed: {e}"),
                    (None, None) => "no result".into(),
                }
            ));
        }
    }
    lines
}

pub(super) fn text(r: &TlsReport) -> String {
    let mut out = text_table(&HELD_HEADERS, &held_rows(&r.held, r.settings.connections));
    out += "\n";
    out += &text_table(&THROUGHPUT_HEADERS, &throughput_rows(&r.throughput, &r.ratios)).replace("**", "");
    for line in ratio_lines(&r.ratios).iter().chain(&stall_lines(r)) {
        out += &format!("{line}\n");
    }
    for c in &r.checks {
        out += &format!("{} {}: {}\n", if c.passed { "ok  " } else { "FAIL" }, c.name, c.detail);
    }
    out
}

pub(super) fn markdown(r: &TlsReport) -> String {
    let s = &r.settings;
    let escape = |t: &str| t.replace('|', "\\|");
    let checks: Vec<String> = r
        .checks
        .iter()
        .map(|c| format!("{} {}: {}", if c.passed { "**passed**" } else { "**FAILED**" }, c.name, escape(&c.detail)))
        .collect();
    let engine = [
        format!("engine: {}, io backend {}", r.engine.version, r.engine.io),
        format!(
            "commands (held TLS, held TCP, throughput): {}",
            r.engine.commands.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
        ),
        format!("PKI: {}", r.engine.pki_commands.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")),
        format!(
            "config overrides: {}",
            r.engine.config_overrides.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
        ),
    ];
    format!(
        "# MQTT over TLS: {} connections held, {} stalled handshakes, QoS 1 TLS vs TCP\n\n{}- held: {} connections \
         per transport, {} handshakes at once, {} stalled sockets, {} extra clients, client certificates: {}, \
         handshake deadline {} ms, held {} s after memory settled\n- throughput: shapes {}, {} messages of {} B \
         per row, in-flight {} per publisher, lead {}, rounds: {}\n- open files: soft {} / hard {}\n\n\
         ## Held connections\n\n{}\n## Stalled handshakes\n\n{}\n## QoS 1 throughput, TLS vs TCP\n\n{}\n\
         ## Ratios\n\n{}\n## Checks\n\n{}\n## Engine\n\n{}\n## Notes\n\n{}\n## Method\n\n{}\n",
        thousands(s.connections as f64),
        s.stalled,
        r.provenance.markdown(),
        thousands(s.connections as f64),
        s.concurrency,
        s.stalled,
        s.probes,
        if s.client_cert { "presented (require_certificate, CN as username)" } else { "none" },
        s.connect_timeout_ms,
        s.hold_s,
        s.shapes.join(", "),
        thousands(s.messages_per_row as f64),
        s.payload_bytes,
        s.inflight,
        s.lead,
        s.rounds,
        r.open_files.soft,
        r.open_files.hard,
        markdown_table(&HELD_HEADERS, &held_rows(&r.held, s.connections), true),
        bullet_list(&stall_lines(r)),
        markdown_table(&THROUGHPUT_HEADERS, &throughput_rows(&r.throughput, &r.ratios), true),
        bullet_list(&ratio_lines(&r.ratios)),
        bullet_list(&checks),
        bullet_list(&engine),
        bullet_list(&r.notes.iter().map(|n| escape(n)).collect::<Vec<_>>()),
        r.method,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median([f64::NAN, 5.0]), Some(5.0));
        assert_eq!(median(std::iter::empty()), None);
    }

    #[test]
    fn ratios_need_both_sides() {
        assert_eq!(ratio(Some(50.0), Some(100.0)), Some(0.5));
        assert_eq!(ratio(Some(50.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
    }
}
