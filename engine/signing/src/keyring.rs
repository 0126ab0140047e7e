//! The key file: one `KEY_ID BASE64_32_BYTES` per line, `#` comments and blank lines.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use aes_gcm::Aes256Gcm;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::cipher;
use crate::error::{KeyringError, LineError};

/// Bytes in one key.
pub const KEY_LEN: usize = 32;
/// Longest accepted key id, so a key id from the wire is always short enough to log.
pub const MAX_KEY_ID_LEN: usize = 64;

/// The shared secrets envelopes are signed with, by key id.
///
/// `Debug` shows the key ids only; the secrets never leave this type except as the
/// keyed MAC and cipher states built from them.
#[derive(Default)]
pub struct Keyring {
    keys: HashMap<String, Key>,
}

/// One key, ready to use: the HMAC state after absorbing the key (cloned per message,
/// which saves hashing the key twice each time) and the AES-256-GCM cipher under the
/// key derived for payloads.
pub(crate) struct Key {
    mac: Hmac<Sha256>,
    pub(crate) cipher: Aes256Gcm,
}

impl Key {
    fn new(secret: &[u8; KEY_LEN]) -> Key {
        let mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
        Key { mac, cipher: cipher::payload_cipher(secret) }
    }

    /// A fresh MAC keyed with this key.
    pub(crate) fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&str> = self.key_ids().collect();
        ids.sort_unstable();
        f.debug_struct("Keyring").field("key_ids", &ids).finish()
    }
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Reads a key file. Every bad line is reported, with its line number.
    pub fn load(path: &Path) -> Result<Keyring, KeyringError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| KeyringError::Read { path: path.to_path_buf(), source })?;
        Keyring::parse(&text, &path.display().to_string())
    }

    /// Parses key file text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Keyring, KeyringError> {
        let mut keyring = Keyring::new();
        let mut first_seen: HashMap<String, usize> = HashMap::new();
        let mut errors = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let mut fields = content.split_whitespace();
            let (Some(key_id), Some(encoded), None) = (fields.next(), fields.next(), fields.next()) else {
                errors.push(LineError { line, message: "expected `KEY_ID BASE64_KEY`".into() });
                continue;
            };
            if let Err(reason) = check_key_id(key_id) {
                errors.push(LineError { line, message: format!("invalid key id {key_id:?}: {reason}") });
                continue;
            }
            if let Some(first) = first_seen.get(key_id) {
                errors
                    .push(LineError { line, message: format!("duplicate key id {key_id:?} (first on line {first})") });
                continue;
            }
            first_seen.insert(key_id.to_owned(), line);
            // The decoder's own message can quote a byte of the key; say only what is wrong.
            let Ok(secret) = STANDARD.decode(encoded) else {
                errors.push(LineError { line, message: format!("key {key_id:?}: not standard padded base64") });
                continue;
            };
            let Ok(secret) = <[u8; KEY_LEN]>::try_from(secret.as_slice()) else {
                let message = format!("key {key_id:?}: {} bytes, expected {KEY_LEN}", secret.len());
                errors.push(LineError { line, message });
                continue;
            };
            keyring.keys.insert(key_id.to_owned(), Key::new(&secret));
        }
        if errors.is_empty() {
            Ok(keyring)
        } else {
            Err(KeyringError::BadLines { origin: origin.to_owned(), errors })
        }
    }

    /// Adds a key, for keys that come from somewhere other than a file.
    pub fn insert(&mut self, key_id: &str, secret: [u8; KEY_LEN]) -> Result<(), KeyringError> {
        check_key_id(key_id).map_err(|reason| KeyringError::InvalidKeyId { key_id: key_id.to_owned(), reason })?;
        if self.keys.contains_key(key_id) {
            return Err(KeyringError::DuplicateKeyId { key_id: key_id.to_owned() });
        }
        self.keys.insert(key_id.to_owned(), Key::new(&secret));
        Ok(())
    }

    /// A new key file line `KEY_ID BASE64_KEY` (no newline) holding 32 bytes from the
    /// operating system's CSPRNG.
    pub fn generate_line(key_id: &str) -> Result<String, KeyringError> {
        check_key_id(key_id).map_err(|reason| KeyringError::InvalidKeyId { key_id: key_id.to_owned(), reason })?;
        let mut secret = [0u8; KEY_LEN];
        getrandom::getrandom(&mut secret).map_err(|error| KeyringError::Random(error.to_string()))?;
        Ok(format!("{key_id} {}", STANDARD.encode(secret)))
    }

    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// The key ids, in no particular order.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn get(&self, key_id: &str) -> Option<&Key> {
        self.keys.get(key_id)
    }
}

