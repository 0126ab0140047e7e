//! Pass/fail targets, so CI can fail a build that got slower.
//!
//! A gate that has nothing to check fails: a skipped engine or a matrix without the
//! right rows must not read as "target met".

use serde::Serialize;

use crate::run::RunResult;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Gates {
    /// Lowest acceptable delivery rate, msg/s.
    pub min_rate: Option<f64>,
    /// Highest acceptable p99 latency, ms.
    pub max_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GateOutcome {
    #[serde(flatten)]
    pub gates: Gates,
    pub checked_rows: Vec<String>,
    pub failures: Vec<String>,
}

impl GateOutcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Which rows a gate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateScope {
    /// Both gates on every row (one `throughput` run: the user chose the load).
    EveryRow,
    /// `compare`: throughput is judged where the load was flat out (rate `max`), latency
    /// where it was fixed; latency at `max` is queueing by construction.
    ByOfferedRate,
}

pub fn row_label(r: &RunResult) -> String {
    format!("{} qos{} {}x{} @{}", r.broker, r.qos, r.publishers, r.subscribers, r.offered_rate)
}

impl Gates {
    pub fn is_empty(&self) -> bool {
        self.min_rate.is_none() && self.max_p99_ms.is_none()
    }

    pub fn check(&self, rows: &[&RunResult], scope: GateScope) -> GateOutcome {
        let mut out = GateOutcome { gates: *self, ..Default::default() };
        let flat_out = |r: &&&RunResult| scope == GateScope::EveryRow || r.offered_rate == "max";
        let fixed = |r: &&&RunResult| scope == GateScope::EveryRow || r.offered_rate != "max";
        if let Some(min) = self.min_rate {
            let rows: Vec<_> = rows.iter().filter(flat_out).collect();
            if rows.is_empty() {
                out.failures.push(format!("min-rate {min} msg/s: no row to check it against"));
            }
            for r in rows {
                out.checked_rows.push(format!("{} (delivery rate)", row_label(r)));
                if r.delivery_rate < min {
                    out.failures.push(format!(
                        "{}: delivery rate {:.0} msg/s is below --min-rate {min}",
                        row_label(r),
                        r.delivery_rate
                    ));
                }
            }
        }
        if let Some(max) = self.max_p99_ms {
            let rows: Vec<_> = rows.iter().filter(fixed).collect();
            if rows.is_empty() {
                out.failures.push(format!("max-p99-ms {max}: no row to check it against"));
            }
            for r in rows {
                out.checked_rows.push(format!("{} (p99)", row_label(r)));
                if r.latency.count == 0 {
                    out.failures
                        .push(format!("{}: no latency samples, --max-p99-ms {max} cannot be met", row_label(r)));
                } else if r.latency.p99_ms > max {
                    out.failures.push(format!(
                        "{}: p99 {:.3} ms is above --max-p99-ms {max}",
                        row_label(r),
                        r.latency.p99_ms
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{DeliverySummary, LatencySummary};

    fn row(rate: &str, delivery_rate: f64, p99_ms: f64) -> RunResult {
        RunResult {
            broker: "engine".into(),
            address: "127.0.0.1:1".into(),
            qos: 1,
            publishers: 1,
            subscribers: 1,
            payload_bytes: 100,
            offered_rate: rate.into(),
            max_lead: 0,
            warmup_s: 1.0,
            duration_s: 1.0,
            drain_s: 0.0,
            drained: true,
            sent: 0,
            sent_in_window: 0,
            publish_rate: 0.0,
            acked: 0,
            expected_deliveries: 0,
            delivered_in_window: 0,
            delivery_rate,
            deliveries: DeliverySummary::default(),
            per_subscriber: vec![],
            latency: LatencySummary { count: 10, p99_ms, ..Default::default() },
            loadgen_cpu_cores: None,
            broker_cpu_cores: None,
            host_cpu_cores: None,
            errors: vec![],
        }
    }

    #[test]
    fn compare_scope_judges_rate_at_max_and_latency_at_fixed_rate() {
        let (max, fixed) = (row("max", 50_000.0, 80.0), row("10000", 10_000.0, 0.5));
        let gates = Gates { min_rate: Some(40_000.0), max_p99_ms: Some(1.0) };
        assert!(gates.check(&[&max, &fixed], GateScope::ByOfferedRate).passed());
        let every = gates.check(&[&max, &fixed], GateScope::EveryRow);
        assert_eq!(every.failures.len(), 2, "{:?}", every.failures);
        assert!(every.failures[0].contains("below --min-rate"));
        assert!(every.failures[1].contains("above --max-p99-ms"));
    }

    #[test]
    fn a_gate_with_nothing_to_check_fails() {
        let gates = Gates { min_rate: Some(1.0), max_p99_ms: None };
        let out = gates.check(&[], GateScope::ByOfferedRate);
        assert!(!out.passed());
        assert!(Gates::default().check(&[], GateScope::EveryRow).passed());
    }
}
