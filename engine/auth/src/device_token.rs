//! Device tokens: short-lived JWTs (RFC 7519) a device gets from `POST /auth/device`
//! over mutual TLS and presents as its MQTT password, with its device id as username.
//!
//! Only what that needs: HS256 (HMAC-SHA-256, RFC 7518 §3.2) with one key the engine
//! holds, compact serialisation, base64url without padding. The header is
//! `{"alg":"HS256","typ":"JWT"}`; the claims `sub` (device id), `iat`, `exp` (Unix
//! seconds), `aud` (`"alicia-mqtt"`) and `jti` (16 random bytes). Any other `alg`,
//! `none` above all, is refused before the signature is looked at, and the signature
//! is checked (in constant time) before any claim is believed.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::AuthError;

/// The `aud` of every device token: it is good for the MQTT broker and nothing else.
pub const AUDIENCE: &str = "alicia-mqtt";
/// Bytes of key HS256 wants at least (its output size, RFC 7518 §3.2).
pub const KEY_BYTES: usize = 32;
/// A longer "token" is not one of ours; refusing it at once bounds the work a
/// CONNECT with a huge password can cause.
pub const MAX_TOKEN_BYTES: usize = 4096;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

type HmacSha256 = Hmac<Sha256>;

/// The key tokens are signed with: `[security] token_key_file`, the base64 of 32
/// random bytes or more (`openssl rand -base64 32`).
#[derive(Clone)]
pub struct TokenKey {
    bytes: Vec<u8>,
    /// Keyed once; each token clones it.
    mac: HmacSha256,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// Reads a key file: base64 (standard alphabet, padding optional), surrounding
    /// whitespace ignored, at least [`KEY_BYTES`] bytes once decoded.
    pub fn load(path: &Path) -> Result<TokenKey, AuthError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| AuthError::Read { path: path.to_path_buf(), source })?;
        let weak = |problem: String| AuthError::WeakSecret { path: path.to_path_buf(), what: "token key", problem };
        let lenient = GeneralPurpose::new(
            &alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        let bytes = lenient
            .decode(text.trim())
            .map_err(|e| weak(format!("is not base64 ({e}); make one with `openssl rand -base64 32`")))?;
        TokenKey::from_bytes(&bytes).map_err(weak)
    }

    /// A key from its raw bytes, or what is wrong with them.
    pub fn from_bytes(bytes: &[u8]) -> Result<TokenKey, String> {
        if bytes.len() < KEY_BYTES {
            return Err(format!("has {} bytes; at least {KEY_BYTES} are needed", bytes.len()));
        }
        let mac = <HmacSha256 as Mac>::new_from_slice(bytes).map_err(|e| e.to_string())?;
        Ok(TokenKey { bytes: bytes.to_vec(), mac })
    }

    /// A fresh random key.
    pub fn generate() -> Result<TokenKey, AuthError> {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::getrandom(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
        TokenKey::from_bytes(&bytes).map_err(AuthError::Random)
    }

    /// The key as a key file holds it (standard base64, padded).
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.bytes)
    }

    fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceClaims {
    /// The device id: its certificate's CN, and its MQTT username.
    pub sub: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds: the token is refused from this second on.
    pub exp: u64,
    pub aud: Audience,
    /// Unique per token, for audit and, later, revocation.
    pub jti: String,
}

/// `aud` is one string or a list of them (RFC 7519 §4.1.3); we write one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn includes(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// Why a token was refused. [`TokenError::error_type`] is a stable metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a device token: {0}")]
    Malformed(&'static str),
    #[error("device token signature does not match")]
    BadSignature,
    #[error("device token expired at {exp} (now {now})")]
    Expired { exp: u64, now: u64 },
    #[error("device token is for {found:?}, not {expected:?}")]
    WrongSubject { expected: String, found: String },
    #[error("device token is not for {AUDIENCE}")]
    WrongAudience,
    #[error("device token algorithm {0:?} is not accepted (only HS256)")]
    UnsupportedAlg(String),
}

impl TokenError {
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::BadSignature => "bad_signature",
            Self::Expired { .. } => "expired",
            Self::WrongSubject { .. } => "wrong_subject",
            Self::WrongAudience => "wrong_audience",
            Self::UnsupportedAlg(_) => "unsupported_alg",
        }
    }
}

/// A token for `device_id`, valid from `now` for `ttl` (whole seconds).
pub fn issue(key: &TokenKey, device_id: &str, ttl: Duration, now: SystemTime) -> String {
    let iat = unix_seconds(now);
    let claims = DeviceClaims {
        sub: device_id.to_owned(),
        iat,
        exp: iat.saturating_add(ttl.as_secs()),
        aud: Audience::One(AUDIENCE.to_owned()),
        jti: URL_SAFE_NO_PAD.encode(token_id(key, device_id, now)),
    };
    // A struct of strings and integers always serialises.
    let payload = serde_json::to_vec(&claims).unwrap_or_default();
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(payload));
    let mut mac = key.mac();
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// The claims of `token` when it is ours, signed with `key`, for `expected_sub` and
/// the broker, and not expired at `now`.
pub fn verify(key: &TokenKey, token: &str, expected_sub: &str, now: SystemTime) -> Result<DeviceClaims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed("longer than any device token"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three dot-separated parts"));
    };
    let signing_input = &token.as_bytes()[..header.len() + 1 + payload.len()];
    let header: Header = decode_json(header, "header is not base64url", "header is not a JSON object with alg")?;
    if header.alg != "HS256" {
        return Err(TokenError::UnsupportedAlg(header.alg));
    }
    let signature =
        URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    let mut mac = key.mac();
    mac.update(signing_input);
    mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;

    let claims: DeviceClaims =
        decode_json(payload, "claims are not base64url", "claims lack sub, iat, exp, aud or jti")?;
    if !claims.aud.includes(AUDIENCE) {
        return Err(TokenError::WrongAudience);
    }
    if claims.sub != expected_sub {
        return Err(TokenError::WrongSubject { expected: expected_sub.to_owned(), found: claims.sub });
    }
    let now = unix_seconds(now);
    if now >= claims.exp {
        return Err(TokenError::Expired { exp: claims.exp, now });
    }
    Ok(claims)
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

fn decode_json<T: serde::de::DeserializeOwned>(
    part: &str,
    not_base64: &'static str,
    not_json: &'static str,
) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed(not_base64))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed(not_json))
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// 16 random bytes. Should the system's randomness fail, the id is still unique: a
/// digest of the key, the device, the time and a process-wide counter.
fn token_id(key: &TokenKey, device_id: &str, now: SystemTime) -> [u8; 16] {
    let mut id = [0u8; 16];
    if getrandom::getrandom(&mut id).is_ok() {
        return id;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let digest = Sha256::new()
        .chain_update(&key.bytes)
        .chain_update(device_id.as_bytes())
        .chain_update(nanos.to_le_bytes())
        .chain_update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes())
        .finalize();
    id.copy_from_slice(&digest[..16]);
    id
}

#[cfg(test)]
#[path = "device_token_tests.rs"]
mod tests;
