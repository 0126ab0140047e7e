//! The embedded MQTT broker: the engine's own front door and sessions, with rumqttd's
//! router as the ordered log that carries every message between threads.
//!
//! # Layout
//! - `listeners`, `listener`, `handshake`: binding the listeners (TCP, TLS, WebSocket),
//!   their shared door limits, the TLS handshake and WebSocket upgrade, the CONNECT and
//!   its CONNACK refusals; each client goes to the node its id hashes to.
//! - `stream`, `websocket`: what a connection arrives on (a plain socket for the io
//!   backend, or a TLS / WebSocket stream read through tokio), and MQTT over WebSocket.
//! - `io`: the socket backends (io_uring via tokio-uring, epoll via tokio); each io
//!   thread is a node.
//! - `node`: a node reads the whole log, keeps the replicated state (retained
//!   messages, shared groups) and delivers to the sessions it hosts.
//! - `session`: MQTT sessions and the tasks of one connection (inbound, subscribe,
//!   outbound QoS and windows, writer, takeover/resume/expiry/wills).
//! - `bus`: what an entry of the router's log looks like; large payloads beside it;
//!   control entries.
//! - [`router`]: rumqttd's router thread and the nodes' links.
//! - `codec`: framing, MQTT 5 properties, our PUBLISH codec; rumqttd's for the rest.
//! - `topic`: topic names and filters, the subscription trie.
//! - `retained`, `shared`: retained messages; shared subscriptions.
//! - `security`: `[security]`'s password file, ACL and device tokens.
//! - `gateway`: what every door asks: those rules (swapped on SIGHUP), the failed-login
//!   back-off, connection rates, signed envelopes, the audit log, security alerts.
//! - `budget`, `limits`, `context`: the byte budget, the limits, what nodes share.
//! - [`local`]: [`LocalClient`], how in-process services use the bus; `local_rules`:
//!   the ACL they obey under their own usernames.
//! - `metrics`: the broker's meters.
//! - `reconfigure`: [`BrokerControl`], `[security]` and `[limits]` swapped while running
//!   (config updates, SIGHUP).
//!
//! Data path: `socket → io thread (codec, session rules) → router log → every node →
//! matching sessions' queues → socket`. Payloads stay the `Bytes` they were read into
//! until the outgoing write; a small one is copied once into the subscriber's write
//! buffer, a large one is written from where it arrived.

mod budget;
mod bus;
mod codec;
mod context;
mod fd_limit;
mod gateway;
mod handshake;
mod io;
mod limits;
mod listener;
mod listeners;
pub mod local;
mod local_rules;
mod metrics;
mod node;
mod persist;
mod reconfigure;
mod retained;
pub mod router;
mod security;
mod session;
mod shared;
mod stream;
mod topic;
mod websocket;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use alicia_config::AliciaConfig;
use alicia_supervisor::{OnFailure, Supervisor};
use alicia_tls::TlsReloader;
use tokio_util::sync::CancellationToken;

pub use alicia_store::Store;
pub use codec::MqttVersion;
pub use gateway::SecurityAlert;
pub use io::ActiveBackend;
pub use local::{BusHandle, LocalClient, LocalMessage};
pub use metrics::{DropReason, Refusal};
pub use reconfigure::BrokerControl;
pub use router::{LinkError, RouterSettings};

use budget::ByteBudget;
use bus::large::LargePayloads;
use context::{Context, LogWatch};
use io::{IoWorkers, NodeSeed};
use limits::Limits;
use listeners::{ListenerAddrs, Listeners};
use retained::RetainedIndex;

