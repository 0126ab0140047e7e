//! The `connections` table, its gates and the markdown report.

use super::{BrokerRun, ConnectionGates, ConnectionsReport, FleetCounts};
use crate::compare::Status;
use crate::memory::mb;
use crate::report::{self, ms, thousands};
use crate::throughput::bullet_list;

pub(super) fn check_gates(g: &ConnectionGates, runs: &[BrokerRun]) -> Vec<String> {
    let mut failures = Vec::new();
    if g.min_accepted.is_none() && g.max_kb_per_connection.is_none() {
        return failures;
    }
    let name = g.broker.name();
    let Some(run) = runs.iter().find(|r| r.broker == name && r.status == Status::Ran) else {
        failures.push(format!("{name} did not run: no result to check the gates against"));
        return failures;
    };
    if let Some(min) = g.min_accepted {
        if run.counts.accepted < min {
            failures.push(format!("{name}: {} connections accepted, below --min-accepted {min}", run.counts.accepted));
        }
        if run.counts.held() < min {
            failures.push(format!(
                "{name}: {} connections still held after the hold, below --min-accepted {min}",
                run.counts.held()
            ));
        }
    }
    if let Some(max) = g.max_kb_per_connection {
        match run.kb_per_connection {
            Some(kb) if kb <= max => {}
            Some(kb) => {
                failures.push(format!("{name}: {kb:.2} KB per connection is above --max-kb-per-connection {max}"))
            }
            None => {
                failures.push(format!("{name}: no connection accepted, --max-kb-per-connection {max} cannot be met"))
            }
        }
    }
    failures
}

pub(super) const HEADERS: [&str; 11] = [
    "broker",
    "accepted",
    "refused",
    "other failures",
    "dropped while held",
    "connects/s",
    "CONNACK p50 / p99 ms",
    "RSS before MB",
    "RSS after MB",
    "KB per connection",
    "cpu loadgen / broker",
];

