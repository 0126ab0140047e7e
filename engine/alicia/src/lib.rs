//! The composition root: builds a running engine from a config.
//!
//! # Layout
//! - this file: [`Engine`], which starts the broker, the core services, the speech
//!   server, the HTTP API and (with `[http] tls_listen`) the device token listener in
//!   order and stops them in reverse; secret files are read before anything listens.
//! - [`speech`]: Whisper + Piper for the voice pipeline and the Wyoming protocol server.
//! - `supervised`: the voice pipeline and the Wyoming server as supervised components,
//!   rebuilt when they die (and, with the `fault-injection` feature, killed on purpose).
//! - `supervision`: alerts for components that die, and the exit when one that held
//!   client state does.
//! - `sys_topics`: `$SYS/broker/...` as mosquitto's, from the engine's own meters.
//! - `live_config`: the config service's hooks into the engine ([`Live`]: the config
//!   file and the log filter; `[security]` swapped through the broker).
//! - `security_alerts`: alerts for refusals that mean someone is trying something
//!   (bad signatures, replays, revoked certificates, rates), one per reason per 10 s.
//! - `main.rs`: the `alicia` command line (serve, models, ask, say, check-config), with
//!   `passwd.rs` (`alicia passwd`, as `mosquitto_passwd`) and `certs.rs` (`alicia certs
//!   init|issue|revoke`, the development PKI).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alicia_broker::Broker;
use alicia_config::AliciaConfig;
use alicia_http::{DeviceAuthServer, DeviceAuthSettings, HealthSource, HttpLimits, HttpServer};
use alicia_services::CoreServices;
use alicia_supervisor::Supervisor;
use tokio_util::sync::CancellationToken;

pub use alicia_config as config;
pub use alicia_supervisor as supervisor;

mod live_config;
mod security_alerts;
pub mod speech;
mod supervised;
mod supervision;
mod sys_topics;

pub use alicia_config_service as config_service;
pub use live_config::{Live, LogFilter};
pub use supervision::{OnFatal, COMPONENT_FAILED_EXIT};

/// A running engine.
pub struct Engine {
    broker: Broker,
    services: CoreServices,
    voice: Option<supervised::Voice>,
    http: HttpServer,
    /// `POST /auth/device`, when `[http] tls_listen` is set.
    device_auth: Option<DeviceAuthServer>,
    health: Arc<EngineHealth>,
    upkeep: tokio::task::JoinHandle<()>,
    supervisor: Supervisor,
    supervision_stop: CancellationToken,
    supervision: tokio::task::JoinHandle<()>,
    /// The config in force and on disk (the config service's state).
    config: Arc<alicia_config_service::ConfigState>,
}

impl Engine {
    /// Starts everything; any listener that cannot bind fails the whole start with an
    /// error naming its address. Call inside a multi-threaded tokio runtime. A
    /// component that dies with client state ends the process (exit status 70).
    pub async fn start(config: AliciaConfig) -> anyhow::Result<Engine> {
        Engine::start_with(config, Arc::new(|code| std::process::exit(code))).await
    }

    /// [`Engine::start`], with what to do instead of exiting when a component that held
    /// client state has died (`on_fatal` gets the exit status).
    pub async fn start_with(config: AliciaConfig, on_fatal: OnFatal) -> anyhow::Result<Engine> {
        Engine::start_live(config, Live::default(), on_fatal).await
    }

