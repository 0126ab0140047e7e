use std::path::PathBuf;

/// Why the audit log could not start, or a flush did not complete.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("audit log queue capacity must be at least 1")]
    ZeroQueue,
    #[error("cannot start the audit log writer thread: {0}")]
    Spawn(std::io::Error),
    #[error("audit log flush did not finish in time")]
    FlushTimeout,
    #[error("audit log writer thread has ended")]
    WriterGone,
}

impl AuditError {
    /// A short stable label for metrics and logs.
    pub fn error_type(&self) -> &'static str {
        match self {
            AuditError::Open { .. } => "open",
            AuditError::ZeroQueue => "zero_queue",
            AuditError::Spawn(_) => "spawn",
            AuditError::FlushTimeout => "flush_timeout",
            AuditError::WriterGone => "writer_gone",
        }
    }
}