pub(super) fn rows(runs: &[BrokerRun]) -> Vec<Vec<String>> {
    let dash = || "-".to_string();
    runs.iter()
        .map(|r| {
            if r.status != Status::Ran {
                let mut row = vec![r.broker.to_string(), r.status.as_str().to_string()];
                row.resize(HEADERS.len(), dash());
                return row;
            }
            let c = &r.counts;
            let refused = if c.refused.is_empty() {
                "0".to_string()
            } else {
                c.refused
                    .iter()
                    .map(|(code, n)| format!("{} × {code}", thousands(*n as f64)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let other = c.settled() - c.accepted - c.refused_total();
            let cores = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(dash);
            vec![
                r.broker.to_string(),
                thousands(c.accepted as f64),
                refused,
                other_failures(c, other),
                thousands(c.dropped_while_held as f64),
                thousands(r.connect_rate),
                format!("{} / {}", ms(r.connack.p50_ms), ms(r.connack.p99_ms)),
                r.rss_before.map(|s| format!("{:.1}", mb(s.rss_kb))).unwrap_or_else(dash),
                r.rss_after.map(|s| format!("{:.1}", mb(s.rss_kb))).unwrap_or_else(dash),
                r.kb_per_connection.map(|kb| format!("{kb:.2}")).unwrap_or_else(dash),
                format!("{} / {}", cores(r.loadgen_cpu_cores), cores(r.broker_cpu_cores)),
            ]
        })
        .collect()
}

fn other_failures(c: &FleetCounts, total: u64) -> String {
    if total == 0 {
        return "0".into();
    }
    let mut parts = Vec::new();
    for (n, what) in [
        (c.closed_before_connack, "closed"),
        (c.reset_before_connack, "reset"),
        (c.timed_out, "no CONNACK in time"),
        (c.unexpected, "unexpected answer"),
    ] {
        if n > 0 {
            parts.push(format!("{} {what}", thousands(n as f64)));
        }
    }
    parts.extend(c.connect_failed.iter().map(|(kind, n)| format!("{} {kind}", thousands(*n as f64))));
    parts.join(", ")
}

pub(super) fn markdown(r: &ConnectionsReport) -> String {
    let escape = |s: &str| s.lines().next().unwrap_or("").replace('|', "\\|");
    let brokers: Vec<Vec<String>> = r
        .runs
        .iter()
        .map(|b| {
            vec![
                b.broker.to_string(),
                b.status.as_str().into(),
                escape(&b.version),
                b.limit.clone(),
                b.command.as_ref().map(|c| format!("`{c}`")).unwrap_or_default(),
            ]
        })
        .collect();
    let ratio = r
        .engine_vs_mosquitto
        .map(|x| format!("\nengine / mosquitto, memory per idle connection: **{x:.1}×**.\n"))
        .unwrap_or_default();
    let notes: Vec<String> =
        r.runs.iter().flat_map(|b| b.notes.iter().map(move |n| format!("{}: {}", b.broker, escape(n)))).collect();
    let gates = gates_markdown(&r.gates, &r.gate_failures);
    format!(
        "# Idle connections: {} at {}/s\n\n{}- connections: {}, connect rate {}/s, keep-alive {} s, held {} s after \
         memory settled\n- open files: soft {} / hard {}\n\n## Results\n\n{}{}\n## Brokers\n\n{}\n## Gates\n\n{}\n\
         ## Notes\n\n{}\n## Method\n\n{}\n",
        thousands(r.connections as f64),
        thousands(r.connect_rate),
        r.provenance.markdown(),
        thousands(r.connections as f64),
        thousands(r.connect_rate),
        r.keep_alive_s,
        r.hold_s,
        r.open_files.soft,
        r.open_files.hard,
        report::markdown_table(&HEADERS, &rows(&r.runs), true),
        ratio,
        report::markdown_table(&["broker", "status", "version", "limit", "command"], &brokers, false),
        gates,
        bullet_list(&notes),
        r.method,
    )
}

fn gates_markdown(g: &ConnectionGates, failures: &[String]) -> String {
    let mut set = Vec::new();
    if let Some(n) = g.min_accepted {
        set.push(format!("- --min-accepted {n}"));
    }
    if let Some(kb) = g.max_kb_per_connection {
        set.push(format!("- --max-kb-per-connection {kb}"));
    }
    if set.is_empty() {
        return "No gates set.\n".into();
    }
    let verdict = if failures.is_empty() {
        "**Passed.**".to_string()
    } else {
        format!("**Missed:**\n\n{}", bullet_list(failures))
    };
    format!("On {}:\n\n{}\n\n{verdict}\n", g.broker, set.join("\n"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::brokers::{BrokerKind, Launch};

    fn ran(broker: &'static str, accepted: u64, kb: Option<f64>) -> BrokerRun {
        let launch = Launch {
            mosquitto_bin: "/nonexistent".into(),
            alicia_bin: "/nonexistent".into(),
            alicia_config: None,
            alicia_args: vec![],
            startup_timeout: Duration::from_secs(1),
        };
        let mut r = BrokerRun::skipped(BrokerKind::Engine, &launch, Status::Ran, String::new());
        r.broker = broker;
        r.counts.accepted = accepted;
        r.kb_per_connection = kb;
        r
    }

    #[test]
    fn gates_judge_the_named_broker_and_fail_without_it() {
        let gates =
            ConnectionGates { min_accepted: Some(100), max_kb_per_connection: Some(4.0), broker: BrokerKind::Engine };
        let runs = [ran("mosquitto", 100, Some(0.7)), ran("engine", 90, Some(52.0))];
        let failures = check_gates(&gates, &runs);
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(failures[0].contains("90 connections accepted"));
        assert!(failures[2].contains("52.00 KB per connection"));
        let on_mosquitto = ConnectionGates { broker: BrokerKind::Mosquitto, ..gates.clone() };
        assert!(check_gates(&on_mosquitto, &runs).is_empty());
        assert_eq!(check_gates(&gates, &runs[..1]).len(), 1, "a gate without its broker fails");
    }
}
