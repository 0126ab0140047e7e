//! What one `large` run found, the gates, and the report.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::transfer::{Published, Receipt};
use super::{LargeOptions, Variant, DEFAULT_SIZE, ENGINE_PACKET_LIMIT};
use crate::brokers::BrokerKind;
use crate::memory::mb;
use crate::packet::Version;
use crate::report::{self, ms, thousands, Provenance};
use crate::throughput::bullet_list;
use crate::Verdict;

#[derive(Debug, Clone, Serialize)]
pub struct LargeRun {
    pub broker: &'static str,
    pub variant: Variant,
    /// ran, skipped or failed.
    pub status: &'static str,
    pub notes: Vec<String>,
    pub broker_version: String,
    pub payload_bytes: usize,
    pub qos: u8,
    pub subscriber_protocols: Vec<Version>,
    pub published: Option<Published>,
    pub receipts: Vec<Receipt>,
    /// Subscribers that got the whole payload, byte for byte.
    pub verified: usize,
    pub slowest_delivery_ms: Option<f64>,
    pub rss_before_kb: Option<u64>,
    /// VmHWM at the end: the broker's peak over its whole life (a fresh process per run).
    pub peak_hwm_kb: Option<u64>,
    /// Highest VmRSS sampled every 20 ms during the run.
    pub peak_sampled_kb: Option<u64>,
    /// VmRSS at the end of the stall, before the subscribers read again.
    pub stalled_rss_kb: Option<u64>,
    pub rss_after_kb: Option<u64>,
    /// Peak RSS / payload.
    pub peak_ratio: Option<f64>,
    /// (peak - RSS before) / payload: what the message itself cost.
    pub growth_ratio: Option<f64>,
    /// Set if the broker process ended during the run.
    pub broker_exit: Option<String>,
    /// A fresh client's round trip afterwards.
    pub ordinary_after: Option<String>,
    pub log_tail: Option<String>,
}

pub struct Measured<'a> {
    pub kind: BrokerKind,
    pub variant: Variant,
    pub opts: &'a LargeOptions,
    pub command: String,
    pub published: Published,
    pub receipts: Vec<Receipt>,
    pub rss_before_kb: u64,
    pub peak_hwm_kb: Option<u64>,
    pub peak_sampled_kb: u64,
    pub stalled_rss_kb: Option<u64>,
    pub rss_after_kb: Option<u64>,
    pub exit: Option<String>,
    pub ordinary_after: Result<String, String>,
    pub log_tail: String,
}

fn protocols(opts: &LargeOptions) -> Vec<Version> {
    (0..opts.subscribers).map(|i| opts.protocols[i % opts.protocols.len()]).collect()
}

impl LargeRun {
    pub fn not_run(kind: BrokerKind, variant: Variant, opts: &LargeOptions, status: &'static str, why: String) -> Self {
        LargeRun {
            broker: kind.name(),
            variant,
            status,
            notes: vec![why],
            broker_version: opts.launch.version(kind),
            payload_bytes: opts.size,
            qos: opts.qos,
            subscriber_protocols: protocols(opts),
            published: None,
            receipts: vec![],
            verified: 0,
            slowest_delivery_ms: None,
            rss_before_kb: None,
            peak_hwm_kb: None,
            peak_sampled_kb: None,
            stalled_rss_kb: None,
            rss_after_kb: None,
            peak_ratio: None,
            growth_ratio: None,
            broker_exit: None,
            ordinary_after: None,
            log_tail: None,
        }
    }

    pub fn measured(m: Measured<'_>) -> Self {
        let size = m.opts.size as f64;
        let peak_kb = m.peak_hwm_kb.unwrap_or(m.peak_sampled_kb).max(m.peak_sampled_kb);
        let verified = m.receipts.iter().filter(|r| r.verified).count();
        let mut notes = Vec::new();
        let digest = m.published.digest.clone();
        for r in &m.receipts {
            if r.complete && r.digest.as_deref() != Some(digest.as_str()) {
                notes.push(format!(
                    "subscriber {}: digest {:?} differs from the publisher's {digest}",
                    r.subscriber, r.digest
                ));
            }
        }
        let ordinary_after = Some(match m.ordinary_after {
            Ok(s) => s,
            Err(e) => format!("FAILED: {e}"),
        });
        let all_delivered = verified == m.receipts.len();
        LargeRun {
            broker: m.kind.name(),
            variant: m.variant,
            status: "ran",
            notes,
            broker_version: m.command,
            payload_bytes: m.opts.size,
            qos: m.opts.qos,
            subscriber_protocols: protocols(m.opts),
            slowest_delivery_ms: all_delivered
                .then(|| m.receipts.iter().filter_map(|r| r.delivered_ms).fold(0.0, f64::max)),
            verified,
            published: Some(m.published),
            receipts: m.receipts,
            rss_before_kb: Some(m.rss_before_kb),
            peak_hwm_kb: m.peak_hwm_kb,
            peak_sampled_kb: Some(m.peak_sampled_kb),
            stalled_rss_kb: m.stalled_rss_kb,
            rss_after_kb: m.rss_after_kb,
            peak_ratio: (size > 0.0).then(|| peak_kb as f64 * 1024.0 / size),
            growth_ratio: (size > 0.0).then(|| peak_kb.saturating_sub(m.rss_before_kb) as f64 * 1024.0 / size),
            broker_exit: m.exit,
            ordinary_after,
            log_tail: (!all_delivered).then_some(m.log_tail),
        }
    }

