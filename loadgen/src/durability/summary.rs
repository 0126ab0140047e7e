//! The `durability` report: medians over the rounds, the ratios between the targets,
//! the checks (nothing acknowledged lost, everything restored), text and markdown.

use serde::Serialize;

use super::restart::{Restart, Stop, TargetRestarts};
use super::targets::Target;
use super::throughput::{Case, Row};
use super::{DurabilityOptions, DurabilityReport, RestartSize};
use crate::report::{markdown_table, ms, text_table, thousands};
use crate::stats::median;
use crate::throughput::bullet_list;

pub const METHOD: &str = "\
Four brokers started by loadgen on free loopback ports and kept running side by side for the \
whole throughput phase: the engine (`alicia serve`, release build) three times from the same \
config (the checkout's, voice off, every limit the same) with `[storage]` unset, `sync = \"batch\"` \
(sync_interval_ms 200) and `sync = \"always\"`, each store in its own fresh directory; and \
mosquitto with `persistence true`, `autosave_interval 60` (the seeds' settings) and its own \
directory. Both brokers get the same per-client queue limit (max_queued_messages) and in-flight \
window (100). Load: P publishers x S subscribers, MQTT 3.1.1 over TCP, QoS 1 both ways, 100 B \
payloads, publisher p publishes M / P messages to bench/durability/<tag>/<p>; every subscriber is a \
persistent session (clean session off) subscribed at QoS 1 to bench/durability/<tag>/+. `online`: \
the subscribers are connected; closed loop (each publisher at most 100 PUBACKs behind, all of \
them at most `lead` messages ahead of the slowest subscriber). `offline`: the subscribers \
subscribe and DISCONNECT, the publishers publish everything (only the in-flight window bounds \
them), so every delivery is queued by the broker (in the engine's store where it has one), then \
the subscribers reconnect and drain. msg/s = acknowledged publishes / (release of the publishers \
→ last PUBACK); deliveries/s online = deliveries / (release → last delivery), offline = \
deliveries / (reconnect → last delivery). PUBACK latency = PUBLISH written → its PUBACK read, \
every message (HDR histogram, µs); delivery latency from the send time in the first 16 payload \
bytes. Every row counts every delivery against the publishers' sequence numbers: an \
acknowledged message not delivered is a loss and fails the run. After one unrecorded warm-up \
row per broker, R rounds of every shape and case, the order of the four brokers rotated every \
round; tables give the median over the rounds, ratios are of medians. Restart: a fresh engine \
(sync = batch) and a fresh mosquitto get R retained messages (100 B, distinct topics, QoS 1, \
every PUBACK awaited), N persistent sessions each subscribed at QoS 1 to its own topic, and Q \
QoS 1 messages queued to each; SIGTERM (time to exit), start on the same data: ready = spawn → \
the engine's `alicia ready` line / mosquitto's first CONNACK (polled every 25 ms); first retained = \
ready + a fresh client's connect, subscribe and retained message; then a subscriber to all \
retained topics must get every one back with its payload, and every session must reconnect with \
`session present` and get its Q messages. Then Q more per session, `kill -9` right after the last \
PUBACK, start again, same measurements and counts. Payloads carry a generation, so a message \
restored from an older save is counted as stale, not as delivered.";

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub shapes: Vec<String>,
    pub messages_per_row: u64,
    pub payload_bytes: usize,
    pub inflight: u64,
    pub lead: u64,
    pub rounds: usize,
    pub restart: RestartSize,
}

impl Settings {
    pub fn of(o: &DurabilityOptions) -> Settings {
        Settings {
            shapes: o.shapes.iter().map(|s| format!("{}x{}", s.publishers, s.subscribers)).collect(),
            messages_per_row: o.messages,
            payload_bytes: o.payload,
            inflight: o.inflight,
            lead: o.lead,
            rounds: o.rounds,
            restart: o.restart.clone(),
        }
    }
}

/// One shape, case and target over the rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Median {
    pub shape: String,
    pub case: Case,
    pub target: Target,
    pub rounds: usize,
    pub publish_rate: Option<f64>,
    pub delivery_rate: Option<f64>,
    pub puback_p50_ms: Option<f64>,
    pub puback_p99_ms: Option<f64>,
    pub delivery_p99_ms: Option<f64>,
    pub broker_cpu_cores: Option<f64>,
}

