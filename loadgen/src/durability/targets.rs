//! The four brokers of a `durability` run: the engine without a store, with
//! `sync = "batch"`, with `sync = "always"`, and mosquitto with persistence as the seeds
//! run it. Each keeps its data in a directory the run owns, so a stopped or killed broker
//! can be started again on the same data.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use toml::Value;

use super::DurabilityOptions;
use crate::brokers::{BrokerProcess, Launch};
use crate::engine_config::{self, repo_of, Override};
use crate::engine_process::{EngineLaunch, EngineProcess};

/// mosquitto's autosave interval in the seeds: what it may lose on a crash.
pub const MOSQUITTO_AUTOSAVE_S: u32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    EngineOff,
    EngineBatch,
    EngineAlways,
    MosquittoPersistence,
}

impl Target {
    pub const ALL: [Target; 4] =
        [Target::EngineOff, Target::EngineBatch, Target::EngineAlways, Target::MosquittoPersistence];

    pub fn name(self) -> &'static str {
        match self {
            Target::EngineOff => "engine, store off",
            Target::EngineBatch => "engine, sync=batch",
            Target::EngineAlways => "engine, sync=always",
            Target::MosquittoPersistence => "mosquitto, persistence",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Target::EngineOff => "off",
            Target::EngineBatch => "batch",
            Target::EngineAlways => "always",
            Target::MosquittoPersistence => "mosquitto",
        }
    }

    /// What an acknowledged QoS 1 publish survives, as each promises it.
    pub fn promise(self) -> String {
        match self {
            Target::EngineOff => "nothing: retained messages, sessions and queues live in memory only".into(),
            Target::EngineBatch => "written to the OS before the PUBACK (survives kill -9 / a crash of the engine); \
                fsynced every sync_interval_ms (200 ms): a power cut can lose that much"
                .into(),
            Target::EngineAlways => "fsynced (fdatasync) before the PUBACK: survives a power cut".into(),
            Target::MosquittoPersistence => format!(
                "in memory until the next autosave (every {MOSQUITTO_AUTOSAVE_S} s) or a clean shutdown: \
                 kill -9 or a power cut loses up to {MOSQUITTO_AUTOSAVE_S} s of acknowledged messages"
            ),
        }
    }
}

/// A started broker of the run.
pub enum Running {
    Engine(EngineProcess),
    Mosquitto(BrokerProcess),
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        match self {
            Running::Engine(e) => e.mqtt,
            Running::Mosquitto(m) => m.addr,
        }
    }

    pub fn pid(&self) -> u32 {
        match self {
            Running::Engine(e) => e.pid(),
            Running::Mosquitto(m) => m.pid(),
        }
    }

    pub fn command(&self) -> String {
        match self {
            Running::Engine(e) => e.command.clone(),
            Running::Mosquitto(m) => m.command.clone(),
        }
    }

    /// Spawn → ready line (engine) or first CONNACK (mosquitto).
    pub fn ready_after(&self) -> Duration {
        match self {
            Running::Engine(e) => e.ready_after,
            Running::Mosquitto(m) => m.ready_after,
        }
    }

    pub fn log_text(&self) -> String {
        match self {
            Running::Engine(e) => e.log_text(),
            Running::Mosquitto(m) => m.log_text(),
        }
    }

    pub fn stop(self) -> Result<()> {
        match self {
            Running::Engine(e) => e.stop(),
            Running::Mosquitto(m) => m.stop(),
        }
    }

    pub fn kill(self) -> Result<()> {
        match self {
            Running::Engine(e) => e.kill(),
            Running::Mosquitto(m) => m.kill(),
        }
    }
}

/// Where one target keeps its data and config across restarts.
pub struct Home {
    pub target: Target,
    dir: PathBuf,
    /// The engine's config for this target (written once).
    engine_config: Option<PathBuf>,
    /// The overrides of the engine's config, as `key = value`.
    pub described: Vec<String>,
}

impl Home {
    pub fn new(target: Target, opts: &DurabilityOptions, parent: &Path) -> Result<Home> {
        let dir = parent.join(target.short());
        std::fs::create_dir_all(&dir)?;
        if target == Target::MosquittoPersistence {
            // mosquitto started as root drops to the `mosquitto` user: it must be able to
            // reach this directory and write its database into it.
            for d in dir.ancestors().take_while(|d| d.starts_with(std::env::temp_dir()) && *d != std::env::temp_dir()) {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
            }
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        }
        let mut home = Home { target, dir, engine_config: None, described: Vec::new() };
        if target != Target::MosquittoPersistence {
            let overrides = home.engine_overrides(opts);
            home.described = overrides.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            home.engine_config = Some(engine_config::write(&opts.alicia_config, None, &overrides, &home.dir)?);
        }
        Ok(home)
    }

    /// The same limits for every engine mode; the store only where the mode has one.
    /// Queue and retained limits are raised to hold a whole offline row and the restart
    /// fill (mosquitto gets the same queue limit).
    fn engine_overrides(&self, opts: &DurabilityOptions) -> Vec<Override> {
        let int = |v: u64| Value::Integer(v as i64);
        let mut overrides = vec![
            ("voice.enabled".to_string(), Value::Boolean(false)),
            ("limits.max_queued_messages".to_string(), int(opts.max_queued_messages())),
            ("limits.max_retained_messages".to_string(), int(opts.restart.retained as u64 + 10_000)),
            ("limits.max_retained_bytes".to_string(), int(1 << 30)),
            ("limits.max_inflight_messages".to_string(), int(opts.inflight)),
        ];
        let sync = match self.target {
            Target::EngineBatch => Some("batch"),
            Target::EngineAlways => Some("always"),
            _ => None,
        };
        if let Some(sync) = sync {
            let store = self.dir.join("store");
            overrides.push(("storage.dir".to_string(), Value::String(store.display().to_string())));
            overrides.push(("storage.sync".to_string(), Value::String(sync.to_string())));
        }
        overrides
    }

    fn mosquitto_extra(&self, opts: &DurabilityOptions) -> String {
        format!(
            "max_queued_messages {}\npersistence true\npersistence_location {}/\nautosave_interval {MOSQUITTO_AUTOSAVE_S}\n",
            opts.max_queued_messages(),
            self.dir.display()
        )
    }

    /// Starts the target on its data (fresh the first time).
    pub fn start(&self, opts: &DurabilityOptions) -> Result<Running> {
        match &self.engine_config {
            Some(config) => {
                let launch = EngineLaunch {
                    bin: opts.alicia_bin.clone(),
                    config: config.clone(),
                    env: None,
                    cwd: repo_of(&opts.alicia_config),
                    extra_args: opts.alicia_args.clone(),
                    envs: Vec::new(),
                    fresh_store: false,
                    startup_timeout: opts.startup_timeout,
                };
                Ok(Running::Engine(EngineProcess::start(&launch)?))
            }
            None => {
                let launch = Launch {
                    mosquitto_bin: opts.mosquitto_bin.clone(),
                    alicia_bin: opts.alicia_bin.clone(),
                    alicia_config: None,
                    alicia_args: Vec::new(),
                    startup_timeout: opts.startup_timeout,
                };
                Ok(Running::Mosquitto(BrokerProcess::start_mosquitto(&launch, &self.mosquitto_extra(opts))?))
            }
        }
    }

    /// mosquitto's database file, once it saved one.
    pub fn mosquitto_db(&self) -> Option<PathBuf> {
        let db = self.dir.join("mosquitto.db");
        db.is_file().then_some(db)
    }
}
