use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::Mac;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::{sign, sign_encrypted, Keyring, SignatureError, Verifier};

/// 2025-01-08T14:30:00Z, the timestamp of [`command`].
const SENT: u64 = 1_736_346_600;
const WINDOW: Duration = Duration::from_secs(300);

fn keyring() -> Keyring {
    let mut keyring = Keyring::new();
    keyring.insert("kitchen", [1; 32]).unwrap();
    keyring.insert("engine", [2; 32]).unwrap();
    keyring
}

fn verifier() -> Verifier {
    Verifier::new(keyring(), WINDOW, 1_000)
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn command(message_id: &str) -> Value {
    json!({
        "message_id": message_id,
        "timestamp": "2025-01-08T14:30:00Z",
        "source": "voice_router",
        "destination": "device_id:kitchen-light",
        "message_type": "command",
        "priority": "high",
        "ttl": 30,
        "payload": {"data": {"command": "turn_on", "brightness": 0.8}, "metadata": {"session_id": "s-1"}},
        "routing": {"hops": 0, "max_hops": 10, "route": []},
    })
}

fn signed(envelope: &Value, key_id: &str) -> Vec<u8> {
    sign(&serde_json::to_vec(envelope).unwrap(), key_id, &keyring()).unwrap()
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn error_type(verifier: &Verifier, bytes: &[u8]) -> &'static str {
    verifier.verify(bytes, at(SENT)).unwrap_err().error_type()
}

#[test]
fn signed_envelope_verifies_and_passes_through_untouched() {
    let bytes = signed(&command("m-1"), "kitchen");
    let security = &parse(&bytes)["security"];
    assert_eq!(security["key_id"], "kitchen");
    assert_eq!(security["encryption"], Value::Null);

    let verified = verifier().verify(&bytes, at(SENT + 10)).unwrap();
    assert_eq!((verified.key_id.as_str(), verified.message_id.as_str()), ("kitchen", "m-1"));
    assert!(!verified.encrypted);
    assert_eq!(&*verified.bytes, bytes.as_slice());
    assert_eq!(verified.envelope["payload"]["data"]["command"], "turn_on");
}

#[test]
fn resigning_replaces_the_old_security() {
    let once = signed(&command("m-1"), "kitchen");
    let twice = sign(&once, "engine", &keyring()).unwrap();
    assert_eq!(verifier().verify(&twice, at(SENT)).unwrap().key_id, "engine");
}

#[test]
fn tampering_with_any_signed_member_breaks_the_mac() {
    let original = parse(&signed(&command("m-1"), "kitchen"));
    type Tampering = (&'static str, fn(&mut Value));
    let tamperings: [Tampering; 7] = [
        ("payload", |e| e["payload"]["data"]["command"] = json!("unlock")),
        ("metadata", |e| e["payload"]["metadata"]["session_id"] = json!("s-2")),
        ("destination", |e| e["destination"] = json!("device_id:front-door")),
        ("timestamp", |e| e["timestamp"] = json!("2025-01-08T14:30:01Z")),
        ("message_id", |e| e["message_id"] = json!("m-2")),
        ("added member", |e| e["extra"] = json!(true)),
        ("other key id", |e| e["security"]["key_id"] = json!("engine")),
    ];
    for (what, tamper) in tamperings {
        let mut envelope = original.clone();
        tamper(&mut envelope);
        let bytes = serde_json::to_vec(&envelope).unwrap();
        assert_eq!(error_type(&verifier(), &bytes), "bad_signature", "{what}");
    }
}

#[test]
fn routing_changes_and_reformatting_keep_the_signature_valid() {
    let mut envelope = parse(&signed(&command("m-1"), "kitchen"));
    envelope["routing"] = json!({"hops": 3, "max_hops": 10, "route": ["bridge", "router", "relay"]});
    let pretty = serde_json::to_vec_pretty(&envelope).unwrap();
    assert!(verifier().verify(&pretty, at(SENT)).is_ok());
}

#[test]
fn replay_is_refused_per_key_and_message_id() {
    let verifier = verifier();
    let first = signed(&command("m-1"), "kitchen");
    assert!(verifier.verify(&first, at(SENT)).is_ok());
    let replay = verifier.verify(&first, at(SENT + 1)).unwrap_err();
    assert_eq!(replay, SignatureError::Replayed("m-1".into()));
    assert!(replay.to_string().contains("message_id \"m-1\""), "{replay}");
    assert!(
        verifier.verify(&signed(&command("m-1"), "engine"), at(SENT)).is_ok(),
        "another key's m-1 is another message"
    );
    assert_eq!(verifier.replay_len(), 2);
}

#[test]
fn a_new_keyring_takes_effect_and_keeps_the_replay_cache() {
    let verifier = verifier();
    let first = signed(&command("m-1"), "kitchen");
    assert!(verifier.verify(&first, at(SENT)).is_ok());
    let mut reloaded = Keyring::new();
    reloaded.insert("kitchen", [1; 32]).unwrap();
    verifier.set_keyring(reloaded);
    assert_eq!(verifier.keyring().len(), 1);
    assert_eq!(error_type(&verifier, &first), "replayed");
    assert_eq!(error_type(&verifier, &signed(&command("m-2"), "engine")), "unknown_key", "a removed key is refused");
}

#[test]
fn forged_and_stale_envelopes_do_not_enter_the_replay_cache() {
    let verifier = verifier();
    let mut forged = parse(&signed(&command("m-1"), "kitchen"));
    forged["payload"]["data"] = json!("forged");
    assert_eq!(error_type(&verifier, &serde_json::to_vec(&forged).unwrap()), "bad_signature");
    let genuine = signed(&command("m-1"), "kitchen");
    assert_eq!(verifier.verify(&genuine, at(SENT + 301)).unwrap_err().error_type(), "stale");
    assert_eq!(verifier.replay_len(), 0);
    assert!(verifier.verify(&genuine, at(SENT)).is_ok());
}

#[test]
fn timestamps_outside_the_window_either_way_are_stale() {
    let verifier = verifier();
    let bytes = signed(&command("m-1"), "kitchen");
    let old = verifier.verify(&bytes, at(SENT + 301)).unwrap_err();
    assert_eq!(old, SignatureError::Stale { age_seconds: 301, window_seconds: 300 });
    let ahead = verifier.verify(&bytes, at(SENT - 301)).unwrap_err();
    assert_eq!(ahead, SignatureError::Stale { age_seconds: -301, window_seconds: 300 });
    assert!(verifier.verify(&bytes, at(SENT - 300)).is_ok(), "the window's edge is inside");
    assert!(verifier.verify(&signed(&command("m-2"), "kitchen"), UNIX_EPOCH - Duration::from_secs(1)).is_err());
}

#[test]
fn encrypted_round_trip() {
    let plain = serde_json::to_vec(&command("m-1")).unwrap();
    let bytes = sign_encrypted(&plain, "kitchen", &keyring()).unwrap();
    let on_wire = parse(&bytes);
    assert!(on_wire["payload"]["data"].is_string(), "{on_wire}");
    assert_eq!(on_wire["security"]["encryption"], "aes-256-gcm");
    assert!(!String::from_utf8_lossy(&bytes).contains("turn_on"));

    let verified = verifier().verify(&bytes, at(SENT)).unwrap();
    assert!(verified.encrypted);
    assert_eq!(verified.envelope["payload"], command("m-1")["payload"]);
    assert!(verified.envelope.get("security").is_none());
    assert_eq!(parse(&verified.bytes), verified.envelope);
}

#[test]
fn a_payload_sealed_under_another_key_fails_to_decrypt() {
    // Encrypted under `kitchen`, signed under `engine`: the MAC passes and decryption
    // must not. `security.encryption` is outside the signature, so it is set afterwards.
    let plain = serde_json::to_vec(&command("m-1")).unwrap();
    let sealed = parse(&sign_encrypted(&plain, "kitchen", &keyring()).unwrap());
    let mut resigned = parse(&sign(&serde_json::to_vec(&sealed).unwrap(), "engine", &keyring()).unwrap());
    resigned["security"]["encryption"] = json!("aes-256-gcm");
    let error = verifier().verify(&serde_json::to_vec(&resigned).unwrap(), at(SENT)).unwrap_err();
    assert_eq!(error, SignatureError::DecryptFailed("authentication failed"));
    assert_eq!(error.error_type(), "decrypt_failed");
}

#[test]
fn every_refusal_has_its_label() {
    let verifier = verifier();
    let good = parse(&signed(&command("m-1"), "kitchen"));
    let with = |change: &dyn Fn(&mut Value)| {
        let mut envelope = good.clone();
        change(&mut envelope);
        serde_json::to_vec(&envelope).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not_json", b"{\"message_id\":".to_vec()),
        ("not_json", b"[1,2]".to_vec()),
        ("unsigned", serde_json::to_vec(&command("m-1")).unwrap()),
        ("unsigned", with(&|e| e["security"] = Value::Null)),
        ("unsigned", with(&|e| e["security"]["signature"] = Value::Null)),
        ("unknown_key", with(&|e| e["security"]["key_id"] = json!("garage"))),
        ("bad_signature", with(&|e| e["security"]["signature"] = json!("AAAA"))),
        ("malformed", with(&|e| e["security"] = json!("signed"))),
        ("malformed", with(&|e| e["security"]["signature"] = json!("not base64!"))),
        ("malformed", with(&|e| e["security"]["signature"] = json!(12))),
        ("malformed", with(&|e| e["security"]["key_id"] = json!("bad id"))),
        ("malformed", with(&|e| e["security"]["encryption"] = json!("rot13"))),
    ];
    for (label, bytes) in cases {
        let error = verifier.verify(&bytes, at(SENT)).unwrap_err();
        assert_eq!(error.error_type(), label, "{error}");
        assert!(SignatureError::ERROR_TYPES.contains(&label));
    }
}

#[test]
fn signed_envelopes_without_timestamp_or_message_id_are_malformed() {
    // A key holder may sign anything with another tool; the scheme's own members are
    // still checked after the MAC.
    let mut envelope = command("m-1");
    envelope["timestamp"] = json!(SENT);
    let keyring = keyring();
    let mut raw = envelope.as_object().unwrap().clone();
    let mut mac = keyring.get("kitchen").unwrap().mac();
    mac.update(&crate::canonical(&raw));
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    raw.insert("security".into(), json!({"signature": signature, "key_id": "kitchen"}));
    let error = verifier().verify(&serde_json::to_vec(&raw).unwrap(), at(SENT)).unwrap_err();
    assert_eq!(error, SignatureError::Malformed { field: "timestamp", reason: "missing or not a string" });
    assert_eq!(error.to_string(), "timestamp: missing or not a string");
}

#[test]
fn signing_refuses_what_a_receiver_would_refuse() {
    let keyring = keyring();
    let no_id = br#"{"timestamp":"2025-01-08T14:30:00Z","payload":{"data":1}}"#;
    let no_data = br#"{"message_id":"m","timestamp":"2025-01-08T14:30:00Z","payload":{}}"#;
    assert_eq!(sign(b"{", "kitchen", &keyring).unwrap_err().error_type(), "not_json");
    assert_eq!(sign(b"[]", "kitchen", &keyring).unwrap_err().error_type(), "malformed");
    assert_eq!(sign(no_id, "kitchen", &keyring).unwrap_err().to_string(), "message_id: missing or not a string");
    assert_eq!(sign(no_data, "garage", &keyring).unwrap_err().error_type(), "unknown_key");
    assert_eq!(sign_encrypted(no_data, "kitchen", &keyring).unwrap_err().to_string(), "payload.data: missing");
    assert!(sign(no_data, "kitchen", &keyring).is_ok(), "data is only needed to encrypt");
}

#[test]
fn verifier_is_shared_between_threads_and_debug_shows_no_keys() {
    fn shared<T: Send + Sync>() {}
    shared::<Verifier>();
    let debug = format!("{:?}", verifier());
    assert!(
        debug.starts_with(r#"Verifier { keyring: Keyring { key_ids: ["engine", "kitchen"] }, window: 300s"#),
        "{debug}"
    );
}

proptest! {
    #[test]
    fn verify_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = verifier().verify(&bytes, at(SENT));
    }

    #[test]
    fn verify_never_panics_on_damaged_envelopes(index in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = signed(&command("m-1"), "kitchen");
        let at_index = index.index(bytes.len());
        bytes[at_index] = byte;
        let _ = verifier().verify(&bytes, at(SENT));
    }

    #[test]
    fn verify_never_panics_on_arbitrary_json_members(
        timestamp in any::<String>(), message_id in any::<String>(), signature in any::<String>(), now in any::<u64>(),
    ) {
        let envelope = json!({
            "message_id": message_id, "timestamp": timestamp,
            "security": {"signature": signature, "key_id": "kitchen"},
        });
        let _ = verifier().verify(&serde_json::to_vec(&envelope).unwrap(), UNIX_EPOCH + Duration::from_secs(now % (1 << 40)));
    }
}
