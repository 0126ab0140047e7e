//! The development PKI behind `alicia certs`: a CA, the broker's server certificate,
//! one client certificate per device, and the CRL that withdraws them.
//!
//! Everything lives in one directory with fixed names (the same names a mosquitto
//! listener config points at): `ca.crt`, `ca.key`, `server.crt`, `server.key`,
//! `crl.pem`, and `NAME.crt` / `NAME.key` per client. Keys are ECDSA P-256 (small,
//! fast, and understood by every TLS stack a device might run), written mode 0600.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::crl::{self, CrlState, Entry};
use crate::error::PkiError;
use crate::files::{write_atomic, KEY_MODE, PUBLIC_MODE};

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.crt";
pub const SERVER_KEY: &str = "server.key";
pub const CRL: &str = "crl.pem";

/// The names the server certificate carries when none is given: what a device on the
/// same host dials.
pub const DEFAULT_SERVER_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];
/// A client certificate's lifetime unless `--days` says otherwise.
pub const DEFAULT_CLIENT_DAYS: u32 = 365;
/// Longest client name: it becomes an MQTT username and a file name.
pub const MAX_CLIENT_NAME: usize = 64;

const CA_DAYS: i64 = 3650;
/// 825 days is the longest server-certificate lifetime common TLS clients accept.
const SERVER_DAYS: i64 = 825;
/// Certificates start a little in the past so a device whose clock lags the host's
/// by a few minutes does not see them as not yet valid.
const BACKDATE: Duration = Duration::minutes(10);
/// Client names that would overwrite the PKI's own files.
const RESERVED_NAMES: &[&str] = &["ca", "server", "crl"];

/// What [`issue`] wrote.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Uppercase hex, as `openssl x509 -serial` shows it.
    pub serial: String,
    pub not_after: OffsetDateTime,
}

/// What [`revoke`] did.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub serial: String,
    /// The number of the CRL now in `crl.pem`.
    pub crl_number: u64,
    /// The certificate was already on the list; nothing was re-signed.
    pub already: bool,
}

/// Creates the CA, the server certificate for `names` (DNS names and IP addresses;
/// [`DEFAULT_SERVER_NAMES`] when empty) and an empty CRL in `dir`. Refuses to replace
/// an existing CA unless `force`. Returns the files written.
pub fn init(dir: &Path, names: &[String], force: bool) -> Result<Vec<PathBuf>, PkiError> {
    let names: Vec<String> =
        if names.is_empty() { DEFAULT_SERVER_NAMES.iter().map(|s| (*s).to_owned()).collect() } else { names.to_vec() };
    let sans = names.iter().map(|n| server_san(n)).collect::<Result<Vec<_>, _>>()?;
    for existing in [CA_CERT, CA_KEY] {
        let path = dir.join(existing);
        if !force && path.exists() {
            return Err(PkiError::CaExists { path });
        }
    }
    fs::create_dir_all(dir).map_err(|source| PkiError::Io { path: dir.to_owned(), source })?;
    let now = OffsetDateTime::now_utc();

    let ca_key = new_key("the CA key")?;
    let mut ca = CertificateParams::default();
    // The key id in the name tells two development CAs apart, in logs and to peers
    // that look issuers up by name.
    let key_id = ca.key_identifier(&ca_key);
    ca.distinguished_name = dn(&format!("Alicia bus development CA {}", crl::serial_hex(&key_id[..4])));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    ca.not_before = now - BACKDATE;
    ca.not_after = now + Duration::days(CA_DAYS);
    let ca_cert = ca.self_signed(&ca_key).map_err(|source| PkiError::Sign { what: "the CA certificate", source })?;
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca, ca_key);

    let server_key = new_key("the server key")?;
    let mut server = CertificateParams::default();
    server.distinguished_name = dn(&names[0]);
    server.subject_alt_names = sans;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    server.not_before = now - BACKDATE;
    server.not_after = now + Duration::days(SERVER_DAYS);
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .map_err(|source| PkiError::Sign { what: "the server certificate", source })?;

    // CRL number 1: a peer that compares numbers sees every later revoke as newer.
    let crl_pem = CrlState { number: 1, revoked: Vec::new() }.sign(&issuer)?;

    // Each key is written before its certificate, so an interrupted init never leaves
    // a certificate whose key is missing; rerun it with --force.
    let files = [
        (CA_KEY, issuer.key().serialize_pem(), KEY_MODE),
        (CA_CERT, ca_pem, PUBLIC_MODE),
        (SERVER_KEY, server_key.serialize_pem(), KEY_MODE),
        (SERVER_CERT, server_cert.pem(), PUBLIC_MODE),
        (CRL, crl_pem, PUBLIC_MODE),
    ];
    let mut written = Vec::new();
    for (name, contents, mode) in files {
        let path = dir.join(name);
        write_atomic(&path, contents.as_bytes(), mode).map_err(|source| PkiError::Io { path: path.clone(), source })?;
        written.push(path);
    }
    Ok(written)
}