    /// [`Engine::start_with`] for a config loaded from `live.file`: the config service
    /// writes updates there and [`Engine::reload`] re-reads it.
    pub async fn start_live(config: AliciaConfig, live: Live, on_fatal: OnFatal) -> anyhow::Result<Engine> {
        // Secrets first: a bad token file fails the start before anything listens.
        let http_token = config
            .http
            .token_file
            .as_deref()
            .map(alicia_auth::BearerToken::load)
            .transpose()
            .map_err(|e| anyhow::anyhow!("[http] token_file: {e}"))?;
        let device_auth = device_auth_settings(&config)?;
        let metrics = alicia_http::recorder::install();
        alicia_voice_bus::describe_metrics();
        let supervisor = Supervisor::new();
        let broker = Broker::start(&config, &supervisor).await?;
        let supervision_stop = CancellationToken::new();
        let supervision = {
            let client = alicia_broker::LocalClient::connect(broker.bus(), "supervisor").await?;
            let reach =
                supervision::Reach { client, bus: broker.bus().clone(), source: config.engine.name.clone(), on_fatal };
            tokio::spawn(supervision::run(supervisor.clone(), reach, supervision_stop.clone()))
        };
        if config.mqtt.sys_interval_secs > 0 {
            let sys = alicia_broker::LocalClient::connect(broker.bus(), "sys").await?;
            let every = Duration::from_secs(config.mqtt.sys_interval_secs);
            tokio::spawn(sys_topics::run(sys, metrics.clone(), every, supervision_stop.clone()));
        }
        let alerts_client = alicia_broker::LocalClient::connect(broker.bus(), "security").await?;
        let alerts = broker.security_alerts();
        tokio::spawn(security_alerts::run(alerts_client, alerts, config.engine.name.clone(), supervision_stop.clone()));
        // `[voice]`'s settings as they change, for the pipeline (when the voice is on).
        let (voice_settings, voice_settings_rx) = tokio::sync::watch::channel(speech::voice_settings(&config));
        let config_state = {
            let reconfigure =
                live_config::EngineReconfigure { broker: broker.control(), voice: voice_settings, log: live.log };
            Arc::new(alicia_config_service::ConfigState::new(config.clone(), live.file, Box::new(reconfigure)))
        };
        let config_client = alicia_broker::LocalClient::connect(broker.bus(), "config").await?;
        let config_service = alicia_config_service::ConfigService {
            state: config_state.clone(),
            name: config.engine.name.clone(),
            max_envelope_bytes: config.services.max_envelope_bytes,
        };
        tokio::spawn(config_service.run(config_client, supervision_stop.clone()));
        let mut services = CoreServices::start(&config, broker.bus()).await?;
        let monitor = {
            let page = metrics.clone();
            let inputs = alicia_services::MonitorInputs {
                metrics_page: Arc::new(move || page.render()),
                supervisor: supervisor.clone(),
            };
            services.start_monitor(&config, broker.bus(), inputs).await?
        };
        // The timers: kept in the store, rung on the site's speaker through the voice.
        let timers = alicia_timers::TimerBook::open(broker.store().cloned());
        let timers_client = alicia_broker::LocalClient::connect(broker.bus(), "timers").await?;
        let timer_service = alicia_timers::TimerService {
            book: timers.clone(),
            max_envelope_bytes: config.services.max_envelope_bytes,
        };
        tokio::spawn(timer_service.run(timers_client, supervision_stop.clone()));
        let voice = match speech::start(&config, broker.bus(), &supervisor, voice_settings_rx, timers).await {
            Ok(voice) => voice,
            Err(e) => {
                services.shutdown().await;
                broker.shutdown().await;
                return Err(e);
            }
        };
        let health = Arc::new(EngineHealth {
            name: config.engine.name.clone(),
            environment: config.engine.environment.clone(),
            started: Instant::now(),
            mqtt: broker.mqtt_addr(),
            io_backend: broker.io_backend().as_str(),
            stopping: AtomicBool::new(false),
            supervisor: supervisor.clone(),
            monitor,
        });
        let http_limits = http_limits(&config);
        let backup =
            broker.store().cloned().map(|store| Arc::new(StoreBackup(store)) as Arc<dyn alicia_http::BackupSource>);
        let http = match HttpServer::start(
            config.http.listen,
            http_limits,
            http_token,
            metrics.clone(),
            health.clone(),
            backup,
        )
        .await
        {
            Ok(http) => http,
            Err(e) => {
                if let Some(voice) = voice {
                    voice.shutdown().await;
                }
                services.shutdown().await;
                broker.shutdown().await;
                return Err(e.into());
            }
        };
        let device_auth = match device_auth {
            None => None,
            Some(settings) => match DeviceAuthServer::start(settings).await {
                Ok(server) => Some(server),
                Err(e) => {
                    http.shutdown().await;
                    if let Some(voice) = voice {
                        voice.shutdown().await;
                    }
                    services.shutdown().await;
                    broker.shutdown().await;
                    return Err(e.into());
                }
            },
        };
        // The exporter's histograms need draining now and then.
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                metrics.run_upkeep();
            }
        });
        Ok(Engine {
            broker,
            services,
            voice,
            http,
            device_auth,
            health,
            upkeep,
            supervisor,
            supervision_stop,
            supervision,
            config: config_state,
        })
    }

    pub fn mqtt_addr(&self) -> SocketAddr {
        self.broker.mqtt_addr()
    }

    /// Re-reads what SIGHUP re-reads: the config file (when the engine has one; its
    /// live keys are put in force, the rest waits for a restart), then passwords, ACL
    /// and signing keys (every live client's rules follow), and the TLS certificate,
    /// key, CA and CRL. A broken file keeps the old configuration in force; the error
    /// lists every problem.
    pub fn reload(&self) -> Result<(), String> {
        let config = match self.config.reload() {
            Ok(outcome) => {
                if outcome.status != alicia_config_service::Status::Unchanged {
                    tracing::info!(
                        status = outcome.status.as_str(),
                        applied = ?outcome.applied,
                        restart_required = ?outcome.restart_required,
                        "config file reloaded"
                    );
                }
                Ok(())
            }
            Err(errors) => Err(format!("config file: {} error(s), the old config stays:\n{errors}", errors.len())),
        };
        let files = self.broker.reload();
        match (config, files) {
            (Ok(()), files) => files,
            (Err(a), Ok(())) => Err(a),
            (Err(a), Err(b)) => Err(format!("{a}\n{b}")),
        }
    }

    /// The configuration in force (what a config request is answered with, unredacted).
    pub fn config(&self) -> AliciaConfig {
        self.config.in_force()
    }

    /// The MQTT over TLS listener, when `[mqtt.tls]` is configured.
    pub fn mqtt_tls_addr(&self) -> Option<SocketAddr> {
        self.broker.tls_addr()
    }

    /// The MQTT over WebSocket listener, when `[mqtt.websocket]` is configured.
    pub fn mqtt_websocket_addr(&self) -> Option<SocketAddr> {
        self.broker.websocket_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// The HTTPS address of `POST /auth/device`, when `[http] tls_listen` is set.
    pub fn device_auth_addr(&self) -> Option<SocketAddr> {
        self.device_auth.as_ref().map(DeviceAuthServer::addr)
    }

    /// The Wyoming server's address, when the voice is enabled.
    pub fn wyoming_addr(&self) -> Option<SocketAddr> {
        self.voice.as_ref().map(|v| v.wyoming_addr())
    }

    pub fn io_backend(&self) -> &'static str {
        self.broker.io_backend().as_str()
    }

    /// Kills `component` (`voice-pipeline`, `wyoming`, `mqtt-io-N` or `router`) as a bug would, so tests can
    /// watch the supervision notice and restart it; false if there is no such component
    /// running. Only with the `fault-injection` feature, which the engine's binary never
    /// has; nothing a client sends reaches this.
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&self, component: &str) -> bool {
        self.broker.inject_fault(component) || self.voice.as_ref().is_some_and(|voice| voice.inject_fault(component))
    }

    /// The registry of the engine's components and their status.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Stops in reverse order of start: health goes unhealthy, services say goodbye on
    /// the bus, clients are disconnected, then HTTP closes.
    pub async fn shutdown(self) {
        self.health.stopping.store(true, Ordering::Release);
        if let Some(voice) = self.voice {
            voice.shutdown().await;
        }
        self.services.shutdown().await;
        self.supervision_stop.cancel();
        let _ = self.supervision.await;
        self.broker.shutdown().await;
        self.http.shutdown().await;
        if let Some(device_auth) = self.device_auth {
            device_auth.shutdown().await;
        }
        self.upkeep.abort();
    }
}

