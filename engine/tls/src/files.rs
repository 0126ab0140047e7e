//! Reading PEM files into rustls types with errors that name the file, and writing the
//! PKI's files so that a reader never sees half of one.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::error::TlsError;

/// Private keys: owner read/write only.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Certificates and CRLs are public.
pub(crate) const PUBLIC_MODE: u32 = 0o644;

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => TlsError::Missing { path: path.to_owned() },
        _ => TlsError::Io { path: path.to_owned(), source },
    })
}

fn bad_pem(path: &Path, what: impl Into<String>) -> TlsError {
    TlsError::BadPem { path: path.to_owned(), what: what.into() }
}

/// Every certificate in a PEM file, in order (a leaf then its chain, or a CA bundle).
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad_pem(path, "no PEM certificate (BEGIN CERTIFICATE) in it"));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => bad_pem(path, "no PEM private key (BEGIN PRIVATE KEY) in it"),
        e => bad_pem(path, format!("not a PEM private key file: {e}")),
    })
}

/// Every CRL in a PEM file.
pub(crate) fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(path, format!("not a PEM CRL file: {e}")))?;
    if crls.is_empty() {
        return Err(bad_pem(path, "no PEM CRL (BEGIN X509 CRL) in it"));
    }
    Ok(crls)
}

/// Writes `contents` to `path` through a temporary file in the same directory and a
/// rename, so that a listener reloading on SIGHUP reads the old file or the new one,
/// never a torn one, and a key is never world-readable even for a moment (the mode is
/// set at creation, not after).
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        // A leftover temporary from a crash may have been created with another mode.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_sets_the_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.key");
        write_atomic(&path, b"secret", KEY_MODE).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"secret");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.crt");
        assert_eq!(read_certs(&missing).unwrap_err().error_type(), "missing_file");
        let junk = dir.path().join("junk.crt");
        fs::write(&junk, "hello").unwrap();
        let err = read_certs(&junk).unwrap_err();
        assert!(err.to_string().contains("junk.crt"), "{err}");
        assert_eq!(err.error_type(), "bad_pem");
        assert_eq!(read_key(&junk).unwrap_err().error_type(), "bad_pem");
    }
}
