use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::Mac;

use super::*;

fn key() -> TokenKey {
    TokenKey::from_bytes(&[7u8; 32]).unwrap()
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// A token from hand-written parts, signed with `key` over exactly what is given.
fn forge(key: &TokenKey, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let mut mac = key.mac();
    mac.update(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

#[test]
fn an_issued_token_verifies_until_it_expires() {
    let token = issue(&key(), "kitchen-satellite", Duration::from_secs(3600), at(1_000_000));
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert!(!token.contains('='), "no padding: {token}");
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[0]).unwrap(), br#"{"alg":"HS256","typ":"JWT"}"#);

    let claims = verify(&key(), &token, "kitchen-satellite", at(1_000_000)).unwrap();
    assert_eq!((claims.sub.as_str(), claims.iat, claims.exp), ("kitchen-satellite", 1_000_000, 1_003_600));
    assert_eq!(claims.aud, Audience::One(AUDIENCE.into()));
    assert_eq!(URL_SAFE_NO_PAD.decode(&claims.jti).unwrap().len(), 16);
    assert!(verify(&key(), &token, "kitchen-satellite", at(1_003_599)).is_ok());
    assert_eq!(
        verify(&key(), &token, "kitchen-satellite", at(1_003_600)),
        Err(TokenError::Expired { exp: 1_003_600, now: 1_003_600 })
    );
}

#[test]
fn every_token_has_its_own_id() {
    let a = verify(&key(), &issue(&key(), "d", Duration::from_secs(60), at(5)), "d", at(5)).unwrap();
    let b = verify(&key(), &issue(&key(), "d", Duration::from_secs(60), at(5)), "d", at(5)).unwrap();
    assert_ne!(a.jti, b.jti);
}

#[test]
fn another_device_key_or_audience_is_refused() {
    let token = issue(&key(), "kitchen", Duration::from_secs(60), at(100));
    let err = verify(&key(), &token, "garage", at(100)).unwrap_err();
    assert_eq!(err, TokenError::WrongSubject { expected: "garage".into(), found: "kitchen".into() });
    assert_eq!(err.error_type(), "wrong_subject");

    let other = TokenKey::from_bytes(&[8u8; 32]).unwrap();
    assert_eq!(verify(&other, &token, "kitchen", at(100)), Err(TokenError::BadSignature));

    let claims = r#"{"sub":"kitchen","iat":100,"exp":200,"aud":"alicia-http","jti":"x"}"#;
    let wrong_aud = forge(&key(), HEADER, claims);
    assert_eq!(verify(&key(), &wrong_aud, "kitchen", at(100)), Err(TokenError::WrongAudience));
    let listed = r#"{"sub":"kitchen","iat":100,"exp":200,"aud":["x","alicia-mqtt"],"jti":"x"}"#;
    assert!(verify(&key(), &forge(&key(), HEADER, listed), "kitchen", at(100)).is_ok(), "aud may be a list");
}

#[test]
fn a_changed_byte_anywhere_breaks_the_signature() {
    let token = issue(&key(), "kitchen", Duration::from_secs(60), at(100));
    // A claim swapped for another device's, keeping the old signature.
    let (_, rest) = token.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let claims = r#"{"sub":"garage","iat":100,"exp":99999999999,"aud":"alicia-mqtt","jti":"x"}"#;
    let swapped = format!("{}.{}.{signature}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(claims));
    assert_eq!(verify(&key(), &swapped, "garage", at(100)), Err(TokenError::BadSignature));
    let mut truncated = token.clone();
    truncated.pop();
    assert!(verify(&key(), &truncated, "kitchen", at(100)).is_err());
}

#[test]
fn alg_none_and_other_algorithms_are_refused_before_the_signature() {
    let claims = r#"{"sub":"kitchen","iat":100,"exp":200,"aud":"alicia-mqtt","jti":"x"}"#;
    let none =
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), URL_SAFE_NO_PAD.encode(claims));
    let err = verify(&key(), &none, "kitchen", at(100)).unwrap_err();
    assert_eq!((err.error_type(), err.clone()), ("unsupported_alg", TokenError::UnsupportedAlg("none".into())));
    for alg in ["HS512", "RS256", "hs256"] {
        let token = forge(&key(), &format!(r#"{{"alg":"{alg}"}}"#), claims);
        assert_eq!(verify(&key(), &token, "kitchen", at(100)), Err(TokenError::UnsupportedAlg(alg.into())));
    }
}

#[test]
fn garbage_is_malformed_and_never_panics() {
    let cases = [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        "!!!.e30.AAAA",
        "e30.e30.AAAA",
        "eyJhbGciOiJIUzI1NiJ9.e30.!!",
        "eyJhbGciOiJIUzI1NiJ9.=.AAAA",
        "é.é.é",
    ];
    for case in cases {
        let err = verify(&key(), case, "kitchen", at(100)).unwrap_err();
        assert!(["malformed", "bad_signature"].contains(&err.error_type()), "{case:?}: {err:?}");
    }
    let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(verify(&key(), &huge, "kitchen", at(100)).unwrap_err().error_type(), "malformed");
    // Signed, but the claims are not ours.
    let token = forge(&key(), HEADER, r#"{"sub":"kitchen"}"#);
    assert_eq!(verify(&key(), &token, "kitchen", at(100)).unwrap_err().error_type(), "malformed");
    // Padded base64url is not the compact form.
    let padded = issue(&key(), "kitchen", Duration::from_secs(60), at(100)).replacen('.', "=.", 1);
    assert_eq!(verify(&key(), &padded, "kitchen", at(100)).unwrap_err().error_type(), "malformed");
}

#[test]
fn key_files_are_base64_of_32_bytes_or_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.key");
    let generated = TokenKey::generate().unwrap();
    std::fs::write(&path, format!("{}\n", generated.to_base64())).unwrap();
    let loaded = TokenKey::load(&path).unwrap();
    let token = issue(&generated, "d", Duration::from_secs(60), at(1));
    assert!(verify(&loaded, &token, "d", at(1)).is_ok());
    assert_eq!(format!("{loaded:?}"), "TokenKey(..)");

    std::fs::write(&path, base64::engine::general_purpose::STANDARD_NO_PAD.encode([1u8; 32])).unwrap();
    assert!(TokenKey::load(&path).is_ok(), "padding is optional");
    for (text, problem) in [
        (base64::engine::general_purpose::STANDARD.encode([1u8; 16]), "has 16 bytes; at least 32 are needed"),
        (String::new(), "has 0 bytes"),
        ("not base64 at all!".into(), "is not base64"),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = TokenKey::load(&path).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains(&path.display().to_string()) && shown.contains(problem), "{shown}");
        assert_eq!(err.error_type(), "weak_secret");
    }
    assert_eq!(TokenKey::load(&dir.path().join("absent")).unwrap_err().error_type(), "read");
}