fn http_limits(config: &AliciaConfig) -> HttpLimits {
    HttpLimits {
        header_timeout: Duration::from_millis(config.http.header_timeout_ms),
        request_timeout: Duration::from_millis(config.http.request_timeout_ms),
        max_connections: config.http.max_connections,
        max_connections_per_source: config.http.max_connections_per_source,
    }
}

/// `[http] tls_listen` and its files, the token key read now so a bad one fails the
/// start before anything listens.
fn device_auth_settings(config: &AliciaConfig) -> anyhow::Result<Option<DeviceAuthSettings>> {
    let http = &config.http;
    let Some(listen) = http.tls_listen else { return Ok(None) };
    let needed = |value: &Option<std::path::PathBuf>, key: &str| {
        value.clone().ok_or_else(|| anyhow::anyhow!("[http] tls_listen needs {key}"))
    };
    let key_file = needed(&config.security.token_key_file, "[security] token_key_file")?;
    let key = alicia_auth::TokenKey::load(&key_file).map_err(|e| anyhow::anyhow!("[security] token_key_file: {e}"))?;
    let tls = alicia_tls::TlsSettings {
        cert: needed(&http.tls_cert, "[http] tls_cert")?,
        key: needed(&http.tls_key, "[http] tls_key")?,
        ca: Some(needed(&http.tls_ca, "[http] tls_ca")?),
        require_certificate: true,
        use_identity_as_username: false,
        crl: http.tls_crl.clone(),
    };
    let ttl = Duration::from_secs(http.token_ttl_seconds);
    Ok(Some(DeviceAuthSettings { listen, tls, key, ttl, limits: http_limits(config) }))
}

