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

/// Accept queue asked of the kernel (capped by `net.core.somaxconn`): a home's devices
/// reconnecting at once after a Wi-Fi drop must queue, not be dropped at the SYN.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the listener now, so a taken port fails start-up before anything else runs.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::BrokerError> {
    let bind = || {
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        // As std's bind does, so a restart can take the port while old sockets linger.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    bind().map_err(|source| crate::BrokerError::Bind { what: "MQTT", addr, source })
}

/// Sockets past their address's cap that may wait at once for the CONNECT their refusal
/// answers; past this, such sockets are closed unanswered.
const REFUSING_AT_ONCE: usize = 64;
/// How long a socket past its address's cap gets to send the CONNECT its refusal answers.
const REFUSAL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Counts of open sockets, shared by the listener and every connection's permit.
#[derive(Debug, Default)]
pub(crate) struct Door {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    pending: AtomicUsize,
    /// Sockets past their address's cap, waiting for the CONNECT to refuse.
    refusing: AtomicUsize,
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
        let over_ip_limit = {
            let mut per_ip = door.per_ip.lock();
            let n = per_ip.entry(peer.ip()).or_insert(0);
            *n += 1;
            *n > limits.max_connections_per_ip
        };
        let permit = ConnectionPermit { door: door.clone(), ctx: ctx.clone(), ip: peer.ip(), active: false };
        if over_ip_limit {
            // Checked before the pending pool, and kept out of it: one address's flood
            // must not take the handshake slots every other address needs.
            refuse_over_ip_limit(stream, permit, &door, &ctx);
            continue;
        }
        if door.pending.load(Ordering::Acquire) >= limits.max_pending_connections {
            // Too many sockets that are not clients yet: not even a CONNACK is owed.
            ctx.metrics.refused(Refusal::PendingLimit);
            continue;
        }
        door.pending.fetch_add(1, Ordering::AcqRel);
        ctx.metrics.connections_pending.increment(1.0);
        let (ctx, workers, door) = (ctx.clone(), workers.clone(), door.clone());
        tokio::spawn(async move {
            let result = handshake(stream, peer, permit, &ctx, &workers).await;
            door.pending.fetch_sub(1, Ordering::AcqRel);
            ctx.metrics.connections_pending.decrement(1.0);
            if let Err(HandshakeError::Refused(refusal)) = result {
                ctx.metrics.refused(refusal);
                tracing::debug!(%peer, reason = refusal.as_label(), "connection refused");
            }
        });
    }
}

/// A socket past its address's cap: answered with the refusal (0x97 / 0x03) if it sends
/// its CONNECT within [`REFUSAL_GRACE`] and few others wait the same way, else closed
/// unanswered. Either way it never holds a pending slot.
fn refuse_over_ip_limit(
    mut stream: tokio::net::TcpStream,
    permit: ConnectionPermit,
    door: &Arc<Door>,
    ctx: &Arc<Context>,
) {
    ctx.metrics.refused(Refusal::PerIpLimit);
    let waiting =
        door.refusing.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < REFUSING_AT_ONCE).then_some(n + 1));
    if waiting.is_err() {
        return;
    }
    let (ctx, door) = (ctx.clone(), door.clone());
    tokio::spawn(async move {
        let grace = ctx.limits.connect_timeout.min(REFUSAL_GRACE);
        let read = tokio::time::timeout(grace, handshake::read_connect(&mut stream, &ctx.limits));
        if let Ok(Ok(accepted)) = read.await {
            handshake::refuse_busy(&mut stream, accepted.request.version, Refusal::PerIpLimit).await;
        }
        door.refusing.fetch_sub(1, Ordering::AcqRel);
        drop(permit);
    });
}

async fn handshake(
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut permit: ConnectionPermit,
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
    let mut accepted = accepted;
    let version = accepted.request.version;
    let login = accepted.login.take();
    if let Err(refusal) = handshake::admit(&ctx.security, &mut accepted.request, login) {
        ctx.metrics.security_refused(refusal);
        let code = crate::security::connack_code(refusal);
        handshake::refuse_with(&mut stream, version, Refusal::NotAuthorized, code).await;
        return Err(HandshakeError::Refused(Refusal::NotAuthorized));
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
