//! `[voice.chat]`: the OpenAI-compatible chat model that answers what the local matcher
//! does not understand, spoken or typed (`alicia/voice/ai/request`). Off unless the
//! section is there.
//!
//! The API key is never written in the file: `api_key_env` names an environment
//! variable that holds it, or `api_key_file` a file whose first line is it. Both are
//! read here, by the code the engine uses at start ([`VoiceChatSection::api_key`]), so
//! `alicia check-config` finds a missing one before a deployment does.

use std::path::PathBuf;

use alicia_breaker::BreakerSettings;
use serde::{Deserialize, Serialize};

use crate::check::{in_range, ConfigErrors};

/// `[voice.chat]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceChatSection {
    /// `http://host:port[/path]` of the server; `/v1/chat/completions` is appended
    /// unless the path ends with it. Plain http: a local server (llama.cpp, Ollama,
    /// vLLM) or a proxy on the LAN that speaks TLS to a cloud model.
    pub url: String,
    pub model: String,
    /// The environment variable that holds the API key (sent as a bearer token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// A file whose first line is the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// The system prompt: who Alicia is and how she answers. Empty: the built-in one.
    #[serde(default)]
    pub personality: String,
    /// The whole answer, connect to last byte, retries included.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Answers are spoken: keep them short.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Exchanges (question and answer) each session remembers and sends along.
    #[serde(default = "default_max_history")]
    pub max_history: usize,
    /// Sessions remembered; past it the least recently used is forgotten.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// The `llm` circuit breaker and the retries in front of the server.
    #[serde(default)]
    pub breaker: BreakerSettings,
}

fn default_timeout_ms() -> u64 {
    8_000
}

fn default_max_tokens() -> u32 {
    150
}

fn default_max_history() -> usize {
    6
}

fn default_max_sessions() -> usize {
    64
}

/// Why the API key could not be had; the message names the variable or the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApiKeyError(String);

impl VoiceChatSection {
    /// A section for `url` and `model`, everything else at its default.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            model: model.into(),
            api_key_env: None,
            api_key_file: None,
            personality: String::new(),
            timeout_ms: default_timeout_ms(),
            max_tokens: default_max_tokens(),
            max_history: default_max_history(),
            max_sessions: default_max_sessions(),
            breaker: BreakerSettings::default(),
        }
    }

    /// The API key, read now from the variable or the file; `None` when neither is set
    /// (a local server without keys).
    pub fn api_key(&self) -> Result<Option<String>, ApiKeyError> {
        if let Some(name) = &self.api_key_env {
            return match std::env::var(name) {
                Ok(key) if !key.trim().is_empty() => Ok(Some(key.trim().to_string())),
                Ok(_) => Err(ApiKeyError(format!("environment variable {name} is empty"))),
                Err(std::env::VarError::NotPresent) => {
                    Err(ApiKeyError(format!("environment variable {name} is not set")))
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(ApiKeyError(format!("environment variable {name} is not valid UTF-8")))
                }
            };
        }
        let Some(path) = &self.api_key_file else { return Ok(None) };
        let text =
            std::fs::read_to_string(path).map_err(|e| ApiKeyError(format!("cannot read {}: {e}", path.display())))?;
        match text.lines().next().map(str::trim) {
            Some(key) if !key.is_empty() => Ok(Some(key.to_string())),
            _ => Err(ApiKeyError(format!("{} is empty: its first line must be the API key", path.display()))),
        }
    }
}

/// The rules of `[voice.chat]`, every problem with its path.
pub(crate) fn check(chat: Option<&VoiceChatSection>, errors: &mut ConfigErrors) {
    let Some(chat) = chat else { return };
    if let Err(why) = check_url(&chat.url) {
        errors.push("voice.chat.url", format!("{:?} {why}", chat.url));
    }
    if chat.model.trim().is_empty() {
        errors.push("voice.chat.model", "must name the model the server runs");
    }
    match (&chat.api_key_env, &chat.api_key_file) {
        (Some(_), Some(_)) => errors.push("voice.chat.api_key_env", "set api_key_env or api_key_file, not both"),
        (Some(name), None) if name.is_empty() || name.contains(['=', '\0']) => {
            errors.push("voice.chat.api_key_env", format!("{name:?} is not an environment variable name"));
        }
        (env, _) => {
            if let Err(e) = chat.api_key() {
                errors.push(if env.is_some() { "voice.chat.api_key_env" } else { "voice.chat.api_key_file" }, e.0);
            }
        }
    }
    let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    in_range(errors, "voice.chat.timeout_ms", as_usize(chat.timeout_ms), 100, 120_000);
    in_range(errors, "voice.chat.max_tokens", chat.max_tokens as usize, 1, 4_096);
    in_range(errors, "voice.chat.max_history", chat.max_history, 0, 100);
    in_range(errors, "voice.chat.max_sessions", chat.max_sessions, 1, 10_000);
    in_range(errors, "voice.chat.personality", chat.personality.chars().count(), 0, 4_000);
    for problem in chat.breaker.problems("voice.chat.breaker") {
        let (path, message) = problem.split_once(": ").unwrap_or(("voice.chat.breaker", problem.as_str()));
        errors.push(path, message);
    }
}

