//! The security audit log: every refusal at every door (wrong password, unknown user,
//! anonymous refused, untrusted certificate, denied subscribe or publish, bad signature,
//! replayed message, expired token, rate limit) as one JSON line, rotated by size.
//!
//! # Layout
//! - `record`: [`AuditRecord`], one refusal (time, listener, peer, client id, username,
//!   [`AuditAction`], topic, reason, detail), and how it becomes exactly one line.
//! - `log`: [`AuditLog`], the cheap handle the doors hold ([`AuditLog::record`] never
//!   blocks; a full queue drops and counts), and the one writer thread that drains the
//!   queue in batches, writes, flushes and rotates.
//! - `file`: the live file and its rotation (`audit.log` → `audit.log.1` … `.{keep}`),
//!   reopened when it is moved away or cannot be written.
//! - `error`: [`AuditError`].
//!
//! Metrics (`alicia_security_audit_{written,dropped,failed}_total`) are registered when
//! the log is opened, so open it after the recorder is installed.

mod error;
mod file;
mod log;
mod record;

pub use error::AuditError;
pub use log::{describe_metrics, AuditConfig, AuditLog};
pub use record::{AuditAction, AuditRecord, MAX_FIELD_BYTES};
