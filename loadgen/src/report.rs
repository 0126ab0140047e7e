//! Results as a terminal table, JSON (for tools) and markdown (for people), each carrying
//! what is needed to reproduce and judge it: method, machine, command, commit and date.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::gates::{row_label, GateOutcome};
use crate::machine::{self, Machine};
use crate::run::{RunResult, RunSpec};

pub const METHOD: &str = "\
P publishers × S subscribers, each its own MQTT 3.1.1 TCP connection from one loadgen process \
(a lean tokio client: many PUBLISH packets encoded into one buffer per write, frames parsed in \
place). Publisher p publishes to bench/<run-id>/<p>; every subscriber subscribes to \
bench/<run-id>/+, so each message is delivered S times. The first 16 payload bytes carry \
the send time (monotonic clock shared by all connections) and a per-publisher sequence number. \
Latency = receive time - send time, recorded at the subscribers in an hdrhistogram (µs \
precision, merged across subscribers) for messages sent in the measured window. QoS 1 \
publishers keep at most `inflight` unacknowledged messages; subscribers PUBACK every QoS 1 \
delivery. A fixed rate is open loop, paced in 1 ms ticks from elapsed time (late ticks catch \
up). `max` is closed loop: publishers send as fast as the broker accepts but stay at most \
`max_lead` messages in total ahead of the slowest subscriber (highest sequence seen), so it \
measures the rate a broker sustains with bounded queues rather than how it collapses under an \
unbounded backlog. Warm-up is excluded; publish and delivery rates count what was sent / \
received inside the measured window; loss, duplicates and reordering compare every delivery of \
the run (after a drain that ends when all arrived, nothing arrived for 1 s, or the drain \
timeout) against the publishers' sequence numbers. CPU columns are cores busy during the \
window (user + system time from /proc): loadgen, the broker process (when loadgen started it) \
and the whole host; host minus the other two is load from outside the benchmark.";

/// Where, when and how a report was made.
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub tool: String,
    pub command_line: String,
    pub git_commit: Option<String>,
    pub date: String,
    pub machine: Machine,
}

impl Provenance {
    pub fn collect() -> Self {
        Provenance {
            tool: format!("alicia-loadgen {}", env!("CARGO_PKG_VERSION")),
            command_line: machine::command_line(),
            git_commit: machine::git_commit(),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            machine: Machine::detect(),
        }
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let memory = m.memory_mb.map(|mb| format!(", {mb} MB RAM")).unwrap_or_default();
        format!(
            "- date: {}\n- commit: {}\n- command: `{}`\n- machine: {} cores, {}, {}{}\n- tool: {}\n",
            self.date,
            self.git_commit.as_deref().unwrap_or("unknown (no git commit)"),
            self.command_line,
            m.nproc,
            m.cpu_model,
            m.kernel,
            memory,
            self.tool,
        )
    }
}

/// The load parameters shared by every row of a report.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSettings {
    pub payload_bytes: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub drain_timeout_s: f64,
    pub inflight: u64,
    pub max_lead: u64,
    pub keep_alive_s: u16,
}

impl LoadSettings {
    pub fn of(spec: &RunSpec) -> Self {
        LoadSettings {
            payload_bytes: spec.payload,
            duration_s: spec.duration.as_secs_f64(),
            warmup_s: spec.warmup.as_secs_f64(),
            drain_timeout_s: spec.drain_timeout.as_secs_f64(),
            inflight: spec.inflight,
            max_lead: spec.max_lead,
            keep_alive_s: spec.keep_alive,
        }
    }

    pub fn markdown(&self) -> String {
        format!(
            "- load: {} B payloads, {} s measured after {} s warm-up, drain ≤ {} s, QoS 1 in-flight window {}, \
             `max` lead {} messages, keep-alive {} s\n",
            self.payload_bytes,
            self.duration_s,
            self.warmup_s,
            self.drain_timeout_s,
            self.inflight,
            self.max_lead,
            self.keep_alive_s
        )
    }
}

const HEADERS: [&str; 16] = [
    "broker",
    "qos",
    "P×S",
    "payload",
    "offered/s",
    "published/s",
    "delivered/s",
    "loss",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "p99.9 ms",
    "max ms",
    "cpu loadgen",
    "cpu broker",
    "cpu host",
];

/// A rate or count with thousands separators.
pub fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn cores(v: Option<f64>) -> String {
    v.map(|c| format!("{c:.2}")).unwrap_or_else(|| "-".into())
}

