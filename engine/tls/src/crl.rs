//! The CA's certificate revocation list: read back from `crl.pem`, extended, re-signed.
//!
//! The CRL itself is the record of what is revoked (no side file to drift from it): each
//! `revoke` parses the current list, adds one serial, bumps the CRL number and signs the
//! whole list again.

use std::path::Path;

use rcgen::{CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber};
use rustls_pki_types::pem::PemObject as _;
use time::{Duration, OffsetDateTime};

use crate::error::PkiError;

/// How long a CRL is good for. OpenSSL-based peers (mosquitto) refuse every client
/// once the CRL's nextUpdate passes, and nothing re-signs a development CRL on a
/// schedule, so it lives as long as the CA does; `revoke` re-signs it anyway.
pub(crate) const CRL_VALIDITY_DAYS: i64 = 3650;

/// One revoked certificate: its serial (DER integer content bytes) and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) serial: Vec<u8>,
    pub(crate) revoked_at: OffsetDateTime,
}

/// What a CRL says, as far as re-signing it needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct CrlState {
    pub(crate) number: u64,
    pub(crate) revoked: Vec<Entry>,
}

impl CrlState {
    /// Parses a PEM CRL; `issuer_subject` is the CA's raw subject, which the CRL's
    /// issuer must equal (a CRL from another CA would silently revoke nothing).
    pub(crate) fn parse(path: &Path, pem: &[u8], issuer_subject: &[u8]) -> Result<Self, PkiError> {
        let bad = |what: String| PkiError::BadFile { path: path.to_owned(), what };
        let der = rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(pem)
            .next()
            .ok_or_else(|| bad("no PEM CRL (BEGIN X509 CRL) in it".into()))?
            .map_err(|e| bad(format!("not a PEM CRL: {e}")))?;
        let (_, crl) = x509_parser::parse_x509_crl(&der).map_err(|e| bad(format!("not an X.509 CRL: {e}")))?;
        if crl.issuer().as_raw() != issuer_subject {
            return Err(bad("issued by another CA than ca.crt".into()));
        }
        let number = match crl.crl_number() {
            None => 0,
            Some(n) => match n.to_u64_digits().as_slice() {
                [] => 0,
                [n] => *n,
                _ => return Err(bad("CRL number does not fit in 64 bits".into())),
            },
        };
        let revoked = crl
            .iter_revoked_certificates()
            .map(|r| Entry { serial: r.raw_serial().to_vec(), revoked_at: r.revocation_date.to_datetime() })
            .collect();
        Ok(Self { number, revoked })
    }

    pub(crate) fn contains(&self, serial: &[u8]) -> bool {
        self.revoked.iter().any(|e| same_serial(&e.serial, serial))
    }

    /// Signs this list as CRL number `self.number`; returns PEM.
    pub(crate) fn sign(&self, issuer: &Issuer<'_, KeyPair>) -> Result<String, PkiError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(CRL_VALIDITY_DAYS),
            crl_number: SerialNumber::from(self.number),
            issuing_distribution_point: None,
            revoked_certs: self
                .revoked
                .iter()
                .map(|e| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&e.serial),
                    revocation_time: e.revoked_at,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let sign_err = |source| PkiError::Sign { what: "the CRL", source };
        params.signed_by(issuer).map_err(sign_err)?.pem().map_err(sign_err)
    }
}

/// Serials compare as integers: DER may carry a leading zero byte (to keep the
/// integer positive) that another encoder leaves off.
pub(crate) fn same_serial(a: &[u8], b: &[u8]) -> bool {
    strip_zeros(a) == strip_zeros(b)
}

fn strip_zeros(s: &[u8]) -> &[u8] {
    let first = s.iter().position(|&b| b != 0).unwrap_or(s.len());
    &s[first..]
}

/// A serial as `openssl x509 -serial` prints it (uppercase hex, colon-free).
pub(crate) fn serial_hex(serial: &[u8]) -> String {
    let s = strip_zeros(serial);
    if s.is_empty() {
        return "00".into();
    }
    s.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_as_integers() {
        assert!(same_serial(&[0, 0x80, 1], &[0x80, 1]));
        assert!(!same_serial(&[1, 2], &[1, 2, 0]));
        assert_eq!(serial_hex(&[0, 0xab, 0x01]), "AB01");
    }
}
