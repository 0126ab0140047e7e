//! Envelopes made by `alicia-envelope` sign, verify and decode; its decoder reads the
//! `security` we write.

use std::time::SystemTime;

use alicia_envelope::{Destination, Envelope, MessageType};
use alicia_signing::{sign, sign_encrypted, Keyring, Verifier};
use serde_json::json;

fn keyring() -> Keyring {
    let mut keyring = Keyring::new();
    keyring.insert("engine", [9; 32]).unwrap();
    keyring
}

fn light_on() -> Envelope {
    let data = json!({"command": "turn_on", "brightness": 0.8});
    Envelope::new("voice_router", Destination::Device("kitchen-light".into()), MessageType::Command, data)
}

#[test]
fn what_the_engine_encodes_signs_verifies_and_decodes() {
    let envelope = light_on();
    let signed = sign(&envelope.encode(), "engine", &keyring()).unwrap();
    let verifier = Verifier::new(keyring(), std::time::Duration::from_secs(300), 16);
    verifier.verify(&signed, SystemTime::now()).unwrap();

    let decoded = Envelope::decode(&signed).unwrap();
    let security = decoded.security.clone().unwrap();
    assert_eq!((security.key_id.as_deref(), security.encryption), (Some("engine"), None));
    assert_eq!(decoded.payload, envelope.payload);

    // The bus's own envelopes spell every member, so decoding and encoding again keeps
    // the signature valid; a device's envelope that leaves out defaults would not.
    let mut re_encoded = decoded;
    re_encoded.routing.hops += 1;
    re_encoded.routing.route.push("bridge".into());
    let fresh = Verifier::new(keyring(), std::time::Duration::from_secs(300), 16);
    fresh.verify(&re_encoded.encode(), SystemTime::now()).unwrap();
}

#[test]
fn decrypted_envelopes_decode_like_plain_ones() {
    let envelope = light_on();
    let sealed = sign_encrypted(&envelope.encode(), "engine", &keyring()).unwrap();
    assert_eq!(Envelope::decode(&sealed).unwrap().security.unwrap().encryption.as_deref(), Some("aes-256-gcm"));

    let verifier = Verifier::new(keyring(), std::time::Duration::from_secs(300), 16);
    let verified = verifier.verify(&sealed, SystemTime::now()).unwrap();
    let decoded = Envelope::decode(&verified.bytes).unwrap();
    assert_eq!(decoded.payload, envelope.payload);
    assert_eq!(decoded.security, None);
}
