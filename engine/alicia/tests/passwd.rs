//! `alicia passwd` writes files mosquitto accepts and edits files mosquitto_passwd wrote.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn alicia_passwd(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alicia"))
        .arg("passwd")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: Output) {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// mosquitto 2 on a free port with `password_file`, killed on drop.
// The temp dir holds the conf, so it lives as long as the broker.
struct Mosquitto(Child, u16, #[allow(dead_code)] tempfile::TempDir);

impl Mosquitto {
    fn start(password_file: &Path) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = dir.path().join("mosquitto.conf");
        // `user root`: as root mosquitto would otherwise become `mosquitto`, who cannot
        // read a 0600 file; as anyone else it is ignored.
        let text = format!(
            "user root\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
            password_file.display()
        );
        std::fs::write(&conf, text).unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (make deps)");
        let mut broker = Mosquitto(child, port, dir);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(broker.0.try_wait().unwrap().is_none(), "mosquitto exited");
            assert!(Instant::now() < deadline, "mosquitto not listening after 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    fn login(&self, user: &str, password: &str) -> Result<(), String> {
        let out = Command::new("mosquitto_pub")
            .args(["-p", &self.1.to_string(), "-u", user, "-P", password, "-t", "t", "-m", "x"])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn files_alicia_passwd_writes_are_accepted_by_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwords");
    let f = file.to_str().unwrap();
    ok(alicia_passwd(&["-c", "-b", f, "svc", "s3cret"], None));
    // Without -b the password is asked twice; from a pipe, as two lines.
    ok(alicia_passwd(&[f, "piped"], Some("p1\np1\n")));
    let mismatch = alicia_passwd(&[f, "other"], Some("a\nb\n"));
    assert!(!mismatch.status.success());
    assert!(String::from_utf8_lossy(&mismatch.stderr).contains("do not match"));
    ok(alicia_passwd(&["-b", f, "gone", "x"], None));
    ok(alicia_passwd(&["-D", f, "gone"], None));
    assert!(!alicia_passwd(&["-D", f, "gone"], None).status.success(), "deleting a missing user fails");
    assert!(!alicia_passwd(&[f, "svc", "pw"], None).status.success(), "a password argument needs -b");

    let broker = Mosquitto::start(&file);
    broker.login("svc", "s3cret").unwrap();
    broker.login("piped", "p1").unwrap();
    for (user, password) in [("svc", "wrong"), ("gone", "x"), ("other", "a")] {
        let err = broker.login(user, password).unwrap_err();
        assert!(err.contains("not authorised"), "{user}: {err}");
    }
}

#[test]
fn edits_files_mosquitto_passwd_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwords");
    let f = file.to_str().unwrap();
    let mosquitto_passwd = |args: &[&str]| {
        let out = Command::new("mosquitto_passwd").args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    mosquitto_passwd(&["-c", "-b", f, "keep", "k"]);
    mosquitto_passwd(&["-b", "-H", "sha512", f, "legacy", "old"]);
    mosquitto_passwd(&["-b", f, "change", "before"]);
    let keep_line = std::fs::read_to_string(&file).unwrap().lines().next().unwrap().to_string();

    ok(alicia_passwd(&["-b", f, "change", "after"], None));
    ok(alicia_passwd(&["-b", f, "added", "new"], None));
    ok(alicia_passwd(&["-D", f, "legacy"], None));
    let text = std::fs::read_to_string(&file).unwrap();
    let users: Vec<&str> = text.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(users, ["keep", "change", "added"], "order kept");
    assert_eq!(text.lines().next().unwrap(), keep_line, "untouched lines kept as they were");

    let broker = Mosquitto::start(&file);
    broker.login("keep", "k").unwrap();
    broker.login("change", "after").unwrap();
    broker.login("added", "new").unwrap();
    assert!(broker.login("change", "before").is_err());
    assert!(broker.login("legacy", "old").is_err());
}

#[test]
fn upgrades_plain_text_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwords");
    std::fs::write(&file, "# services\nsvc:plain-one\nother:plain-two\n").unwrap();
    ok(alicia_passwd(&["-U", file.to_str().unwrap()], None));
    let once = std::fs::read_to_string(&file).unwrap();
    assert!(once.starts_with("# services\nsvc:$7$101$"), "{once}");
    ok(alicia_passwd(&["-U", file.to_str().unwrap()], None));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), once, "a second -U changes nothing");

    let broker = Mosquitto::start(&file);
    broker.login("svc", "plain-one").unwrap();
    broker.login("other", "plain-two").unwrap();
}
