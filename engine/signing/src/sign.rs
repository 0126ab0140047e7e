//! Signing what the engine publishes: encrypt (optionally), then MAC the canonical form.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::Mac;
use serde_json::{Map, Value};

use crate::canonical::{canonical, write_value};
use crate::cipher::{self, AES_256_GCM};
use crate::error::SigningError;
use crate::keyring::Keyring;
use crate::members;

/// Returns `envelope_json` with `security = {"signature", "key_id", "encryption": null}`,
/// replacing any `security` it had. The output is the envelope in canonical form
/// (`routing` and `security` included).
///
/// The envelope must be a JSON object with a `message_id` and an RFC 3339 `timestamp`,
/// because a receiver refuses it without them.
pub fn sign(envelope_json: &[u8], key_id: &str, keyring: &Keyring) -> Result<Vec<u8>, SigningError> {
    seal(envelope_json, key_id, keyring, false)
}

/// Like [`sign`], but first replaces `payload.data` with its AES-256-GCM encryption
/// (see the crate documentation) and sets `security.encryption` to `"aes-256-gcm"`.
pub fn sign_encrypted(envelope_json: &[u8], key_id: &str, keyring: &Keyring) -> Result<Vec<u8>, SigningError> {
    seal(envelope_json, key_id, keyring, true)
}

fn seal(envelope_json: &[u8], key_id: &str, keyring: &Keyring, encrypt: bool) -> Result<Vec<u8>, SigningError> {
    let key = keyring.get(key_id).ok_or_else(|| SigningError::UnknownKey(key_id.to_owned()))?;
    let mut value: Value = serde_json::from_slice(envelope_json)?;
    let Value::Object(envelope) = &mut value else {
        return Err(SigningError::Malformed { field: "envelope", reason: "not a JSON object" });
    };
    let malformed = |(field, reason)| SigningError::Malformed { field, reason };
    members::message_id(envelope).map_err(malformed)?;
    members::timestamp_nanos(envelope).map_err(malformed)?;

    if encrypt {
        let data = envelope
            .get_mut("payload")
            .and_then(Value::as_object_mut)
            .and_then(|payload| payload.get_mut("data"))
            .ok_or(SigningError::Malformed { field: "payload.data", reason: "missing" })?;
        *data = Value::String(cipher::encrypt(&key.cipher, data)?);
    }

    let mut mac = key.mac();
    mac.update(&canonical(envelope));
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    let mut security = Map::new();
    security.insert("signature".into(), Value::String(signature));
    security.insert("key_id".into(), Value::String(key_id.to_owned()));
    security.insert("encryption".into(), if encrypt { Value::String(AES_256_GCM.into()) } else { Value::Null });
    envelope.insert("security".into(), Value::Object(security));

    let mut out = Vec::with_capacity(envelope_json.len() + 128);
    write_value(&value, &mut out);
    Ok(out)
}
