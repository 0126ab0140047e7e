//! The MQTT listener: accepts sockets, holds the door's limits (connections in all,
//! per source address, still in their handshake), reads each CONNECT and hands the
//! client to the node its id hashes to.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::handshake::{self, HandshakeError};
use crate::io::IoWorkers;
use crate::metrics::Refusal;
use crate::session::{Client, Handoff};

/// Binds the listener now, so a taken port fails start-up before anything else runs.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::BrokerError> {
    TcpListener::bind(addr).await.map_err(|source| crate::BrokerError::Bind { what: "MQTT", addr, source })
}

/// Counts of open sockets, shared by the listener and every connection's permit.
#[derive(Debug, Default)]
pub(crate) struct Door {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    pending: AtomicUsize,
    active: AtomicUsize,
}

/// A socket's place in the door's counts; given back when dropped.
pub(crate) struct ConnectionPermit {
    door: Arc<Door>,
    ctx: Arc<Context>,
    ip: IpAddr,
    active: bool,
}

impl ConnectionPermit {
    /// Takes one of `max_connections`.
    fn activate(&mut self) -> bool {
        let max = self.ctx.limits.max_connections;
        let ok =
            self.door.active.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).is_ok();
        if ok {
            self.active = true;
            self.ctx.metrics.connections_active.increment(1.0);
        }
        ok
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        if self.active {
            self.door.active.fetch_sub(1, Ordering::AcqRel);
            self.ctx.metrics.connections_active.decrement(1.0);
        }
        let mut per_ip = self.door.per_ip.lock();
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// Accepts until `stop`; errors on one accept (e.g. out of file descriptors) are logged
/// and the loop goes on.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    workers: Arc<IoWorkers>,
    ctx: Arc<Context>,
    stop: CancellationToken,
) {
    let door = Arc::new(Door::default());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Back off briefly so an fd shortage does not spin the loop.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        ctx.metrics.sockets_accepted.increment(1);
        let limits = &ctx.limits;
        if door.pending.load(Ordering::Acquire) >= limits.max_pending_connections {
            // Too many sockets that are not clients yet: not even a CONNACK is owed.
            ctx.metrics.refused(Refusal::PendingLimit);
            continue;
        }
        let over_ip_limit = {
            let mut per_ip = door.per_ip.lock();
            let n = per_ip.entry(peer.ip()).or_insert(0);
            *n += 1;
            *n > limits.max_connections_per_ip
        };
        let permit = ConnectionPermit { door: door.clone(), ctx: ctx.clone(), ip: peer.ip(), active: false };
        door.pending.fetch_add(1, Ordering::AcqRel);
        ctx.metrics.connections_pending.increment(1.0);
        let (ctx, workers, door) = (ctx.clone(), workers.clone(), door.clone());
        tokio::spawn(async move {
            let result = handshake(stream, peer, permit, over_ip_limit, &ctx, &workers).await;
            door.pending.fetch_sub(1, Ordering::AcqRel);
            ctx.metrics.connections_pending.decrement(1.0);
            if let Err(HandshakeError::Refused(refusal)) = result {
                ctx.metrics.refused(refusal);
                tracing::debug!(%peer, reason = refusal.as_label(), "connection refused");
            }
        });
    }
}

async fn handshake(
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut permit: ConnectionPermit,
    over_ip_limit: bool,
    ctx: &Arc<Context>,
    workers: &IoWorkers,
) -> Result<(), HandshakeError> {
    let read = tokio::time::timeout(ctx.limits.connect_timeout, handshake::read_connect(&mut stream, &ctx.limits));
    let accepted = tokio::select! {
        r = read => match r {
            Ok(r) => r?,
            Err(_) => return Err(HandshakeError::Refused(Refusal::ConnectTimeout)),
        },
        _ = ctx.stop.cancelled() => return Err(HandshakeError::Io),
    };
    let version = accepted.request.version;
    if over_ip_limit {
        handshake::refuse_busy(&mut stream, version, Refusal::PerIpLimit).await;
        return Err(HandshakeError::Refused(Refusal::PerIpLimit));
    }
    if !permit.activate() {
        handshake::refuse_busy(&mut stream, version, Refusal::ServerBusy).await;
        return Err(HandshakeError::Refused(Refusal::ServerBusy));
    }
    let node = node_for(&accepted.request.client_id, workers.len());
    let stream = stream.into_std().map_err(|_| HandshakeError::Io)?;
    workers.dispatch(
        node,
        Handoff {
            stream,
            client: Client {
                peer,
                request: accepted.request,
                leftover: accepted.leftover,
                permit,
                connected_at: accepted.connected_at,
            },
        },
    );
    Ok(())
}

/// The io node a client id lives on: always the same one, so its session (and any
/// takeover) stays on one thread.
pub(crate) fn node_for(client_id: &str, nodes: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    client_id.hash(&mut hasher);
    (hasher.finish() % nodes as u64) as usize
}
