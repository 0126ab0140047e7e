//! [`TlsReloader`]: the server config a listener takes each new connection's from,
//! swapped whole on reload.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::error::TlsError;
use crate::server::{build_server_config, TlsSettings};

/// Holds the current server config. A reload (SIGHUP after `alicia certs revoke`, or a
/// renewed server certificate) rebuilds it from the same files; connections already
/// up keep the config they were accepted with, new ones get the new one.
#[derive(Debug)]
pub struct TlsReloader {
    settings: TlsSettings,
    current: ArcSwap<ServerConfig>,
}

impl TlsReloader {
    /// Builds the first config; a broken file here is a startup error.
    pub fn new(settings: TlsSettings) -> Result<Self, TlsError> {
        let config = build_server_config(&settings)?;
        Ok(Self { settings, current: ArcSwap::new(config) })
    }

    /// Rebuilds the config from the files. When they are broken (a half-finished
    /// renewal, a key that no longer matches) the listener keeps serving the old config
    /// and the error says what to fix: a bad reload must not close the door.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build_server_config(&self.settings)?;
        self.current.store(config);
        Ok(())
    }

    /// The config new connections are accepted with.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// An acceptor over the current config; take one per connection so each gets the
    /// config current when it arrived.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config())
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }
}
