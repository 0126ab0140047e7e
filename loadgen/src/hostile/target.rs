//! The broker under attack: the engine (all its listeners, optionally its voice plane) or
//! mosquitto for comparison, each a process loadgen starts, watches and restarts.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};

use super::HostileOptions;
use crate::brokers::{BrokerKind, BrokerProcess};
use crate::engine_config::{self, repo_of};
use crate::engine_process::{EngineLaunch, EngineProcess};

pub enum Target {
    Engine(EngineProcess),
    Broker(BrokerProcess),
}

impl Target {
    pub fn start(opts: &HostileOptions, dir: &Path) -> Result<Target> {
        if let Some(why) = opts.launch.unavailable(opts.target) {
            anyhow::bail!("{why}");
        }
        if opts.target != BrokerKind::Engine {
            return Ok(Target::Broker(BrokerProcess::start(opts.target, &opts.launch)?));
        }
        let base = opts.launch.alicia_config.clone().context("no engine config")?;
        // The development overlay turns the voice plane and the Wyoming server on; the
        // bare config has them off.
        let env = opts.voice.then_some("development");
        let mut overrides = vec![("voice.enabled".to_string(), toml::Value::Boolean(opts.voice))];
        if let Some(models) = &opts.models {
            let abs = models.canonicalize().with_context(|| format!("models directory {}", models.display()))?;
            overrides.push(("voice.models".into(), toml::Value::String(abs.display().to_string())));
        }
        let config = engine_config::write(&base, env, &overrides, dir)?;
        let launch = EngineLaunch {
            bin: opts.launch.alicia_bin.clone(),
            config,
            env: None,
            cwd: repo_of(&base),
            extra_args: opts.launch.alicia_args.clone(),
            fresh_store: true,
            startup_timeout: opts.launch.startup_timeout,
            envs: Vec::new(),
        };
        Ok(Target::Engine(EngineProcess::start(&launch)?))
    }

    pub fn describe(&self) -> String {
        match self {
            Target::Engine(e) => format!(
                "mqtt {} http {} wyoming {}",
                e.mqtt,
                e.http,
                e.wyoming.map_or("off".to_string(), |w| w.to_string())
            ),
            Target::Broker(b) => format!("mqtt {}", b.addr),
        }
    }

    pub fn command(&self) -> &str {
        match self {
            Target::Engine(e) => &e.command,
            Target::Broker(b) => &b.command,
        }
    }

    pub fn mqtt(&self) -> SocketAddr {
        match self {
            Target::Engine(e) => e.mqtt,
            Target::Broker(b) => b.addr,
        }
    }

    pub fn http(&self) -> Option<SocketAddr> {
        match self {
            Target::Engine(e) => Some(e.http),
            Target::Broker(_) => None,
        }
    }

    pub fn wyoming(&self) -> Option<SocketAddr> {
        match self {
            Target::Engine(e) => e.wyoming,
            Target::Broker(_) => None,
        }
    }

    pub fn pid(&self) -> u32 {
        match self {
            Target::Engine(e) => e.pid(),
            Target::Broker(b) => b.pid(),
        }
    }

    /// How the process ended, if it has.
    pub fn exit_status(&mut self) -> Option<String> {
        match self {
            Target::Engine(e) => e.exited(),
            Target::Broker(b) => b.exited(),
        }
        .map(|s| s.to_string())
    }

    /// Bytes logged so far; a mark for [`Target::log_since`].
    pub fn log_len(&self) -> usize {
        self.log_bytes().len()
    }

    /// What was logged after `mark`.
    pub fn log_since(&self, mark: usize) -> String {
        let bytes = self.log_bytes();
        String::from_utf8_lossy(bytes.get(mark..).unwrap_or_default()).into_owned()
    }

    fn log_bytes(&self) -> Vec<u8> {
        match self {
            Target::Engine(e) => e.log_bytes(),
            Target::Broker(b) => b.log_bytes(),
        }
    }

    pub fn stop(self) -> Result<()> {
        match self {
            Target::Engine(e) => e.stop(),
            Target::Broker(b) => b.stop(),
        }
    }
}

/// What a log says that matters after a step: panics (with their message line), then
/// errors, warnings and fatal lines (an allocation failure), each kind once (lines that differ only in numbers and ids are
/// one kind), colour codes removed.
pub fn log_highlights(log: &str) -> Vec<String> {
    let lines: Vec<String> = log.lines().map(strip_ansi).collect();
    let mut panics = Vec::new();
    let mut others = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in lines.iter().enumerate() {
        let key: String = line.chars().filter(|c| c.is_alphabetic() || *c == ' ').collect();
        if line.contains("panicked at") {
            let message = lines.get(i + 1).map(|m| m.trim()).unwrap_or("");
            if seen.insert(key) && panics.len() < 3 {
                panics.push(format!("{} {message}", line.trim()));
            }
        } else if others.len() < 3 && (line.contains(" ERROR ") || line.contains(" WARN ") || is_fatal(line)) {
            // A logger's line starts with its timestamp; drop it.
            let line = line.trim();
            let text = match line.split_once(' ') {
                Some((stamp, rest)) if stamp.starts_with(|c: char| c.is_ascii_digit()) => rest.trim(),
                _ => line,
            };
            let key: String = text.chars().filter(|c| c.is_alphabetic() || *c == ' ').collect();
            if seen.insert(key) {
                others.push(text.chars().take(240).collect());
            }
        }
    }
    panics.extend(others);
    panics
}

/// A line a dying process writes outside its logger, e.g. `memory allocation of … failed`.
fn is_fatal(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    ["memory allocation", "fatal", "abort", "segmentation fault", "killed"].iter().any(|w| lower.contains(w))
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters final-letter
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_panics_first_and_each_kind_once() {
        let log = "\u{1b}[2m2026-12-03T06:52:14Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m router refused client_id=\"a-1\"\n\
                   2026-12-03T06:52:15Z  WARN router refused client_id=\"a-2\"\n\
                   thread 'io-1' panicked at engine/broker/src/x.rs:10:5:\n\
                   called `Option::unwrap()` on a `None` value\n\
                   memory allocation of 25600000000 bytes failed\n";
        let h = log_highlights(log);
        assert_eq!(h.len(), 3, "{h:?}");
        assert_eq!(h[2], "memory allocation of 25600000000 bytes failed");
        assert!(h[0].starts_with("thread 'io-1' panicked at") && h[0].ends_with("`None` value"), "{h:?}");
        assert_eq!(h[1], "WARN router refused client_id=\"a-1\"");
    }
}
