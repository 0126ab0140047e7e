//! `alicia serve` as a child process on free loopback ports, for the scenarios that need
//! more than an MQTT port (`voice`, `hostile`, `tls`): its `alicia ready mqtt=… http=…
//! wyoming=… mqtt-tls=…` line says where each listener is. Stopped with SIGTERM then SIGKILL, killed on drop.

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
    /// An empty durable store of its own (`--storage-dir` in the engine's temporary
    /// directory), so a run never sees what an earlier one left in the checkout's
    /// store (timers that ring mid-run, retained messages) nor finds it locked by
    /// another engine. Off for runs that restart an engine on its own data.
    pub fresh_store: bool,
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
    /// `None` without `[mqtt.tls]`.
    pub mqtt_tls: Option<SocketAddr>,
    /// The I/O backend it chose (`uring`, `epoll`).
    pub io: String,
    /// From the spawn to its ready line.
    pub ready_after: Duration,
    pub command: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// What an `alicia ready` line says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ready {
    mqtt: SocketAddr,
    http: SocketAddr,
    wyoming: Option<SocketAddr>,
    mqtt_tls: Option<SocketAddr>,
    io: String,
}

/// The addresses of an `alicia ready` line; a listener that is `off` (or a field an
/// older engine does not print) is `None`.
fn parse_ready(line: &str) -> Option<Ready> {
    let field = |name: &str| line.split_whitespace().find_map(|f| f.strip_prefix(name)?.strip_prefix('='));
    let optional = |name: &str| field(name).and_then(|a| a.parse().ok());
    Some(Ready {
        mqtt: field("mqtt")?.parse().ok()?,
        http: field("http")?.parse().ok()?,
        wyoming: optional("wyoming"),
        mqtt_tls: optional("mqtt-tls"),
        io: field("io").unwrap_or("unknown").to_string(),
    })
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
        if launch.fresh_store {
            cmd.arg("--storage-dir").arg(dir.path().join("store"));
        }
        cmd.envs(launch.envs.iter().map(|(k, v)| (k, v)));
        let log = dir.path().join("engine.log");
        cmd.stdout(Stdio::piped()).stderr(File::create(&log)?).stdin(Stdio::null());
        let command = format!("{cmd:?}").replace('"', "");
        let spawned = Instant::now();
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
        let mut engine = EngineProcess {
            mqtt,
            http,
            wyoming: None,
            mqtt_tls: None,
            io: String::new(),
            ready_after: Duration::ZERO,
            command,
            child,
            log,
            _dir: dir,
        };
        let deadline = spawned + launch.startup_timeout;
        loop {
            if let Ok(line) = ready_rx.recv_timeout(Duration::from_millis(100)) {
                engine.ready_after = spawned.elapsed();
                let ready = parse_ready(&line).with_context(|| format!("unexpected ready line `{line}`"))?;
                (engine.mqtt, engine.http, engine.wyoming) = (ready.mqtt, ready.http, ready.wyoming);
                (engine.mqtt_tls, engine.io) = (ready.mqtt_tls, ready.io);
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

    /// SIGKILL, as a power cut or the OOM killer would: no chance to flush anything.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        kill_if_running(&mut self.child);
    }
}

/// Lines of the engine's log worth a reader's attention: panics, errors, warnings (the
/// first few, with how many there were).
pub fn log_findings(log: &str) -> Vec<String> {
    let worth = |l: &&str| l.contains("panicked") || l.contains(" ERROR ") || l.contains(" WARN ");
    let lines: Vec<&str> = log.lines().filter(worth).collect();
    if lines.is_empty() {
        return Vec::new();
    }
    let mut notes = vec![format!("the engine logged {} warning or error lines; the first:", lines.len())];
    notes.extend(lines.iter().take(3).map(|l| format!("engine log: `{}`", l.trim().replace('`', "'"))));
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ready_line() {
        let line = "alicia ready mqtt=127.0.0.1:40001 http=127.0.0.1:40002 io=epoll wyoming=127.0.0.1:40003";
        let r = parse_ready(line).unwrap();
        assert_eq!((r.mqtt.port(), r.http.port(), r.wyoming.map(|w| w.port())), (40001, 40002, Some(40003)));
        assert_eq!((r.mqtt_tls, r.io.as_str()), (None, "epoll"));
        let r = parse_ready("alicia ready mqtt=127.0.0.1:1 http=127.0.0.1:2 io=uring wyoming=off").unwrap();
        assert_eq!(r.wyoming, None);
        assert!(parse_ready("alicia ready io=epoll").is_none());
    }

    #[test]
    fn reads_the_tls_listener() {
        let line = "alicia ready mqtt=127.0.0.1:1 http=127.0.0.1:2 io=uring wyoming=off \
                    mqtt-tls=127.0.0.1:40004 mqtt-websocket=off";
        let r = parse_ready(line).unwrap();
        assert_eq!(r.mqtt_tls, Some("127.0.0.1:40004".parse().unwrap()));
        assert_eq!(r.io, "uring");
        let off = parse_ready("alicia ready mqtt=127.0.0.1:1 http=127.0.0.1:2 io=epoll mqtt-tls=off").unwrap();
        assert_eq!(off.mqtt_tls, None);
        let v6 = parse_ready("alicia ready mqtt=[::1]:1 http=[::1]:2 io=epoll mqtt-tls=[::1]:3").unwrap();
        assert_eq!(v6.mqtt_tls.map(|a| a.port()), Some(3));
    }

    #[test]
    fn log_findings_keep_the_first_lines_and_the_count() {
        let log = "2026 INFO ready\n2026 WARN accept failed\nx ERROR boom\ny WARN a\nz WARN b\nthread panicked at\n";
        let notes = log_findings(log);
        assert!(notes[0].contains("5 warning or error lines"), "{notes:?}");
        assert_eq!(notes.len(), 4);
        assert!(notes[1].contains("accept failed"));
        assert!(log_findings("INFO all fine\n").is_empty());
    }
}
