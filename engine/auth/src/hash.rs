//! The password hashes mosquitto reads.
//!
//! Confirmed against files written by `mosquitto_passwd` 2.0.11:
//! - `$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA512 of the password with the
//!   decoded salt, 101 iterations by default, 12-byte salt, 64-byte hash.
//! - `$6$<salt>$<hash>`: SHA-512 over the password followed by the decoded salt (not
//!   glibc's sha512-crypt), 12-byte salt, 64-byte hash.
//!
//! Salt and hash are standard base64 with `=` padding.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use crate::AuthError;

/// `mosquitto_passwd`'s default iteration count; we write the same so files stay alike.
pub(crate) const PBKDF2_ITERATIONS: u32 = 101;
const SALT_LEN: usize = 12;
const HASH_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PasswordHash {
    Pbkdf2Sha512 { iterations: u32, salt: Vec<u8>, hash: Vec<u8> },
    Sha512 { salt: Vec<u8>, hash: Vec<u8> },
}

impl PasswordHash {
    /// Parses the part of a password line after `user:`.
    pub(crate) fn parse(text: &str) -> Result<PasswordHash, String> {
        let mut parts = text.split('$');
        if parts.next() != Some("") {
            return Err("the hash does not start with '$' (a plain-text password? run `alicia passwd -U`)".into());
        }
        let scheme = parts.next().unwrap_or_default();
        let rest: Vec<&str> = parts.collect();
        match (scheme, rest.as_slice()) {
            ("7", [iterations, salt, hash]) => {
                let iterations: u32 = iterations.parse().map_err(|_| format!("bad iteration count {iterations:?}"))?;
                if iterations == 0 {
                    return Err("iteration count 0".into());
                }
                Ok(PasswordHash::Pbkdf2Sha512 { iterations, salt: decode("salt", salt)?, hash: decode_hash(hash)? })
            }
            ("6", [salt, hash]) => Ok(PasswordHash::Sha512 { salt: decode("salt", salt)?, hash: decode_hash(hash)? }),
            ("7", _) => Err("a $7$ hash needs $7$iterations$salt$hash".into()),
            ("6", _) => Err("a $6$ hash needs $6$salt$hash".into()),
            (other, _) => Err(format!("unknown hash scheme ${other}$ (mosquitto knows $6$ and $7$)")),
        }
    }

    /// A fresh `$7$` hash with `mosquitto_passwd`'s defaults and a random salt.
    pub(crate) fn new_pbkdf2(password: &[u8]) -> Result<PasswordHash, AuthError> {
        let mut salt = vec![0u8; SALT_LEN];
        getrandom::getrandom(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
        let hash = pbkdf2_sha512(password, &salt, PBKDF2_ITERATIONS, HASH_LEN);
        Ok(PasswordHash::Pbkdf2Sha512 { iterations: PBKDF2_ITERATIONS, salt, hash })
    }

    /// Whether `password` is the one hashed; the final compare is constant time.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        let (computed, stored) = match self {
            PasswordHash::Pbkdf2Sha512 { iterations, salt, hash } => {
                (pbkdf2_sha512(password, salt, *iterations, hash.len()), hash)
            }
            PasswordHash::Sha512 { salt, hash } => {
                let mut digest = Sha512::new();
                digest.update(password);
                digest.update(salt);
                (digest.finalize().to_vec(), hash)
            }
        };
        computed.ct_eq(stored).into()
    }

    /// The text after `user:` in the file.
    pub(crate) fn encode(&self) -> String {
        match self {
            PasswordHash::Pbkdf2Sha512 { iterations, salt, hash } => {
                format!("$7${iterations}${}${}", STANDARD.encode(salt), STANDARD.encode(hash))
            }
            PasswordHash::Sha512 { salt, hash } => format!("$6${}${}", STANDARD.encode(salt), STANDARD.encode(hash)),
        }
    }
}

fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
    out
}

fn decode(what: &str, text: &str) -> Result<Vec<u8>, String> {
    let bytes = STANDARD.decode(text).map_err(|e| format!("the {what} is not base64: {e}"))?;
    if bytes.is_empty() {
        return Err(format!("empty {what}"));
    }
    Ok(bytes)
}

fn decode_hash(text: &str) -> Result<Vec<u8>, String> {
    let hash = decode("hash", text)?;
    // Both schemes produce a SHA-512-sized hash; anything else cannot verify anything.
    if hash.len() != HASH_LEN {
        return Err(format!("the hash is {} bytes, not {HASH_LEN}", hash.len()));
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written by mosquitto_passwd 2.0.11 for the password "pass".
    const MOSQ_7: &str = "$7$101$FuQc9F/N84gcE3Sy$SSxDc+MvSV+sbIQhxIMLb3YQwDupR2cq09tdjHZCHreVi5EiWt8q5RMBU7dYI2CttmI9QX9ftjCX4i3yPaLokQ==";
    const MOSQ_6: &str =
        "$6$tvunUbPoacXsOMxv$VCackRT+yY7eTmVH4f116Ci4EY4YPP85O67gPzVcRHWDDZzHDeQ40ezhBSQKl91nlQXdZZLrs0MYdz1A9kw79A==";

    #[test]
    fn verifies_mosquitto_hashes() {
        for text in [MOSQ_7, MOSQ_6] {
            let hash = PasswordHash::parse(text).unwrap();
            assert!(hash.verify(b"pass"), "{text}");
            assert!(!hash.verify(b"pasS"), "{text}");
            assert!(!hash.verify(b""), "{text}");
            assert_eq!(hash.encode(), text, "round trip");
        }
    }

    #[test]
    fn new_hash_has_mosquitto_defaults() {
        let hash = PasswordHash::new_pbkdf2(b"secret").unwrap();
        let text = hash.encode();
        let parts: Vec<&str> = text.split('$').collect();
        assert_eq!(parts[1], "7");
        assert_eq!(parts[2], "101");
        assert_eq!(STANDARD.decode(parts[3]).unwrap().len(), 12);
        assert_eq!(STANDARD.decode(parts[4]).unwrap().len(), 64);
        assert!(PasswordHash::parse(&text).unwrap().verify(b"secret"));
        assert_ne!(PasswordHash::new_pbkdf2(b"secret").unwrap().encode(), text, "salts differ");
    }

    #[test]
    fn rejects_malformed_hashes() {
        for bad in [
            "plain",
            "$5$abc$def",
            "$7$abc$AAAA$AAAA",
            "$7$0$AAAA$AAAA",
            "$6$AAAA",
            "$6$!!$AAAA",
            "$6$AAAA$AAAA",
            "$7$101$$",
        ] {
            assert!(PasswordHash::parse(bad).is_err(), "{bad}");
        }
    }
}
