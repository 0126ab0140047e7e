//! The brokers `compare` runs side by side, each as its own process on free loopback ports.
//!
//! A broker is only loaded after it answered an MQTT CONNECT on its port: rumqttd merely
//! logs a failed bind, and a port that accepts TCP could belong to someone else. Every
//! broker is stopped with SIGTERM, then SIGKILL after a grace period, and is killed on drop
//! so a failing run leaves no process behind.

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use tempfile::TempDir;

use crate::wire::{self, Packet};

/// Ports other processes on these machines own; never hand them to a broker.
const RESERVED_PORTS: [u16; 4] = [1883, 18830, 18831, 18832];
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The closed set of brokers `compare` knows how to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Mosquitto,
    Rumqttd,
    Engine,
}

impl BrokerKind {
    pub const ALL: [BrokerKind; 3] = [BrokerKind::Mosquitto, BrokerKind::Rumqttd, BrokerKind::Engine];

    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Mosquitto => "mosquitto",
            BrokerKind::Rumqttd => "rumqttd",
            BrokerKind::Engine => "engine",
        }
    }
}

impl fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BrokerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BrokerKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown broker `{s}` (mosquitto, rumqttd, engine)"))
    }
}

/// How to start each broker.
#[derive(Debug, Clone)]
pub struct Launch {
    pub mosquitto_bin: PathBuf,
    pub alicia_bin: PathBuf,
    pub alicia_config: Option<PathBuf>,
    pub alicia_args: Vec<String>,
    pub startup_timeout: Duration,
}

impl Launch {
    /// Why `kind` cannot run here, if it cannot: the report says so instead of faking a row.
    pub fn unavailable(&self, kind: BrokerKind) -> Option<String> {
        match kind {
            BrokerKind::Mosquitto => (!self.mosquitto_bin.is_file()).then(|| {
                format!("mosquitto binary {} not found (apt-get install mosquitto)", self.mosquitto_bin.display())
            }),
            BrokerKind::Rumqttd => None,
            BrokerKind::Engine if !self.alicia_bin.is_file() => Some(format!(
                "engine binary {} not found (build `alicia` or pass --alicia-bin)",
                self.alicia_bin.display()
            )),
            BrokerKind::Engine => self
                .alicia_config
                .is_none()
                .then(|| "no engine config found (bus-config/alicia.toml); pass --alicia-config".to_string()),
        }
    }

    /// A one-line identification for the report.
    pub fn version(&self, kind: BrokerKind) -> String {
        match kind {
            BrokerKind::Mosquitto => first_line(&self.mosquitto_bin, &["-h"]).unwrap_or_else(|| "mosquitto".into()),
            BrokerKind::Rumqttd => {
                "rumqttd 0.20 with its built-in v4 listener (alicia-loadgen rumqttd-baseline)".into()
            }
            BrokerKind::Engine => {
                let version = first_line(&self.alicia_bin, &["--version"]).unwrap_or_else(|| "alicia".into());
                format!("{version} ({})", self.alicia_bin.display())
            }
        }
    }
}

fn first_line(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).stdin(Stdio::null()).output().ok()?;
    let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
    String::from_utf8_lossy(&text).lines().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_string())
}

/// `name` on PATH, else the first existing fallback, else `name` itself.
pub fn find_program(name: &str, fallbacks: &[&str]) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()))
        .unwrap_or_default();
    on_path.or_else(|| fallbacks.iter().map(PathBuf::from).find(|c| c.is_file())).unwrap_or_else(|| PathBuf::from(name))
}

/// A free loopback port from the kernel's ephemeral range.
pub fn free_port() -> Result<u16> {
    for _ in 0..16 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if !RESERVED_PORTS.contains(&port) {
            return Ok(port);
        }
    }
    bail!("no free loopback port")
}

/// A running broker that this process started.
pub struct BrokerProcess {
    pub kind: BrokerKind,
    pub addr: SocketAddr,
    pub command: String,
    /// From the spawn to the first CONNACK (polled every 25 ms).
    pub ready_after: Duration,
    child: Child,
    /// rumqttd-baseline exits when this pipe closes, even if loadgen is killed.
    _stdin: Option<ChildStdin>,
    log: PathBuf,
    _dir: TempDir,
}

impl BrokerProcess {
    /// Starts `kind` on free ports and returns once it answers an MQTT CONNECT.
    pub fn start(kind: BrokerKind, launch: &Launch) -> Result<Self> {
        Self::start_with(kind, launch, "")
    }

    /// mosquitto with `extra` appended to its generated config (a later line wins), e.g.
    /// its persistence settings.
    pub fn start_mosquitto(launch: &Launch, extra: &str) -> Result<Self> {
        Self::start_with(BrokerKind::Mosquitto, launch, extra)
    }

