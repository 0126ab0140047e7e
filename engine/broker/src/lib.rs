//! The embedded MQTT broker: rumqttd's router behind the engine's own front door.
//!
//! # Layout
//! - [`router`]: spawns the rumqttd router thread; [`RouterHandle`] makes local links.
//! - `front_door`: binds the MQTT listener and accepts sockets.
//! - `io`: the socket backends (io_uring via tokio-uring, epoll via tokio) and their
//!   worker threads.
//! - `codec`: picks rumqttd's v4 or v5 codec from the CONNECT.
//! - `session`: one connection: handshake, inbound rules, outbound queue, close.
//! - `will`: publishes last wills (with MQTT 5 delays) on the engine's own link.
//! - [`client_id`]: client ids as the router sees them.
//! - [`local`]: [`LocalClient`], how in-process services use the bus.
//! - `metrics`: the front door's meters.
//!
//! Data path: `socket → io worker → codec → session rules → LinkTx → router → LinkRx →
//! session queue → socket`. Payloads stay `Bytes` sliced from the read buffer until the
//! outgoing encode.

pub mod client_id;
mod codec;
mod front_door;
mod io;
pub mod local;
mod metrics;
pub mod router;
mod session;
mod will;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use alicia_config::AliciaConfig;
use tokio_util::sync::CancellationToken;

pub use codec::MqttVersion;
pub use io::ActiveBackend;
pub use local::{LocalClient, LocalMessage};
pub use metrics::Refusal;
pub use router::{LinkError, RouterHandle, RouterSettings};

use session::{SessionContext, SessionLimits};

/// Links the engine itself holds beyond client sessions (services, wills), plus slack
/// for sessions the router has not yet reaped.
const ROUTER_SPARE_LINKS: usize = 64;

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot bind {what} listener on {addr}: {source}")]
    Bind { what: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Io(#[from] io::IoError),
    #[error("cannot open the engine's router link: {0}")]
    Link(#[from] router::LinkError),
}

/// A running broker. Dropping it without [`Broker::shutdown`] leaves threads running.
pub struct Broker {
    router: RouterHandle,
    mqtt_addr: SocketAddr,
    backend: ActiveBackend,
    stop: CancellationToken,
    workers: Arc<io::IoWorkers>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Broker {
    /// Starts the router, binds the MQTT listener and begins accepting. Call inside a
    /// multi-threaded tokio runtime.
    pub async fn start(config: &AliciaConfig) -> Result<Broker, BrokerError> {
        let backend = io::choose_backend(config.mqtt.io)?;
        let listener = front_door::bind(config.mqtt.listen).await?;
        let mqtt_addr = listener.local_addr().map_err(|source| BrokerError::Bind {
            what: "MQTT",
            addr: config.mqtt.listen,
            source,
        })?;

        let router = RouterHandle::spawn(&RouterSettings {
            max_connections: config.limits.max_connections + ROUTER_SPARE_LINKS,
            segment_size_bytes: config.router.segment_size_bytes,
            segment_count: config.router.segment_count,
        });
        let stop = CancellationToken::new();
        let ctx = Arc::new(SessionContext {
            wills: will::WillPublisher::start(&router)?,
            router: router.clone(),
            limits: SessionLimits {
                max_connections: config.limits.max_connections,
                max_packet_size: config.limits.message_size_limit,
                max_inflight: config.limits.max_inflight_messages,
                max_queued: config.limits.max_queued_messages,
                connect_timeout: Duration::from_millis(config.mqtt.connect_timeout_ms),
            },
            metrics: metrics::FrontDoorMetrics::new("tcp"),
            stop: stop.clone(),
            active: AtomicUsize::new(0),
        });
        let threads = match config.mqtt.io_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let workers = Arc::new(io::IoWorkers::start(backend, threads, ctx, stop.clone())?);
        ::metrics::gauge!("alicia_mqtt_io_backend_info", "backend" => backend.as_str()).set(1.0);
        let acceptor = tokio::spawn(front_door::accept_loop(listener, workers.clone(), stop.clone()));
        tracing::info!(addr = %mqtt_addr, io = backend.as_str(), "mqtt listener ready");
        Ok(Broker { router, mqtt_addr, backend, stop, workers, acceptor })
    }

    /// The address the MQTT listener is bound to (the real port when 0 was asked).
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt_addr
    }

    pub fn io_backend(&self) -> ActiveBackend {
        self.backend
    }

    /// For in-process services: their own links to the router.
    pub fn router(&self) -> &RouterHandle {
        &self.router
    }

    /// Stops accepting, tells every client (v5: DISCONNECT "server shutting down") and
    /// waits for the io threads to finish.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.acceptor.await;
        let Ok(workers) = Arc::try_unwrap(self.workers) else {
            tracing::warn!("io workers still shared at shutdown");
            return;
        };
        let _ = tokio::task::spawn_blocking(move || workers.join()).await;
        tracing::info!("mqtt listener stopped");
    }
}
