//! `alicia serve` as a child process on free loopback ports, for the scenarios that need
//! more than an MQTT port (`voice`, `hostile`): its `alicia ready mqtt=… http=… wyoming=…`
//! line says where each listener is. Stopped with SIGTERM then SIGKILL, killed on drop.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::brokers::{free_port, kill_if_running, terminate};

#[derive(Debug, Clone)]
pub struct EngineLaunch {
    pub bin: PathBuf,
    pub config: PathBuf,
    /// `--env`; none when the config already has its overlay merged in.
    pub env: Option<String>,
    /// Relative paths in the config (models, home) resolve against this.
    pub cwd: PathBuf,
    pub extra_args: Vec<String>,
    /// Environment set for the engine beside the inherited one (`ALICIA_LOG`).
    pub envs: Vec<(String, String)>,
    /// How long loading (models included) may take before the ready line.
    pub startup_timeout: Duration,
}

pub struct EngineProcess {
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    /// `None` when the engine runs without its Wyoming server (voice off).
    pub wyoming: Option<SocketAddr>,
    pub command: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The addresses of an `alicia ready` line.
fn parse_ready(line: &str) -> Option<(SocketAddr, SocketAddr, Option<SocketAddr>)> {
    let field = |name: &str| line.split_whitespace().find_map(|f| f.strip_prefix(name)?.strip_prefix('='));
    let mqtt = field("mqtt")?.parse().ok()?;
    let http = field("http")?.parse().ok()?;
    Some((mqtt, http, field("wyoming").and_then(|w| w.parse().ok())))
}

impl EngineProcess {
    pub fn start(launch: &EngineLaunch) -> Result<Self> {
        if !launch.bin.is_file() {
            bail!("engine binary {} not found (build `alicia` or pass --alicia-bin)", launch.bin.display());
        }
        let dir = tempfile::Builder::new().prefix("alicia-loadgen-engine-").tempdir()?;
        let mqtt: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let http: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let config =
            launch.config.canonicalize().with_context(|| format!("engine config {}", launch.config.display()))?;
        let mut cmd = Command::new(&launch.bin);
        cmd.current_dir(&launch.cwd).arg("serve").arg("--config").arg(&config);
        if let Some(env) = &launch.env {
            cmd.args(["--env", env]);
        }
        cmd.args(["--mqtt-listen", &mqtt.to_string(), "--http-listen", &http.to_string()]);
        cmd.args(["--wyoming-listen", "127.0.0.1:0"]).args(&launch.extra_args);
        cmd.envs(launch.envs.iter().map(|(k, v)| (k, v)));
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
        let mut engine = EngineProcess { mqtt, http, wyoming: None, command, child, log, _dir: dir };
        let deadline = Instant::now() + launch.startup_timeout;
        loop {
            if let Ok(line) = ready_rx.recv_timeout(Duration::from_millis(100)) {
                let (mqtt, http, wyoming) =
                    parse_ready(&line).with_context(|| format!("unexpected ready line `{line}`"))?;
                (engine.mqtt, engine.http, engine.wyoming) = (mqtt, http, wyoming);
                return Ok(engine);
            }
            if let Some(status) = engine.child.try_wait()? {
                bail!("engine exited ({status}) before it was ready ({})", engine.log_tail());
            }
            if Instant::now() >= deadline {
                bail!("engine not ready within {:?} ({})", launch.startup_timeout, engine.log_tail());
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some` once the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Where the engine's stdout and stderr go.
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// The log as written; a line that is not UTF-8 (a topic cut inside a character)
    /// must not hide the rest.
    pub fn log_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.log).unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log_bytes()).into_owned()
    }

    pub fn log_tail(&self) -> String {
        format!("log: {}", self.last_lines(5).join(" / "))
    }

    /// The last `n` non-empty lines of the log.
    pub fn last_lines(&self, n: usize) -> Vec<String> {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].iter().map(|l| l.to_string()).collect()
    }

    pub fn stop(mut self) -> Result<()> {
        terminate(&mut self.child)
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        kill_if_running(&mut self.child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ready_line() {
        let line = "alicia ready mqtt=127.0.0.1:40001 http=127.0.0.1:40002 io=epoll wyoming=127.0.0.1:40003";
        let (m, h, w) = parse_ready(line).unwrap();
        assert_eq!((m.port(), h.port(), w.map(|w| w.port())), (40001, 40002, Some(40003)));
        let (_, _, w) = parse_ready("alicia ready mqtt=127.0.0.1:1 http=127.0.0.1:2 io=uring wyoming=off").unwrap();
        assert_eq!(w, None);
        assert!(parse_ready("alicia ready io=epoll").is_none());
    }
}
