//! The crate's two error enums: [`PkiError`] for making certificates, [`TlsError`] for
//! loading them into a server config. Handshake refusals are [`crate::HandshakeError`],
//! next to the accept that produces them.

use std::path::PathBuf;

/// What went wrong making or changing the development PKI (`alicia certs`).
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// `init` would replace a CA and every certificate it signed.
    #[error("{path}: a CA already exists; pass --force to replace it (every certificate it signed stops working)", path = .path.display())]
    CaExists { path: PathBuf },
    /// `issue` would replace a certificate that may still be in use.
    #[error("{path}: already exists; revoke it (alicia certs revoke) and delete it before issuing the name again", path = .path.display())]
    CertExists { path: PathBuf },
    /// A file the command needs is not there.
    #[error("{path}: missing; run `alicia certs init --dir {dir}` first", path = .path.display(), dir = .dir.display())]
    Missing { path: PathBuf, dir: PathBuf },
    /// A client name that cannot be an MQTT username or a file name.
    #[error("invalid client name {name:?}: {why}")]
    BadName { name: String, why: &'static str },
    /// A certificate valid for no time at all.
    #[error("--days must be at least 1")]
    ZeroDays,
    /// A host name for the server certificate that is neither a DNS name nor an IP.
    #[error("invalid server name {name:?}: {why}")]
    BadHost { name: String, why: String },
    /// A file is there but is not what it should be.
    #[error("{path}: {what}", path = .path.display())]
    BadFile { path: PathBuf, what: String },
    /// `revoke` was given a certificate some other CA signed.
    #[error("{path}: not signed by the CA in {ca}", path = .path.display(), ca = .ca.display())]
    ForeignCertificate { path: PathBuf, ca: PathBuf },
    #[error("{path}: {source}", path = .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// rcgen refused to build or sign something.
    #[error("signing {what}: {source}")]
    Sign { what: &'static str, source: rcgen::Error },
}

impl PkiError {
    /// A short stable name for logs and exit reporting.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::CaExists { .. } => "ca_exists",
            Self::CertExists { .. } => "cert_exists",
            Self::Missing { .. } => "missing_file",
            Self::BadName { .. } => "bad_name",
            Self::ZeroDays => "bad_days",
            Self::BadHost { .. } => "bad_host",
            Self::BadFile { .. } => "bad_file",
            Self::ForeignCertificate { .. } => "foreign_certificate",
            Self::Io { .. } => "io",
            Self::Sign { .. } => "sign",
        }
    }
}

/// What is wrong with the files or settings of a TLS listener.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: missing", path = .path.display())]
    Missing { path: PathBuf },
    #[error("{path}: {source}", path = .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The file holds no PEM block of the kind needed, or a malformed one.
    #[error("{path}: {what}", path = .path.display())]
    BadPem { path: PathBuf, what: String },
    #[error("{key}: the private key does not match the certificate in {cert}", key = .key.display(), cert = .cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{path}: not a usable CA certificate: {why}", path = .path.display())]
    BadCa { path: PathBuf, why: String },
    #[error("{path}: not a usable CRL: {why}", path = .path.display())]
    BadCrl { path: PathBuf, why: String },
    /// Settings that contradict each other (a CRL without a CA, say).
    #[error("tls settings: {0}")]
    Settings(&'static str),
    /// rustls refused the assembled config.
    #[error("tls config: {0}")]
    Config(String),
}

impl TlsError {
    /// A short stable name for logs and the reload metric.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "missing_file",
            Self::Io { .. } => "io",
            Self::BadPem { .. } => "bad_pem",
            Self::KeyMismatch { .. } => "key_mismatch",
            Self::BadCa { .. } => "bad_ca",
            Self::BadCrl { .. } => "bad_crl",
            Self::Settings(_) => "bad_settings",
            Self::Config(_) => "config",
        }
    }
}
