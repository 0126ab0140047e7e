//! AES-256-GCM for `payload.data`, under a key derived from the signing key.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hkdf::Hkdf;
use serde_json::Value;
use sha2::Sha256;

use crate::canonical::write_value;
use crate::error::SigningError;
use crate::keyring::KEY_LEN;

/// The `security.encryption` value of an encrypted envelope.
pub const AES_256_GCM: &str = "aes-256-gcm";
/// HKDF-SHA256 `info` for the payload key; no salt. A separate key for the cipher keeps
/// the MAC key out of a second algorithm, and the label names the use and a version so
/// a future scheme derives a different key.
pub const PAYLOAD_KEY_INFO: &[u8] = b"alicia-bus/payload/aes-256-gcm/v1";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The payload cipher for a signing key.
pub(crate) fn payload_cipher(secret: &[u8; KEY_LEN]) -> Aes256Gcm {
    let mut derived = [0u8; KEY_LEN];
    Hkdf::<Sha256>::new(None, secret)
        .expand(PAYLOAD_KEY_INFO, &mut derived)
        .expect("32 bytes is within HKDF-SHA256's output limit");
    Aes256Gcm::new(&derived.into())
}

/// `base64(nonce ‖ ciphertext ‖ tag)` of the canonical JSON of `data`, with a random
/// 96-bit nonce and no associated data: the signature already binds the ciphertext to
/// the rest of the envelope.
///
/// Random nonces are safe for about 2^32 messages per key, far beyond a home's traffic
/// between key rotations.
pub(crate) fn encrypt(cipher: &Aes256Gcm, data: &Value) -> Result<String, SigningError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).map_err(|error| SigningError::Random(error.to_string()))?;
    let mut plaintext = Vec::with_capacity(128);
    write_value(data, &mut plaintext);
    let sealed =
        cipher.encrypt(Nonce::from_slice(&nonce), plaintext.as_slice()).map_err(|_| SigningError::EncryptFailed)?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(STANDARD.encode(out))
}

/// The inverse of [`encrypt`]; the error says which step failed.
pub(crate) fn decrypt(cipher: &Aes256Gcm, data: &Value) -> Result<Value, &'static str> {
    let Value::String(sealed) = data else {
        return Err("not a string");
    };
    let sealed = STANDARD.decode(sealed).map_err(|_| "not base64")?;
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err("shorter than nonce and tag");
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let plaintext = cipher.decrypt(Nonce::from_slice(nonce), ciphertext).map_err(|_| "authentication failed")?;
    serde_json::from_slice(&plaintext).map_err(|_| "plaintext is not JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_with_fresh_nonces() {
        let cipher = payload_cipher(&[7; KEY_LEN]);
        let data = json!({"command": "turn_on", "brightness": 0.5, "name": "lámpara"});
        let first = encrypt(&cipher, &data).unwrap();
        let second = encrypt(&cipher, &data).unwrap();
        assert_ne!(first, second, "every message gets its own nonce");
        assert_eq!(decrypt(&cipher, &json!(first)).unwrap(), data);
    }

    #[test]
    fn wrong_key_and_damage_fail() {
        let cipher = payload_cipher(&[7; KEY_LEN]);
        let sealed = encrypt(&cipher, &json!([1, 2, 3])).unwrap();
        assert_eq!(decrypt(&payload_cipher(&[8; KEY_LEN]), &json!(sealed)), Err("authentication failed"));

        let mut bytes = STANDARD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(decrypt(&cipher, &json!(STANDARD.encode(&bytes))), Err("authentication failed"));
        assert_eq!(decrypt(&cipher, &json!("%%%")), Err("not base64"));
        assert_eq!(decrypt(&cipher, &json!("AAAA")), Err("shorter than nonce and tag"));
        assert_eq!(decrypt(&cipher, &json!({"a": 1})), Err("not a string"));
    }
}
