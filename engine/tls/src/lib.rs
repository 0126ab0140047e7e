//! TLS for the MQTT listener.
//!
//! # Layout
//! - [`pki`]: the development PKI behind `alicia certs`: [`pki::init`] (CA, server
//!   certificate, empty CRL), [`pki::issue`] (a client certificate per device),
//!   [`pki::revoke`] (re-signs the CRL).
//! - `crl`: reading, extending and re-signing `crl.pem`.
//! - [`server`]: [`TlsSettings`] and [`build_server_config`], a rustls server config
//!   with optional or required client certificates checked against the CA and CRL.
//! - [`reload`]: [`TlsReloader`], the config a listener serves from, rebuilt on SIGHUP
//!   and kept as it was when the new files are broken.
//! - [`identity`]: [`peer_identity`], the verified client certificate's CN.
//! - [`accept`]: [`accept`], one connection's handshake under a timeout, and
//!   [`HandshakeError`], why a handshake was refused (the refusal metric's label).
//! - [`error`]: [`PkiError`] and [`TlsError`].
//! - `files`: PEM reading with errors naming the file; atomic writes with modes.
//!
//! The crypto is rustls and rcgen on the `ring` provider, for both the certificates
//! and the handshake.

pub mod accept;
mod crl;
pub mod error;
mod files;
pub mod identity;
pub mod pki;
pub mod reload;
pub mod server;

pub use accept::{accept, HandshakeError};
pub use error::{PkiError, TlsError};
pub use identity::peer_identity;
pub use reload::TlsReloader;
pub use server::{build_server_config, TlsSettings};
pub use tokio_rustls::TlsAcceptor;