/// Issues a client certificate (EKU clientAuth, CN = `name`) signed by the CA in `dir`,
/// as `NAME.crt` and `NAME.key`. Refuses to replace an existing `NAME.crt`.
pub fn issue(dir: &Path, name: &str, days: u32) -> Result<Issued, PkiError> {
    validate_client_name(name)?;
    if days == 0 {
        return Err(PkiError::ZeroDays);
    }
    let ca = Ca::load(dir)?;
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    if cert_path.exists() {
        return Err(PkiError::CertExists { path: cert_path });
    }
    let now = OffsetDateTime::now_utc();
    let key = new_key("the client key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(i64::from(days));
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(|source| PkiError::Sign { what: "the client certificate", source })?;
    let serial = parse_cert(&cert_path, cert.der())?.raw_serial().to_vec();
    write_atomic(&key_path, key.serialize_pem().as_bytes(), KEY_MODE)
        .map_err(|source| PkiError::Io { path: key_path.clone(), source })?;
    write_atomic(&cert_path, cert.pem().as_bytes(), PUBLIC_MODE)
        .map_err(|source| PkiError::Io { path: cert_path.clone(), source })?;
    Ok(Issued { cert: cert_path, key: key_path, serial: crl::serial_hex(&serial), not_after: params.not_after })
}

/// Puts `NAME.crt`'s serial on the CA's CRL and re-signs `crl.pem` with the next CRL
/// number. Revoking twice is not an error: the second time changes nothing.
pub fn revoke(dir: &Path, name: &str) -> Result<Revoked, PkiError> {
    validate_client_name(name)?;
    let ca = Ca::load(dir)?;
    let cert_path = dir.join(format!("{name}.crt"));
    let pem = read(dir, &cert_path)?;
    let der = first_cert(&cert_path, &pem)?;
    let cert = parse_cert(&cert_path, &der)?;
    // Names alone are not proof: the signature is.
    if cert.issuer().as_raw() != ca.subject.as_slice() || cert.verify_signature(Some(&ca.spki()?)).is_err() {
        return Err(PkiError::ForeignCertificate { path: cert_path, ca: dir.join(CA_CERT) });
    }
    let serial = cert.raw_serial().to_vec();
    let crl_path = dir.join(CRL);
    let mut state = CrlState::parse(&crl_path, &read(dir, &crl_path)?, &ca.subject)?;
    if state.contains(&serial) {
        return Ok(Revoked { serial: crl::serial_hex(&serial), crl_number: state.number, already: true });
    }
    state.number += 1;
    state.revoked.push(Entry { serial: serial.clone(), revoked_at: OffsetDateTime::now_utc() });
    let pem = state.sign(&ca.issuer)?;
    write_atomic(&crl_path, pem.as_bytes(), PUBLIC_MODE).map_err(|source| PkiError::Io { path: crl_path, source })?;
    Ok(Revoked { serial: crl::serial_hex(&serial), crl_number: state.number, already: false })
}

/// A client name becomes the certificate's CN, hence the MQTT username with
/// `use_identity_as_username`, and the stem of two file names: it must be a valid
/// username that cannot be mistaken for a topic wildcard and cannot leave `dir`.
pub fn validate_client_name(name: &str) -> Result<(), PkiError> {
    let bad = |why| Err(PkiError::BadName { name: name.to_owned(), why });
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_CLIENT_NAME {
        return bad("longer than 64 bytes");
    }
    if name.contains(['/', '\\']) {
        return bad("contains a path separator");
    }
    if name.contains(['+', '#']) {
        return bad("contains an MQTT wildcard (+ or #)");
    }
    if name.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if name.starts_with('.') {
        // ".." would be a path, and dot files are where write_atomic keeps temporaries.
        return bad("starts with a dot");
    }
    if RESERVED_NAMES.contains(&name) {
        return bad("reserved for the CA's own files (ca, server, crl)");
    }
    Ok(())
}

/// The CA read back from `dir`, ready to sign.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate's raw subject, to match issuers against.
    subject: Vec<u8>,
    /// The CA certificate's DER, to check signatures with.
    der: Vec<u8>,
    path: PathBuf,
}

