//! The configuration service: the engine's effective config on the bus, updates to it
//! checked, applied live where that is safe and written back to `alicia.toml`, and the
//! file re-read on SIGHUP. The file on disk stays the source of truth.
//!
//! # Layout
//! - `file`: [`ConfigFile`] — where the config comes from (file, environment overlay,
//!   command-line [`Overrides`]) and the atomic write back.
//! - `merge`: an update (JSON or TOML, a section or a few keys) laid over the file's
//!   text with `toml_edit`, comments and order kept.
//! - [`changes`]: which paths an update changes, and which of them are live.
//! - [`redact`]: secrets out of every answer.
//! - `state`: [`ConfigState`] — the config in force and on disk; update and reload.
//! - `service`: [`ConfigService`] — `alicia/system/config/{request,update}` answered on
//!   `alicia/system/config/response` (errors on `.../error`).

pub mod changes;
mod file;
mod merge;
pub mod redact;
mod service;
mod state;

pub use file::{ConfigFile, Overrides};
pub use service::ConfigService;
pub use state::{ConfigState, Outcome, Reconfigure, Status};
