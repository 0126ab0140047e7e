//! A foreign client: the reference `wyoming` Python package (from PyPI) against the
//! server, so the wire format is checked against the implementation Home Assistant
//! uses rather than against this crate's own decoder.
//!
//! The package comes from `$WYOMING_PYTHON` (a Python with `wyoming` installed; `make
//! test` sets it to the venv `make test-deps` makes) or, when that is unset, a venv
//! under /tmp that the test makes with `pip install 'wyoming==1.*'`. Without the
//! package the test fails, saying how to get it: a foreign-client test that passed
//! without its client would check nothing.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::*;

const VENV: &str = "/tmp/alicia-wyoming-venv";
/// The reference client script, found at run time: a build cache shared between
/// checkouts may have compiled this test in another.
fn script() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from)
        .join("tests/python/reference_client.py")
}

fn has_wyoming(python: &Path) -> bool {
    Command::new(python).args(["-c", "import wyoming.client"]).output().is_ok_and(|out| out.status.success())
}

fn run(program: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{}: {e}", program.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{} {}: {}", program.display(), args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A Python interpreter that can import the reference package, installing it if need be.
fn reference_python() -> Result<PathBuf, String> {
    if let Some(python) = std::env::var_os("WYOMING_PYTHON") {
        let python = PathBuf::from(python);
        return if has_wyoming(&python) {
            Ok(python)
        } else {
            Err(format!("WYOMING_PYTHON={} cannot import wyoming", python.display()))
        };
    }
    let python = Path::new(VENV).join("bin/python");
    if !has_wyoming(&python) {
        run(Path::new("python3"), &["-m", "venv", VENV])?;
        run(&python, &["-m", "pip", "install", "--quiet", "--timeout", "30", "--retries", "2", "wyoming==1.*"])?;
    }
    if has_wyoming(&python) {
        Ok(python)
    } else {
        Err(format!("{} cannot import wyoming after installing it", python.display()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_python_client_is_served() {
    let python = tokio::task::spawn_blocking(reference_python)
        .await
        .unwrap()
        .unwrap_or_else(|why| panic!("the reference `wyoming` package is needed (run `make test-deps`): {why}"));
    let server = start_default().await;
    let port = server.addr().port().to_string();
    let out = tokio::task::spawn_blocking(move || Command::new(python).arg(script()).arg(port).output())
        .await
        .unwrap()
        .expect("run the reference client");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "reference client failed: {stderr}");
    let results: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));

    assert_eq!(
        results["describe"],
        json!({
            "asr_program": "alicia-whisper",
            "asr_model": "tiny.en",
            "asr_languages": ["en"],
            "asr_installed": true,
            "asr_attribution": "whisper.cpp",
            "tts_program": "alicia-piper",
            "tts_voice": "en_US-joe-medium",
            "tts_languages": ["en"],
            "tts_version": env!("CARGO_PKG_VERSION"),
        })
    );
    let transcribe = &results["transcribe"];
    assert_eq!(transcribe["text"], format!("3072 samples, sum {}", transcribe["expected_sum"]));
    let synthesize = &results["synthesize"];
    assert_eq!(synthesize["start"], json!([16000, 2, 1]));
    assert_eq!(synthesize["chunks"], json!([1024, 476, 1024, 476]));
    assert_eq!(synthesize["bytes"], 2 * 2 * SENTENCE_SAMPLES);
    assert_eq!(
        results["error"],
        json!({
            "text": "unknown voice \"nobody\": this server speaks en_US-joe-medium",
            "code": "unknown_voice",
            "after": "info",
        })
    );
    server.shutdown().await;
}
