//! The engine under fuzz: `alicia serve` (the shared [`EngineProcess`]) with a config of
//! its own, every listener on an ephemeral loopback port, and limits
//! small enough that a run of a few seconds reaches them. Its log goes to a file that
//! is searched for panics after every batch: a panic the engine survives is still a
//! finding.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Result};

use crate::engine_process::{EngineLaunch, EngineProcess};

/// What the engine is told it may hold; each is far below the shipped default so a
/// short run meets it (the byte budget, the packet size limit, retained bytes). Session
/// expiry is capped at a minute: mutated CONNECTs and v5 clients with assigned ids
/// make a new never-expiring persistent session every few cases, and the session limit
/// they would fill refuses every new client, the ordinary one of the checks included.
const LIMITS: &str = "\
[limits]
message_size_limit = 1048576
max_queued_bytes = 4194304
max_queued_bytes_total = 67108864
max_retained_messages = 2000
max_retained_bytes = 16777216
max_connect_bytes = 65536
max_sessions = 2000
max_session_expiry_secs = 60
";

/// `max_queued_bytes_total` above, in MiB.
pub(crate) const MAX_QUEUED_MB: f64 = 64.0;

/// Where the voice's models and home are, when it runs.
#[derive(Debug, Clone)]
pub struct VoicePaths {
    pub models: PathBuf,
    pub home: PathBuf,
}