/// How long shutdown waits for every node to read what was published before it.
const SHUTDOWN_DRAIN: Duration = Duration::from_millis(500);
/// How long shutdown waits for the audit log's queue to reach the file.
const AUDIT_FLUSH: Duration = Duration::from_secs(1);

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot bind {what} listener on {addr}: {source}")]
    Bind { what: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Io(#[from] io::IoError),
    #[error("cannot open the engine's router link: {0}")]
    Link(#[from] router::LinkError),
    #[error("cannot start the local node: {0}")]
    LocalNode(std::io::Error),
    #[error("{0}")]
    FdLimit(String),
    #[error("security: {0}")]
    Security(#[from] alicia_auth::AuthError),
    #[error("mqtt.tls: {0}")]
    Tls(#[from] alicia_tls::TlsError),
    #[error("security.audit_file: {0}")]
    Audit(String),
    #[error("security.signing: {0}")]
    Signing(String),
    #[error("storage: {0}")]
    Store(#[from] alicia_store::StoreError),
}

/// A running broker. Dropping it without [`Broker::shutdown`] leaves threads running.
pub struct Broker {
    bus: BusHandle,
    ctx: Arc<Context>,
    addrs: ListenerAddrs,
    /// The TLS config the TLS and secure WebSocket listeners serve, for reloads.
    tls: Option<Arc<TlsReloader>>,
    backend: ActiveBackend,
    workers: Arc<IoWorkers>,
    acceptors: Vec<tokio::task::JoinHandle<()>>,
}

impl Broker {
    /// Starts the router, the nodes and the MQTT listener. Call inside a multi-threaded
    /// tokio runtime. Each io thread registers with `supervisor`: one that dies took its
    /// clients' sessions with it, so its failure ends the process.
    pub async fn start(config: &AliciaConfig, supervisor: &Supervisor) -> Result<Broker, BrokerError> {
        let fds = fd_limit::raise()
            .map_err(|e| BrokerError::FdLimit(format!("cannot read the file descriptor limit: {e}")))?;
        fd_limit::check(config.limits.max_connections, fds).map_err(BrokerError::FdLimit)?;
        tracing::debug!(soft = fds.soft, hard = fds.hard, "file descriptor limit");
        let gateway = gateway::Gateway::load(config)?;
        let backend = io::choose_backend(config.mqtt.io)?;
        let listeners = Listeners::bind(config).await?;
        let io_threads = match config.mqtt.io_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let nodes = io_threads + 1;
        let settings = RouterSettings {
            nodes,
            segment_size_bytes: config.router.segment_size_bytes,
            segment_count: config.router.segment_count,
        };
        let router = router::RouterHandle::spawn(&settings);
        let limits = Limits::from_config(config);
        let stop = CancellationToken::new();
        let (store, boot) = open_store(config, io_threads).await?;
        let retained = RetainedIndex::new(limits.max_retained_messages, limits.max_retained_bytes, store.clone());
        let boot = persist::Boot { retained: retained.seed(boot.retained, std::time::Instant::now()), ..boot };
        let ctx = Arc::new(Context {
            metrics: metrics::BrokerMetrics::new("tcp"),
            local_metrics: metrics::BrokerMetrics::new("local"),
            listener_metrics: listeners.bound.iter().map(|l| (l.label, l.metrics.clone())).collect(),
            budget: ByteBudget::new(limits.max_queued_bytes_total),
            large: LargePayloads::new(nodes),
            retained,
            log: LogWatch::new(nodes, settings.window_bytes()),
            sessions: AtomicUsize::new(0),
            tags: bus::tags::Tags::new(nodes),
            stop: stop.clone(),
            limits: arc_swap::ArcSwap::from_pointee(limits),
            rate_generation: std::sync::atomic::AtomicU64::new(0),
            gateway,
            store,
            boot,
        });
        let mut links = {
            let router = router.clone();
            tokio::task::spawn_blocking(move || {
                (0..nodes).map(|i| router.node_link(&format!("node-{i}"))).collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| LinkError(e.to_string()))??
        };
        // Every component that fails here takes state the engine cannot rebuild in
        // place (the clients' sessions, the log's order), so each ends the process.
        let router_component = supervisor.register("router", OnFailure::Exit);
        let local_link = links.pop().expect("one link per node");
        let local_component = supervisor.register("bus-local", OnFailure::Exit);
        let bus =
            BusHandle::start(ctx.clone(), io_threads as u16, local_link, local_component, router_component.clone())
                .map_err(BrokerError::LocalNode)?;
        let seeds = links
            .into_iter()
            .enumerate()
            .map(|(i, link)| NodeSeed {
                id: i as u16,
                ctx: ctx.clone(),
                link,
                component: supervisor.register(format!("mqtt-io-{i}"), OnFailure::Exit),
                router: router_component.clone(),
            })
            .collect();
        let workers = Arc::new(IoWorkers::start(backend, seeds, stop.clone())?);
        bus.set_nodes(workers.inboxes());
        ::metrics::gauge!("alicia_mqtt_io_backend_info", "backend" => backend.as_str()).set(1.0);
        let store_component = ctx.store.as_ref().map(|_| supervisor.register("store", OnFailure::Restart));
        spawn_upkeep(ctx.clone(), store_component);
        let Listeners { addrs, tls, bound } = listeners;
        let door = Arc::new(listener::Door::default());
        let acceptors = bound
            .into_iter()
            .map(|l| tokio::spawn(listener::accept_loop(l, door.clone(), workers.clone(), ctx.clone(), stop.clone())))
            .collect();
        tracing::info!(addr = %addrs.mqtt, io = backend.as_str(), io_threads, "mqtt listener ready");
        if let Some(addr) = addrs.tls {
            tracing::info!(%addr, "mqtt tls listener ready");
        }
        if let Some(addr) = addrs.websocket {
            tracing::info!(%addr, "mqtt websocket listener ready");
        }
        drop(router);
        Ok(Broker { bus, ctx, addrs, tls, backend, workers, acceptors })
    }

    /// The address the MQTT listener is bound to (the real port when 0 was asked).
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.addrs.mqtt
    }

    /// What SIGHUP re-reads: the password file, the ACL file and the signing keys
    /// (every session's rules are rebuilt; no connection is dropped), and the TLS
    /// listener's certificate, key, CA and CRL (for new connections). A broken file
    /// keeps the old configuration of its part in force; the error says what to fix.
    pub fn reload(&self) -> Result<(), String> {
        let security = self.ctx.gateway.reload();
        if security.is_ok() {
            for inbox in self.workers.inboxes() {
                let _ = inbox.send(io::NodeCommand::RulesChanged);
            }
        }
        let tls = match &self.tls {
            Some(tls) => tls.reload().map_err(|e| format!("mqtt.tls: {e}")),
            None => Ok(()),
        };
        match (security, tls) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Ok(())) => Err(format!("security: {a}")),
            (Ok(()), Err(b)) => Err(b),
            (Err(a), Err(b)) => Err(format!("security: {a}; {b}")),
        }
    }

    /// Refusals worth an alert on `alicia/monitoring/alerts`, for the engine to publish.
    pub fn security_alerts(&self) -> flume::Receiver<SecurityAlert> {
        self.ctx.gateway.alerts()
    }

    /// The MQTT over TLS listener's address, when `[mqtt.tls]` is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.addrs.tls
    }

    /// The MQTT over WebSocket listener's address, when `[mqtt.websocket]` is configured.
    pub fn websocket_addr(&self) -> Option<SocketAddr> {
        self.addrs.websocket
    }

    pub fn io_backend(&self) -> ActiveBackend {
        self.backend
    }

    /// The durable store (`[storage]`), when configured: for online backups.
    pub fn store(&self) -> Option<&alicia_store::Store> {
        self.ctx.store.as_ref()
    }

    /// For in-process services: how they join the bus.
    pub fn bus(&self) -> &BusHandle {
        &self.bus
    }

    /// Kills a component as a bug would, so tests can watch the supervision notice:
    /// `mqtt-io-N` (its thread panics), `router` (rumqttd's router thread panics).
    /// Only with the `fault-injection` feature, which the engine's binary never has.
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&self, component: &str) -> bool {
        if component == "router" {
            self.bus.kill_router();
            return true;
        }
        let Some(node) = component.strip_prefix("mqtt-io-").and_then(|n| n.parse::<usize>().ok()) else {
            return false;
        };
        self.workers.inboxes().get(node).is_some_and(|inbox| inbox.send(io::NodeCommand::Fail).is_ok())
    }

    /// Stops accepting, lets every node read what was published before the stop,
    /// tells every client (v5: DISCONNECT "server shutting down") and waits for the io
    /// threads to finish.
    pub async fn shutdown(self) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_DRAIN;
        while self.ctx.log.lag() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.ctx.stop.cancel();
        for acceptor in self.acceptors {
            let _ = acceptor.await;
        }
        let Ok(workers) = Arc::try_unwrap(self.workers) else {
            tracing::warn!("io workers still shared at shutdown");
            return;
        };
        let _ = tokio::task::spawn_blocking(move || workers.join()).await;
        // The last refusals (the clients' final minutes) reach the audit file.
        let ctx = self.ctx.clone();
        let _ = tokio::task::spawn_blocking(move || {
            ctx.gateway.flush_audit(AUDIT_FLUSH);
            // What the sessions' ends wrote (their expiry clocks, kept wills) is on disk.
            if let Some(store) = &ctx.store {
                if let Err(e) = store.sync_blocking() {
                    tracing::error!(error = %e, "the store could not finish writing at shutdown");
                }
            }
        })
        .await;
        tracing::info!("mqtt listener stopped");
    }
}

