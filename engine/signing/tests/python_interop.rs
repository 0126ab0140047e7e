//! A device in Python can sign, seal and check envelopes exactly as the bus does: the
//! canonical bytes, the HMAC, the HKDF-derived AES-256-GCM key, checked against the
//! real `python3` (json, hmac, hashlib, base64; the `cryptography` package for the
//! payload tests).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use alicia_signing::{canonical, sign_encrypted, Keyring, Verifier};
use serde_json::{json, Value};

/// The shared Python prelude: the canonical form and the MAC (standard library only),
/// and `envelope` read from stdin.
const PRELUDE: &str = r#"
import base64, hashlib, hmac, json, os, sys

def canonical(envelope):
    body = {k: v for k, v in envelope.items() if k not in ("security", "routing")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

def mac(key, envelope):
    return hmac.new(key, canonical(envelope), hashlib.sha256).digest()

envelope = json.loads(sys.stdin.buffer.read())
"#;

/// AES-256-GCM and HKDF from the `cryptography` package (Debian `python3-cryptography`,
/// in `make deps`), for the payload tests only.
const AES_PRELUDE: &str = r#"
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

def payload_key(key):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"alicia-bus/payload/aes-256-gcm/v1").derive(key)
"#;

/// 2025-01-08T14:30:00Z.
const SENT: u64 = 1_736_346_600;

fn python(script: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    // Debian's python, where `make deps` installs python3-cryptography.
    let mut child = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is installed (make deps)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "python3 failed: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

fn python_canonical(envelope_json: &str) -> String {
    String::from_utf8(python("sys.stdout.buffer.write(canonical(envelope))", &[], envelope_json.as_bytes())).unwrap()
}

fn our_canonical(envelope_json: &str) -> String {
    let value: Value = serde_json::from_str(envelope_json).unwrap();
    String::from_utf8(canonical(value.as_object().unwrap())).unwrap()
}

/// A keyring with one generated key, loaded from a key file as the engine will, and
/// the key's base64 for the Python side.
fn device_key() -> (Keyring, String, tempfile::TempDir) {
    let line = Keyring::generate_line("device-7").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys");
    std::fs::write(&path, format!("# devices\n{line}\n")).unwrap();
    let keyring = Keyring::load(&path).unwrap();
    let secret = line.split_once(' ').unwrap().1.to_owned();
    (keyring, secret, dir)
}

fn command() -> Value {
    json!({
        "message_id": "6f1c1f2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f",
        "timestamp": "2025-01-08T14:30:00Z",
        "source": "kitchen-panel",
        "destination": "device_id:kitchen-light",
        "message_type": "command",
        "priority": "high",
        "ttl": 30,
        "payload": {"data": {"command": "set", "brightness": 0.8, "scene": "cena ñ 🍝"}, "metadata": {}},
        "routing": {"hops": 0, "max_hops": 10, "route": []},
    })
}

#[test]
fn canonical_bytes_match_python() {
    let envelopes = [
        // A typical command, with the members that are left out.
        command().to_string(),
        // Unicode raw and escaped, surrogate pairs, U+2028, DEL, non-ASCII keys.
        r#"{"text":"café 😀 日本語 \u00e9 \ud83d\ude00 \u2028 \u007f","ключ":1,"Z":2,"a":3,"é":4,"😀":5}"#.into(),
        // Every escape Python writes, and `\/` which it writes back as `/`.
        r#"{"s":"q\" b\\ n\n r\r t\t b\b f\f nul\u0000 us\u001f \/ <>&'"}"#.into(),
        // Nested objects and arrays, unsorted at every level; empty containers.
        r#"{"z":{"y":[{"b":1,"a":[{"d":{},"c":[]}]}],"x":null},"a":[true,false,null,"",{}]}"#.into(),
        // Integers up to the 64-bit edges and floats in both of Python's notations.
        r#"{"i":[0,-1,42,9223372036854775807,-9223372036854775808,18446744073709551615],
            "f":[0.5,1e20,1E-7,1.0,0.1,0.30000000000000004,1e16,1e15,123456.789,-2.5e-300,
                 1.7976931348623157e308,5e-324,0.0001,0.00001,-0.0,100.0,1.5e300,2.5137703611615278e+109]}"#
            .into(),
        // security and routing are dropped only at the top level.
        r#"{"security":{"signature":"x"},"routing":{"hops":2},"payload":{"routing":1,"security":2}}"#.into(),
    ];
    for envelope in envelopes {
        assert_eq!(our_canonical(&envelope), python_canonical(&envelope), "for {envelope}");
    }
}

