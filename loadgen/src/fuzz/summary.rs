//! The fuzz report: JSON for tools, markdown for people, and on a failure the cases
//! that ran since the last good check (the suspects) with their bytes in hex.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::campaign::{FamilyStats, Recorded};
use super::case::Family;
use super::vitals::Check;
use crate::report::{markdown_table, thousands, Provenance};

pub const METHOD: &str = "\
Cases are generated from (seed, case index) alone (proptest's ChaCha TestRng, one stream per case; \
text from proptest's any::<String>()), so any case is reproduced with --seed and --show-case. \
Families: random or mutated bytes instead of a CONNECT; a valid CONNECT then random bytes; sequences \
of structurally valid but odd MQTT 3.1.1 and 5 packets (every packet type a client may send and some \
it may not, every MQTT 5 property with values at and past their edges, repeated, of the wrong type, \
unknown ids, huge user properties, topic aliases 0/max/over, subscription identifiers in PUBLISH, a \
UTF-8 payload indicator on non-UTF-8 payloads, remaining lengths that lie, strings with U+0000, \
invalid UTF-8 or non-ASCII first characters, wildcards in names, $share filters with odd groups, \
QoS 3, reserved flags, packet ids 0 and repeated, acknowledgements of unknown ids, a second CONNECT, \
AUTH, DISCONNECT changing the session expiry, SUBSCRIBEs of up to 5,000 filters, payloads past the \
1 MiB size limit) with pauses, writes in small pieces and readers that stop; the same sequences \
mutated byte by byte; JSON envelopes on alicia/ request topics (valid, a field missing, of the wrong \
type or odd, truncated, nested up to 100,000 deep, numbers and strings at the edges, not JSON); and \
with the voice plane, MQTT voice audio (odd sites, session ids and formats, frames empty, odd-sized \
and over the limit, starts and stops out of order), the seeds' stt/request with base64 WAVs whose \
headers lie and tts/request with odd texts and sites, and Wyoming events (odd headers, lengths that \
lie, unknown types, audio formats out of range, huge texts, whole transcriptions). Each connection \
ends with a FIN, an RST (SO_LINGER 0) or a half-close, sometimes in the middle of a packet. \
`connections` workers run cases side by side. After every batch (--check-every) the engine must be \
alive, answer GET /healthz with 200, let an ordinary MQTT 3.1.1 client on a fresh connection \
subscribe, publish at QoS 1 and receive its own message, answer a Wyoming describe with info (voice on), keep VmRSS and VmHWM (its peak, so a spike \
between checks counts) under --max-rss-mb, keep its own account of held message bytes \
(alicia_mqtt_queued_bytes) within max_queued_bytes_total + 16 MiB, and (when loadgen started it) log no \
panic. The engine \
loadgen starts runs with message_size_limit 1 MiB, max_queued_bytes 4 MiB per client, \
max_queued_bytes_total 64 MiB, max_retained_bytes 16 MiB and sessions expiring within a minute, so a \
short run reaches its limits and the sessions mutated CONNECTs leave behind do not fill max_sessions.";

#[derive(Debug, Clone, Serialize)]
pub struct MemorySummary {
    pub start_mb: Option<f64>,
    pub peak_rss_mb: Option<f64>,
    pub hwm_mb: Option<f64>,
    pub last_mb: Option<f64>,
    pub max_rss_mb: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FuzzReport {
    pub scenario: &'static str,
    pub method: &'static str,
    pub provenance: Provenance,
    pub engine: String,
    pub voice: bool,
    pub seed: u64,
    pub first_case: u64,
    pub families: Vec<Family>,
    pub connections: usize,
    pub check_every_s: f64,
    pub duration_s: f64,
    pub cases: u64,
    pub cases_per_s: f64,
    pub bytes_sent: u64,
    pub per_family: BTreeMap<Family, FamilyStats>,
    pub memory: MemorySummary,
    pub checks: Vec<Check>,
    /// The engine's refusal and error counters at the end: the limits the run reached.
    pub limits_hit: BTreeMap<String, f64>,
    pub panics: Vec<String>,
    /// Warning and error lines the engine logged, by level, target and message: what
    /// hostile input makes it say, and how often.
    pub log_lines: BTreeMap<String, u64>,
    pub gate_failures: Vec<String>,
    pub engine_log_tail: Option<String>,
    pub suspects: Vec<Recorded>,
    pub reproduce: Option<String>,
    pub notes: Vec<String>,
}

impl FuzzReport {
    pub fn passed(&self) -> bool {
        self.gate_failures.is_empty()
    }
}

fn opt_mb(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1} MB")).unwrap_or_else(|| "-".into())
}