pub fn medians(rows: &[Row]) -> Vec<Median> {
    let mut out: Vec<Median> = Vec::new();
    for r in rows {
        if out.iter().any(|m| m.shape == r.shape && m.case == r.case && m.target == r.target) {
            continue;
        }
        let same: Vec<&Row> =
            rows.iter().filter(|x| x.shape == r.shape && x.case == r.case && x.target == r.target).collect();
        let of = |f: fn(&Row) -> f64| median(same.iter().map(|x| f(x)));
        out.push(Median {
            shape: r.shape.clone(),
            case: r.case,
            target: r.target,
            rounds: same.len(),
            publish_rate: of(|x| x.result.publish_rate),
            delivery_rate: of(|x| x.result.delivery_rate),
            puback_p50_ms: of(|x| x.result.puback_latency.p50_ms),
            puback_p99_ms: of(|x| x.result.puback_latency.p99_ms),
            delivery_p99_ms: (r.case == Case::Online).then(|| of(|x| x.result.latency.p99_ms)).flatten(),
            broker_cpu_cores: median(same.iter().filter_map(|x| x.broker_cpu_cores)),
        });
    }
    out
}

/// msg/s (acknowledged publishes) of one target over another, for one shape and case.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub shape: String,
    pub case: Case,
    pub batch_vs_off: Option<f64>,
    pub always_vs_off: Option<f64>,
    pub always_vs_batch: Option<f64>,
    pub off_vs_mosquitto: Option<f64>,
    pub batch_vs_mosquitto: Option<f64>,
    pub always_vs_mosquitto: Option<f64>,
}

pub fn ratios(medians: &[Median]) -> Vec<Ratio> {
    let mut out: Vec<Ratio> = Vec::new();
    for m in medians {
        if out.iter().any(|r| r.shape == m.shape && r.case == m.case) {
            continue;
        }
        let rate =
            |t: Target| medians.iter().find(|x| x.shape == m.shape && x.case == m.case && x.target == t)?.publish_rate;
        let ratio = |a: Target, b: Target| Some(rate(a)? / rate(b)?).filter(|v| v.is_finite());
        use Target::*;
        out.push(Ratio {
            shape: m.shape.clone(),
            case: m.case,
            batch_vs_off: ratio(EngineBatch, EngineOff),
            always_vs_off: ratio(EngineAlways, EngineOff),
            always_vs_batch: ratio(EngineAlways, EngineBatch),
            off_vs_mosquitto: ratio(EngineOff, MosquittoPersistence),
            batch_vs_mosquitto: ratio(EngineBatch, MosquittoPersistence),
            always_vs_mosquitto: ratio(EngineAlways, MosquittoPersistence),
        });
    }
    out
}

/// Something the run must show; a failed check is a problem (exit 1).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    /// A loss the broker promises (mosquitto after kill -9): reported, not failed.
    pub promised_loss: bool,
}

impl Check {
    fn verdict(&self) -> &'static str {
        match (self.passed, self.promised_loss) {
            (true, _) => "passed",
            (false, true) => "lost, as promised",
            (false, false) => "FAILED",
        }
    }
}

/// The checks, and the problems that fail the run. mosquitto after kill -9 is only
/// reported: losing up to its autosave interval is what it promises.
pub fn checks(rows: &[Row], restarts: &[TargetRestarts], notes: &[String]) -> (Vec<Check>, Vec<String>) {
    let mut checks = Vec::new();
    for target in Target::ALL {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.target == target).collect();
        let lossy: Vec<String> = mine
            .iter()
            .filter(|r| !r.lossless())
            .map(|r| {
                format!(
                    "round {} {} {}: {} of {} acked, {} of {} delivered{}",
                    r.round + 1,
                    r.shape,
                    r.case.name(),
                    r.result.acked,
                    r.result.published,
                    r.result.delivered,
                    r.result.expected_deliveries,
                    r.result.errors.first().map(|e| format!(" ({e})")).unwrap_or_default()
                )
            })
            .collect();
        checks.push(Check {
            name: format!("{}: every acknowledged QoS 1 message delivered", target.name()),
            passed: !mine.is_empty() && lossy.is_empty(),
            promised_loss: false,
            detail: if mine.is_empty() {
                "no rows ran".into()
            } else if lossy.is_empty() {
                format!("{} of {} rows lossless", mine.len(), mine.len())
            } else {
                lossy.join("; ")
            },
        });
    }
    for t in restarts {
        if let Some(e) = &t.fill_error {
            let name = format!("{}: restart fill", t.target.name());
            checks.push(Check { name, passed: false, detail: e.clone(), promised_loss: false });
        }
        for r in &t.restarts {
            checks.push(Check {
                name: format!("{}: everything back after {}", t.target.name(), r.after.name()),
                passed: r.complete(),
                detail: restored(r),
                promised_loss: t.target == Target::MosquittoPersistence && r.after == Stop::Sigkill,
            });
        }
    }
    let mut problems: Vec<String> =
        checks.iter().filter(|c| !c.passed && !c.promised_loss).map(|c| format!("{}: {}", c.name, c.detail)).collect();
    problems.extend(notes.iter().filter(|n| n.starts_with("restart of ")).cloned());
    (checks, problems)
}