impl Ca {
    fn spki(&self) -> Result<x509_parser::x509::SubjectPublicKeyInfo<'_>, PkiError> {
        Ok(parse_cert(&self.path, &self.der)?.tbs_certificate.subject_pki)
    }

    fn load(dir: &Path) -> Result<Self, PkiError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        let cert_pem = read(dir, &cert_path)?;
        let key_pem = read(dir, &key_path)?;
        let key_text = String::from_utf8_lossy(&key_pem);
        let key = KeyPair::from_pem(&key_text).map_err(|e| PkiError::BadFile {
            path: key_path.clone(),
            what: format!("not a usable private key: {e}"),
        })?;
        let der = first_cert(&cert_path, &cert_pem)?;
        let parsed = parse_cert(&cert_path, &der)?;
        if parsed.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
            return Err(PkiError::BadFile {
                path: key_path,
                what: format!("does not match the certificate in {}", cert_path.display()),
            });
        }
        let subject = parsed.subject().as_raw().to_vec();
        let issuer = Issuer::from_ca_cert_der(&der, key).map_err(|e| PkiError::BadFile {
            path: cert_path.clone(),
            what: format!("not a usable CA certificate: {e}"),
        })?;
        Ok(Self { issuer, subject, der: der.to_vec(), path: cert_path })
    }
}

fn read(dir: &Path, path: &Path) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => PkiError::Missing { path: path.to_owned(), dir: dir.to_owned() },
        _ => PkiError::Io { path: path.to_owned(), source },
    })
}

fn first_cert(path: &Path, pem: &[u8]) -> Result<rustls_pki_types::CertificateDer<'static>, PkiError> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .next()
        .ok_or_else(|| PkiError::BadFile { path: path.to_owned(), what: "no PEM certificate in it".into() })?
        .map_err(|e| PkiError::BadFile { path: path.to_owned(), what: format!("not a PEM certificate: {e}") })
}

fn parse_cert<'a>(path: &Path, der: &'a [u8]) -> Result<x509_parser::certificate::X509Certificate<'a>, PkiError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| PkiError::BadFile { path: path.to_owned(), what: format!("not an X.509 certificate: {e}") })
}

fn new_key(what: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|source| PkiError::Sign { what, source })
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Alicia bus");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn server_san(name: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let bad = |why: &str| PkiError::BadHost { name: name.to_owned(), why: why.to_owned() };
    if name.is_empty() || name.len() > 253 {
        return Err(bad("a host name is 1 to 253 characters"));
    }
    if !name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
    }) {
        return Err(bad("not a DNS name or an IP address"));
    }
    name.try_into().map(SanType::DnsName).map_err(|e: rcgen::Error| bad(&e.to_string()))
}