/// The counters worth reading from `/metrics`, one entry per label set.
pub(crate) fn limits_from_metrics(text: &str) -> BTreeMap<String, f64> {
    const NAMES: [&str; 7] = [
        "alicia_mqtt_refusals_total",
        "alicia_mqtt_messages_dropped_total",
        "alicia_envelope_invalid_total",
        "alicia_envelope_discarded_total",
        "alicia_voice_refused_total",
        "alicia_wyoming_refused_total",
        "alicia_wyoming_errors_total",
    ];
    text.lines()
        .filter(|l| NAMES.iter().any(|n| l.strip_prefix(n).is_some_and(|rest| rest.starts_with([' ', '{']))))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .filter(|(_, value)| *value > 0.0)
        .collect()
}

/// One line per case, for a terminal.
pub(crate) fn suspects_text(suspects: &[Recorded], with_hex: bool) -> String {
    let mut out = String::new();
    for s in suspects {
        let state = match s.finished {
            None => "still running",
            Some(true) => "engine closed it",
            Some(false) => "ended by the case",
        };
        let _ = writeln!(out, "{} [{state}]", s.line);
        if with_hex {
            out.push_str(&s.hex);
        }
    }
    out
}

/// About ten checks spread over the run: the engine's memory beside what it says it
/// holds, so growth within its limits can be told from growth outside them.
fn memory_timeline(checks: &[Check]) -> String {
    if checks.is_empty() {
        return String::new();
    }
    let step = checks.len().div_ceil(10).max(1);
    let mut picked: Vec<&Check> = checks.iter().step_by(step).collect();
    if let Some(last) = checks.last() {
        if picked.last().is_none_or(|p| p.at_s != last.at_s) {
            picked.push(last);
        }
    }
    let mb = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    let rows: Vec<Vec<String>> = picked
        .iter()
        .map(|c| {
            let h = c.held.unwrap_or_default();
            vec![
                format!("{:.0}", c.at_s),
                thousands(c.cases as f64),
                mb(c.rss_mb),
                mb(c.hwm_mb),
                format!("{:.1}", h.queued_mb),
                format!("{:.1} ({:.0})", h.retained_mb, h.retained_messages),
                format!("{:.0}", h.sessions),
                format!("{:.0}", h.connections),
            ]
        })
        .collect();
    let headers = ["s", "cases", "RSS MB", "peak MB", "queued MB", "retained MB (msgs)", "sessions", "connections"];
    markdown_table(&headers, &rows, true) + "\n"
}

