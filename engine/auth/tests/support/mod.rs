//! A real mosquitto 2 on a free loopback port, and its command-line clients, for
//! checking that our files mean to mosquitto what they mean to us.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A running broker, killed when dropped.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts mosquitto with `listener PORT 127.0.0.1` plus `conf`, and waits until it
    /// accepts connections.
    pub fn start(conf: &str) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let path = dir.path().join("mosquitto.conf");
        // As root, mosquitto would switch to the `mosquitto` user, which cannot read the
        // 0600 files the test wrote; as anyone else it ignores `user`.
        std::fs::write(&path, format!("user root\nlistener {port} 127.0.0.1\n{conf}\n")).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("mosquitto is installed (make deps)");
        let mut broker = Mosquitto { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = broker.child.try_wait().unwrap() {
                panic!("mosquitto exited ({status}): {}", broker.log());
            }
            assert!(Instant::now() < deadline, "mosquitto not listening after 10 s: {}", broker.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default()
    }

    /// `mosquitto_pub` once at QoS 1; the output tells whether the login worked.
    pub fn publish(&self, user: Option<(&str, &str)>, client_id: Option<&str>, topic: &str) -> Output {
        self.publish_message(user, client_id, topic, "x")
    }

    /// `mosquitto_pub` of `message` once at QoS 1.
    pub fn publish_message(
        &self,
        user: Option<(&str, &str)>,
        client_id: Option<&str>,
        topic: &str,
        message: &str,
    ) -> Output {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(["-p", &self.port.to_string(), "-q", "1", "-t", topic, "-m", message]);
        if let Some((name, password)) = user {
            cmd.args(["-u", name, "-P", password]);
        }
        if let Some(id) = client_id {
            cmd.args(["-i", id]);
        }
        cmd.output().unwrap()
    }

    /// Subscribes `filter` as `user`, runs `then` once the SUBACK is in, and returns
    /// whether the message `expected` arrived within 2 s (others, from concurrent cases
    /// on overlapping topics, are ignored).
    pub fn receives(
        &self,
        user: (&str, &str),
        client_id: &str,
        filter: &str,
        expected: &str,
        then: impl FnOnce(),
    ) -> bool {
        // mosquitto_sub's stdout is block-buffered into a pipe; stdbuf makes it line by line
        // so the SUBACK line is seen when it happens.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-p", &self.port.to_string(), "-u", user.0, "-P", user.1, "-i", client_id])
            .args(["-t", filter, "-q", "1", "-W", "2", "-d"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // -d prints "Subscribed (mid: 1): <qos>" when the SUBACK arrives: only then publish.
        for line in lines.by_ref() {
            if line.unwrap().starts_with("Subscribed") {
                break;
            }
        }
        then();
        let received = lines.any(|line| line.unwrap() == expected);
        // Without -C, mosquitto_sub runs until -W's 2 s; not needed past the answer.
        let _ = child.kill();
        child.wait().unwrap();
        received
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `mosquitto_passwd` with `args`, panicking on failure.
pub fn mosquitto_passwd(args: &[&str], file: &Path) {
    let mut cmd = Command::new("mosquitto_passwd");
    let (flags, rest) = args.split_at(
        args.iter().position(|a| !a.starts_with('-') && !["sha512", "sha512-pbkdf2"].contains(a)).unwrap_or(args.len()),
    );
    cmd.args(flags).arg(file).args(rest);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "mosquitto_passwd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}
