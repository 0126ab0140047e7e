//! Behaviour checks of `connections`, `large` and `hostile` at small sizes against
//! mosquitto on ephemeral ports: the numbers are reported, the gates decide the exit
//! code, and nothing here judges speed.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn loadgen(args: &[&str], out_dir: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_alicia-loadgen"))
        .args(args)
        .arg("--out")
        .arg(out_dir)
        .output()
        .expect("run alicia-loadgen");
    eprintln!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn report(dir: &Path, name: &str) -> Value {
    let path = dir.join(format!("{name}.json"));
    assert!(dir.join(format!("{name}.md")).is_file(), "{name}.md written");
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written")).expect("valid json")
}

#[test]
fn connections_holds_200_idle_clients_on_mosquitto_and_gates_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["connections", "--brokers", "mosquitto", "--connections", "200", "--rate", "1000", "--hold", "0.5s"];
    let out = loadgen(&[&args[..], &["--gate-on", "mosquitto", "--min-accepted", "200"]].concat(), dir.path());
    assert!(out.status.success(), "exit {:?}", out.status);
    let json = report(dir.path(), "connections");
    assert_eq!(json["kind"], "connections");
    let run = &json["runs"][0];
    assert_eq!((run["broker"].as_str(), run["status"].as_str()), (Some("mosquitto"), Some("ran")));
    assert_eq!(run["counts"]["attempted"], 200);
    assert_eq!(run["counts"]["accepted"], 200);
    assert_eq!(run["counts"]["dropped_while_held"], 0);
    assert!(run["rss_after"]["rss_kb"].as_u64().unwrap() > 0);
    assert!(run["kb_per_connection"].as_f64().is_some(), "{run}");
    assert_eq!(run["limit"], "max_connections -1");
    assert!(json["gate_failures"].as_array().unwrap().is_empty());

    // One more than it can accept: the gate is missed and the exit code says so.
    let missed = loadgen(&[&args[..], &["--gate-on", "mosquitto", "--min-accepted", "201"]].concat(), dir.path());
    assert_eq!(missed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missed.stderr).contains("below --min-accepted 201"));
}

#[test]
fn large_delivers_every_byte_to_every_subscriber_also_after_a_stall() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "large",
        "--brokers",
        "mosquitto",
        "--size",
        "4M",
        "--variants",
        "normal,stalled",
        "--stall-for",
        "1s",
        "--timeout",
        "30s",
        "--gate-on",
        "mosquitto",
        "--max-peak-rss-ratio",
        "1000",
    ];
    let out = loadgen(&args, dir.path());
    assert!(out.status.success(), "exit {:?}", out.status);
    let json = report(dir.path(), "large");
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        assert_eq!(run["status"], "ran", "{run}");
        assert_eq!(run["verified"], 3, "{run}");
        let sent = run["published"]["digest"].as_str().unwrap();
        for r in run["receipts"].as_array().unwrap() {
            assert_eq!(r["received_bytes"], 4 << 20);
            assert_eq!(r["digest"].as_str(), Some(sent), "the subscriber's digest equals the publisher's");
            assert!(r["first_mismatch"].is_null());
        }
        assert!(run["peak_ratio"].as_f64().unwrap() > 0.0);
        assert!(run["ordinary_after"].as_str().unwrap().starts_with("through"), "{run}");
    }
    assert_eq!(runs[0]["subscriber_protocols"], serde_json::json!(["3.1.1", "5", "3.1.1"]));
    assert!(runs[1]["stalled_rss_kb"].as_u64().is_some(), "the stalled run reports RSS at the end of the stall");

    // A ratio no broker meets exits 2.
    let strict = [&args[..12], &["--max-peak-rss-ratio", "0.01", "--variants", "normal"]].concat();
    assert_eq!(loadgen(&strict, dir.path()).status.code(), Some(2));
}

#[test]
fn hostile_lists_its_steps_and_refuses_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = loadgen(&["hostile", "--list"], dir.path());
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&out.stdout);
    for step in ["utf8-topic-v3", "connect-then-reset", "subscribe-10000-filters", "wyoming-rate-1", "http-flood"] {
        assert!(list.contains(step), "{step} missing from\n{list}");
    }
    let bad = loadgen(&["hostile", "--steps", "utf8-topic-v3,no-such-step"], dir.path());
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown step `no-such-step`"));
}

#[test]
fn hostile_mqtt_steps_hold_on_mosquitto_and_other_doors_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let steps = "utf8-topic-v5,v5-properties-to-v3,v5-properties-retained,connect-then-reset,\
                 empty-publish-keeps-retained,many-retained,huge-connect-announced,stalled-subscribers,\
                 publish-qos3,second-connect,http-slowloris,wyoming-rate-1";
    let out = loadgen(&["hostile", "--target", "mosquitto", "--scale", "0.01", "--steps", steps], dir.path());
    assert!(out.status.success(), "exit {:?}", out.status);
    let json = report(dir.path(), "hostile");
    assert_eq!(json["target"], "mosquitto");
    let by_name = |name: &str| json["steps"].as_array().unwrap().iter().find(|s| s["step"] == name).cloned().unwrap();
    for name in steps.split(',').map(str::trim).filter(|s| !s.starts_with("http") && !s.starts_with("wyoming")) {
        let step = by_name(name);
        assert_eq!(step["status"], "held", "{step}");
        assert!(!step["answers"].as_array().unwrap().is_empty(), "{step}");
        assert!(step["ordinary_client"].as_str().unwrap().starts_with("through"), "{step}");
        assert!(step["healthz"].is_null(), "mosquitto has no /healthz to report");
    }
    let retained = by_name("v5-properties-retained");
    assert!(retained["checks"].as_array().unwrap().iter().all(|c| c["must"] == true && c["passed"] == true));
    let qos3 = by_name("publish-qos3")["answers"].to_string();
    assert!(qos3.contains("connection closed") || qos3.contains("DISCONNECT"), "{qos3}");
    for (name, why) in [("http-slowloris", "no HTTP API"), ("wyoming-rate-1", "no voice plane")] {
        let step = by_name(name);
        assert_eq!(step["status"], "skipped");
        assert!(step["reasons"][0].as_str().unwrap().contains(why), "{step}");
    }
    assert_eq!(json["skipped"], 2);

    // The same broker judged against an RSS ceiling it cannot meet: not held, exit 2.
    let tight =
        loadgen(&["hostile", "--target", "mosquitto", "--steps", "second-connect", "--max-rss-mb", "1"], dir.path());
    assert_eq!(tight.status.code(), Some(2));
    assert_eq!(report(dir.path(), "hostile")["steps"][0]["status"], "not_held");
}