/// Opens `[storage] dir` (when set) and reads back what it kept.
async fn open_store(
    config: &AliciaConfig,
    io_nodes: usize,
) -> Result<(Option<alicia_store::Store>, persist::Boot), BrokerError> {
    let Some(dir) = config.storage.dir.clone() else { return Ok((None, persist::Boot::empty())) };
    alicia_store::describe_metrics();
    let settings = alicia_store::StoreSettings {
        dir,
        sync: match config.storage.sync {
            alicia_config::StorageSync::Always => alicia_store::SyncMode::Always,
            alicia_config::StorageSync::Batch => alicia_store::SyncMode::Batch,
        },
        sync_interval: Duration::from_millis(config.storage.sync_interval_ms),
    };
    let started = std::time::Instant::now();
    let (store, restored) = tokio::task::spawn_blocking(move || alicia_store::Store::open(&settings))
        .await
        .map_err(|e| alicia_store::StoreError::Database(e.to_string()))??;
    tracing::info!(
        dir = %config.storage.dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
        retained = restored.retained.len(),
        sessions = restored.sessions.len(),
        queued = restored.sessions.iter().map(|s| s.deliveries.len()).sum::<usize>(),
        wills = restored.wills.len(),
        skipped = restored.skipped,
        ms = started.elapsed().as_millis() as u64,
        "durable store opened"
    );
    Ok((Some(store), persist::Boot::new(restored, io_nodes)))
}