pub fn markdown(r: &FuzzReport) -> String {
    let mut md = String::from("# Fuzz: hostile and odd input against a live engine\n\n");
    md.push_str(&r.provenance.markdown());
    let families: Vec<&str> = r.families.iter().map(|f| f.name()).collect();
    let _ = writeln!(
        md,
        "- engine: `{}` (voice {})\n- seed {}, cases from {}, families {}, {} connections, a check every {} s\n",
        r.engine,
        if r.voice { "on" } else { "off" },
        r.seed,
        r.first_case,
        families.join(", "),
        r.connections,
        r.check_every_s
    );
    let verdict = if r.passed() { "**Passed**" } else { "**FAILED**" };
    let _ = writeln!(
        md,
        "{verdict}: {} cases in {:.0} s ({:.0} cases/s, {} bytes sent), {} checks.\n",
        thousands(r.cases as f64),
        r.duration_s,
        r.cases_per_s,
        thousands(r.bytes_sent as f64),
        r.checks.len()
    );
    for f in &r.gate_failures {
        let _ = writeln!(md, "- {f}");
    }
    md.push_str("\n## Families\n\n");
    let rows: Vec<Vec<String>> = r
        .per_family
        .iter()
        .map(|(f, s)| {
            let pct =
                |n: u64| if s.cases == 0 { "-".into() } else { format!("{:.0}%", n as f64 * 100.0 / s.cases as f64) };
            vec![
                f.name().to_string(),
                thousands(s.cases as f64),
                thousands(s.bytes_sent as f64),
                thousands(s.bytes_received as f64),
                pct(s.closed_by_engine),
                s.connect_failures.to_string(),
                s.write_stalls.to_string(),
                format!("{:.0}", s.busy_s * 1e3 / s.cases.max(1) as f64),
            ]
        })
        .collect();
    let headers = [
        "family",
        "cases",
        "bytes sent",
        "bytes received",
        "engine closed",
        "connect failed",
        "write stalled",
        "mean ms",
    ];
    md.push_str(&markdown_table(&headers, &rows, true));
    let m = &r.memory;
    let _ = writeln!(
        md,
        "\n## Memory and checks\n\nRSS at start {}, highest RSS seen {}, high-water mark {}, at the end {}; budget {} MB.\n",
        opt_mb(m.start_mb),
        opt_mb(m.peak_rss_mb),
        opt_mb(m.hwm_mb),
        opt_mb(m.last_mb),
        m.max_rss_mb
    );
    md.push_str(&memory_timeline(&r.checks));
    let slowest = |f: fn(&Check) -> Option<f64>| r.checks.iter().filter_map(f).fold(f64::NAN, f64::max);
    let _ = writeln!(
        md,
        "Slowest /healthz {:.1} ms, slowest ordinary client (connect, subscribe, publish QoS 1, receive) {:.1} ms.\n",
        slowest(|c| c.health_ms),
        slowest(|c| c.probe_ms)
    );
    if !r.limits_hit.is_empty() {
        md.push_str("## Limits and refusals the run reached (engine counters at the end)\n\n");
        let rows: Vec<Vec<String>> = r.limits_hit.iter().map(|(k, v)| vec![format!("`{k}`"), thousands(*v)]).collect();
        md.push_str(&markdown_table(&["counter", "value"], &rows, true));
        md.push('\n');
    }
    if !r.log_lines.is_empty() {
        md.push_str("## What the engine logged (warnings and errors)\n\n");
        let mut lines: Vec<(&String, &u64)> = r.log_lines.iter().collect();
        lines.sort_by(|a, b| b.1.cmp(a.1));
        let rows: Vec<Vec<String>> =
            lines.iter().take(20).map(|(k, v)| vec![format!("`{k}`"), thousands(**v as f64)]).collect();
        md.push_str(&markdown_table(&["line", "count"], &rows, true));
        md.push('\n');
    }
    for n in &r.notes {
        let _ = writeln!(md, "- {n}");
    }
    if !r.panics.is_empty() {
        md.push_str("\n## Panics in the engine's log\n\n```text\n");
        for p in &r.panics {
            let _ = writeln!(md, "{p}");
        }
        md.push_str("```\n");
    }
    if let Some(tail) = &r.engine_log_tail {
        let _ = write!(md, "\n## Engine log (last lines)\n\n```text\n{tail}\n```\n");
    }
    if !r.suspects.is_empty() {
        const SHOWN: usize = 40;
        let shown = &r.suspects[r.suspects.len().saturating_sub(SHOWN)..];
        let _ = write!(
            md,
            "\n## Suspects: the {} cases since the last good check (last {} shown)\n\n```text\n{}```\n",
            r.suspects.len(),
            shown.len(),
            suspects_text(shown, true)
        );
    }
    if let Some(cmd) = &r.reproduce {
        let _ = write!(md, "\nReproduce: `{cmd}`\n");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_limit_counters_out_of_metrics() {
        let text = "# TYPE alicia_mqtt_refusals_total counter\n\
                    alicia_mqtt_refusals_total{reason=\"malformed\"} 12\n\
                    alicia_mqtt_refusals_total_other 3\n\
                    alicia_envelope_invalid_total{error_type=\"not_json\"} 4\n\
                    alicia_mqtt_refusals_total{reason=\"per_ip_limit\"} 0\n\
                    alicia_http_requests_total 9\n";
        let limits = limits_from_metrics(text);
        assert_eq!(limits.len(), 2);
        assert_eq!(limits["alicia_mqtt_refusals_total{reason=\"malformed\"}"], 12.0);
    }
}
