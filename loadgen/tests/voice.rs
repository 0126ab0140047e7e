//! `alicia-loadgen voice --quick` against an engine it starts with the real models:
//! one site speaks three requests and every one of them is understood.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    // At run time: a build cache shared between checkouts may have compiled this in another.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `ALICIA_BIN`, else `alicia` built next to `alicia-loadgen`.
fn alicia_bin() -> PathBuf {
    std::env::var_os("ALICIA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_BIN_EXE_alicia-loadgen")).with_file_name("alicia"))
}

#[test]
fn voice_quick_understands_every_request() {
    // `make test` fetches the models first; a run without them checks nothing, so it fails.
    let models = repo().join("models");
    assert!(
        models.join("whisper").is_dir() && models.join("piper").is_dir(),
        "the voice models are missing from {}: run `make models` (make test does it first)",
        models.display()
    );
    let bin = alicia_bin();
    assert!(
        bin.is_file(),
        "engine binary {} missing: build it in the same target dir (cargo build -p alicia) or set ALICIA_BIN",
        bin.display()
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_alicia-loadgen"))
        .current_dir(repo())
        .args(["voice", "--quick", "--out"])
        .arg(out_dir.path())
        .arg("--alicia-bin")
        .arg(&bin)
        .output()
        .expect("run alicia-loadgen voice");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.path().join("voice.json")).unwrap()).unwrap();
    let run = &json["runs"][0];
    assert!(run["utterances"].as_u64().unwrap() >= 1, "{run}");
    assert_eq!(run["intent_accuracy"].as_f64(), Some(1.0), "{run}");
    let p50 = run["latency"]["p50_ms"].as_f64().expect("finite p50");
    assert!(p50.is_finite() && p50 > 0.0, "p50 {p50}");
    assert!(out_dir.path().join("voice.md").is_file());
}
