//! The engine with its voice on, started here like `compare` starts its brokers (free
//! loopback ports from [`brokers::free_port`], SIGTERM then SIGKILL, killed on drop), but
//! with the `--env development` overlay, Wyoming on an ephemeral port, the repository as
//! working directory (the config's `models/` are relative to it) and the home loadgen
//! measures with passed as `--home`: the engine's `alicia ready mqtt=…` line says where
//! it listens.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::brokers::{free_port, kill_if_running, terminate};

pub struct VoiceEngine {
    pub mqtt: SocketAddr,
    pub command: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The checkout a config belongs to: `<repo>/bus-config/alicia.toml` → `<repo>`.
pub fn repo_of(config: &Path) -> PathBuf {
    let abs = config.canonicalize().unwrap_or_else(|_| config.to_path_buf());
    abs.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

impl VoiceEngine {
    pub fn start(alicia_bin: &Path, config: &Path, home: &Path, timeout: Duration) -> Result<Self> {
        if !alicia_bin.is_file() {
            bail!("engine binary {} not found (build `alicia` or pass --alicia-bin)", alicia_bin.display());
        }
        let repo = repo_of(config);
        let models = repo.join("models");
        if !models.is_dir() {
            bail!("voice models missing: {} does not exist (run `make models`)", models.display());
        }
        let dir = tempfile::Builder::new().prefix("alicia-loadgen-voice-").tempdir()?;
        let mqtt: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        // Not read, but the default port may be taken (by another engine, or a parallel run).
        let http: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let config = config.canonicalize().with_context(|| format!("engine config {}", config.display()))?;
        let mut cmd = Command::new(alicia_bin);
        cmd.current_dir(&repo).arg("serve").arg("--config").arg(&config);
        cmd.args(["--env", "development", "--mqtt-listen", &mqtt.to_string(), "--http-listen", &http.to_string()]);
        cmd.args(["--wyoming-listen", "127.0.0.1:0"]).arg("--home").arg(home);
        let log = dir.path().join("engine.log");
        cmd.stdout(Stdio::piped()).stderr(File::create(&log)?).stdin(Stdio::null());
        let command = format!("{cmd:?}").replace('"', "");
        let mut child = cmd.spawn().with_context(|| format!("start engine: {command}"))?;
        let stdout = child.stdout.take().context("engine stdout")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut stdout_log = File::options().append(true).open(&log)?;
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("alicia ready") {
                    let _ = ready_tx.send(line.clone());
                }
                let _ = writeln!(stdout_log, "{line}");
            }
        });
        let mut engine = VoiceEngine { mqtt, command, child, log, _dir: dir };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(line) = ready_rx.recv_timeout(Duration::from_millis(100)) {
                for field in line.split_whitespace() {
                    if let Some(a) = field.strip_prefix("mqtt=").and_then(|a| a.parse().ok()) {
                        engine.mqtt = a;
                    }
                }
                return Ok(engine);
            }
            if let Some(status) = engine.child.try_wait()? {
                bail!("engine exited ({status}) before it was ready ({})", engine.log_tail());
            }
            if Instant::now() >= deadline {
                bail!("engine not ready within {timeout:?} ({})", engine.log_tail());
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        let _ = File::open(&self.log).and_then(|mut f| f.read_to_string(&mut text));
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        format!("log: {}", lines[lines.len().saturating_sub(5)..].join(" / "))
    }

    pub fn stop(mut self) -> Result<()> {
        terminate(&mut self.child)
    }
}

impl Drop for VoiceEngine {
    fn drop(&mut self) {
        kill_if_running(&mut self.child);
    }
}
