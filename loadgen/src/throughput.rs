//! The `throughput` scenario: one load against one broker that someone else runs.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::gates::{GateOutcome, GateScope, Gates};
use crate::report::{self, LoadSettings, Provenance};
use crate::run::{self, RunResult, RunSpec};
use crate::Verdict;

#[derive(Debug, Clone)]
pub struct ThroughputOptions {
    pub spec: RunSpec,
    pub gates: Gates,
    pub out: PathBuf,
}

#[derive(Serialize)]
struct ThroughputReport<'a> {
    kind: &'static str,
    #[serde(flatten)]
    provenance: &'a Provenance,
    method: &'static str,
    load: &'a LoadSettings,
    runs: &'a [RunResult],
    gates: &'a GateOutcome,
    notes: &'a [String],
}

pub async fn run(opts: &ThroughputOptions) -> Result<Verdict> {
    let provenance = Provenance::collect();
    let load = LoadSettings::of(&opts.spec);
    let result = run::run(&opts.spec, None).await?;
    let runs = [result];
    let gates = opts.gates.check(&runs.iter().collect::<Vec<_>>(), GateScope::EveryRow);
    let notes = report::row_notes(&runs);

    print!("{}", report::results_text(&runs));
    notes.iter().for_each(|n| println!("note: {n}"));

    let markdown = format!(
        "# Throughput: {}\n\n{}{}\n## Results\n\n{}\n## Gates\n\n{}\n## Notes\n\n{}\n## Method\n\n{}\n",
        opts.spec.broker,
        provenance.markdown(),
        load.markdown(),
        report::results_markdown(&runs),
        report::gates_markdown(&gates),
        bullet_list(&notes),
        report::METHOD,
    );
    let json = ThroughputReport {
        kind: "throughput",
        provenance: &provenance,
        method: report::METHOD,
        load: &load,
        runs: &runs,
        gates: &gates,
        notes: &notes,
    };
    let (json_path, md_path) = report::write(&opts.out, "throughput", &json, &markdown)?;
    println!("wrote {} and {}", json_path.display(), md_path.display());

    Ok(Verdict { gate_failures: gates.failures, problems: runs.iter().flat_map(|r| r.errors.clone()).collect() })
}

pub fn bullet_list(items: &[String]) -> String {
    if items.is_empty() {
        return "None.\n".into();
    }
    items.iter().map(|i| format!("- {i}\n")).collect()
}
