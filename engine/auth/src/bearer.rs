//! The bearer token of the HTTP API: one secret in a file, compared in constant time.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AuthError;

/// A token shorter than this is too easy to guess to guard an exposed API.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The secret a request must present as `Authorization: Bearer <token>`.
#[derive(Clone)]
pub struct BearerToken {
    /// Only the digest is kept: comparing digests takes the same time whatever the
    /// length of what a client sent, so neither content nor length leaks.
    digest: [u8; 32],
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl BearerToken {
    /// Reads the token from `path`: the whole file, surrounding whitespace trimmed.
    pub fn load(path: &Path) -> Result<BearerToken, AuthError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| AuthError::Read { path: path.to_path_buf(), source })?;
        BearerToken::new(text.trim()).map_err(|problem| AuthError::WeakSecret {
            path: path.to_path_buf(),
            what: "bearer token",
            problem,
        })
    }

    /// A token from its text, or what is wrong with it.
    pub fn new(token: &str) -> Result<BearerToken, String> {
        let chars = token.chars().count();
        if chars < MIN_TOKEN_CHARS {
            return Err(format!("has {chars} characters; at least {MIN_TOKEN_CHARS} are needed"));
        }
        // A client could never send it in one header value.
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("holds whitespace or control characters".into());
        }
        Ok(BearerToken { digest: Sha256::digest(token.as_bytes()).into() })
    }

    /// Whether `presented` is the token.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        bool::from(self.digest.ct_eq(&digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_trimmed_and_only_its_token_matches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("http-token");
        std::fs::write(&path, "  0123456789abcdef-token\n").unwrap();
        let token = BearerToken::load(&path).unwrap();
        assert!(token.matches(b"0123456789abcdef-token"));
        assert!(!token.matches(b"0123456789abcdef-toke"));
        assert!(!token.matches(b"0123456789abcdef-token\n"));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "BearerToken(..)", "the secret never reaches a log");
    }

    #[test]
    fn empty_short_and_missing_files_are_refused_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("http-token");
        for text in ["", " \n", "short-token"] {
            std::fs::write(&path, text).unwrap();
            let err = BearerToken::load(&path).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()) && err.contains("at least 16 are needed"), "{err}");
        }
        let err = BearerToken::load(&dir.path().join("absent")).unwrap_err();
        assert_eq!(err.error_type(), "read");
    }
}
