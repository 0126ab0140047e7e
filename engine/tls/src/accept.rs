//! [`accept`]: one connection's TLS handshake under a deadline, and [`HandshakeError`],
//! why a handshake was refused.
//!
//! A listener spawns one `accept` per connection: a client that connects and then says
//! nothing costs its own task until the timeout, never anyone else's handshake.

use std::io;
use std::time::Duration;

use rustls::{CertificateError, Error as RustlsError};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Why a TLS handshake did not complete. [`HandshakeError::error_type`] is the
/// `reason` label of the security-refusal metric, so those strings are stable.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("tls handshake not finished within {0:?}")]
    Timeout(Duration),
    #[error("tls handshake: the client sent no certificate and one is required")]
    CertificateRequired,
    #[error("tls handshake: client certificate not trusted: {0}")]
    CertificateUntrusted(String),
    #[error("tls handshake: client certificate revoked")]
    CertificateRevoked,
    /// Anything else the peer got wrong: no common version or cipher, a bad message,
    /// an alert (it did not trust our certificate, say), plain text on a TLS port.
    #[error("tls handshake: {0}")]
    Protocol(String),
    /// The peer closed or reset the connection mid-handshake.
    #[error("tls handshake: connection lost: {0}")]
    ConnectionLost(io::Error),
}

impl HandshakeError {
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "handshake_timeout",
            Self::CertificateRequired => "certificate_required",
            Self::CertificateUntrusted(_) => "certificate_untrusted",
            Self::CertificateRevoked => "certificate_revoked",
            Self::Protocol(_) => "tls_protocol",
            Self::ConnectionLost(_) => "connection_lost",
        }
    }

    fn from_io(err: io::Error) -> Self {
        // tokio-rustls hands rustls's own error back inside the io::Error.
        match err.get_ref().and_then(|inner| inner.downcast_ref::<RustlsError>()) {
            Some(tls) => Self::from_rustls(tls),
            None => Self::ConnectionLost(err),
        }
    }

    fn from_rustls(err: &RustlsError) -> Self {
        match err {
            RustlsError::NoCertificatesPresented => Self::CertificateRequired,
            RustlsError::InvalidCertificate(CertificateError::Revoked) => Self::CertificateRevoked,
            RustlsError::InvalidCertificate(why) => Self::CertificateUntrusted(why.to_string()),
            other => Self::Protocol(other.to_string()),
        }
    }
}

/// Runs the server side of the handshake on `tcp`, giving up after `timeout`.
/// Take `acceptor` from [`crate::TlsReloader::acceptor`] when the connection arrives.
pub async fn accept(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, HandshakeError> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Err(_) => Err(HandshakeError::Timeout(timeout)),
        Ok(Err(e)) => Err(HandshakeError::from_io(e)),
        Ok(Ok(stream)) => Ok(stream),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_map_to_stable_reasons() {
        let wrap = |e: RustlsError| HandshakeError::from_io(io::Error::new(io::ErrorKind::InvalidData, e));
        assert_eq!(wrap(RustlsError::NoCertificatesPresented).error_type(), "certificate_required");
        let revoked = RustlsError::InvalidCertificate(CertificateError::Revoked);
        assert_eq!(wrap(revoked).error_type(), "certificate_revoked");
        let unknown = RustlsError::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(wrap(unknown).error_type(), "certificate_untrusted");
        assert_eq!(wrap(RustlsError::DecryptError).error_type(), "tls_protocol");
        let eof = HandshakeError::from_io(io::ErrorKind::UnexpectedEof.into());
        assert_eq!(eof.error_type(), "connection_lost");
    }
}
