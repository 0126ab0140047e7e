//! Password files are read and written the way the real mosquitto 2 does.

mod support;

use alicia_auth::{PasswordFile, Verdict};
use support::{mosquitto_passwd, Mosquitto};

#[test]
fn reads_files_written_by_mosquitto_passwd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords");
    mosquitto_passwd(&["-c", "-b", "-H", "sha512-pbkdf2", "alice", "a-secret"], &path);
    mosquitto_passwd(&["-b", "-H", "sha512", "bob", "b secret"], &path);
    mosquitto_passwd(&["-b", "carol", "ç-ünïcode"], &path);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("alice:$7$101$") && text.contains("bob:$6$"), "{text}");

    let file = PasswordFile::load(&path).unwrap();
    assert_eq!(file.check("alice", b"a-secret"), Verdict::Accepted);
    assert_eq!(file.check("bob", b"b secret"), Verdict::Accepted);
    assert_eq!(file.check("carol", "ç-ünïcode".as_bytes()), Verdict::Accepted);
    assert_eq!(file.check("alice", b"b secret"), Verdict::WrongPassword);
    assert_eq!(file.check("bob", b"a-secret"), Verdict::WrongPassword);
    assert_eq!(file.check("dave", b"a-secret"), Verdict::UnknownUser);
    assert_eq!(file.to_text(), text, "an untouched file is written back byte for byte");
}

#[test]
fn mosquitto_accepts_files_we_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords");
    let mut file = PasswordFile::new();
    file.set("svc", b"s3cret").unwrap();
    file.set("other", b"x").unwrap();
    file.save(&path).unwrap();
    // mosquitto_passwd edits our file in place, and we read its edit back.
    mosquitto_passwd(&["-b", "-H", "sha512", "legacy", "old"], &path);
    let file = PasswordFile::load(&path).unwrap();
    assert_eq!(file.check("legacy", b"old"), Verdict::Accepted);
    assert_eq!(file.check("svc", b"s3cret"), Verdict::Accepted);

    let broker = Mosquitto::start(&format!("allow_anonymous false\npassword_file {}\n", path.display()));
    let ok = broker.publish(Some(("svc", "s3cret")), None, "t");
    assert!(ok.status.success(), "{}\n{}", String::from_utf8_lossy(&ok.stderr), broker.log());
    let legacy = broker.publish(Some(("legacy", "old")), None, "t");
    assert!(legacy.status.success(), "{}", String::from_utf8_lossy(&legacy.stderr));
    for (user, password) in [("svc", "wrong"), ("other", "s3cret"), ("nobody", "s3cret")] {
        let refused = broker.publish(Some((user, password)), None, "t");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success() && stderr.contains("not authorised"), "{user}/{password}: {stderr}");
    }
    let anonymous = broker.publish(None, None, "t");
    assert!(!anonymous.status.success());
}