impl VoicePaths {
    /// The given paths, else `models/` and `bus-config/home.toml` of the checkout whose
    /// engine config loadgen finds; absolute, since the engine runs elsewhere.
    pub fn of_checkout(models: Option<PathBuf>, home: Option<PathBuf>) -> VoicePaths {
        let repo = crate::brokers::default_engine_config()
            .and_then(|c| c.canonicalize().ok())
            .and_then(|c| c.parent()?.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let absolute = |p: PathBuf| p.canonicalize().unwrap_or(p);
        VoicePaths {
            models: absolute(models.unwrap_or_else(|| repo.join("models"))),
            home: absolute(home.unwrap_or_else(|| repo.join("bus-config/home.toml"))),
        }
    }
}

pub(crate) fn config_text(voice: Option<&VoicePaths>) -> String {
    let mut text = format!(
        "# written by alicia-loadgen fuzz\n\
         [engine]\nenvironment = \"fuzz\"\n\n\
         [mqtt]\nlisten = \"127.0.0.1:0\"\nconnect_timeout_ms = 3000\nwrite_timeout_ms = 5000\n\n\
         {LIMITS}\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\n\
         [services]\nheartbeat_interval_secs = 5\nmax_envelope_bytes = 262144\n\n\
         [topics.aliases]\n\
         \"alicia/voice/stt/result\" = \"alicia/voice/stt/response\"\n\
         \"alicia/ai/request\" = \"alicia/voice/ai/request\"\n\
         \"alicia/health/heartbeat/+\" = \"alicia/system/discovery/heartbeat\"\n\n\
         [wyoming]\nlisten = \"127.0.0.1:0\"\n"
    );
    if let Some(v) = voice {
        text.push_str(&format!(
            "\n[voice]\nenabled = true\nmodels = {:?}\nhome = {:?}\n",
            v.models.display().to_string(),
            v.home.display().to_string()
        ));
    }
    text
}

/// The addresses an engine's ready line gave.
#[derive(Debug, Clone, Copy)]
pub struct Doors {
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    pub wyoming: Option<SocketAddr>,
}

/// The shared engine child process, with this run's config and a reader of its log.
pub struct FuzzEngine {
    pub doors: Doors,
    pub command: String,
    process: EngineProcess,
    /// How far the log has been read.
    scanned: u64,
    /// Warnings and errors the engine logged, by level, target and message.
    lines: BTreeMap<String, u64>,
    dir: tempfile::TempDir,
}

impl FuzzEngine {
    pub fn start(bin: &Path, voice: Option<&VoicePaths>, timeout: Duration) -> Result<Self> {
        if let Some(v) = voice {
            if !v.models.is_dir() {
                bail!("voice models missing: {} does not exist (run `make models`)", v.models.display());
            }
        }
        let dir = tempfile::Builder::new().prefix("alicia-loadgen-fuzz-").tempdir()?;
        let config = dir.path().join("alicia.toml");
        std::fs::write(&config, config_text(voice))?;
        let process = EngineProcess::start(&EngineLaunch {
            bin: bin.to_path_buf(),
            config,
            env: None,
            cwd: dir.path().to_path_buf(),
            extra_args: Vec::new(),
            // Warnings and errors only: a panic is logged at error, and a fuzz run's
            // refusals at info would fill the disk.
            envs: vec![("ALICIA_LOG".into(), "warn".into())],
            fresh_store: true,
            startup_timeout: timeout,
        })?;
        let doors = Doors { mqtt: process.mqtt, http: process.http, wyoming: process.wyoming };
        let command = process.command.clone();
        Ok(FuzzEngine { doors, command, process, scanned: 0, lines: BTreeMap::new(), dir })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `Some(why)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        self.process.exited().map(|status| format!("engine exited: {status}"))
    }

    /// Reads what the engine logged since the last call: counts each line by its kind,
    /// and returns those that tell of a panic or a stack overflow.
    pub fn new_panics(&mut self) -> Vec<String> {
        let (scanned, lines) = read_from(self.process.log_path(), self.scanned);
        self.scanned = scanned;
        let mut panics = Vec::new();
        for line in lines {
            if let Some(kind) = line_kind(&line) {
                *self.lines.entry(kind).or_default() += 1;
            }
            if line.contains("panicked") || line.contains("overflowed its stack") {
                panics.push(line);
            }
        }
        panics
    }

    /// Warning and error lines so far, by level, target and message.
    pub fn log_lines(&self) -> &BTreeMap<String, u64> {
        &self.lines
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.last_lines(lines).join("\n")
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("alicia.toml")
    }

    pub fn stop(self) -> Result<()> {
        self.process.stop()
    }
}

/// The whole lines of `log` from byte `from` on, and where the next read starts (a line
/// still being written is read next time).
fn read_from(log: &Path, from: u64) -> (u64, Vec<String>) {
    let Ok(mut file) = File::open(log) else { return (from, Vec::new()) };
    if file.seek(SeekFrom::Start(from)).is_err() {
        return (from, Vec::new());
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let text = String::from_utf8_lossy(&bytes[..complete]);
    (from + complete as u64, text.lines().map(str::to_string).collect())
}

/// `WARN alicia_wyoming::connection: synthesis failed` from a tracing line
/// (`<timestamp>  WARN <target>: <message> key=value ...`); `None` for other lines.
fn line_kind(line: &str) -> Option<String> {
    let mut words = line.split_whitespace().skip(1);
    let level = words.next().filter(|l| ["WARN", "ERROR"].contains(l))?;
    let target = words.next()?;
    let message: Vec<&str> = words.take_while(|w| !w.contains('=')).take(8).collect();
    Some(format!("{level} {target} {}", message.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whole_lines_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("engine.log");
        std::fs::write(&log, "one\nthread 'io-1' panicked at x.rs:1:1:\npart").unwrap();
        let (at, lines) = read_from(&log, 0);
        assert_eq!(lines, ["one", "thread 'io-1' panicked at x.rs:1:1:"]);
        std::fs::write(&log, "one\nthread 'io-1' panicked at x.rs:1:1:\npartial line\n").unwrap();
        assert_eq!(read_from(&log, at), (at + 13, vec!["partial line".to_string()]));
    }

    #[test]
    fn counts_log_lines_by_kind() {
        let line =
            "2026-12-03T08:35:48.513459Z  WARN alicia_wyoming::connection: synthesis failed peer=127.0.0.1:1 e=x";
        assert_eq!(line_kind(line).as_deref(), Some("WARN alicia_wyoming::connection: synthesis failed"));
        assert_eq!(line_kind("2026-12-03T08:35:48Z  INFO alicia: ready"), None);
        assert_eq!(line_kind("alicia ready mqtt=127.0.0.1:1"), None);
    }

    #[test]
    fn the_config_is_one_the_engine_accepts() {
        let voice = VoicePaths { models: "/m".into(), home: "/h.toml".into() };
        for v in [None, Some(&voice)] {
            let text = config_text(v);
            let config = alicia_config::AliciaConfig::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(config.limits.message_size_limit, 1_048_576);
            assert_eq!(config.limits.max_queued_bytes_total, 64 << 20);
            assert_eq!(config.voice.enabled, v.is_some());
        }
    }
}