    fn peak_kb(&self) -> Option<u64> {
        match (self.peak_hwm_kb, self.peak_sampled_kb) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

pub fn print_run(r: &LargeRun) {
    print!("{}", report::text_table(&HEADERS, &[row(r)]));
    for rc in &r.receipts {
        println!("  subscriber {} (mqtt {}): {}", rc.subscriber, rc.version.name(), receipt_text(rc));
    }
}

fn receipt_text(r: &Receipt) -> String {
    match (&r.ending, r.verified) {
        (_, true) => {
            format!("verified in {} ms (first byte at {} ms)", opt_ms(r.delivered_ms), opt_ms(r.first_byte_ms))
        }
        (Some(e), false) => format!("{e} ({} bytes)", thousands(r.received_bytes as f64)),
        (None, false) => {
            format!("{} bytes, first mismatch at {:?}", thousands(r.received_bytes as f64), r.first_mismatch)
        }
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map(ms).unwrap_or_else(|| "-".into())
}

const HEADERS: [&str; 10] = [
    "broker",
    "variant",
    "delivered",
    "publisher",
    "slowest ms",
    "RSS before MB",
    "peak RSS MB",
    "peak / payload",
    "RSS end of stall MB",
    "bus after",
];

fn row(r: &LargeRun) -> Vec<String> {
    let dash = || "-".to_string();
    let mbs = |v: Option<u64>| v.map(|kb| format!("{:.0}", mb(kb))).unwrap_or_else(dash);
    if r.status != "ran" {
        let mut row = vec![r.broker.to_string(), r.variant.name().into(), r.status.into()];
        row.resize(HEADERS.len(), dash());
        return row;
    }
    vec![
        r.broker.to_string(),
        r.variant.name().into(),
        format!("{}/{}", r.verified, r.receipts.len()),
        r.published.as_ref().map(|p| p.answer.clone()).unwrap_or_else(dash),
        opt_ms(r.slowest_delivery_ms),
        mbs(r.rss_before_kb),
        mbs(r.peak_kb()),
        r.peak_ratio.map(|x| format!("{x:.2}×")).unwrap_or_else(dash),
        mbs(r.stalled_rss_kb),
        match (&r.broker_exit, &r.ordinary_after) {
            (Some(exit), _) => format!("broker exited: {exit}"),
            (None, Some(o)) => o.clone(),
            (None, None) => dash(),
        },
    ]
}

#[derive(Serialize)]
struct LargeReport<'a> {
    kind: &'static str,
    #[serde(flatten)]
    provenance: Provenance,
    method: String,
    payload_bytes: usize,
    subscribers: usize,
    qos: u8,
    stall_for_s: f64,
    max_peak_rss_ratio: Option<f64>,
    gate_broker: &'static str,
    runs: &'a [LargeRun],
    gate_failures: &'a [String],
}

pub const METHOD: &str = "\
For each broker and variant a fresh broker process (started as `compare` starts it, with the \
seeds' 256 MiB message limit). K subscribers (MQTT 3.1.1 and 5 in turn) connect and subscribe to \
one topic; one publisher then streams a single PUBLISH of S payload bytes. The payload is a \
pattern (splitmix64 of a per-run seed and the 8-byte word index) that every subscriber \
regenerates as the bytes arrive, so each delivery is checked byte for byte (length, first \
mismatch) and by a 64-bit digest compared with the publisher's, without either side ever holding \
the message. Times run from the publisher's first byte to a subscriber's last byte. Broker memory: \
VmRSS settled before the publish, VmRSS sampled every 20 ms during the run, and VmHWM (the \
process's peak resident set since it started) at the end; peak / payload uses the higher of the \
two peaks and includes the broker's baseline. Variant `stalled`: the subscribers read nothing for \
the stall time after the publish starts (their sockets fill), then read again; the report says \
what each got and how its connection ended. After every run a fresh MQTT 3.1.1 client must \
connect, subscribe and receive its own QoS 1 message within 5 s.";

pub fn finish(
    opts: &LargeOptions,
    provenance: Provenance,
    runs: Vec<LargeRun>,
    problems: Vec<String>,
) -> Result<Verdict> {
    let gate_failures = check_gates(opts, &runs);
    let mut method = METHOD.to_string();
    if opts.size == DEFAULT_SIZE {
        let _ = write!(
            method,
            " S defaults to 256 MiB less 1 KiB ({} bytes): the engine's message_size_limit ({} bytes) counts the \
             whole packet, so the payload leaves room for the fixed header, topic, packet id and properties.",
            thousands(DEFAULT_SIZE as f64),
            thousands(ENGINE_PACKET_LIMIT as f64)
        );
    }
    let report = LargeReport {
        kind: "large",
        provenance,
        method,
        payload_bytes: opts.size,
        subscribers: opts.subscribers,
        qos: opts.qos,
        stall_for_s: opts.stall_for.as_secs_f64(),
        max_peak_rss_ratio: opts.max_peak_rss_ratio,
        gate_broker: opts.gate_broker.name(),
        runs: &runs,
        gate_failures: &gate_failures,
    };
    println!("\n{}", report::text_table(&HEADERS, &runs.iter().map(row).collect::<Vec<_>>()));
    let (json, md) = report::write(&opts.out, "large", &report, &markdown(&report))?;
    println!("wrote {} and {}", json.display(), md.display());
    Ok(Verdict { gate_failures, problems })
}

/// On the gate broker: delivery complete in normal runs, the broker alive in every run,
/// and the peak memory ratio in every run when set.
fn check_gates(opts: &LargeOptions, runs: &[LargeRun]) -> Vec<String> {
    let name = opts.gate_broker.name();
    let mine: Vec<&LargeRun> = runs.iter().filter(|r| r.broker == name && r.status == "ran").collect();
    if mine.is_empty() {
        return vec![format!("{name} did not run: nothing to check the gates against")];
    }
    let mut failures = Vec::new();
    for r in mine {
        let label = format!("{name} {}", r.variant.name());
        if r.variant == Variant::Normal && r.verified < r.receipts.len() {
            failures.push(format!(
                "{label}: {} of {} subscribers got the message intact",
                r.verified,
                r.receipts.len()
            ));
        }
        if let Some(exit) = &r.broker_exit {
            failures.push(format!("{label}: the broker exited ({exit})"));
        }
        if let (Some(max), Some(ratio)) = (opts.max_peak_rss_ratio, r.peak_ratio) {
            if ratio > max {
                failures.push(format!("{label}: peak RSS {ratio:.2}× the payload, above --max-peak-rss-ratio {max}"));
            }
        }
    }
    failures
}

fn markdown(r: &LargeReport<'_>) -> String {
    let mut details = String::new();
    for run in r.runs.iter().filter(|x| x.status == "ran") {
        let _ = writeln!(details, "### {} {}\n", run.broker, run.variant.name());
        if let Some(p) = &run.published {
            let _ = writeln!(
                details,
                "- publisher (mqtt {}): {}; wrote {} bytes in {} ms, acknowledged at {} ms",
                p.version.name(),
                p.answer,
                thousands(p.written_bytes as f64),
                opt_ms(p.write_ms),
                opt_ms(p.acked_ms)
            );
        }
        for rc in &run.receipts {
            let _ = writeln!(
                details,
                "- subscriber {} (mqtt {}, qos {}): {}",
                rc.subscriber,
                rc.version.name(),
                rc.qos,
                receipt_text(rc)
            );
        }
        for n in run.notes.iter().chain(run.log_tail.iter()) {
            let _ = writeln!(details, "- note: {}", n.replace('|', "\\|"));
        }
        details.push('\n');
    }
    let not_run: Vec<String> = r
        .runs
        .iter()
        .filter(|x| x.status != "ran")
        .map(|x| format!("{} {}: {} ({})", x.broker, x.variant.name(), x.status, x.notes.join("; ")))
        .collect();
    let gates = match (r.max_peak_rss_ratio, r.gate_failures.is_empty()) {
        (_, false) => format!("On {}:\n\n**Missed:**\n\n{}", r.gate_broker, bullet_list(r.gate_failures)),
        (Some(max), true) => {
            format!("On {}: every subscriber served, peak RSS ≤ {max}× the payload: **passed**.\n", r.gate_broker)
        }
        (None, true) => format!("On {}: every subscriber served: **passed** (no memory gate set).\n", r.gate_broker),
    };
    format!(
        "# One large message: {} bytes to {} subscribers\n\n{}- payload {} bytes ({:.1} MiB), qos {}, stall {} s\n\n\
         ## Results\n\n{}\n## Per run\n\n{}## Gates\n\n{}\n## Not run\n\n{}\n## Method\n\n{}\n",
        thousands(r.payload_bytes as f64),
        r.subscribers,
        r.provenance.markdown(),
        thousands(r.payload_bytes as f64),
        r.payload_bytes as f64 / (1 << 20) as f64,
        r.qos,
        r.stall_for_s,
        report::markdown_table(&HEADERS, &r.runs.iter().map(row).collect::<Vec<_>>(), true),
        details,
        gates,
        bullet_list(&not_run),
        r.method,
    )
}
