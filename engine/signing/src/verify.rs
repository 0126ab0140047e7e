//! Checking what arrives on a signed topic.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::Mac;
use serde_json::{Map, Value};

use crate::canonical::{canonical, write_value};
use crate::cipher::{self, AES_256_GCM};
use crate::error::SignatureError;
use crate::keyring::{check_key_id, Keyring};
use crate::members;
use crate::replay::ReplayCache;

/// Verifies signed envelopes against a keyring, a clock window and a replay cache.
/// Shared by reference between io threads (`Send + Sync`).
pub struct Verifier {
    /// Swapped whole on reload (SIGHUP, `alicia keys add`) so the replay cache survives.
    keyring: ArcSwap<Keyring>,
    window: Duration,
    replay: ReplayCache,
}

/// An accepted envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified<'a> {
    pub key_id: String,
    pub message_id: String,
    /// Whether `payload.data` arrived encrypted. `security.encryption` is outside the
    /// signature, so a topic that requires encryption must check this flag.
    pub encrypted: bool,
    /// The parsed envelope; decrypted, and without `security`, if it was encrypted.
    pub envelope: Value,
    /// The input itself when it was not encrypted (so it still carries its signature
    /// downstream); otherwise `envelope` in canonical form.
    pub bytes: Cow<'a, [u8]>,
}

struct SecurityFields<'e> {
    signature: Vec<u8>,
    key_id: &'e str,
    encrypted: bool,
}

impl Verifier {
    /// `window`: how far an envelope's `timestamp` may be from `now`, either way.
    /// `replay_capacity`: most message ids remembered (see the crate documentation).
    pub fn new(keyring: Keyring, window: Duration, replay_capacity: usize) -> Verifier {
        Verifier { keyring: ArcSwap::from_pointee(keyring), window, replay: ReplayCache::new(replay_capacity) }
    }

    /// Checks, in this order: JSON object, `security.signature` present, key known,
    /// MAC over the canonical form (constant time), timestamp within the window, and
    /// only then the replay cache, so a forger cannot fill it. Then decrypts.
    pub fn verify<'a>(&self, payload: &'a [u8], now: SystemTime) -> Result<Verified<'a>, SignatureError> {
        let mut value: Value =
            serde_json::from_slice(payload).map_err(|error| SignatureError::NotJson(error.to_string()))?;
        let Value::Object(envelope) = &mut value else {
            return Err(SignatureError::NotJson("not an object".into()));
        };
        let security = security_fields(envelope)?;
        let keyring = self.keyring.load();
        let key = keyring.get(security.key_id).ok_or_else(|| SignatureError::UnknownKey(security.key_id.into()))?;
        let mut mac = key.mac();
        mac.update(&canonical(envelope));
        mac.verify_slice(&security.signature).map_err(|_| SignatureError::BadSignature)?;

        let malformed = |(field, reason)| SignatureError::Malformed { field, reason };
        let timestamp = members::timestamp_nanos(envelope).map_err(malformed)?;
        let now = unix_nanos(now);
        let window = i128::try_from(self.window.as_nanos()).unwrap_or(i128::MAX);
        let age = now - timestamp;
        if age.abs() > window {
            let age_seconds = i64::try_from(age / 1_000_000_000).unwrap_or(if age < 0 { i64::MIN } else { i64::MAX });
            return Err(SignatureError::Stale { age_seconds, window_seconds: self.window.as_secs() });
        }

        let message_id = members::message_id(envelope).map_err(malformed)?.to_owned();
        let key_id = security.key_id.to_owned();
        // Key ids never hold a space, so the pair is unambiguous.
        let replay_id = format!("{key_id} {message_id}");
        if !self.replay.check_and_record(&replay_id, timestamp.saturating_add(window), now) {
            return Err(SignatureError::Replayed(message_id));
        }

        if !security.encrypted {
            return Ok(Verified {
                key_id,
                message_id,
                encrypted: false,
                envelope: value,
                bytes: Cow::Borrowed(payload),
            });
        }
        let data = envelope
            .get_mut("payload")
            .and_then(Value::as_object_mut)
            .and_then(|payload| payload.get_mut("data"))
            .ok_or(SignatureError::DecryptFailed("missing"))?;
        *data = cipher::decrypt(&key.cipher, data).map_err(SignatureError::DecryptFailed)?;
        // The signature covered the ciphertext; it means nothing next to the plaintext.
        envelope.remove("security");
        let mut bytes = Vec::with_capacity(payload.len());
        write_value(&value, &mut bytes);
        Ok(Verified { key_id, message_id, encrypted: true, envelope: value, bytes: Cow::Owned(bytes) })
    }

    /// The keyring in use now.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keyring.load_full()
    }

    /// Uses `keyring` from the next verification on; the replay cache is kept, so a
    /// reload does not reopen a replay.
    pub fn set_keyring(&self, keyring: Keyring) {
        self.keyring.store(Arc::new(keyring));
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Replay cache entries evicted because it was full: each one is a message that
    /// could be replayed until its timestamp leaves the window. Worth an alert.
    pub fn replay_evictions(&self) -> u64 {
        self.replay.evictions()
    }

    /// Message ids currently remembered.
    pub fn replay_len(&self) -> usize {
        self.replay.len()
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keyring", &**self.keyring.load())
            .field("window", &self.window)
            .field("replay_len", &self.replay.len())
            .field("replay_evictions", &self.replay.evictions())
            .finish()
    }
}

fn security_fields(envelope: &Map<String, Value>) -> Result<SecurityFields<'_>, SignatureError> {
    let malformed = |field, reason| SignatureError::Malformed { field, reason };
    let security = match envelope.get("security") {
        None | Some(Value::Null) => return Err(SignatureError::Unsigned),
        Some(Value::Object(security)) => security,
        Some(_) => return Err(malformed("security", "not an object")),
    };
    let signature = match security.get("signature") {
        None | Some(Value::Null) => return Err(SignatureError::Unsigned),
        Some(Value::String(signature)) => {
            STANDARD.decode(signature).map_err(|_| malformed("security.signature", "not standard padded base64"))?
        }
        Some(_) => return Err(malformed("security.signature", "not a string")),
    };
    let key_id = match security.get("key_id") {
        Some(Value::String(key_id)) if check_key_id(key_id).is_ok() => key_id.as_str(),
        _ => return Err(malformed("security.key_id", "missing or not a key id")),
    };
    let encrypted = match security.get("encryption") {
        None | Some(Value::Null) => false,
        Some(Value::String(scheme)) if scheme == AES_256_GCM => true,
        Some(_) => return Err(malformed("security.encryption", "must be null or \"aes-256-gcm\"")),
    };
    Ok(SecurityFields { signature, key_id, encrypted })
}

/// `SystemTime` as signed nanoseconds: no arithmetic on it can panic or wrap.
fn unix_nanos(time: SystemTime) -> i128 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

#[cfg(test)]
mod tests;
