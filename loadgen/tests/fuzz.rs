//! `alicia-loadgen fuzz` against the engine built from this workspace: a bounded run of
//! hostile and odd input must leave it alive, healthy, serving an ordinary client and
//! within its memory budget (exit 0); and the fuzzer must notice an engine that dies
//! under it (exit 2), or the first test would prove nothing.
//!
//! `ALICIA_FUZZ_SEED` picks another seed than the fixed one (CI repeats the same cases).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    // At run time: a build cache shared between checkouts may have compiled this in another.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `ALICIA_BIN`, else `alicia` built (by cargo, a no-op when it is fresh) next to
/// `alicia-loadgen`, in the same profile.
fn alicia_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("ALICIA_BIN") {
        return PathBuf::from(bin);
    }
    let dir = Path::new(env!("CARGO_BIN_EXE_alicia-loadgen")).parent().unwrap().to_path_buf();
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.current_dir(repo()).args(["build", "--quiet", "-p", "alicia", "--bin", "alicia"]);
    if dir.ends_with("release") {
        build.arg("--release");
    }
    assert!(build.status().expect("cargo runs").success(), "building the alicia binary failed");
    dir.join("alicia")
}

fn seed() -> String {
    std::env::var("ALICIA_FUZZ_SEED").unwrap_or_else(|_| "20261203".into())
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn read_report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("fuzz.json")).expect("fuzz.json written")).unwrap()
}

#[test]
fn a_bounded_fuzz_run_leaves_the_engine_alive_healthy_and_within_budget() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_alicia-loadgen"))
        .args(["fuzz", "--seconds", "25", "--seed", &seed(), "--out"])
        .arg(out_dir.path())
        .arg("--alicia-bin")
        .arg(alicia_bin())
        .output()
        .expect("run alicia-loadgen fuzz");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report = read_report(out_dir.path());
    assert_eq!(report["gate_failures"].as_array().unwrap().len(), 0, "{report}");
    assert!(report["cases"].as_u64().unwrap() >= 200, "too few cases to mean anything: {}", report["cases"]);
    assert!(report["checks"].as_array().unwrap().len() >= 10, "a check about every second");
    for family in ["raw-connect", "raw-after-connect", "packets", "mutated", "envelopes"] {
        assert!(report["per_family"][family]["cases"].as_u64().unwrap_or(0) > 0, "{family} never ran: {report}");
    }
    // The memory gate had something to measure, and the input reached the refusals.
    assert!(report["memory"]["hwm_mb"].as_f64().unwrap() > 1.0);
    let limits = report["limits_hit"].as_object().unwrap();
    let refused = |reason: &str| limits.keys().any(|k| k.contains("refusals_total") && k.contains(reason));
    assert!(refused("malformed_packet") && refused("protocol_error"), "{limits:?}");
    assert!(limits.keys().any(|k| k.starts_with("alicia_envelope_invalid_total")), "{limits:?}");
    assert!(out_dir.path().join("fuzz.md").is_file());
}

/// `alicia serve` with the shipped config on ephemeral ports; its ready line's addresses.
fn spawn_engine() -> (Child, SocketAddr, SocketAddr) {
    let mut child = Command::new(alicia_bin())
        .current_dir(repo())
        .args(["serve", "--config", "bus-config/alicia.toml", "--mqtt-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0"])
        .env("ALICIA_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("alicia starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("ready line");
    let field = |name: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            .parse()
            .unwrap()
    };
    (child, field("mqtt="), field("http="))
}

fn metric(http: SocketAddr, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(http).ok()?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: alicia\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    // `name value` or `name{labels} value`
    body.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn the_fuzzer_fails_when_the_engine_dies_under_it() {
    let (mut engine, mqtt, http) = spawn_engine();
    let out_dir = tempfile::tempdir().unwrap();
    let fuzzer = Command::new(env!("CARGO_BIN_EXE_alicia-loadgen"))
        .args(["fuzz", "--seconds", "90", "--seed", &seed(), "--check-every", "0.5s"])
        .args(["--broker", &mqtt.to_string(), "--http", &http.to_string(), "--pid", &engine.id().to_string()])
        .arg("--out")
        .arg(out_dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run alicia-loadgen fuzz");
    // Killed once the fuzzing is well under way, as a crash would.
    let deadline = Instant::now() + PATIENCE;
    while metric(http, "alicia_mqtt_sockets_accepted_total").unwrap_or(0.0) < 200.0 {
        assert!(Instant::now() < deadline, "the fuzzer never got going");
        std::thread::sleep(Duration::from_millis(50));
    }
    engine.kill().unwrap();
    engine.wait().unwrap();
    let started = Instant::now();
    let out = fuzzer.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(started.elapsed() < Duration::from_secs(60), "the death was noticed late: {:?}", started.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("engine process") && stderr.contains("reproduce: alicia-loadgen fuzz --seed"), "{stderr}");
    let report = read_report(out_dir.path());
    let failures = report["gate_failures"].as_array().unwrap();
    assert!(failures.iter().any(|f| f.as_str().unwrap().contains("ordinary MQTT client failed")), "{failures:?}");
    assert!(!report["suspects"].as_array().unwrap().is_empty(), "the cases before the death are listed");
}