struct EngineHealth {
    name: String,
    environment: String,
    started: Instant,
    mqtt: SocketAddr,
    io_backend: &'static str,
    stopping: AtomicBool,
    supervisor: Supervisor,
    /// The health monitor's picture, for `GET /health`.
    monitor: Option<alicia_services::MonitorView>,
}

impl HealthSource for EngineHealth {
    fn health(&self) -> (bool, serde_json::Value) {
        let stopping = self.stopping.load(Ordering::Acquire);
        let components = self.supervisor.snapshot();
        let down: Vec<&str> = components.iter().filter(|c| !c.up).map(|c| c.name.as_str()).collect();
        let status = match (stopping, down.is_empty()) {
            (true, _) => "stopping",
            (false, false) => "unhealthy",
            (false, true) => "healthy",
        };
        let components: serde_json::Map<String, serde_json::Value> = components
            .iter()
            .map(|c| {
                let mut entry = serde_json::json!({ "up": c.up, "restarts": c.restarts });
                if let Some(cause) = &c.last_failure {
                    entry["last_failure"] = cause.clone().into();
                }
                (c.name.clone(), entry)
            })
            .collect();
        let body = serde_json::json!({
            "service": self.name,
            "status": status,
            "down": down,
            "components": components,
            "environment": self.environment,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "mqtt": { "listen": self.mqtt.to_string(), "io_backend": self.io_backend },
        });
        (status == "healthy", body)
    }

    fn overview(&self) -> Option<serde_json::Value> {
        self.monitor.as_ref().map(alicia_services::MonitorView::overview)
    }
}

/// `GET /store/backup`: the durable store's online snapshot.
struct StoreBackup(alicia_broker::Store);

impl alicia_http::BackupSource for StoreBackup {
    fn write_backup(&self, out: &mut dyn std::io::Write) -> Result<(), String> {
        let summary = self.0.backup_to(out).map_err(|e| e.to_string())?;
        tracing::info!(records = summary.records, bytes = summary.bytes, "store backup sent");
        Ok(())
    }
}
