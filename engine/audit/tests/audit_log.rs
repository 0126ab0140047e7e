//! The audit log as a door uses it: records in, JSON lines out, rotated, never a panic.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alicia_audit::{AuditAction, AuditConfig, AuditLog, AuditRecord};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn peer() -> SocketAddr {
    "203.0.113.9:40000".parse().unwrap()
}

fn lines(path: &Path) -> Vec<Value> {
    fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

#[test]
fn records_round_trip_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(AuditConfig::new(&path)).unwrap();
    let reasons = ["wrong_password", "unknown_user", "subscribe_denied"];
    for (n, action) in AuditAction::ALL.iter().enumerate() {
        log.record(
            AuditRecord::new("mqtt-tls", peer(), *action, reasons[n % 3])
                .with_client_id(format!("client-{n}"))
                .with_username("bob")
                .with_topic("alicia/devices/lamp/command"),
        );
    }
    log.clone().record(AuditRecord::new("wyoming", peer(), AuditAction::Wyoming, "rate_limit"));
    log.flush_blocking(WAIT).unwrap();

    let records = lines(&path);
    assert_eq!(records.len(), AuditAction::ALL.len() + 1);
    for (n, (record, action)) in records.iter().zip(AuditAction::ALL).enumerate() {
        let keys: Vec<&str> = record.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = ["time", "listener", "peer", "client_id", "username", "action", "topic", "reason", "detail"];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(record["listener"], "mqtt-tls");
        assert_eq!(record["peer"], "203.0.113.9:40000");
        assert_eq!(record["client_id"], format!("client-{n}"));
        assert_eq!(record["username"], "bob");
        assert_eq!(record["action"], action.as_str());
        assert_eq!(record["reason"], reasons[n % 3]);
        assert_eq!(record["detail"], Value::Null);
        let time = record["time"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        assert!(time.ends_with('Z') && time.len() == "2026-12-03T12:44:11.123Z".len(), "{time}");
    }
    assert_eq!(records.last().unwrap()["client_id"], Value::Null);
    assert_eq!((log.written(), log.dropped(), log.failed()), (8, 0, 0));
}

#[test]
fn hostile_client_strings_stay_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(AuditConfig::new(&path)).unwrap();
    let hostile = [
        "line\nbreak",
        "\r\n{\"action\":\"forged\"}\n",
        "quote\" backslash\\ nul\u{0} esc\u{1b}[2J",
        "u2028\u{2028}u2029\u{2029}nel\u{85}",
    ];
    for s in hostile {
        log.record(AuditRecord::new("websocket", peer(), AuditAction::Connect, "wrong_password").with_username(s));
    }
    log.record(
        AuditRecord::new("mqtt", peer(), AuditAction::Connect, "bad_client_id").with_client_id("k".repeat(4096)),
    );
    log.record(
        AuditRecord::new("mqtt", peer(), AuditAction::Subscribe, "subscribe_denied")
            .with_topic_bytes(b"a/\xc3\x28/\xf0\x90\x28\xbc\n#"),
    );
    log.flush_blocking(WAIT).unwrap();

    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.split('\n').count(), hostile.len() + 3, "one line per record plus the final empty split");
    let records = lines(&path);
    for (record, s) in records.iter().zip(hostile) {
        assert_eq!(record["username"], s);
        assert_eq!(record["action"], "connect");
    }
    let long = records[hostile.len()]["client_id"].as_str().unwrap();
    assert!(long.starts_with("kkkk") && long.len() <= alicia_audit::MAX_FIELD_BYTES);
    assert!(records[hostile.len() + 1]["topic"].as_str().unwrap().contains('\u{fffd}'));
}

