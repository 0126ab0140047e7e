//! The engine with its voice on, started here like `compare` starts its brokers (free
//! loopback ports from [`brokers::free_port`], SIGTERM then SIGKILL, killed on drop), but
//! with the `--env development` overlay, Wyoming on an ephemeral port, the repository as
//! working directory (the config's `models/` and `home.toml` are relative to it) and the
//! HTTP address kept for `/metrics`: the engine's `alicia ready mqtt=… http=…` line says
//! where it listens.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::brokers::{free_port, kill_if_running, terminate};

pub struct VoiceEngine {
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
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
    pub fn start(alicia_bin: &Path, config: &Path, timeout: Duration) -> Result<Self> {
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
        let http: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let config = config.canonicalize().with_context(|| format!("engine config {}", config.display()))?;
        let mut cmd = Command::new(alicia_bin);
        cmd.current_dir(&repo).arg("serve").arg("--config").arg(&config);
        cmd.args(["--env", "development", "--mqtt-listen", &mqtt.to_string(), "--http-listen", &http.to_string()]);
        cmd.args(["--wyoming-listen", "127.0.0.1:0"]);
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
        let mut engine = VoiceEngine { mqtt, http, command, child, log, _dir: dir };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(line) = ready_rx.recv_timeout(Duration::from_millis(100)) {
                for field in line.split_whitespace() {
                    if let Some(a) = field.strip_prefix("mqtt=").and_then(|a| a.parse().ok()) {
                        engine.mqtt = a;
                    }
                    if let Some(a) = field.strip_prefix("http=").and_then(|a| a.parse().ok()) {
                        engine.http = a;
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

/// `GET /metrics` over a plain HTTP/1.0 socket.
pub fn scrape(http: SocketAddr) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&http, Duration::from_secs(2)).with_context(|| format!("connect {http}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {http}\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    let (head, body) = body.split_once("\r\n\r\n").context("malformed HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("/metrics: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_string())
}

/// `(sum, count)` of a Prometheus histogram or summary, by its `stage` label (`""` without).
pub fn sums_and_counts(text: &str, name: &str) -> std::collections::BTreeMap<String, (f64, f64)> {
    let mut out = std::collections::BTreeMap::<String, (f64, f64)>::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let (metric, labels) = series.split_once('{').unwrap_or((series, ""));
        let is_sum = metric.strip_suffix("_sum") == Some(name);
        let is_count = metric.strip_suffix("_count") == Some(name);
        if !is_sum && !is_count {
            continue;
        }
        let stage = labels
            .split(',')
            .find_map(|l| l.trim().strip_prefix("stage=\""))
            .map(|v| v.trim_end_matches(['"', '}']).to_string())
            .unwrap_or_default();
        let entry = out.entry(stage).or_default();
        if is_sum {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_sums_and_counts() {
        let text = "# TYPE x histogram\nalicia_stage_process_seconds_sum{stage=\"stt\"} 1.5\n\
                    alicia_stage_process_seconds_count{stage=\"stt\"} 3\n\
                    alicia_voice_end_to_end_seconds_sum 2\nalicia_voice_end_to_end_seconds_count 4\n";
        let m = sums_and_counts(text, "alicia_stage_process_seconds");
        assert_eq!(m["stt"], (1.5, 3.0));
        assert_eq!(sums_and_counts(text, "alicia_voice_end_to_end_seconds")[""], (2.0, 4.0));
    }
}