fn cells(r: &RunResult) -> Vec<String> {
    let offered = match r.offered_rate.parse::<f64>() {
        Ok(n) => thousands(n),
        Err(_) => r.offered_rate.clone(),
    };
    let loss = if r.deliveries.lost == 0 {
        "0".to_string()
    } else {
        format!("{} ({:.2}%)", thousands(r.deliveries.lost as f64), r.loss_ratio() * 100.0)
    };
    let l = &r.latency;
    vec![
        r.broker.clone(),
        r.qos.to_string(),
        format!("{}×{}", r.publishers, r.subscribers),
        format!("{} B", r.payload_bytes),
        offered,
        thousands(r.publish_rate),
        thousands(r.delivery_rate),
        loss,
        ms(l.p50_ms),
        ms(l.p90_ms),
        ms(l.p99_ms),
        ms(l.p999_ms),
        ms(l.max_ms),
        cores(r.loadgen_cpu_cores),
        cores(r.broker_cpu_cores),
        cores(r.host_cpu_cores),
    ]
}

/// Column-aligned plain text.
pub fn text_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:>w$}", w = *w)).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

/// `numeric`: names in the first column left, numbers in the others right; else all left.
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>], numeric: bool) -> String {
    let align: Vec<&str> = (0..headers.len()).map(|i| if numeric && i > 0 { "---:" } else { ":---" }).collect();
    let mut out = format!("| {} |\n|{}|\n", headers.join(" | "), align.join("|"));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}

pub fn results_text(rows: &[RunResult]) -> String {
    text_table(&HEADERS, &rows.iter().map(cells).collect::<Vec<_>>())
}

pub fn results_markdown(rows: &[RunResult]) -> String {
    markdown_table(&HEADERS, &rows.iter().map(cells).collect::<Vec<_>>(), true)
}

/// Rows that did not finish cleanly: errors, loss, duplicates, an incomplete drain.
pub fn row_notes(rows: &[RunResult]) -> Vec<String> {
    let mut notes = Vec::new();
    for r in rows {
        let label = row_label(r);
        if !r.drained {
            let missing = r.expected_deliveries.saturating_sub(r.deliveries.unique);
            notes.push(format!(
                "{label}: drain ended after {:.1} s with {missing} deliveries missing (counted as lost)",
                r.drain_s
            ));
        }
        let d = &r.deliveries;
        if d.duplicates + d.out_of_order + d.foreign > 0 {
            notes.push(format!(
                "{label}: {} duplicates, {} out of order, {} foreign",
                d.duplicates, d.out_of_order, d.foreign
            ));
        }
        notes.extend(r.errors.iter().map(|e| format!("{label}: {e}")));
    }
    notes
}

pub fn gates_markdown(outcome: &GateOutcome) -> String {
    let g = &outcome.gates;
    if g.is_empty() {
        return "No gates set.\n".into();
    }
    let mut out = String::new();
    if let Some(min) = g.min_rate {
        let _ = writeln!(out, "- --min-rate {min} msg/s (delivery rate)");
    }
    if let Some(max) = g.max_p99_ms {
        let _ = writeln!(out, "- --max-p99-ms {max}");
    }
    if outcome.passed() {
        let _ = writeln!(out, "\n**Passed** ({} checks).", outcome.checked_rows.len());
    } else {
        let _ = writeln!(out, "\n**Missed:**\n");
        for f in &outcome.failures {
            let _ = writeln!(out, "- {f}");
        }
    }
    out
}

/// Writes `<stem>.json` and `<stem>.md` into `dir` (created if needed).
pub fn write(dir: &Path, stem: &str, json: &impl Serialize, markdown: &str) -> Result<(PathBuf, PathBuf)> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let json_path = dir.join(format!("{stem}.json"));
    let md_path = dir.join(format!("{stem}.md"));
    fs::write(&json_path, serde_json::to_string_pretty(json)? + "\n")
        .with_context(|| format!("write {}", json_path.display()))?;
    fs::write(&md_path, markdown).with_context(|| format!("write {}", md_path.display()))?;
    Ok((json_path, md_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(ms(0.1234), "0.123");
        assert_eq!(ms(12.34), "12.3");
        assert_eq!(ms(1234.5), "1234");
    }

    #[test]
    fn tables_align_and_render() {
        let rows = vec![vec!["a".to_string(), "12345".to_string()]];
        assert_eq!(text_table(&["x", "y"], &rows), "x      y\na  12345\n");
        assert_eq!(markdown_table(&["x", "y"], &rows, true), "| x | y |\n|:---|---:|\n| a | 12345 |\n");
    }
}