#[test]
fn random_floats_print_like_python() {
    // Python draws 20 000 finite doubles, from random bit patterns and from the range
    // where shortest digits can tie (|x| around 1e14..1e16 with a binary fraction), and
    // prints them; we read that text and must print the same bytes.
    let script = r#"
import random, struct
floats = []
while len(floats) < 10000:
    value = struct.unpack("<d", random.getrandbits(64).to_bytes(8, "little"))[0]
    if value == value and abs(value) != float("inf"):
        floats.append(value)
for _ in range(10000):
    floats.append(random.choice((1, -1)) * random.randrange(10**14, 10**16) / random.choice((2, 4, 8, 16)))
sys.stdout.buffer.write(canonical({"floats": floats}))
"#;
    let printed = String::from_utf8(python(script, &[], b"{}")).unwrap();
    let theirs = printed.trim_start_matches("{\"floats\":[").trim_end_matches("]}").split(',');
    let ours = our_canonical(&printed);
    let ours = ours.trim_start_matches("{\"floats\":[").trim_end_matches("]}").split(',');
    let differences: Vec<(&str, &str)> = theirs.zip(ours).filter(|(theirs, ours)| theirs != ours).collect();
    assert!(differences.is_empty(), "(python, ours): {differences:?}");
}

#[test]
fn an_envelope_signed_in_python_verifies() {
    let (keyring, secret, _dir) = device_key();
    // Python sends its own, pretty, ASCII-escaped JSON; only the canonical form matters.
    let script = r#"
envelope["security"] = {"signature": base64.b64encode(mac(base64.b64decode(sys.argv[2]), envelope)).decode(),
                        "key_id": sys.argv[1], "encryption": None}
sys.stdout.buffer.write(json.dumps(envelope, indent=2).encode())
"#;
    let signed = python(script, &["device-7", &secret], command().to_string().as_bytes());
    let verifier = Verifier::new(keyring, Duration::from_secs(300), 100);
    let verified = verifier.verify(&signed, UNIX_EPOCH + Duration::from_secs(SENT)).unwrap();
    assert_eq!(verified.key_id, "device-7");
    assert_eq!(verified.envelope["payload"], command()["payload"]);
    assert_eq!(verifier.verify(&signed, UNIX_EPOCH + Duration::from_secs(SENT)).unwrap_err().error_type(), "replayed");
}

#[test]
fn an_envelope_sealed_in_python_decrypts() {
    let (keyring, secret, _dir) = device_key();
    let script = r#"
key = base64.b64decode(sys.argv[2])
nonce = os.urandom(12)
plaintext = json.dumps(envelope["payload"]["data"]).encode()
envelope["payload"]["data"] = base64.b64encode(nonce + AESGCM(payload_key(key)).encrypt(nonce, plaintext, None)).decode()
envelope["security"] = {"signature": base64.b64encode(mac(key, envelope)).decode(),
                        "key_id": sys.argv[1], "encryption": "aes-256-gcm"}
sys.stdout.buffer.write(json.dumps(envelope).encode())
"#;
    let sealed = python(&format!("{AES_PRELUDE}{script}"), &["device-7", &secret], command().to_string().as_bytes());
    assert!(!String::from_utf8_lossy(&sealed).contains("brightness"));
    let verifier = Verifier::new(keyring, Duration::from_secs(300), 100);
    let verified = verifier.verify(&sealed, UNIX_EPOCH + Duration::from_secs(SENT)).unwrap();
    assert!(verified.encrypted);
    assert_eq!(verified.envelope["payload"]["data"], command()["payload"]["data"]);
}

#[test]
fn python_checks_and_opens_what_we_seal() {
    let (keyring, secret, _dir) = device_key();
    let sealed = sign_encrypted(command().to_string().as_bytes(), "device-7", &keyring).unwrap();
    let script = r#"
key = base64.b64decode(sys.argv[2])
security = envelope.pop("security")
assert security["key_id"] == sys.argv[1] and security["encryption"] == "aes-256-gcm", security
assert hmac.compare_digest(base64.b64decode(security["signature"]), mac(key, envelope)), "signature"
blob = base64.b64decode(envelope["payload"]["data"])
data = json.loads(AESGCM(payload_key(key)).decrypt(blob[:12], blob[12:], None))
sys.stdout.buffer.write(json.dumps(data).encode())
"#;
    let data: Value =
        serde_json::from_slice(&python(&format!("{AES_PRELUDE}{script}"), &["device-7", &secret], &sealed)).unwrap();
    assert_eq!(data, command()["payload"]["data"]);
}
