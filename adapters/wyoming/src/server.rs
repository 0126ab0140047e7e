//! [`WyomingServer`]: the listener, its connection limit and its shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::backend::SpeechBackend;
use crate::config::WyomingConfig;
use crate::connection::{Connection, ServerState};
use crate::error::WyomingError;
use crate::info::info_event;
use crate::metrics::WyomingMetrics;

/// Pause after a failed accept (out of file descriptors, mostly), so the loop does
/// not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A running Wyoming server: one tokio task per connection. Dropping it stops the
/// listener; [`shutdown`](Self::shutdown) also waits for the connections.
pub struct WyomingServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
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
        let state = Arc::new(ServerState { backend, metrics: WyomingMetrics::new(), info, config });
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, state, stop.clone()));
        tracing::info!(addr = %local, "wyoming listener ready");
        Ok(WyomingServer { addr: local, stop, task })
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes idle connections, lets busy ones finish the request
    /// they are serving, and returns when all are gone.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Err(err) = (&mut self.task).await {
            tracing::error!(error = %err, "wyoming accept loop panicked");
        }
    }
}

impl Drop for WyomingServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<ServerState>, stop: CancellationToken) {
    let limit = Arc::new(Semaphore::new(state.config.max_connections));
    let mut connections = JoinSet::new();
    loop {
        while let Some(done) = connections.try_join_next() {
            log_panic(done);
        }
        // Past the limit new clients wait in the listen backlog, not in memory here.
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            permit = Arc::clone(&limit).acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let connection = Connection::new(stream, peer, Arc::clone(&state));
                let stop = stop.clone();
                connections.spawn(async move {
                    connection.run(stop).await;
                    drop(permit);
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, "wyoming accept failed");
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

fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(err) = done {
        tracing::error!(error = %err, "wyoming connection task failed");
    }
}
