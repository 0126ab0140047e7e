//! Secrets never leave the engine in a config answer: a key named like a secret
//! (password, secret, token, api key, key material) shows `"***"` instead of its value.
//! A file *path* is not a secret (`password_file`, `token_key_file` are shown); the files'
//! contents are never read here at all. Numbers and booleans are shown whatever their
//! name (`token_ttl_seconds` is a duration, not a token).

use serde_json::Value;

pub const REDACTED: &str = "***";

/// Names whose string values are secrets, matched anywhere in the lowercase key.
const SECRET_WORDS: [&str; 6] = ["password", "passwd", "secret", "token", "api_key", "apikey"];
/// Suffixes of keys that name where a secret is, not the secret (`api_key_env`: the
/// environment variable that holds it).
const PATH_SUFFIXES: [&str; 5] = ["_file", "_dir", "_path", "_files", "_env"];

pub(crate) fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if PATH_SUFFIXES.iter().any(|suffix| key.ends_with(suffix)) {
        return false;
    }
    SECRET_WORDS.iter().any(|word| key.contains(word))
        || key == "key"
        || key.ends_with("_key")
        || key.starts_with("key_material")
        || key.contains("private_key")
}

/// `value` with every secret replaced, recursively.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                if is_secret_key(key) && matches!(field, Value::String(_) | Value::Array(_) | Value::Object(_)) {
                    *field = Value::String(REDACTED.into());
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_starred_and_paths_shown() {
        let mut value = json!({
            "llm": {"api_key": "sk-123", "url": "http://x"},
            "mqtt": {"tls": {"key": "/etc/alicia/server.key", "cert": "/etc/alicia/server.pem"}},
            "security": {"password_file": "/etc/passwords", "token_key_file": "/etc/token.key",
                         "admin_password": "hunter2", "client_secret": ["a"], "token_ttl_seconds": 3600},
            "http": {"tls_key": "/etc/k.pem", "token_file": "/etc/t"},
            "users": [{"name": "a", "token": "t0k"}],
            "voice": {"chat": {"api_key_env": "LLM_API_KEY", "api_key_file": "/etc/llm.key"}},
        });
        redact(&mut value);
        assert_eq!(value["llm"]["api_key"], REDACTED);
        assert_eq!(value["llm"]["url"], "http://x");
        assert_eq!(value["mqtt"]["tls"]["key"], REDACTED, "key material is starred even when it is a path");
        assert_eq!(value["mqtt"]["tls"]["cert"], "/etc/alicia/server.pem");
        assert_eq!(value["security"]["password_file"], "/etc/passwords");
        assert_eq!(value["security"]["token_key_file"], "/etc/token.key");
        assert_eq!(value["security"]["admin_password"], REDACTED);
        assert_eq!(value["security"]["client_secret"], REDACTED);
        assert_eq!(value["security"]["token_ttl_seconds"], 3600);
        assert_eq!(value["http"]["tls_key"], REDACTED);
        assert_eq!(value["http"]["token_file"], "/etc/t");
        assert_eq!(value["users"][0]["token"], REDACTED);
        assert_eq!(value["voice"]["chat"]["api_key_env"], "LLM_API_KEY", "where the key is, not the key");
        assert_eq!(value["voice"]["chat"]["api_key_file"], "/etc/llm.key");
    }
}
