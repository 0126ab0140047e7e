//! [`WyomingServer`]: the listener, its connection caps and its shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::backend::SpeechBackend;
use crate::codec::Event;
use crate::config::WyomingConfig;
use crate::connection::{Connection, ServerState};
use crate::error::{RequestError, WyomingError};
use crate::fault::FaultPoint;
use crate::info::info_event;
use crate::metrics::WyomingMetrics;
use alicia_supervisor::LogThrottle;

/// Pause after a failed accept (out of file descriptors, mostly), so the loop does
/// not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Refused connections being closed politely at once (their error sent, what they
/// sent meanwhile read and dropped); past it a refused socket is simply dropped.
const CLOSING_AT_ONCE: usize = 64;
/// How long a refused client gets to take its error and go.
const CLOSING_GRACE: Duration = Duration::from_secs(2);

/// A running Wyoming server: one tokio task per connection. Dropping it stops the
/// listener; [`shutdown`](Self::shutdown) also waits for the connections.
pub struct WyomingServer {
    addr: SocketAddr,
    stop: CancellationToken,
    /// `None` once [`stopped`](Self::stopped) has seen it end.
    task: Option<JoinHandle<()>>,
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    fault: FaultPoint,
}

impl std::fmt::Debug for WyomingServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WyomingServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl WyomingServer {
    /// Binds now (a taken port is an error naming the address) and serves in the
    /// background. Metric handles are made here: install the recorder first.
    pub async fn bind(
        addr: SocketAddr,
        backend: Arc<dyn SpeechBackend>,
        config: WyomingConfig,
    ) -> Result<WyomingServer, WyomingError> {
        config.validate()?;
        let listener = TcpListener::bind(addr).await.map_err(|source| WyomingError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(|source| WyomingError::Bind { addr, source })?;
        let info = info_event(&config).to_bytes();
        let logs = LogThrottle::new(LogThrottle::INTERVAL);
        let state = Arc::new(ServerState { backend, metrics: WyomingMetrics::new(), info, config, logs });
        let stop = CancellationToken::new();
        let fault = FaultPoint::default();
        let task = tokio::spawn(accept_loop(listener, state, stop.clone(), fault.clone()));
        tracing::info!(addr = %local, "wyoming listener ready");
        Ok(WyomingServer { addr: local, stop, task: Some(task), fault })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Resolves when the accept loop has ended without being asked to, with why: the
    /// server is dead and its owner should bind a new one. Pending forever otherwise;
    /// safe to use in `select!` and to call again.
    pub async fn stopped(&mut self) -> String {
        let Some(task) = self.task.as_mut() else { return std::future::pending().await };
        let ended = task.await;
        self.task = None;
        match ended {
            Err(err) if err.is_panic() => {
                format!("wyoming accept loop {}", panic_message(err.into_panic().as_ref()))
            }
            Err(err) => format!("wyoming accept loop cancelled: {err}"),
            Ok(()) if self.stop.is_cancelled() => std::future::pending().await,
            Ok(()) => "wyoming accept loop ended".to_owned(),
        }
    }

    /// Makes the accept loop panic, as a bug would: for tests of the supervision that
    /// must notice and restart it. Nothing a client sends reaches this.
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&self) {
        self.fault.trigger();
    }

    /// Stops accepting, closes idle connections, lets busy ones finish the request
    /// they are serving, and returns when all are gone.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "wyoming accept loop panicked");
            }
        }
    }
}

impl Drop for WyomingServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(text), _) => format!("panicked: {text}"),
        (_, Some(text)) => format!("panicked: {text}"),
        _ => "panicked".to_owned(),
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<ServerState>, stop: CancellationToken, fault: FaultPoint) {
    let config = &state.config;
    let admission =
        Admission::new(config.max_connections, config.max_connections_per_source, state.metrics.connections.clone());
    let closing = Arc::new(Semaphore::new(CLOSING_AT_ONCE));
    let mut connections = JoinSet::new();
    loop {
        while let Some(done) = connections.try_join_next() {
            log_panic(done);
        }
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            () = fault.triggered() => panic!("fault injected into the wyoming accept loop"),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) if !alicia_auth::Cidr::any_contains(&config.allow, peer.ip()) => {
                // Dropped unread and unanswered: a stranger learns nothing, not even
                // that this is a Wyoming server, and takes no connection slot.
                state.metrics.address_not_allowed.increment(1);
                drop(stream);
                if let Some(suppressed) = state.logs.allow("address_not_allowed") {
                    tracing::warn!(%peer, suppressed, "wyoming connection refused: address not in [wyoming] allow");
                }
            }
            Ok((stream, peer)) => match admission.admit(peer.ip()) {
                Ok(admitted) => {
                    let connection = Connection::new(stream, peer, Arc::clone(&state));
                    let stop = stop.clone();
                    connections.spawn(async move {
                        connection.run(stop).await;
                        drop(admitted);
                    });
                }
                Err(refusal) => refuse(stream, peer, refusal, &state, &closing),
            },
            Err(err) => {
                // Out of file descriptors under a flood fails every accept: one line now
                // and then, with the count.
                if let Some(suppressed) = state.logs.allow("accept_failed") {
                    tracing::warn!(error = %err, suppressed, "wyoming accept failed");
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
    drop(listener);
    while let Some(done) = connections.join_next().await {
        log_panic(done);
    }
    tracing::info!("wyoming listener stopped");
}

/// Tells a client over a connection cap why, and closes. The error is written without
/// waiting (a new socket's send buffer is empty); the close waits briefly for the
/// client to go, so what it sent meanwhile does not turn the close into a reset that
/// could swallow the error.
fn refuse(stream: TcpStream, peer: SocketAddr, refusal: RequestError, state: &ServerState, closing: &Arc<Semaphore>) {
    let reason = refusal.reason();
    state.metrics.error(reason);
    if let Some(limit) = refusal.limit() {
        state.metrics.refused(limit);
    }
    tracing::debug!(%peer, reason = reason.as_label(), "wyoming connection refused");
    let error = Event::new("error").with_data(json!({ "text": refusal.to_string(), "code": reason.as_label() }));
    if stream.try_write(&error.to_bytes()).is_err() {
        return;
    }
    let Ok(permit) = Arc::clone(closing).try_acquire_owned() else { return };
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 1024];
        let drain = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(CLOSING_GRACE, drain).await;
        drop(permit);
    });
}

fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(err) = done {
        tracing::error!(error = %err, "wyoming connection task failed");
    }
}
