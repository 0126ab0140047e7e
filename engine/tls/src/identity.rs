//! [`peer_identity`]: who a verified client certificate says the client is.

use rustls::ServerConnection;

/// The common name of the client's leaf certificate, once the handshake has verified
/// it; `None` when the client sent no certificate or its subject has no CN (or a CN
/// that is not text). With `use_identity_as_username` this is the MQTT username.
pub fn peer_identity(conn: &ServerConnection) -> Option<String> {
    // rustls only exposes the chain after its verifier accepted it.
    let leaf = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}