/// What the engine's HTTP client (`alicia-stage-intent`'s `http.rs`) accepts, told
/// here with the config's path: `http://host[:port][/path]`.
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some(("https", _)) => {
            return Err("is https, which the engine does not speak: point it at a local server or a plain-http \
                        proxy on the LAN that holds the TLS to the cloud");
        }
        _ => return Err("must start with http://"),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err("has credentials in it: give the key with api_key_env or api_key_file");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return Err("has an unclosed [ in its host"),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if port.is_some_and(|port| port.parse::<u16>().is_err()) {
        return Err("has a port that is not a number from 0 to 65535");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::AliciaConfig;

    use crate::tests::error_lines as errors;

    #[test]
    fn the_chat_is_off_unless_its_section_is_there() {
        assert_eq!(AliciaConfig::default().voice.chat, None);
        let c = AliciaConfig::from_toml_str("[voice.chat]\nurl = \"http://127.0.0.1:8081\"\nmodel = \"m\"\n").unwrap();
        let chat = c.voice.chat.unwrap();
        assert_eq!((chat.timeout_ms, chat.max_history, chat.breaker.failure_threshold), (8_000, 6, 5));
        assert_eq!(chat.api_key(), Ok(None));
    }

    #[test]
    fn urls_the_engine_cannot_use_are_refused_with_the_reason() {
        let url = |url: &str| errors(&format!("[voice.chat]\nurl = \"{url}\"\nmodel = \"m\"\n"));
        let https = url("https://api.x.ai/v1");
        assert_eq!(https.len(), 1, "{https:?}");
        assert!(https[0].starts_with("voice.chat.url: \"https://api.x.ai/v1\" is https"), "{https:?}");
        assert!(https[0].contains("plain-http proxy"), "{https:?}");
        assert_eq!(url("127.0.0.1:8081"), ["voice.chat.url: \"127.0.0.1:8081\" must start with http://"]);
        assert_eq!(url("http://:80/v1"), ["voice.chat.url: \"http://:80/v1\" has no host"]);
        assert_eq!(
            url("http://llm:port"),
            ["voice.chat.url: \"http://llm:port\" has a port that is not a number from 0 to 65535"]
        );
        assert!(url("http://u:pw@llm/")[0].contains("api_key_env or api_key_file"));
        assert!(url("http://[::1]:8081/v1").is_empty());
    }

    #[test]
    fn the_key_comes_from_a_variable_or_a_file_that_must_be_there() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.key");
        let chat = |extra: &str| errors(&format!("[voice.chat]\nurl = \"http://h:1\"\nmodel = \"m\"\n{extra}"));
        assert_eq!(
            chat("api_key_env = \"ALICIA_TEST_SURELY_UNSET_KEY\""),
            ["voice.chat.api_key_env: environment variable ALICIA_TEST_SURELY_UNSET_KEY is not set"]
        );
        let unreadable = chat(&format!("api_key_file = {:?}", missing.display().to_string()));
        assert_eq!(unreadable.len(), 1);
        assert!(unreadable[0].starts_with(&format!("voice.chat.api_key_file: cannot read {}", missing.display())));
        let empty = dir.path().join("empty.key");
        std::fs::write(&empty, "\n").unwrap();
        assert!(chat(&format!("api_key_file = {:?}", empty.display().to_string()))[0].contains("is empty"));
        let both = chat(&format!("api_key_env = \"PATH\"\napi_key_file = {:?}", empty.display().to_string()));
        assert_eq!(both, ["voice.chat.api_key_env: set api_key_env or api_key_file, not both"]);
        // No inline key: it would sit in a file that is shown and copied around.
        assert!(chat("api_key = \"sk-123\"")[0].starts_with("voice.chat: unknown field `api_key`"));

        let good = dir.path().join("good.key");
        std::fs::write(&good, "sk-from-file\n# comment\n").unwrap();
        let text = format!(
            "[voice.chat]\nurl = \"http://h:1\"\nmodel = \"m\"\napi_key_file = {:?}\n",
            good.display().to_string()
        );
        let c = AliciaConfig::from_toml_str(&text).unwrap();
        assert_eq!(c.voice.chat.unwrap().api_key(), Ok(Some("sk-from-file".into())));
    }

    #[test]
    fn every_number_and_the_breaker_are_checked_with_their_paths() {
        let text = "[voice.chat]\nurl = \"http://h:1\"\nmodel = \"\"\ntimeout_ms = 5\nmax_tokens = 0\n\
                    max_sessions = 0\n[voice.chat.breaker]\nfailure_threshold = 0\nmax_attempts = 11\n";
        let paths: Vec<String> = errors(text).iter().map(|e| e.split(':').next().unwrap().to_string()).collect();
        assert_eq!(
            paths,
            [
                "voice.chat.model",
                "voice.chat.timeout_ms",
                "voice.chat.max_tokens",
                "voice.chat.max_sessions",
                "voice.chat.breaker.failure_threshold",
                "voice.chat.breaker.max_attempts",
            ]
        );
    }
}
