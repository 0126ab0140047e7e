//! Rules for the doors that are not MQTT when they face the network: the HTTP API needs
//! its bearer token once it listens beyond loopback, the secret files it names must hold
//! a usable secret, and the Wyoming allow list must let someone in.
//!
//! The secret files are read here, by the same code the engine uses at start, so
//! `alicia check-config` finds a missing or weak one before a deployment does.

use alicia_auth::{BearerToken, TokenKey};

use crate::check::ConfigErrors;
use crate::model::AliciaConfig;

pub(crate) fn check(c: &AliciaConfig, errors: &mut ConfigErrors) {
    let http = &c.http;
    match &http.token_file {
        Some(path) => {
            if let Err(e) = BearerToken::load(path) {
                errors.push("http.token_file", e.to_string());
            }
        }
        None if !http.listen.ip().to_canonical().is_loopback() => errors.push(
            "http.listen",
            format!("{} is not a loopback address: exposing the HTTP API needs [http] token_file", http.listen),
        ),
        None => {}
    }
    device_tokens(c, errors);
    if c.wyoming.allow.is_empty() {
        errors.push("wyoming.allow", "empty: no client could connect (list 127.0.0.0/8 and ::1/128 for loopback only)");
    }
}

/// The HTTPS listener of `POST /auth/device` needs its certificate, its key, the CA
/// of the devices and the key tokens are signed with.
fn device_tokens(c: &AliciaConfig, errors: &mut ConfigErrors) {
    let http = &c.http;
    crate::check::in_range(
        errors,
        "http.token_ttl_seconds",
        usize::try_from(http.token_ttl_seconds).unwrap_or(usize::MAX),
        60,
        86_400,
    );
    if let Some(path) = &c.security.token_key_file {
        if let Err(e) = TokenKey::load(path) {
            errors.push("security.token_key_file", e.to_string());
        }
    }
    let Some(tls_listen) = http.tls_listen else { return };
    let needed = [("tls_cert", &http.tls_cert), ("tls_key", &http.tls_key), ("tls_ca", &http.tls_ca)];
    for (key, value) in needed {
        if value.is_none() {
            errors.push(format!("http.{key}"), "needed by http.tls_listen (the HTTPS listener of POST /auth/device)");
        }
    }
    if c.security.token_key_file.is_none() {
        errors.push("security.token_key_file", "needed by http.tls_listen: device tokens are signed with it");
    }
    if tls_listen.port() != 0 && (tls_listen == http.listen || tls_listen == c.mqtt.listen) {
        errors.push("http.tls_listen", format!("{tls_listen} is already http.listen or mqtt.listen"));
    }
}

#[cfg(test)]
mod tests {
    use crate::AliciaConfig;

    use crate::tests::error_lines as errors;

    #[test]
    fn the_doors_default_to_loopback_and_wyoming_allows_only_it() {
        let c = AliciaConfig::default();
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.wyoming.listen.to_string(), "127.0.0.1:10300");
        let allow: Vec<String> = c.wyoming.allow.iter().map(ToString::to_string).collect();
        assert_eq!(allow, ["127.0.0.0/8", "::1/128"]);
        assert_eq!(c.http.token_file, None);
    }

    #[test]
    fn an_exposed_http_api_needs_a_token_file() {
        assert_eq!(
            errors("[http]\nlisten = \"0.0.0.0:8080\""),
            ["http.listen: 0.0.0.0:8080 is not a loopback address: exposing the HTTP API needs [http] token_file"]
        );
        assert_eq!(errors("[http]\nlisten = \"[::1]:8080\""), Vec::<String>::new());
        assert_eq!(errors("[http]\nlisten = \"127.0.0.5:0\""), Vec::<String>::new());
    }

    #[test]
    fn a_token_file_must_hold_a_long_enough_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("http-token");
        let config = format!("[http]\nlisten = \"0.0.0.0:8080\"\ntoken_file = {:?}", path.display().to_string());
        let shown = path.display().to_string();

        let missing = errors(&config);
        assert!(
            missing.len() == 1 && missing[0].starts_with(&format!("http.token_file: cannot read {shown}")),
            "{missing:?}"
        );

        std::fs::write(&path, "\n").unwrap();
        let empty = errors(&config);
        assert_eq!(
            empty,
            [format!("http.token_file: {shown}: the bearer token has 0 characters; at least 16 are needed")]
        );

        std::fs::write(&path, "too-short\n").unwrap();
        assert!(errors(&config)[0].contains("has 9 characters"), "{:?}", errors(&config));

        std::fs::write(&path, "  a-long-enough-token-0123\n").unwrap();
        let c = AliciaConfig::from_toml_str(&config).unwrap();
        assert_eq!(c.http.token_file.as_deref(), Some(path.as_path()));
    }

    #[test]
    fn the_device_token_listener_needs_its_files_and_a_key() {
        assert_eq!(AliciaConfig::default().http.token_ttl_seconds, 3600);
        assert_eq!(AliciaConfig::default().http.tls_listen, None);
        assert_eq!(
            errors("[http]\ntls_listen = \"127.0.0.1:8443\"\ntoken_ttl_seconds = 86401"),
            [
                "http.token_ttl_seconds: 86401 is out of range: must be between 60 and 86400",
                "http.tls_cert: needed by http.tls_listen (the HTTPS listener of POST /auth/device)",
                "http.tls_key: needed by http.tls_listen (the HTTPS listener of POST /auth/device)",
                "http.tls_ca: needed by http.tls_listen (the HTTPS listener of POST /auth/device)",
                "security.token_key_file: needed by http.tls_listen: device tokens are signed with it",
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("token.key");
        std::fs::write(&key, "c2hvcnQ=\n").unwrap();
        let text = format!(
            "[http]\ntls_listen = \"127.0.0.1:8443\"\ntls_cert = \"s.crt\"\ntls_key = \"s.key\"\ntls_ca = \"ca.crt\"\n\
             [security]\ntoken_key_file = {:?}\n",
            key.display().to_string()
        );
        let found = errors(&text);
        assert_eq!(
            found,
            [format!("security.token_key_file: {}: the token key has 5 bytes; at least 32 are needed", key.display())]
        );
        std::fs::write(&key, alicia_auth::TokenKey::generate().unwrap().to_base64()).unwrap();
        let c = AliciaConfig::from_toml_str(&text).unwrap();
        assert_eq!(c.http.tls_listen, Some("127.0.0.1:8443".parse().unwrap()));
        assert_eq!(c.security.token_key_file.as_deref(), Some(key.as_path()));
    }

    #[test]
    fn every_bad_allow_block_is_named() {
        let found = errors("[wyoming]\nallow = [\"10.0.0.0/8\", \"10.0.0.0/33\"]");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("wyoming.allow:") && found[0].contains("\"10.0.0.0/33\" is not a CIDR block"),
            "{found:?}"
        );
        let found = errors("[wyoming]\nallow = [\"localhost\"]");
        assert!(found[0].contains("\"localhost\" is not a CIDR block"), "{found:?}");
        assert_eq!(
            errors("[wyoming]\nallow = []"),
            ["wyoming.allow: empty: no client could connect (list 127.0.0.0/8 and ::1/128 for loopback only)"]
        );
        let c = AliciaConfig::from_toml_str("[wyoming]\nallow = [\"192.168.1.0/24\", \"fd00::/8\"]").unwrap();
        assert!(alicia_auth::Cidr::any_contains(&c.wyoming.allow, "::ffff:192.168.1.20".parse().unwrap()));
    }
}