/// Gauges of what the broker holds, and the sweep of large payloads a lagging node
/// never took.
///
/// A store that stopped writing is reported down (`/healthz` 503 naming it, an alert): no
/// QoS 1/2 publish is acknowledged from then on, live traffic still flows, and only a
/// restart of the engine (which re-reads the journal) brings it back.
fn spawn_upkeep(ctx: Arc<Context>, store_component: Option<alicia_supervisor::Component>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = ctx.stop.cancelled() => return,
            }
            ticks += 1;
            let (messages, bytes) = ctx.retained.size();
            ::metrics::gauge!("alicia_mqtt_retained_messages").set(messages as f64);
            ::metrics::gauge!("alicia_mqtt_retained_bytes").set(bytes as f64);
            ::metrics::gauge!("alicia_mqtt_queued_bytes").set(ctx.budget.used() as f64);
            ::metrics::gauge!("alicia_bus_log_lag_bytes").set(ctx.log.lag() as f64);
            if let (Some(store), Some(component)) = (&ctx.store, &store_component) {
                if let Some(cause) = store.failure().filter(|_| component.is_up()) {
                    component.down(format!("the durable store cannot write: {cause}"));
                }
                if ticks.is_multiple_of(10) {
                    ::metrics::gauge!("alicia_store_disk_bytes").set(store.disk_space() as f64);
                }
            }
            if ticks.is_multiple_of(60) {
                let swept = ctx.large.sweep(Duration::from_secs(60));
                if swept > 0 {
                    tracing::error!(swept, "large payloads no node took were dropped");
                }
            }
        }
    });
}
