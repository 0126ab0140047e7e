//! `alicia` as an operator runs it: signals, bind failures, config checks.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alicia_e2e::engine::{alicia_binary, bus_config_dir, EngineProcess};
use alicia_e2e::raw::RawClient;

/// The bound for a clean stop after SIGINT/SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(5);

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

async fn stops_cleanly_on(sig: &str) {
    let mut engine = EngineProcess::spawn(&[]);
    let mut client = RawClient::connect(engine.mqtt.port()).await;
    assert_eq!(client.handshake_v5("shutdown-watcher").await, 0);

    let started = Instant::now();
    signal(engine.child.id(), sig);
    // A v5 client is told why before the socket closes: 0x8B server shutting down.
    let (kind, body) = client.read_packet().await.expect("a DISCONNECT");
    assert_eq!((kind, body[0]), (0xE0, 0x8B));

    let mut child = std::mem::replace(&mut engine.child, Command::new("true").spawn().unwrap());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status:?} after {sig}");
    assert!(started.elapsed() < STOP_WITHIN, "{sig}: stopped after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly() {
    stops_cleanly_on("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_cleanly() {
    stops_cleanly_on("INT").await;
}

/// The handlers are installed before the ready line: a service manager may signal the
/// moment it reads it (the default action used to kill the engine mid-sentence, about
/// one time in four on a loaded machine).
#[test]
fn a_signal_the_moment_the_ready_line_appears_still_stops_cleanly() {
    for sig in ["TERM", "HUP", "INT", "TERM", "TERM"] {
        let mut engine = EngineProcess::spawn(&[]);
        signal(engine.child.id(), sig);
        if sig == "HUP" {
            // SIGHUP re-reads the security files and the engine goes on.
            signal(engine.child.id(), "TERM");
        }
        let status = engine.child.wait().unwrap();
        assert!(status.success(), "exit status {status:?} after SIG{sig} at the ready line");
    }
}

fn serve_until_exit(args: &[&str]) -> std::process::Output {
    let config = bus_config_dir().join("alicia.toml");
    Command::new(alicia_binary())
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_port_in_use_is_fatal_and_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");

    let out = serve_until_exit(&["--mqtt-listen", &addr, "--http-listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot bind MQTT listener on {addr}")), "{stderr}");

    let out = serve_until_exit(&["--mqtt-listen", "127.0.0.1:0", "--http-listen", &addr]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("cannot bind HTTP listener on {addr}")), "{stderr}");
}

#[test]
fn check_config_lists_every_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("alicia.toml");
    std::fs::write(&bad, "[mqtt]\nio = \"kqueue\"\nport = 1883\n[limits]\nmax_connections = 0\n").unwrap();
    let out = Command::new(alicia_binary()).arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for path in ["mqtt.io:", "mqtt.port: unknown key", "limits.max_connections: 0 is out of range"] {
        assert!(stderr.contains(path), "missing {path:?} in:\n{stderr}");
    }

    let good = bus_config_dir().join("alicia.toml");
    for env in [None, Some("production")] {
        let mut cmd = Command::new(alicia_binary());
        cmd.arg("check-config").arg(&good);
        if let Some(env) = env {
            cmd.args(["--env", env]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{env:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn max_connections_beyond_the_file_descriptor_limit_is_refused_at_start() {
    let config = bus_config_dir().join("alicia.toml");
    // The shipped max_connections (1,000) cannot fit a hard limit of 512 descriptors.
    let script = format!(
        "ulimit -Sn 512 && ulimit -Hn 512 && exec {} serve --config {} --mqtt-listen 127.0.0.1:0 --http-listen 127.0.0.1:0",
        alicia_binary().display(),
        config.display()
    );
    let out = Command::new("bash").args(["-c", &script]).stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("limits.max_connections = 1000 needs 1256 file descriptors") && stderr.contains("512"),
        "{stderr}"
    );
}
