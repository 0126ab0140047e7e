//! The MQTT listener: binds (a failure names the address), accepts, and hands each
//! socket to an io worker.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::io::{Accepted, IoWorkers};

/// Binds the listener now, so a taken port fails start-up before anything else runs.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::BrokerError> {
    TcpListener::bind(addr).await.map_err(|source| crate::BrokerError::Bind { what: "MQTT", addr, source })
}

/// Accepts until `stop`; errors on one accept (e.g. out of file descriptors) are logged
/// and the loop goes on.
pub(crate) async fn accept_loop(listener: TcpListener, workers: Arc<IoWorkers>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => match stream.into_std() {
                Ok(stream) => workers.dispatch(Accepted { stream, peer }),
                Err(e) => tracing::warn!(error = %e, "cannot detach accepted socket"),
            },
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Back off briefly so an fd shortage does not spin the loop.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