/// Key ids are 1 to 64 of `A-Z a-z 0-9 . _ -`: safe in a file, a log line and a
/// metric-free audit record, and never confusable with the separator.
pub(crate) fn check_key_id(key_id: &str) -> Result<(), &'static str> {
    if key_id.is_empty() {
        return Err("empty");
    }
    if key_id.len() > MAX_KEY_ID_LEN {
        return Err("longer than 64 characters");
    }
    if !key_id.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')) {
        return Err("only A-Z a-z 0-9 . _ - are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32

    #[test]
    fn parses_keys_comments_and_blank_lines() {
        let text = format!("# kitchen devices\n\n  kitchen-1 {KEY_A}  \n\tengine.v2\t{KEY_A}\n   # trailing\n");
        let keyring = Keyring::parse(&text, "test").unwrap();
        assert_eq!(keyring.len(), 2);
        assert!(keyring.contains("kitchen-1") && keyring.contains("engine.v2"));
        assert!(!keyring.contains("KITCHEN-1"), "key ids are case-sensitive");
    }

    #[test]
    fn reports_every_bad_line_with_its_number() {
        let text = format!(
            "ok {KEY_A}\nbad!id {KEY_A}\nshort AAAA\nnotb64 ***\nok {KEY_A}\nlonely\nthree fields here\n{} {KEY_A}\n",
            "x".repeat(65)
        );
        let error = Keyring::parse(&text, "keys.txt").unwrap_err();
        assert_eq!(error.error_type(), "bad_lines");
        let lines: Vec<usize> = error.line_errors().iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8]);
        let messages: Vec<&str> = error.line_errors().iter().map(|e| e.message.as_str()).collect();
        assert!(messages[0].contains("invalid key id"), "{messages:?}");
        assert!(messages[1].contains("3 bytes, expected 32"), "{messages:?}");
        assert!(messages[2].contains("not standard padded base64"), "{messages:?}");
        assert!(messages[3].contains("duplicate key id \"ok\" (first on line 1)"), "{messages:?}");
        assert!(messages[4].contains("expected `KEY_ID BASE64_KEY`"), "{messages:?}");
        assert!(messages[6].contains("longer than 64"), "{messages:?}");
        assert!(error.to_string().starts_with("key file keys.txt has 7 bad line(s): line 2: "), "{error}");
        assert!(!error.to_string().contains(KEY_A), "errors never quote a key");
    }

    #[test]
    fn load_names_the_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");
        let error = Keyring::load(&path).unwrap_err();
        assert_eq!(error.error_type(), "read");
        assert!(error.to_string().contains("absent"), "{error}");

        std::fs::write(&path, format!("a {KEY_A}\n")).unwrap();
        assert!(Keyring::load(&path).unwrap().contains("a"));
    }

    #[test]
    fn generated_lines_parse_and_differ() {
        let first = Keyring::generate_line("new-key").unwrap();
        let second = Keyring::generate_line("new-key").unwrap();
        assert_ne!(first, second);
        assert!(Keyring::parse(&first, "generated").unwrap().contains("new-key"));
        assert_eq!(Keyring::generate_line("no spaces").unwrap_err().error_type(), "invalid_key_id");
    }

    #[test]
    fn insert_refuses_bad_and_duplicate_ids() {
        let mut keyring = Keyring::new();
        keyring.insert("a", [1; KEY_LEN]).unwrap();
        assert_eq!(keyring.insert("a", [2; KEY_LEN]).unwrap_err().error_type(), "duplicate_key_id");
        assert_eq!(keyring.insert("", [2; KEY_LEN]).unwrap_err().error_type(), "invalid_key_id");
    }

    #[test]
    fn debug_shows_ids_but_never_keys() {
        let keyring = Keyring::parse(&format!("b {KEY_A}\na {KEY_A}\n"), "test").unwrap();
        let debug = format!("{keyring:?}");
        assert_eq!(debug, r#"Keyring { key_ids: ["a", "b"] }"#);
    }
}
