//! The one error type of this crate.

use std::fmt;
use std::path::PathBuf;

/// One bad line of a password or ACL file.
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

/// Why a password or ACL file could not be read, parsed, changed or written.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// Every bad line, not just the first, so one edit fixes the file.
    #[error("{what} {origin} has {} bad line(s): {}", errors.len(), join(errors))]
    BadLines { what: &'static str, origin: String, errors: Vec<LineError> },
    #[error("invalid username {name:?}: {reason}")]
    InvalidUsername { name: String, reason: &'static str },
    #[error("no random numbers for a salt: {0}")]
    Random(String),
    /// A secret file (bearer token, token key) that exists but would not protect much.
    #[error("{}: the {what} {problem}", path.display())]
    WeakSecret { path: PathBuf, what: &'static str, problem: String },
}

impl AuthError {
    /// A short stable label for metrics.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Write { .. } => "write",
            Self::BadLines { .. } => "bad_lines",
            Self::InvalidUsername { .. } => "invalid_username",
            Self::Random(_) => "random",
            Self::WeakSecret { .. } => "weak_secret",
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
