//! Rules for the doors that are not MQTT when they face the network: the HTTP API needs
//! its bearer token once it listens beyond loopback, the secret files it names must hold
//! a usable secret, and the Wyoming allow list must let someone in.
//!
//! The secret files are read here, by the same code the engine uses at start, so
//! `alicia check-config` finds a missing or weak one before a deployment does.

use alicia_auth::BearerToken;

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
    if c.wyoming.allow.is_empty() {
        errors.push("wyoming.allow", "empty: no client could connect (list 127.0.0.0/8 and ::1/128 for loopback only)");
    }
}

#[cfg(test)]
mod tests {
    use crate::AliciaConfig;

    fn errors(text: &str) -> Vec<String> {
        match AliciaConfig::from_toml_str(text) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

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
