//! Engine configuration: `bus-config/alicia.toml` plus an optional environment overlay.
//!
//! # Layout
//! - [`model`]: the sections of `alicia.toml` as typed structs with defaults.
//! - [`check`]: validation that reports every error at once, each with its dotted path.
//! - `chat`: `[voice.chat]`, the chat model behind the voice ([`VoiceChatSection`]): its
//!   rules, and its API key read from the variable or file it names.
//! - `voice`: `[voice]` and `[wyoming]`, the voice data plane and the Wyoming server.
//! - `voice_tuning`: `[voice.vad]`, `[voice.stt]`, `[voice.tts]`, the pipeline's tunables
//!   with the values the stages were tuned with as defaults, and their rules.
//! - `doors`: the rules for the limits of `[http]`, `[wyoming]`, `[voice]` and `[services]`.
//! - `listeners`: the rules for `[mqtt.tls]`, `[mqtt.websocket]` and colliding addresses.
//! - `exposure`: the rules for `[http]` and `[wyoming]` facing the network: a bearer
//!   token file for an HTTP API beyond loopback (read and judged here), a non-empty
//!   Wyoming allow list.
//! - this file: loading a file, merging an environment overlay
//!   (`environments/<name>.toml` next to it) and the error type callers print.

mod chat;
mod check;
mod doors;
mod exposure;
mod listeners;
mod model;
mod voice;
mod voice_tuning;

use std::path::{Path, PathBuf};

pub use chat::{ApiKeyError, VoiceChatSection};
pub use check::{ConfigError, ConfigErrors};
pub use model::{
    AliciaConfig, EngineSection, HttpSection, IoBackend, LimitsSection, MqttSection, MqttTlsSection,
    MqttWebSocketSection, RouterSection, SecuritySection, ServicesSection, SigningSection, StorageSection, StorageSync,
    TopicsSection,
};
pub use voice::{VoiceSection, WyomingSection};
pub use voice_tuning::{VoiceSttSection, VoiceTtsSection, VoiceVadSection};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("unknown environment {name:?}: no {path} (available: {available})")]
    UnknownEnvironment { name: String, path: PathBuf, available: String },
    #[error("{path} has {} error(s):\n{errors}", errors.len())]
    Invalid { path: PathBuf, errors: ConfigErrors },
}

impl AliciaConfig {
    /// Parses and checks a configuration held in memory.
    pub fn from_toml_str(text: &str) -> Result<AliciaConfig, ConfigErrors> {
        let value: toml::Value = text.parse().map_err(|e: toml::de::Error| {
            ConfigErrors(vec![ConfigError { path: "<syntax>".into(), message: e.to_string() }])
        })?;
        check::config_from_value(value)
    }

    /// The semantic rules again, for a config changed after loading (command-line
    /// overrides of the listen addresses).
    pub fn check(&self) -> Result<(), ConfigErrors> {
        let mut errors = ConfigErrors::default();
        check::check_rules(self, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Loads `path`, then the overlay `environments/<environment>.toml` beside it when an
    /// environment is named. Overlay values replace the base value at the same path.
    pub fn load(path: &Path, environment: Option<&str>) -> Result<AliciaConfig, LoadError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
        AliciaConfig::load_text(&text, path, environment)
    }

    /// [`AliciaConfig::load`] with the base file's text given (the config service checks
    /// an update before it is written): `path` places the overlays and names the errors.
    pub fn load_text(text: &str, path: &Path, environment: Option<&str>) -> Result<AliciaConfig, LoadError> {
        let mut value: toml::Value = text
            .parse()
            .map_err(|e: toml::de::Error| LoadError::Syntax { path: path.to_path_buf(), message: e.to_string() })?;
        if let Some(name) = environment {
            let dir = path.parent().unwrap_or(Path::new("."));
            let overlay_path = dir.join("environments").join(format!("{name}.toml"));
            if !overlay_path.is_file() {
                return Err(LoadError::UnknownEnvironment {
                    name: name.to_string(),
                    available: available_environments(dir),
                    path: overlay_path,
                });
            }
            let overlay = read_toml(&overlay_path)?;
            merge(&mut value, overlay);
        }
        check::config_from_value(value).map_err(|errors| LoadError::Invalid { path: path.to_path_buf(), errors })
    }
}

impl LoadError {
    /// Every problem as a path and a message, for answers that list them one by one.
    pub fn errors(&self) -> ConfigErrors {
        let one = |path: &str, message: String| ConfigErrors(vec![ConfigError { path: path.into(), message }]);
        match self {
            LoadError::Invalid { errors, .. } => errors.clone(),
            LoadError::Syntax { message, .. } => one("<syntax>", message.clone()),
            LoadError::Read { .. } => one("<file>", self.to_string()),
            LoadError::UnknownEnvironment { .. } => one("<environment>", self.to_string()),
        }
    }
}

fn read_toml(path: &Path) -> Result<toml::Value, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
    text.parse().map_err(|e: toml::de::Error| LoadError::Syntax { path: path.to_path_buf(), message: e.to_string() })
}

/// Deep merge: tables merge key by key, anything else is replaced.
fn merge(base: &mut toml::Value, overlay: toml::Value) {
    match (base, overlay) {
        (toml::Value::Table(base), toml::Value::Table(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

fn available_environments(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("environments"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".toml").map(str::to_string))
        .collect();
    names.sort();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests;

/// This package's directory, asked at run time: a build cache shared between checkouts
/// may have compiled the tests in another, and the shipped files are read from this one.
#[cfg(test)]
pub(crate) fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
}
