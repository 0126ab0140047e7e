//! Size + SHA-256 checks, and a writer that hashes what it writes so an install is
//! checked without reading the file back.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::ModelsError;
use crate::pinned::Artifact;

/// What is on disk at an artifact's path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Verified,
    Missing,
    Different { size: u64, sha256: String },
}

pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().fold(String::with_capacity(digest.len() * 2), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// Size and SHA-256 of a file, streamed.
pub(crate) fn sha256_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    let mut size = 0;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok((size, hex(&hasher.finalize())));
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
}

/// Compares the file at `path` with its pin; a wrong size is decided without hashing.
pub(crate) fn check(path: &Path, artifact: &Artifact) -> Result<Found, ModelsError> {
    let size = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(err) => return Err(ModelsError::io(path)(err)),
    };
    if size != artifact.size {
        return Ok(Found::Different { size, sha256: "(not computed: wrong size)".into() });
    }
    let (size, sha256) = sha256_file(path).map_err(ModelsError::io(path))?;
    Ok(if sha256 == artifact.sha256 { Found::Verified } else { Found::Different { size, sha256 } })
}

/// Passes writes through and hashes them.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// The inner writer, bytes written and their SHA-256.
    pub(crate) fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex(&self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: Artifact =
        Artifact { path: "abc", size: 3, sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" };

    #[test]
    fn checks_missing_right_and_wrong_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        assert_eq!(check(&path, &ABC).unwrap(), Found::Missing);
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(check(&path, &ABC).unwrap(), Found::Verified);
        std::fs::write(&path, b"abd").unwrap();
        assert!(matches!(check(&path, &ABC).unwrap(), Found::Different { size: 3, .. }));
        std::fs::write(&path, b"abcd").unwrap();
        assert!(matches!(check(&path, &ABC).unwrap(), Found::Different { size: 4, .. }));
    }

    #[test]
    fn the_hashing_writer_matches_a_file_hash() {
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"ab").unwrap();
        writer.write_all(b"c").unwrap();
        let (inner, bytes, sha256) = writer.finish();
        assert_eq!((inner.as_slice(), bytes, sha256.as_str()), (&b"abc"[..], 3, ABC.sha256));
    }
}
