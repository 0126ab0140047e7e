//! The error types of this crate: one per caller (key file, publisher, ingress).

use std::fmt;
use std::path::PathBuf;

/// One bad line of a key file. Never holds key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based, as an editor shows it.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Why a key file could not be read or a key not added or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Every bad line, not just the first, so one edit fixes the file.
    #[error("key file {origin} has {} bad line(s): {}", errors.len(), join(errors))]
    BadLines { origin: String, errors: Vec<LineError> },
    #[error("invalid key id {key_id:?}: {reason}")]
    InvalidKeyId { key_id: String, reason: &'static str },
    #[error("duplicate key id {key_id:?}")]
    DuplicateKeyId { key_id: String },
    #[error("no random numbers for a key: {0}")]
    Random(String),
}

impl KeyringError {
    /// A short stable label for metrics.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::BadLines { .. } => "bad_lines",
            Self::InvalidKeyId { .. } => "invalid_key_id",
            Self::DuplicateKeyId { .. } => "duplicate_key_id",
            Self::Random(_) => "random",
        }
    }

    /// The bad lines, when that is what went wrong.
    pub fn line_errors(&self) -> &[LineError] {
        match self {
            Self::BadLines { errors, .. } => errors,
            _ => &[],
        }
    }
}

fn join(errors: &[LineError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Why an envelope the engine publishes could not be signed. These are bugs or
/// configuration mistakes on our side, not hostile input.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("envelope is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("{field}: {reason}")]
    Malformed { field: &'static str, reason: &'static str },
    #[error("key id {0:?} is not in the keyring")]
    UnknownKey(String),
    #[error("no random numbers for a nonce: {0}")]
    Random(String),
    #[error("payload.data: encryption failed")]
    EncryptFailed,
}

impl SigningError {
    /// A short stable label for metrics.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "not_json",
            Self::Malformed { .. } => "malformed",
            Self::UnknownKey(_) => "unknown_key",
            Self::Random(_) => "random",
            Self::EncryptFailed => "encrypt_failed",
        }
    }
}

/// Why an incoming envelope is refused. A closed set: each variant has a stable
/// [`error_type`](Self::error_type) for the drop counter and the audit record.
///
/// Variants that name a value (`UnknownKey`, `Replayed`) only ever hold a syntactically
/// valid key id or a bounded, signed message id, so logging them is safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("envelope is not a JSON object: {0}")]
    NotJson(String),
    #[error("envelope has no security.signature")]
    Unsigned,
    #[error("security.key_id {0:?} is not in the keyring")]
    UnknownKey(String),
    #[error("security.signature does not match the envelope")]
    BadSignature,
    /// `age_seconds` is now minus the timestamp, negative for a timestamp in the future.
    #[error("timestamp is {age_seconds} s from now (negative: ahead), outside the ±{window_seconds} s window")]
    Stale { age_seconds: i64, window_seconds: u64 },
    #[error("message_id {0:?} under this key was already accepted within the window")]
    Replayed(String),
    #[error("payload.data cannot be decrypted: {0}")]
    DecryptFailed(&'static str),
    #[error("{field}: {reason}")]
    Malformed { field: &'static str, reason: &'static str },
}

impl SignatureError {
    /// Every label [`error_type`](Self::error_type) can return, for pre-registering
    /// counters.
    pub const ERROR_TYPES: [&'static str; 8] =
        ["not_json", "unsigned", "unknown_key", "bad_signature", "stale", "replayed", "decrypt_failed", "malformed"];

    /// A short stable label for metrics.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "not_json",
            Self::Unsigned => "unsigned",
            Self::UnknownKey(_) => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Stale { .. } => "stale",
            Self::Replayed(_) => "replayed",
            Self::DecryptFailed(_) => "decrypt_failed",
            Self::Malformed { .. } => "malformed",
        }
    }
}
