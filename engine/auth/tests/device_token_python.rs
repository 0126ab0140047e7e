//! Device tokens against an independent JWT implementation: Python's standard library
//! (hmac, hashlib, base64, json) signs a token our `verify` must accept, and checks and
//! decodes one our `issue` made.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alicia_auth::device_token::{self, Audience, TokenKey};

/// HS256 as RFC 7515 describes it, written from the RFC, not from our code.
const PYTHON: &str = r#"
import base64, hashlib, hmac, json, sys

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

key = base64.b64decode(sys.argv[2])
if sys.argv[1] == "issue":
    header = b64url(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
    claims = b64url(json.dumps({"sub": sys.argv[3], "iat": int(sys.argv[4]), "exp": int(sys.argv[4]) + 600,
                                "aud": "alicia-mqtt", "jti": "python-1"}, separators=(", ", ": ")).encode())
    signature = hmac.new(key, (header + "." + claims).encode(), hashlib.sha256).digest()
    print(header + "." + claims + "." + b64url(signature))
else:
    header, claims, signature = sys.argv[3].split(".")
    expected = hmac.new(key, (header + "." + claims).encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(expected, unb64url(signature)), "signature"
    assert "=" not in sys.argv[3], "padding"
    print(json.dumps({"header": json.loads(unb64url(header)), "claims": json.loads(unb64url(claims))}))
"#;

fn python(args: &[&str]) -> String {
    let output = Command::new("python3").arg("-c").arg(PYTHON).args(args).output().expect("python3 (make deps)");
    assert!(output.status.success(), "python3: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_token_python_signs_verifies_here() {
    let key = TokenKey::generate().unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let token = python(&["issue", &key.to_base64(), "living-room", &now.to_string()]);
    let claims = device_token::verify(&key, &token, "living-room", UNIX_EPOCH + Duration::from_secs(now)).unwrap();
    assert_eq!((claims.iat, claims.exp, claims.jti.as_str()), (now, now + 600, "python-1"));
    assert_eq!(claims.aud, Audience::One("alicia-mqtt".into()));
    let later = UNIX_EPOCH + Duration::from_secs(now + 600);
    assert_eq!(device_token::verify(&key, &token, "living-room", later).unwrap_err().error_type(), "expired");
}

#[test]
fn a_token_issued_here_checks_and_decodes_in_python() {
    let key = TokenKey::generate().unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let token = device_token::issue(&key, "kitchen", Duration::from_secs(3600), now);
    let decoded: serde_json::Value = serde_json::from_str(&python(&["check", &key.to_base64(), &token])).unwrap();
    assert_eq!(decoded["header"], serde_json::json!({"alg": "HS256", "typ": "JWT"}));
    let claims = &decoded["claims"];
    assert_eq!(claims["sub"], "kitchen");
    assert_eq!(claims["aud"], "alicia-mqtt");
    assert_eq!((claims["iat"].as_u64(), claims["exp"].as_u64()), (Some(1_800_000_000), Some(1_800_003_600)));
    assert!(claims["jti"].as_str().is_some_and(|jti| jti.len() == 22), "{claims}");

    let other = TokenKey::generate().unwrap();
    let output =
        Command::new("python3").arg("-c").arg(PYTHON).args(["check", &other.to_base64(), &token]).output().unwrap();
    assert!(!output.status.success(), "python accepted a token under another key");
}