#[test]
fn rotation_keeps_exactly_keep_files_with_the_newest_records_live() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let config = AuditConfig { max_bytes: 2_000, keep: 3, ..AuditConfig::new(&path) };
    let log = AuditLog::open(config).unwrap();
    for n in 0..200 {
        log.record(AuditRecord::new("http", peer(), AuditAction::Http, "bad_token").with_detail(n.to_string()));
        if n % 50 == 0 {
            // Rotation must also hold across batches, not only inside one.
            log.flush_blocking(WAIT).unwrap();
        }
    }
    log.flush_blocking(WAIT).unwrap();
    assert_eq!(log.written(), 200);

    let mut names: Vec<String> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]);

    // Oldest file first, the numbers run on without a gap and end with the last record.
    let mut seen = Vec::new();
    for file in [rotated(&path, 3), rotated(&path, 2), rotated(&path, 1), path.clone()] {
        assert!(fs::metadata(&file).unwrap().len() <= 2_000);
        seen.extend(lines(&file).iter().map(|r| r["detail"].as_str().unwrap().parse::<u32>().unwrap()));
    }
    assert_eq!(*seen.last().unwrap(), 199);
    let first = seen[0];
    assert_eq!(seen, (first..200).collect::<Vec<_>>());
}

#[test]
fn a_removed_directory_is_counted_not_fatal_and_writing_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("logs");
    fs::create_dir(&sub).unwrap();
    let path = sub.join("audit.log");
    let log = AuditLog::open(AuditConfig::new(&path)).unwrap();
    log.record(AuditRecord::new("mqtt", peer(), AuditAction::Connect, "anonymous"));
    log.flush_blocking(WAIT).unwrap();

    fs::remove_dir_all(&sub).unwrap();
    for _ in 0..3 {
        log.record(AuditRecord::new("mqtt", peer(), AuditAction::Connect, "anonymous"));
    }
    log.flush_blocking(WAIT).unwrap();
    assert_eq!((log.written(), log.failed()), (1, 3));
    assert!(log.is_running());

    fs::create_dir(&sub).unwrap();
    log.record(AuditRecord::new("mqtt", peer(), AuditAction::Connect, "unknown_user"));
    log.flush_blocking(WAIT).unwrap();
    assert_eq!((log.written(), log.failed()), (2, 3));
    let records = lines(&path);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["reason"], "unknown_user");
}

#[test]
fn an_unwritable_path_is_an_error_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let err = AuditLog::open(AuditConfig::new(dir.path().join("missing/audit.log"))).unwrap_err();
    assert_eq!(err.error_type(), "open");
    assert!(err.to_string().contains("missing/audit.log"), "{err}");
}

#[test]
fn a_disabled_log_does_nothing() {
    let log = AuditLog::disabled();
    log.record(AuditRecord::new("mqtt", peer(), AuditAction::Connect, "anonymous"));
    log.flush_blocking(Duration::MAX).unwrap();
    assert!(!log.is_enabled());
    assert!(log.is_running());
    assert_eq!((log.written(), log.dropped(), log.failed()), (0, 0, 0));
}

#[test]
fn a_clone_keeps_writing_after_the_handle_it_came_from_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(AuditConfig::new(&path)).unwrap();
    let watcher = log.clone();
    for _ in 0..50 {
        log.record(AuditRecord::new("mqtt", peer(), AuditAction::Publish, "publish_denied"));
    }
    drop(log);
    watcher.flush_blocking(Duration::MAX).unwrap();
    assert_eq!(lines(&path).len(), 50);
}

#[test]
fn records_from_many_threads_never_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(AuditConfig { queue_capacity: 4096, ..AuditConfig::new(&path) }).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let log = log.clone();
            s.spawn(move || {
                for n in 0..500 {
                    log.record(
                        AuditRecord::new("mqtt", peer(), AuditAction::Publish, "publish_denied")
                            .with_client_id(format!("thread-{t}"))
                            .with_detail(n.to_string()),
                    );
                }
            });
        }
    });
    log.flush_blocking(WAIT).unwrap();
    let records = lines(&path);
    assert_eq!((records.len(), log.dropped()), (2000, 0), "the queue holds all of them");
    for t in 0..4 {
        // Each thread's records arrive in the order it sent them.
        let mine: Vec<u32> = records
            .iter()
            .filter(|r| r["client_id"] == format!("thread-{t}"))
            .map(|r| r["detail"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
    }
}
