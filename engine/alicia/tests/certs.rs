//! `alicia certs` through the built binary, and its files checked by foreign peers:
//! the `openssl` CLI and a real mosquitto broker with `mosquitto_pub` (`make test`
//! installs both; a run without them fails, since it would check nothing).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn alicia(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alicia")).args(args).output().unwrap()
}

fn ok(output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

fn require(tool: &str) {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
    assert!(found, "{tool} is not installed: run `make test-deps` (make test does it first)");
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// init + issue NAME for each name, through the binary.
fn pki(dir: &Path, clients: &[&str]) {
    ok(alicia(&["certs", "init", "--dir", path(dir)]));
    for name in clients {
        ok(alicia(&["certs", "issue", name, "--dir", path(dir), "--days", "30"]));
    }
}

#[test]
fn init_issue_revoke_through_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dev");
    let d = path(&dir);
    let out = ok(alicia(&["certs", "init", "--dir", d, "--name", "localhost", "--name", "10.0.0.2"]));
    assert!(out.contains("server certificate valid for: localhost, 10.0.0.2"), "{out}");
    for key in ["ca.key", "server.key"] {
        assert_eq!(std::fs::metadata(dir.join(key)).unwrap().permissions().mode() & 0o777, 0o600, "{key}");
    }

    let again = alicia(&["certs", "init", "--dir", d]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already exists") && stderr.contains("--force"), "{stderr}");

    let out = ok(alicia(&["certs", "issue", "hall-speaker", "--dir", d]));
    assert!(out.contains("hall-speaker.crt"), "{out}");
    assert_eq!(std::fs::metadata(dir.join("hall-speaker.key")).unwrap().permissions().mode() & 0o777, 0o600);
    let bad = alicia(&["certs", "issue", "../escape", "--dir", d]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("path separator"));

    let out = ok(alicia(&["certs", "revoke", "hall-speaker", "--dir", d]));
    assert!(out.contains("CRL number 2"), "{out}");
    let out = ok(alicia(&["certs", "revoke", "hall-speaker", "--dir", d]));
    assert!(out.contains("already revoked"), "{out}");

    require("openssl");
    let openssl = |args: &[&str]| Command::new("openssl").args(args).current_dir(&dir).output().unwrap();
    // The server certificate chains to the CA and is fit for a TLS server.
    let out = ok(openssl(&["verify", "-CAfile", "ca.crt", "-purpose", "sslserver", "server.crt"]));
    assert!(out.contains("server.crt: OK"), "{out}");
    let text = ok(openssl(&["x509", "-in", "server.crt", "-noout", "-text"]));
    assert!(text.contains("DNS:localhost") && text.contains("IP Address:10.0.0.2"), "{text}");
    // The CRL parses, is signed by the CA, and lists the revoked serial.
    let crl = ok(openssl(&["crl", "-in", "crl.pem", "-CAfile", "ca.crt", "-noout", "-text"]));
    let serial = ok(openssl(&["x509", "-in", "hall-speaker.crt", "-noout", "-serial"]));
    let serial = serial.trim().trim_start_matches("serial=");
    assert!(crl.contains(serial), "serial {serial} not in {crl}");
    // OpenSSL's own chain check with the CRL refuses the revoked client.
    let revoked = openssl(&["verify", "-crl_check", "-CRLfile", "crl.pem", "-CAfile", "ca.crt", "hall-speaker.crt"]);
    assert!(!revoked.status.success());
    assert!(
        String::from_utf8_lossy(&revoked.stdout).contains("revoked")
            || String::from_utf8_lossy(&revoked.stderr).contains("revoked")
    );
}

/// Kills and reaps the mosquitto this test started.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(broker: &mut Broker, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Some(status) = broker.0.try_wait().unwrap() {
            panic!("mosquitto exited: {status}");
        }
        assert!(Instant::now() < deadline, "mosquitto never listened on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn mosquitto_accepts_our_certificates_and_honours_our_crl() {
    require("mosquitto");
    require("mosquitto_pub");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    pki(dir, &["porch-sensor", "stolen-tablet"]);
    ok(alicia(&["certs", "revoke", "stolen-tablet", "--dir", path(dir)]));

    let port = free_port();
    let log = dir.join("mosquitto.log");
    let conf = dir.join("mosquitto.conf");
    let d = path(dir);
    // mosquitto started as root switches to its own user before it reads the key files,
    // and our keys are 0600: it stays whoever runs the test.
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    std::fs::write(
        &conf,
        format!(
            "user {user}\nper_listener_settings false\nallow_anonymous false\nlog_dest file {log}\nlog_type all\n\
             listener {port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n\
             crlfile {d}/crl.pem\nrequire_certificate true\nuse_identity_as_username true\n",
            log = path(&log),
            user = user.trim(),
        ),
    )
    .unwrap();
    let child =
        Command::new("mosquitto").arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut broker = Broker(child);
    wait_listening(&mut broker, SocketAddr::from(([127, 0, 0, 1], port)));

    let publish = |name: &str| {
        Command::new("timeout")
            .args([
                "20",
                "mosquitto_pub",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "alicia/tls-test",
                "-m",
                "hi",
            ])
            .args(["--cafile", &format!("{d}/ca.crt"), "--cert", &format!("{d}/{name}.crt")])
            .args(["--key", &format!("{d}/{name}.key")])
            .output()
            .unwrap()
    };
    // The device's certificate is its login: CN becomes the username, no password.
    let good = publish("porch-sensor");
    assert!(good.status.success(), "mosquitto_pub failed: {}", String::from_utf8_lossy(&good.stderr));
    let revoked = publish("stolen-tablet");
    assert!(!revoked.status.success(), "a revoked certificate was let in");

    drop(broker);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("u'porch-sensor'"), "no client named porch-sensor in the broker's log:\n{log}");
    assert!(!log.contains("u'stolen-tablet'"), "{log}");
}