    fn start_with(kind: BrokerKind, launch: &Launch, mosquitto_extra: &str) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("alicia-loadgen-").tempdir()?;
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let mut cmd = match kind {
            BrokerKind::Mosquitto => {
                let config = dir.path().join("mosquitto.conf");
                fs::write(&config, mosquitto_config(addr.port()) + mosquitto_extra)?;
                let mut cmd = Command::new(&launch.mosquitto_bin);
                cmd.arg("-c").arg(&config);
                cmd
            }
            BrokerKind::Rumqttd => {
                let mut cmd = Command::new(std::env::current_exe().context("locate alicia-loadgen")?);
                cmd.args(["rumqttd-baseline", "--listen", &addr.to_string(), "--exit-on-stdin-eof"]);
                cmd
            }
            BrokerKind::Engine => {
                let config = launch.alicia_config.as_ref().context("no engine config")?;
                let http: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
                let mut cmd = Command::new(&launch.alicia_bin);
                cmd.arg("serve").arg("--config").arg(config);
                cmd.args(["--mqtt-listen", &addr.to_string(), "--http-listen", &http.to_string()]);
                cmd.args(&launch.alicia_args);
                cmd
            }
        };
        let log = dir.path().join("broker.log");
        let log_file = File::create(&log)?;
        cmd.stdout(log_file.try_clone()?).stderr(log_file);
        cmd.stdin(if kind == BrokerKind::Rumqttd { Stdio::piped() } else { Stdio::null() });
        let command = format!("{cmd:?}").replace('"', "");
        let spawned = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("start {kind}: {command}"))?;
        let stdin = child.stdin.take();
        let ready_after = Duration::ZERO;
        let mut broker = BrokerProcess { kind, addr, command, ready_after, child, _stdin: stdin, log, _dir: dir };
        broker.wait_ready(spawned, launch.startup_timeout)?;
        Ok(broker)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some` once the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last few lines the broker logged, on one line, to explain a failure.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(5)..].join(" / ");
        if tail.is_empty() {
            "log empty".into()
        } else {
            format!("log: {tail}")
        }
    }

    /// The log as written; a line that is not UTF-8 (a topic cut inside a character)
    /// must not hide the rest.
    pub fn log_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.log).unwrap_or_default()
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&self.log_bytes()).into_owned()
    }

    /// Log lines that say the broker dropped messages, e.g. mosquitto's "Outgoing messages
    /// are being dropped for client ...", to explain loss in the report.
    pub fn drop_lines(&self) -> Vec<String> {
        let text = self.log_text();
        text.lines().filter(|l| l.contains("dropped")).map(str::to_string).collect()
    }

    fn wait_ready(&mut self, spawned: Instant, timeout: Duration) -> Result<()> {
        let deadline = spawned + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited ({status}) before accepting MQTT on {} ({})", self.kind, self.addr, self.log_tail());
            }
            let Err(e) = mqtt_probe(self.addr) else { break };
            if Instant::now() >= deadline {
                bail!(
                    "{} did not accept MQTT on {} within {timeout:?}: {e:#} ({})",
                    self.kind,
                    self.addr,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.ready_after = spawned.elapsed();
        // A broker that lost the bind race exits soon after; make sure it was ours that answered.
        std::thread::sleep(Duration::from_millis(100));
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}) right after start: does another process own {}? ({})",
                self.kind,
                self.addr,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL if the broker is still running after the grace period.
    pub fn stop(mut self) -> Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> Result<()> {
        terminate(&mut self.child)
    }

    /// SIGKILL, as a power cut or the OOM killer would: no chance to save anything.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        kill_if_running(&mut self.child);
    }
}

/// SIGTERM, then SIGKILL if the process is still running after the grace period.
pub(crate) fn terminate(child: &mut Child) -> Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    // `kill(1)` rather than libc::kill: the workspace denies unsafe code.
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()?;
    Ok(())
}

/// For `Drop`: a process that outlives its handle would hold its ports.
pub(crate) fn kill_if_running(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `message_size_limit` is the seeds' 256 MB less one byte: mosquitto 2.0 refuses
/// 268435456 ("Invalid message_size_limit value"); 268435455 is the MQTT maximum.
/// `max_connections -1` (mosquitto's default, written out) lets `connections` hold
/// 10,000 clients.
fn mosquitto_config(port: u16) -> String {
    format!(
        "listener {port} 127.0.0.1\n\
         max_connections -1\n\
         allow_anonymous true\n\
         max_inflight_messages 100\n\
         max_queued_messages 1000\n\
         message_size_limit 268435455\n\
         persistence false\n\
         log_dest stderr\n"
    )
}

/// One CONNECT/CONNACK exchange over a blocking socket.
fn mqtt_probe(addr: SocketAddr) -> Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(250))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut out = BytesMut::new();
    wire::encode_connect(&mut out, &format!("lg-probe-{}", std::process::id()), 10);
    stream.write_all(&out)?;
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; 64];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("connection closed before CONNACK");
        }
        buf.extend_from_slice(&chunk[..n]);
        match wire::decode(&buf)? {
            Some((Packet::ConnAck { code: 0, .. }, _)) => break,
            Some((other, _)) => bail!("expected CONNACK, got {other:?}"),
            None => continue,
        }
    }
    out.clear();
    wire::encode_disconnect(&mut out);
    let _ = stream.write_all(&out);
    Ok(())
}

/// The engine config in this checkout, looked up from the working directory, then from
/// the package cargo runs this from (tests), then from the workspace this binary was
/// built in (a build cache shared between checkouts may have built it in another).
pub fn default_engine_config() -> Option<PathBuf> {
    let run_from = std::env::var_os("CARGO_MANIFEST_DIR").map(|d| Path::new(&d).join("../bus-config/alicia.toml"));
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bus-config/alicia.toml");
    [Some(PathBuf::from("bus-config/alicia.toml")), run_from, Some(built_in)]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_broker_names_and_avoids_reserved_ports() {
        assert_eq!("Engine".parse::<BrokerKind>(), Ok(BrokerKind::Engine));
        assert!("emqx".parse::<BrokerKind>().is_err());
        let port = free_port().unwrap();
        assert!(port != 0 && !RESERVED_PORTS.contains(&port));
    }
}
