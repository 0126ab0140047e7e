//! Behaviour checks of the `alicia-loadgen` binary against real brokers on ephemeral
//! ports: a short low fixed-rate load must deliver everything, exactly once. Not a speed
//! check: the rates here are far below what any broker sustains.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use alicia_loadgen::brokers::{find_program, BrokerKind, BrokerProcess, Launch};
use serde_json::Value;

fn launch() -> Launch {
    Launch {
        mosquitto_bin: find_program("mosquitto", &["/usr/sbin/mosquitto"]),
        alicia_bin: PathBuf::from("/nonexistent/alicia"),
        alicia_config: None,
        alicia_args: vec![],
        startup_timeout: Duration::from_secs(10),
    }
}

fn loadgen(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_alicia-loadgen")).args(args).output().expect("run alicia-loadgen");
    eprintln!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written")).expect("valid json")
}

fn assert_complete_delivery(run: &Value) {
    let sent = run["sent"].as_u64().unwrap();
    let subscribers = run["subscribers"].as_u64().unwrap();
    assert!(sent > 0, "nothing sent: {run}");
    assert!(run["delivery_rate"].as_f64().unwrap() > 0.0, "no delivery: {run}");
    assert_eq!(run["deliveries"]["lost"], 0, "loss: {run}");
    assert_eq!(run["deliveries"]["duplicates"], 0, "duplicates: {run}");
    assert_eq!(run["deliveries"]["unique"].as_u64().unwrap(), sent * subscribers);
    assert!(run["latency"]["count"].as_u64().unwrap() > 0);
    assert_eq!(run["errors"].as_array().unwrap().len(), 0);
}

#[test]
fn throughput_against_mosquitto_delivers_everything_once() {
    let launch = launch();
    assert!(launch.unavailable(BrokerKind::Mosquitto).is_none(), "mosquitto is required (apt-get install mosquitto)");
    let broker = BrokerProcess::start(BrokerKind::Mosquitto, &launch).expect("start mosquitto");
    let out_dir = tempfile::tempdir().unwrap();
    let addr = broker.addr.to_string();
    let out = loadgen(&[
        "throughput",
        "--broker",
        &addr,
        "--qos",
        "1",
        "--publishers",
        "2",
        "--subscribers",
        "3",
        "--rate",
        "400",
        "--duration",
        "1.5",
        "--warmup",
        "0.3",
        "--drain-timeout",
        "3",
        "--out",
        out_dir.path().to_str().unwrap(),
    ]);
    broker.stop().unwrap();
    assert!(out.status.success(), "loadgen failed: {:?}", out.status);

    let report = read_json(&out_dir.path().join("throughput.json"));
    assert_eq!(report["kind"], "throughput");
    assert!(report["machine"]["nproc"].as_u64().unwrap() >= 1);
    assert!(report["command_line"].as_str().unwrap().contains("throughput"));
    let run = &report["runs"][0];
    assert_complete_delivery(run);
    assert_eq!(run["drained"], true);
    // 400 msg/s offered: the pacer must land close to it.
    let rate = run["publish_rate"].as_f64().unwrap();
    assert!((rate - 400.0).abs() < 40.0, "publish rate {rate}");
    assert!(out_dir.path().join("throughput.md").is_file());
}

#[test]
fn missed_gate_exits_with_code_2() {
    let broker = BrokerProcess::start(BrokerKind::Mosquitto, &launch()).expect("start mosquitto");
    let out_dir = tempfile::tempdir().unwrap();
    let out = loadgen(&[
        "throughput",
        "--broker",
        &broker.addr.to_string(),
        "--qos",
        "0",
        "--rate",
        "100",
        "--duration",
        "0.5",
        "--warmup",
        "0.1",
        "--min-rate",
        "1000000000",
        "--out",
        out_dir.path().to_str().unwrap(),
    ]);
    broker.stop().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--min-rate"));
}

#[test]
fn compare_runs_the_rumqttd_baseline_and_skips_a_missing_engine() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = loadgen(&[
        "compare",
        "--brokers",
        "rumqttd,engine",
        "--alicia-bin",
        "/nonexistent/alicia",
        "--qos",
        "1",
        "--shapes",
        "2x2",
        "--rates",
        "500",
        "--duration",
        "1",
        "--warmup",
        "0.3",
        "--out",
        out_dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "compare failed: {:?}", out.status);
    let report = read_json(&out_dir.path().join("compare.json"));
    let brokers = report["brokers"].as_array().unwrap();
    assert_eq!(brokers[0]["status"], "ran");
    assert_eq!(brokers[1]["status"], "skipped");
    assert!(brokers[1]["notes"][0].as_str().unwrap().contains("not found"));
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["broker"], "rumqttd");
    assert_complete_delivery(&runs[0]);
    assert!(runs[0]["broker_cpu_cores"].as_f64().is_some());
    let md = std::fs::read_to_string(out_dir.path().join("compare.md")).unwrap();
    assert!(md.contains("| engine | skipped |"), "{md}");
}

#[test]
fn tls_refuses_bad_flags_and_a_missing_engine_before_loading_anything() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    let bad = loadgen(&["tls", "--quick", "--payload", "8", "--inflight", "0", "--out", out_dir]);
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("--payload must be at least 16") && stderr.contains("--inflight"), "{stderr}");

    // The dev PKI is made by the binary under test: without one there is nothing to run.
    let missing = loadgen(&["tls", "--quick", "--alicia-bin", "/nonexistent/alicia", "--out", out_dir]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/alicia certs init"));
    assert!(!dir.path().join("tls.json").exists(), "no report without a run");
}
