//! Engines under test.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use alicia::Engine;
use alicia_config::{AliciaConfig, IoBackend};

/// A config on loopback with ephemeral ports and quick heartbeats.
pub fn test_config() -> AliciaConfig {
    let mut config = AliciaConfig::default();
    config.mqtt.listen = "127.0.0.1:0".parse().unwrap();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.mqtt.io_threads = 2;
    config.services.heartbeat_interval_secs = 1;
    // $SYS's thirty retained topics would be in every count of retained messages and
    // every wide subscription; tests/sys_topics.rs turns it on.
    config.mqtt.sys_interval_secs = 0;
    config.topics.aliases =
        [("alicia/voice/stt/result", "alicia/voice/stt/response"), ("alicia/ai/request", "alicia/voice/ai/request")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    config
}

/// Both socket backends, for tests that must hold on either.
pub const BACKENDS: [IoBackend; 2] = [IoBackend::Uring, IoBackend::Epoll];

/// An engine running inside the test process.
pub struct TestEngine {
    pub engine: Engine,
}

impl TestEngine {
    pub async fn start(config: AliciaConfig) -> TestEngine {
        // ALICIA_TEST_LOG=debug shows the engine's logs in a failing test's output.
        if let Ok(filter) = std::env::var("ALICIA_TEST_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
        let engine = Engine::start(config).await.expect("engine starts");
        TestEngine { engine }
    }

    /// With what to do instead of exiting when a component that held client state dies.
    pub async fn start_with(config: AliciaConfig, on_fatal: alicia::OnFatal) -> TestEngine {
        let engine = Engine::start_with(config, on_fatal).await.expect("engine starts");
        TestEngine { engine }
    }

    /// Loaded from `path` as `alicia serve --config path` does: the config service
    /// writes updates there and `engine.reload()` re-reads it.
    pub async fn from_file(path: &std::path::Path) -> TestEngine {
        let file = alicia::config_service::ConfigFile::new(path);
        let config = file.load().unwrap_or_else(|errors| panic!("{} is invalid:\n{errors}", path.display()));
        let live = alicia::Live { file: Some(file), log: None };
        let on_fatal: alicia::OnFatal = std::sync::Arc::new(|code| panic!("a fatal component failure (exit {code})"));
        let engine = Engine::start_live(config, live, on_fatal).await.expect("engine starts");
        TestEngine { engine }
    }

    pub async fn with_defaults() -> TestEngine {
        TestEngine::start(test_config()).await
    }

    pub fn mqtt_port(&self) -> u16 {
        self.engine.mqtt_addr().port()
    }

    pub fn mqtt_addr(&self) -> SocketAddr {
        self.engine.mqtt_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.engine.http_addr()
    }

    pub async fn stop(self) {
        self.engine.shutdown().await;
    }
}

/// The `alicia` binary of this workspace, built on first use (cargo gives integration
/// tests only their own package's binaries).
pub fn alicia_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "alicia", "--bin", "alicia"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the alicia binary failed");
            // target/<profile>/deps/<test-binary> → target/<profile>/alicia
            let exe = std::env::current_exe().unwrap();
            exe.parent().and_then(|deps| deps.parent()).unwrap().join("alicia")
        })
        .clone()
}

/// The repository's `bus-config/`.
pub fn bus_config_dir() -> PathBuf {
    // At run time: a build cache shared between checkouts may have compiled this in another.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../bus-config")
}

/// `alicia serve` as a child process, ready to take connections.
pub struct EngineProcess {
    pub child: Child,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
}

impl EngineProcess {
    /// Starts `alicia serve` with extra arguments and waits for its ready line.
    pub fn spawn(extra: &[&str]) -> EngineProcess {
        EngineProcess::spawn_with(&bus_config_dir().join("alicia.toml"), extra)
    }

    /// The same with another configuration file.
    pub fn spawn_with(config: &std::path::Path, extra: &[&str]) -> EngineProcess {
        let mut child = Command::new(alicia_binary())
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(["--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(extra)
            .env("ALICIA_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("alicia starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("ready line");
        let field = |name: &str| -> SocketAddr {
            let start =
                line.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name}= in {line:?}")) + name.len() + 1;
            line[start..].split_whitespace().next().unwrap().parse().unwrap()
        };
        let (mqtt, http) = (field("mqtt"), field("http"));
        EngineProcess { child, mqtt, http }
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
