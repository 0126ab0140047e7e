//! Signed and encrypted envelopes: an HMAC-SHA256 signature over the canonical
//! envelope, replay refusal, and optional AES-256-GCM for `payload.data`.
//!
//! # Layout
//! - [`sign`](fn@sign), [`sign_encrypted`]: what the engine publishes on a signed topic
//!   (`sign.rs`).
//! - [`Verifier`]: what arrives on one, checked in a fixed order; [`Verified`] is the
//!   accepted envelope (`verify.rs`, tests in `verify/tests.rs`).
//! - [`Keyring`]: the key file, `KEY_ID BASE64_32_BYTES` per line (`keyring.rs`).
//! - [`canonical`](fn@canonical): the bytes a signature covers, as Python writes them
//!   (`canonical.rs`).
//! - `cipher`: AES-256-GCM for `payload.data` under an HKDF-derived key.
//! - `replay`: the bounded `(key_id, message_id)` cache.
//! - `members`: reading `message_id` and `timestamp`.
//! - `error`: [`SignatureError`] (ingress, with metric labels), [`SigningError`],
//!   [`KeyringError`].
//!
//! Interop with Python (the canonical bytes, a Python-signed envelope, a Python-sealed
//! payload, and the reverse) is checked against the real `python3` in
//! `tests/python_interop.rs`; with `alicia-envelope`'s encoder and decoder in
//! `tests/envelope_crate.rs`.
//!
//! # The signature
//!
//! `security.signature` is standard padded base64 of HMAC-SHA256, keyed with the raw 32
//! bytes of key `security.key_id`, over the **canonical form**: the envelope object
//! without its top-level `security` (the signature itself) and `routing` (changed at
//! every hop) members, written with object keys sorted recursively by code point, no
//! whitespace, and non-ASCII as raw UTF-8. That is, byte for byte, Python's
//!
//! ```python
//! body = {k: v for k, v in envelope.items() if k not in ("security", "routing")}
//! canonical = json.dumps(body, sort_keys=True, separators=(",", ":"),
//!                        ensure_ascii=False).encode("utf-8")
//! mac = hmac.new(key, canonical, hashlib.sha256).digest()
//! envelope["security"] = {"signature": base64.b64encode(mac).decode(),
//!                         "key_id": key_id, "encryption": None}
//! ```
//!
//! Strings escape only `"`, `\` and U+0000..U+001F (`\b \f \n \r \t`, else lowercase
//! `\u00xx`); integers print exactly; floats are read correctly rounded (serde_json's
//! `float_roundtrip`) and print as Python's `repr` (`0.5`, `1.0`, `1e+20`, `1e-05`,
//! shortest digits with ties to even; each test run compares 20 000 floats with
//! Python's). Known differences, none of which a normal envelope meets:
//! - integers outside the 64-bit range (beyond `u64::MAX` or below `i64::MIN`) are read
//!   here as floats, so Python's exact digits and ours differ;
//! - `-0` (an integer) is read here as the float `-0.0` and printed `-0.0`, Python
//!   prints `0`;
//! - duplicate object keys: both keep the last value, but a signer should not send them.
//!
//! `security` is outside the signature, so `security.encryption` is not authenticated:
//! flipping it can only make decryption fail or hand the ciphertext string on as data.
//! A topic that requires encryption checks [`Verified::encrypted`].
//!
//! # Encryption
//!
//! With [`sign_encrypted`], `payload.data` is replaced by standard base64 of
//! `nonce (12) ‖ ciphertext ‖ tag (16)`: AES-256-GCM, random nonce, no associated data,
//! over the canonical JSON of the data. The AES key is HKDF-SHA256 of the envelope key
//! with no salt and info `alicia-bus/payload/aes-256-gcm/v1` ([`PAYLOAD_KEY_INFO`]), 32
//! bytes. Encrypt, then sign: the signature covers the ciphertext, so a forged
//! ciphertext is refused before any decryption.
//!
//! # Verification order
//!
//! Parse (`not_json`) → `security.signature` present (`unsigned`) → key known
//! (`unknown_key`) → MAC in constant time (`bad_signature`) → `timestamp` within
//! ±window of now (`stale`) → `(key_id, message_id)` not seen (`replayed`) → decrypt
//! (`decrypt_failed`). A member of the wrong shape anywhere is `malformed`. The replay
//! cache records a message only after its MAC and timestamp passed, so a forger cannot
//! fill it or pre-empt a genuine message id.
//!
//! # Replay cache sizing
//!
//! The cache remembers at most `replay_capacity` ids and forgets each once its timestamp
//! leaves the window (the window check refuses it from then on). When full it evicts the
//! oldest entry and counts it ([`Verifier::replay_evictions`]): an evicted message could
//! be replayed until its timestamp leaves the window, so give it window × the highest
//! accepted rate (300 s × 200 msg/s = 60 000 entries, a few MB) and alert on evictions.

mod canonical;
mod cipher;
mod error;
mod keyring;
mod members;
mod replay;
mod sign;
mod verify;

pub use canonical::canonical;
pub use cipher::{AES_256_GCM, PAYLOAD_KEY_INFO};
pub use error::{KeyringError, LineError, SignatureError, SigningError};
pub use keyring::{Keyring, KEY_LEN, MAX_KEY_ID_LEN};
pub use members::MAX_MESSAGE_ID_LEN;
pub use sign::{sign, sign_encrypted};
pub use verify::{Verified, Verifier};