fn restored(r: &Restart) -> String {
    format!(
        "retained {} of {}, sessions present {} of {}, queued delivered {} of {} ({} stale from an older save){}{}",
        thousands(r.retained.found as f64),
        thousands(r.retained.expected as f64),
        thousands(r.sessions.present as f64),
        thousands(r.sessions.sessions as f64),
        thousands(r.sessions.queued_delivered as f64),
        thousands(r.sessions.queued_expected as f64),
        thousands(r.sessions.stale_delivered as f64),
        r.error.as_ref().map(|e| format!("; {e}")).unwrap_or_default(),
        r.sessions.errors.first().map(|e| format!("; {e}")).unwrap_or_default(),
    )
}

/// The store line's fields but its (temporary) directory.
fn without_dir(fields: &str) -> String {
    fields.split_whitespace().filter(|f| !f.starts_with("dir=")).collect::<Vec<_>>().join(" ")
}

/// Warnings and errors the brokers logged.
pub fn log_findings(target: Target, log: &str) -> Vec<String> {
    let mut notes = crate::engine_process::log_findings(log);
    if target == Target::MosquittoPersistence {
        let drops: Vec<&str> = log.lines().filter(|l| l.contains("dropped") || l.contains("rror")).collect();
        notes.extend(drops.first().map(|l| format!("{} lines like `{}`", drops.len(), l.trim())));
    }
    notes.into_iter().map(|n| format!("{}: {n}", target.name())).collect()
}

const THROUGHPUT_HEADERS: [&str; 9] = [
    "P×S, case",
    "broker",
    "msg/s (acked)",
    "deliveries/s",
    "PUBACK p50 ms",
    "PUBACK p99 ms",
    "delivery p99 ms",
    "cpu broker",
    "rounds",
];

fn throughput_cells(ms_: &[Median]) -> Vec<Vec<String>> {
    let num = |v: Option<f64>| v.map_or("-".into(), thousands);
    let lat = |v: Option<f64>| v.map_or("-".into(), ms);
    ms_.iter()
        .map(|m| {
            vec![
                format!("{} {}", m.shape, m.case.name()),
                m.target.name().to_string(),
                num(m.publish_rate),
                num(m.delivery_rate),
                lat(m.puback_p50_ms),
                lat(m.puback_p99_ms),
                lat(m.delivery_p99_ms),
                m.broker_cpu_cores.map_or("-".into(), |c| format!("{c:.2}")),
                m.rounds.to_string(),
            ]
        })
        .collect()
}

const RATIO_HEADERS: [&str; 7] = [
    "P×S, case",
    "batch / off",
    "always / off",
    "always / batch",
    "off / mosquitto",
    "batch / mosquitto",
    "always / mosquitto",
];

fn ratio_cells(ratios: &[Ratio]) -> Vec<Vec<String>> {
    let x = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}×"));
    ratios
        .iter()
        .map(|r| {
            vec![
                format!("{} {}", r.shape, r.case.name()),
                x(r.batch_vs_off),
                x(r.always_vs_off),
                x(r.always_vs_batch),
                x(r.off_vs_mosquitto),
                x(r.batch_vs_mosquitto),
                x(r.always_vs_mosquitto),
            ]
        })
        .collect()
}

const RESTART_HEADERS: [&str; 9] = [
    "broker",
    "after",
    "stop s",
    "ready s",
    "first retained s",
    "all retained back s",
    "sessions drained s",
    "restored",
    "engine's own count",
];

