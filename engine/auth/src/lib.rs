//! Who may connect and what they may touch: mosquitto-compatible password and ACL files.
//!
//! # Layout
//! - [`passwords`]: [`PasswordFile`], the `mosquitto_passwd` file (`user:$7$…` lines):
//!   load, check a login in constant time, add, remove, save atomically.
//! - `hash`: the two hash formats mosquitto reads, `$7$` (PBKDF2-HMAC-SHA512, what we
//!   write) and `$6$` (salted SHA-512, mosquitto 1.x).
//! - [`acl`]: [`Acl`], the mosquitto `acl_file` (`user`, `topic`, `pattern` lines), and
//!   [`CompiledRules`], one client's rules worked out once at CONNECT for the per-message
//!   checks.
//! - `topic`: MQTT filter matching (`+`, `#`, `$` topics) and the filter-against-filter
//!   questions a SUBSCRIBE check needs.
//! - [`bearer`]: [`BearerToken`], the HTTP API's bearer token from its file, compared in
//!   constant time.
//! - [`cidr`]: [`Cidr`], an address block (`10.0.0.0/8`) and whether a peer is inside,
//!   IPv4-mapped IPv6 peers included.
//! - [`device_token`]: HS256 JWTs for devices ([`device_token::issue`],
//!   [`device_token::verify`], [`TokenKey`] from `[security] token_key_file`), the MQTT
//!   password a device gets from `POST /auth/device`.
//! - `error`: [`AuthError`] and [`LineError`].
//! - `atomic`: writing a file by temp file + rename, mode 0600.
//!
//! Both file formats are checked against the real mosquitto 2.0 (`mosquitto_passwd`,
//! `mosquitto`) in `tests/`; where we are stricter than mosquitto (a malformed line is an
//! error here, mosquitto skips it) the item's doc says so.

pub mod acl;
mod atomic;
pub mod bearer;
pub mod cidr;
pub mod device_token;
mod error;
mod hash;
pub mod passwords;
mod topic;

pub use acl::{Access, Acl, CompiledRules, Identity};
pub use bearer::BearerToken;
pub use cidr::{Cidr, CidrError};
pub use device_token::{DeviceClaims, TokenError, TokenKey};
pub use error::{AuthError, LineError};
pub use passwords::{PasswordFile, Verdict};
