//! Debian's mosquitto clients as foreign peers.

use std::process::{Child, Command, Stdio};

/// `mosquitto_pub` with the given arguments; panics unless it exits 0.
pub fn publish(port: u16, args: &[&str]) {
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("mosquitto_pub is installed (make deps)");
    assert!(out.status.success(), "mosquitto_pub {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// `mosquitto_sub` running in the background; `-C n` makes it exit after n messages.
pub fn subscribe(port: u16, args: &[&str]) -> Child {
    Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed (make deps)")
}

/// Waits (on a blocking thread, bounded by `PATIENCE`) for a `mosquitto_sub -C n` to
/// finish and returns its output lines.
pub async fn lines(child: Child) -> Vec<String> {
    let waited = tokio::task::spawn_blocking(move || child.wait_with_output());
    let out = tokio::time::timeout(crate::PATIENCE, waited)
        .await
        .expect("mosquitto_sub finished within the patience window")
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "mosquitto_sub failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}