fn restart_cells(restarts: &[TargetRestarts]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for t in restarts {
        for r in &t.restarts {
            rows.push(vec![
                t.target.name().to_string(),
                r.after.name().to_string(),
                format!("{:.3}", r.stop_s),
                format!("{:.3}", r.ready_s),
                r.first_retained_s.map_or("-".into(), |s| format!("{s:.3}")),
                format!("{:.2}", r.retained.seconds),
                format!("{:.2}", r.sessions.seconds),
                restored(r).replace('|', "\\|"),
                r.store_opened.as_deref().map_or("-".into(), without_dir),
            ]);
        }
    }
    rows
}

pub(super) fn text(r: &DurabilityReport) -> String {
    let mut out = text_table(&THROUGHPUT_HEADERS, &throughput_cells(&r.throughput));
    out += "\n";
    out += &text_table(&RATIO_HEADERS, &ratio_cells(&r.ratios));
    out += "\n";
    out += &text_table(&RESTART_HEADERS, &restart_cells(&r.restarts));
    for c in &r.checks {
        out += &format!("{} {}: {}\n", c.verdict(), c.name, c.detail);
    }
    out
}

pub(super) fn markdown(r: &DurabilityReport) -> String {
    let s = &r.settings;
    let size = &s.restart;
    let promises: Vec<String> = r.targets.iter().map(|t| format!("**{}**: {}", t.name, t.promise)).collect();
    let brokers: Vec<String> = r
        .targets
        .iter()
        .map(|t| {
            let overrides = if t.config_overrides.is_empty() {
                String::new()
            } else {
                format!("; config: {}", t.config_overrides.join(", "))
            };
            format!("{}: {} — `{}`{overrides}", t.name, t.version, t.command)
        })
        .collect();
    let fills: Vec<String> = r
        .restarts
        .iter()
        .map(|t| {
            let db = t.mosquitto_db_bytes.map(|b| format!(", mosquitto.db {:.1} MB after SIGTERM", b as f64 / 1e6));
            format!("{}: filled in {:.1} s{}", t.target.name(), t.fill_s, db.unwrap_or_default())
        })
        .collect();
    let checks: Vec<String> =
        r.checks.iter().map(|c| format!("**{}** {}: {}", c.verdict(), c.name, c.detail)).collect();
    let restart_word = |stop: Stop| stop.name();
    format!(
        "# Durability: QoS 1 with the store off / batch / always vs mosquitto with persistence; restart\n\n{}\
         - throughput: shapes {}, {} messages of {} B per row, in-flight {} per publisher, lead {}, rounds: {}\n\
         - restart: {} retained messages, {} persistent sessions with {} queued messages each\n\n\
         ## What each promises for an acknowledged publish\n\n{}\n\
         ## QoS 1 throughput (median of the rounds)\n\n\
         `online`: persistent subscribers connected; `offline`: persistent subscribers away, every delivery queued, \
         deliveries/s is their drain after reconnecting. msg/s = acknowledged publishes per second.\n\n{}\n\
         ## Ratios (msg/s, medians)\n\n{}\n\
         ## Restart ({} retained, {} sessions × {} queued)\n\n\
         Times from the spawn; `{}` then `{}` on the same data.\n\n{}\n{}\n\
         ## Checks\n\n{}\n## Notes\n\n{}\n## Brokers\n\n{}\n## Method\n\n{}\n",
        r.provenance.markdown(),
        s.shapes.join(", "),
        thousands(s.messages_per_row as f64),
        s.payload_bytes,
        s.inflight,
        s.lead,
        s.rounds,
        thousands(size.retained as f64),
        thousands(size.sessions as f64),
        size.queued_per_session,
        bullet_list(&promises),
        markdown_table(&THROUGHPUT_HEADERS, &throughput_cells(&r.throughput), true),
        markdown_table(&RATIO_HEADERS, &ratio_cells(&r.ratios), true),
        thousands(size.retained as f64),
        thousands(size.sessions as f64),
        size.queued_per_session,
        restart_word(Stop::Sigterm),
        restart_word(Stop::Sigkill),
        markdown_table(&RESTART_HEADERS, &restart_cells(&r.restarts), false),
        bullet_list(&fills),
        bullet_list(&checks),
        bullet_list(&r.notes),
        bullet_list(&brokers),
        r.method,
    )
}
