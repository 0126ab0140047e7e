//! Signed envelopes as a device makes them: a key file made as `alicia keys add` makes
//! it, `[security.signing]` on it, and envelopes signed by Python's standard library
//! exactly as `alicia-signing`'s documentation gives the canonical form.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use alicia_config::{AliciaConfig, SigningSection};
use alicia_envelope::{Destination, Envelope, MessageType};
use alicia_signing::Keyring;
use serde_json::Value;

use crate::engine::test_config;
use crate::gateway::AuditFile;

/// The signed topic the tests use (`require = ["alicia/devices/+/command"]`).
pub const COMMAND: &str = "alicia/devices/kitchen/command";

/// What a device runs: the canonical form and HMAC-SHA256 of the crate documentation,
/// Python's standard library only. Reads an envelope, prints it signed.
const PYTHON_SIGNER: &str = r#"
import base64, hashlib, hmac, json, sys
key_id, key = sys.argv[1], base64.b64decode(sys.argv[2])
envelope = json.loads(sys.stdin.buffer.read())
body = {k: v for k, v in envelope.items() if k not in ("security", "routing")}
canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
mac = hmac.new(key, canonical, hashlib.sha256).digest()
envelope["security"] = {"signature": base64.b64encode(mac).decode(), "key_id": key_id, "encryption": None}
sys.stdout.write(json.dumps(envelope))
"#;

/// The key file: the engine's own key and the kitchen device's, made as `alicia keys
/// add` makes them.
pub struct Keys {
    pub file: PathBuf,
    pub device_secret: String,
}

pub fn write_keys(dir: &Path) -> Keys {
    let engine = Keyring::generate_line("engine").unwrap();
    let device = Keyring::generate_line("kitchen").unwrap();
    let file = dir.join("signing.keys");
    std::fs::write(&file, format!("# test keys\n{engine}\n{device}\n")).unwrap();
    let device_secret = device.split_once(' ').unwrap().1.trim().to_string();
    Keys { file, device_secret }
}

pub fn signing_config(keys: &Keys, audit: &AuditFile) -> AliciaConfig {
    let mut config = test_config();
    config.security.audit_file = Some(audit.path.clone());
    config.security.signing = Some(SigningSection {
        key_file: keys.file.clone(),
        require: vec!["alicia/devices/+/command".into()],
        sign_as: Some("engine".into()),
        window_seconds: 300,
        replay_capacity: 1000,
    });
    config
}

/// A fresh command envelope from the kitchen device.
pub fn command(data: Value) -> Value {
    let envelope = Envelope::new("kitchen-device", Destination::Device("kitchen".into()), MessageType::Command, data);
    serde_json::from_slice(&envelope.encode()).unwrap()
}

/// The envelope signed by the kitchen device's key, in Python.
pub fn python_sign(envelope: &Value, keys: &Keys) -> Vec<u8> {
    python_sign_with(envelope, "kitchen", &keys.device_secret)
}

pub fn python_sign_with(envelope: &Value, key_id: &str, secret: &str) -> Vec<u8> {
    let mut child = Command::new("python3")
        .args(["-c", PYTHON_SIGNER, key_id, secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is installed (make deps)");
    child.stdin.take().unwrap().write_all(envelope.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The `payload.data` of a delivered envelope.
pub fn data_of(payload: &[u8]) -> Value {
    let envelope: Value = serde_json::from_slice(payload).expect("a JSON envelope");
    envelope["payload"]["data"].clone()
}
