//! The listener: hyper on each admitted connection, with the door's limits.
//!
//! A connection serves one request (no keep-alive), so one clock bounds it whole: its
//! headers must be in within `header_timeout` (a slowloris is dropped then, however
//! slowly it trickles), and reading plus answering within `request_timeout` (a client
//! that never reads its answer is dropped then). Over a connection cap the client gets
//! a short `503` (in total) or `429` (from its address) and the socket is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use metrics::Counter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admission::{Admission, Full};
use crate::HttpLimits;

/// `alicia_http_refused_total{reason}`: the limit hit, spelled as its `[http]` key.
pub const REFUSED_TOTAL: &str = "alicia_http_refused_total";
pub const CONNECTIONS_ACTIVE: &str = "alicia_http_connections_active";

/// Refused sockets being closed politely at once; past it one is simply dropped.
const CLOSING_AT_ONCE: usize = 64;
/// How long a refused client gets to read its answer and go.
const CLOSING_GRACE: Duration = Duration::from_secs(2);
/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line per this for a condition a flood of clients causes.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

pub(crate) struct Refusals {
    max_connections: Counter,
    max_connections_per_source: Counter,
    header_timeout: Counter,
    request_timeout: Counter,
}

impl Refusals {
    pub(crate) fn new() -> Self {
        metrics::describe_counter!(
            REFUSED_TOTAL,
            metrics::Unit::Count,
            "HTTP connections refused or cut, by the limit hit"
        );
        metrics::describe_gauge!(CONNECTIONS_ACTIVE, metrics::Unit::Count, "HTTP connections being served");
        let counter = |reason: &'static str| metrics::counter!(REFUSED_TOTAL, "reason" => reason);
        Self {
            max_connections: counter("max_connections"),
            max_connections_per_source: counter("max_connections_per_source"),
            header_timeout: counter("header_timeout_ms"),
            request_timeout: counter("request_timeout_ms"),
        }
    }
}

pub(crate) async fn accept_loop(listener: TcpListener, app: Router, limits: HttpLimits, stop: CancellationToken) {
    let refusals = Arc::new(Refusals::new());
    let admission =
        Admission::new(limits.max_connections, limits.max_connections_per_source, metrics::gauge!(CONNECTIONS_ACTIVE));
    let closing = Arc::new(Semaphore::new(CLOSING_AT_ONCE));
    let mut connections = JoinSet::new();
    // Out of file descriptors under a flood fails every accept: one line per interval,
    // with the count of those it stands for.
    let (mut warned, mut held_back) = (None::<tokio::time::Instant>, 0u64);
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                if warned.is_none_or(|at| at.elapsed() >= LOG_INTERVAL) {
                    tracing::warn!(error = %err, suppressed = held_back, "http accept failed");
                    (warned, held_back) = (Some(tokio::time::Instant::now()), 0);
                } else {
                    held_back += 1;
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
                continue;
            }
        };
        match admission.admit(peer.ip()) {
            Ok(slot) => {
                let (app, refusals, stop) = (app.clone(), Arc::clone(&refusals), stop.clone());
                connections.spawn(async move {
                    serve(stream, peer, app, limits, &refusals, stop).await;
                    drop(slot);
                });
            }
            Err(full) => refuse(stream, peer, full, &limits, &refusals, &closing),
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Serves one request on `stream` (plain TCP, or TLS for `POST /auth/device`) under
/// the door's clocks.
pub(crate) async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    app: Router,
    limits: HttpLimits,
    refusals: &Refusals,
    stop: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Every request of this connection carries its peer, for the token gate.
    let app = app.layer(axum::Extension(crate::gate::Peer(peer)));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(false);
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(connection);
    let served = tokio::time::timeout(limits.request_timeout, async {
        tokio::select! {
            served = connection.as_mut() => served,
            () = stop.cancelled() => {
                // Finish a request under way, take no new one.
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
        }
    })
    .await;
    match served {
        Ok(Ok(())) => {}
        Ok(Err(err)) if err.is_timeout() => {
            refusals.header_timeout.increment(1);
            tracing::debug!(%peer, "http headers not in within the header timeout; closed");
        }
        Ok(Err(err)) => tracing::debug!(%peer, error = %err, "http connection ended with an error"),
        Err(_) => {
            refusals.request_timeout.increment(1);
            tracing::debug!(%peer, "http request not done within the request timeout; closed");
        }
    }
}

/// Answers over a cap at once and closes. The answer fits an empty socket buffer, so it
/// is written without waiting; the close waits briefly for the client to take it, so
/// the request it sent meanwhile does not turn the close into a reset that swallows it.
fn refuse(
    stream: TcpStream,
    peer: SocketAddr,
    full: Full,
    limits: &HttpLimits,
    refusals: &Refusals,
    closing: &Arc<Semaphore>,
) {
    let (status, body) = match full {
        Full::Total => {
            refusals.max_connections.increment(1);
            ("503 Service Unavailable", format!("too many connections: at most {} at once\n", limits.max_connections))
        }
        Full::Source => {
            refusals.max_connections_per_source.increment(1);
            let ip = peer.ip().to_canonical();
            let limit = limits.max_connections_per_source;
            ("429 Too Many Requests", format!("too many connections from {ip}: at most {limit} at once\n"))
        }
    };
    tracing::debug!(%peer, status, "http connection refused");
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.try_write(response.as_bytes()).is_err() {
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
