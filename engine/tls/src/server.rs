//! [`TlsSettings`] and [`build_server_config`]: the rustls server config of a TLS
//! listener, built from PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{VerifierBuilderError, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, ServerConfig};

use crate::error::TlsError;
use crate::files::{read_certs, read_crls, read_key};

/// A TLS listener's files and client-certificate policy, mosquitto's names and meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server certificate, then any intermediates.
    pub cert: PathBuf,
    /// The server certificate's private key.
    pub key: PathBuf,
    /// The CA(s) client certificates must chain to. Without it no client certificate
    /// is asked for.
    pub ca: Option<PathBuf>,
    /// Refuse clients without a valid certificate (needs `ca`).
    pub require_certificate: bool,
    /// The client certificate's CN is the MQTT username (needs `require_certificate`).
    /// The config does not change with it; the listener reads it.
    pub use_identity_as_username: bool,
    /// Revoked client certificates (needs `ca`). Without it, revocation status is not
    /// checked at all.
    pub crl: Option<PathBuf>,
}

impl TlsSettings {
    /// Server certificate and key only; no client certificates.
    pub fn server_only(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            ca: None,
            require_certificate: false,
            use_identity_as_username: false,
            crl: None,
        }
    }

    /// The files an `alicia certs init --dir DIR` wrote: server certificate, CA and
    /// CRL, client certificates required and their CN the username.
    pub fn from_pki_dir(dir: &Path) -> Self {
        use crate::pki::{CA_CERT, CRL, SERVER_CERT, SERVER_KEY};
        Self {
            cert: dir.join(SERVER_CERT),
            key: dir.join(SERVER_KEY),
            ca: Some(dir.join(CA_CERT)),
            require_certificate: true,
            use_identity_as_username: true,
            crl: Some(dir.join(CRL)),
        }
    }

    fn check(&self) -> Result<(), TlsError> {
        if self.ca.is_none() && self.require_certificate {
            return Err(TlsError::Settings("require_certificate needs a ca file to check certificates against"));
        }
        if self.ca.is_none() && self.crl.is_some() {
            return Err(TlsError::Settings("a crl file needs a ca file (the CRL revokes that CA's certificates)"));
        }
        if self.use_identity_as_username && !self.require_certificate {
            // Else a client without a certificate would have no username at all.
            return Err(TlsError::Settings("use_identity_as_username needs require_certificate"));
        }
        Ok(())
    }
}

/// Builds the server config `settings` describe: TLS 1.3 and 1.2, the `ring` provider,
/// and a client-certificate verifier matching the policy. Every error names the file
/// and what is wrong with it.
///
/// Each call makes a fresh config with its own session cache, so a session resumed
/// after a reload cannot carry a client certificate revoked in between.
pub fn build_server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    settings.check()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified = certified_key(settings, &provider)?;
    let verifier = match &settings.ca {
        None => WebPkiClientVerifier::no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(root_store(ca)?);
            let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            builder = match &settings.crl {
                Some(crl) => builder.with_crls(read_crls(crl)?),
                // Without a CRL there is nothing to know revocation from; with one, a
                // certificate it cannot speak for is refused, not waved through.
                None => builder.allow_unknown_revocation_status(),
            };
            if !settings.require_certificate {
                builder = builder.allow_unauthenticated();
            }
            builder.build().map_err(|e| match (e, &settings.crl) {
                (VerifierBuilderError::InvalidCrl(why), Some(crl)) => {
                    TlsError::BadCrl { path: crl.clone(), why: format!("{why:?}") }
                }
                (e, _) => TlsError::BadCa { path: ca.clone(), why: e.to_string() },
            })?
        }
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    Ok(Arc::new(config))
}

fn certified_key(settings: &TlsSettings, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs(&settings.cert)?;
    let key = read_key(&settings.key)?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            TlsError::KeyMismatch { cert: settings.cert.clone(), key: settings.key.clone() }
        }
        e => TlsError::BadPem { path: settings.key.clone(), what: format!("not a usable private key: {e}") },
    })
}

fn root_store(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots.add(cert).map_err(|e| TlsError::BadCa { path: ca.to_owned(), why: e.to_string() })?;
    }
    Ok(roots)
}
