//! The MQTT listeners (plain, TLS, WebSocket with or without TLS): accept sockets,
//! hold the door's limits (connections in all, per source address, still in their
//! handshake) across all of them, run the TLS handshake and the WebSocket upgrade,
//! read each CONNECT and hand the client to the node its id hashes to.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use alicia_tls::TlsReloader;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::gateway::Who;
use crate::handshake::{self, HandshakeError};
use crate::io::IoWorkers;
use crate::metrics::{BrokerMetrics, Refusal, SecurityRefusal};
use crate::session::{Client, Handoff};
use crate::stream::{ClientIo, IntoClientStream};
use crate::websocket::{self, WsIo};
use alicia_audit::AuditAction;
use rumqttd::protocol::ConnectReturnCode;

/// Accept queue asked of the kernel (capped by `net.core.somaxconn`): a home's devices
/// reconnecting at once after a Wi-Fi drop must queue, not be dropped at the SYN.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the listener now, so a taken port fails start-up before anything else runs.
pub(crate) async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, crate::BrokerError> {
    let bind = || {
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        // As std's bind does, so a restart can take the port while old sockets linger.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    bind().map_err(|source| crate::BrokerError::Bind { what, addr, source })
}

/// Sockets past their address's cap that may wait at once for the CONNECT their refusal
/// answers; past this, such sockets are closed unanswered.
const REFUSING_AT_ONCE: usize = 64;
/// The largest WebSocket message (one MQTT packet, or several) a client may send.
const MAX_WEBSOCKET_MESSAGE: usize = 16 * 1024 * 1024;
/// How long a socket past its address's cap gets to send the CONNECT its refusal answers.
const REFUSAL_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Counts of open sockets, shared by the listener and every connection's permit.
#[derive(Debug, Default)]
pub(crate) struct Door {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
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

impl Door {
    /// A place in the counts for a socket from `ip` (given back when dropped), and how
    /// many sockets that address holds with it.
    fn permit_for(self: &Arc<Self>, ctx: &Arc<Context>, ip: IpAddr) -> (ConnectionPermit, usize) {
        let from_ip = {
            let mut per_ip = self.per_ip.lock();
            let n = per_ip.entry(ip).or_insert(0);
            *n += 1;
            *n
        };
        (ConnectionPermit { door: self.clone(), ctx: ctx.clone(), ip, active: false }, from_ip)
    }
}

impl ConnectionPermit {
    /// Takes one of `max_connections`.
    fn activate(&mut self) -> bool {
        let max = self.ctx.limits().max_connections;
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

/// What a listener speaks on top of TCP.
#[derive(Clone)]
pub(crate) enum Transport {
    Mqtt,
    Tls(TlsDoor),
    WebSocket(Option<TlsDoor>),
}

/// A TLS listener's config (swapped on SIGHUP) and whether the client certificate's CN
/// is the username.
#[derive(Clone)]
pub(crate) struct TlsDoor {
    pub reloader: Arc<TlsReloader>,
    pub identity_as_username: bool,
}

/// One bound listener and how it counts.
pub(crate) struct Listener {
    pub socket: TcpListener,
    pub transport: Transport,
    /// `listener` in metrics and the audit log: tcp, tls, websocket, websocket-tls.
    pub label: &'static str,
    pub metrics: Arc<BrokerMetrics>,
}

/// Accepts until `stop`; errors on one accept (e.g. out of file descriptors) are logged
/// and the loop goes on. Every listener shares one `door`, so the connection limits
/// hold across them.
pub(crate) async fn accept_loop(
    listener: Listener,
    door: Arc<Door>,
    workers: Arc<IoWorkers>,
    ctx: Arc<Context>,
    stop: CancellationToken,
) {
    let Listener { socket, transport, label, metrics } = listener;
    // Each listener has its own pool of sockets not through their handshake: a flood
    // of stalled TLS handshakes (cheap to make) must not lock plain MQTT clients out.
    let pending = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            a = socket.accept() => a,
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
        metrics.sockets_accepted.increment(1);
        let (permit, from_ip) = door.permit_for(&ctx, peer.ip());
        if ctx.gateway.connect_attempt(peer.ip(), Instant::now().into_std()).is_err() {
            let refusal = SecurityRefusal::ConnectRate;
            let who = Who { listener: label, peer, client_id: None, username: None };
            ctx.gateway.refused(&metrics, refusal, &who, AuditAction::Connect, None);
            // Answered like a full address, with the code for a rate (0x9F / 0x03).
            if matches!(transport, Transport::Mqtt) {
                let code = ConnectReturnCode::ConnectionRateExceeded;
                refuse_early(stream, permit, &door, &ctx, refusal.as_label(), code);
            }
            continue;
        }
        let limits = ctx.limits();
        if from_ip > limits.max_connections_per_ip {
            // Checked before the pending pool, and kept out of it: one address's flood
            // must not take the handshake slots every other address needs.
            metrics.refused(Refusal::PerIpLimit);
            // No CONNACK can be owed before a TLS or WebSocket handshake.
            if matches!(transport, Transport::Mqtt) {
                let code = ConnectReturnCode::QuotaExceeded;
                refuse_early(stream, permit, &door, &ctx, Refusal::PerIpLimit.as_label(), code);
            }
            continue;
        }
        if pending.load(Ordering::Acquire) >= limits.max_pending_connections {
            // Too many sockets that are not clients yet: not even a CONNACK is owed.
            metrics.refused(Refusal::PendingLimit);
            continue;
        }
        pending.fetch_add(1, Ordering::AcqRel);
        metrics.connections_pending.increment(1.0);
        let (ctx, workers, pending, metrics, transport) =
            (ctx.clone(), workers.clone(), pending.clone(), metrics.clone(), transport.clone());
        tokio::spawn(async move {
            let arrival = Arrival { peer, label, permit, ctx: &ctx, workers: &workers, metrics: &metrics };
            let result = arrival.run(stream, &transport).await;
            pending.fetch_sub(1, Ordering::AcqRel);
            metrics.connections_pending.decrement(1.0);
            if let Err(HandshakeError::Refused(refusal)) = result {
                metrics.refused(refusal);
                tracing::debug!(%peer, reason = refusal.as_label(), "connection refused");
            }
        });
    }
}

/// A socket refused before its handshake (its address past its cap or its rate):
/// answered with `code` (v5; 3.1.1 gets 0x03) if it sends its CONNECT within
/// [`REFUSAL_GRACE`] and few others wait the same way, else closed unanswered. Either
/// way it never holds a pending slot.
fn refuse_early(
    mut stream: tokio::net::TcpStream,
    permit: ConnectionPermit,
    door: &Arc<Door>,
    ctx: &Arc<Context>,
    reason: &'static str,
    code: ConnectReturnCode,
) {
    let waiting =
        door.refusing.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < REFUSING_AT_ONCE).then_some(n + 1));
    if waiting.is_err() {
        return;
    }
    let (ctx, door) = (ctx.clone(), door.clone());
    tokio::spawn(async move {
        let limits = ctx.limits.load_full();
        let grace = limits.connect_timeout.min(REFUSAL_GRACE);
        let read = tokio::time::timeout(grace, handshake::read_connect(&mut stream, &limits));
        if let Ok(Ok(accepted)) = read.await {
            handshake::refuse_with(&mut stream, accepted.request.version, reason, code).await;
        }
        door.refusing.fetch_sub(1, Ordering::AcqRel);
        drop(permit);
    });
}

/// One accepted socket on its way to becoming a client: the TLS handshake and the
/// WebSocket upgrade where the listener has them, then the CONNECT, all within
/// `connect_timeout` from the accept.
struct Arrival<'a> {
    peer: SocketAddr,
    label: &'static str,
    permit: ConnectionPermit,
    ctx: &'a Arc<Context>,
    workers: &'a IoWorkers,
    metrics: &'a BrokerMetrics,
}

impl Arrival<'_> {
    async fn run(self, tcp: TcpStream, transport: &Transport) -> Result<(), HandshakeError> {
        let deadline = Instant::now() + self.ctx.limits().connect_timeout;
        match transport {
            Transport::Mqtt => self.connect(tcp, deadline, None).await,
            Transport::Tls(door) => {
                let (tls, identity) = self.tls(tcp, door, deadline).await?;
                self.connect(tls, deadline, identity).await
            }
            Transport::WebSocket(None) => {
                let ws = self.upgrade(tcp, deadline).await?;
                self.connect(ws, deadline, None).await
            }
            Transport::WebSocket(Some(door)) => {
                let (tls, identity) = self.tls(tcp, door, deadline).await?;
                let ws = self.upgrade(tls, deadline).await?;
                self.connect(ws, deadline, identity).await
            }
        }
    }

    /// The TLS handshake; a refused one is a security refusal (revoked, untrusted or
    /// missing certificate, a stalled handshake).
    async fn tls(
        &self,
        tcp: TcpStream,
        door: &TlsDoor,
        deadline: Instant,
    ) -> Result<(TlsStream<TcpStream>, Option<String>), HandshakeError> {
        let _ = tcp.set_nodelay(true);
        let left = deadline.saturating_duration_since(Instant::now());
        match alicia_tls::accept(&door.reloader.acceptor(), tcp, left).await {
            Ok(tls) => {
                let identity =
                    if door.identity_as_username { alicia_tls::peer_identity(tls.get_ref().1) } else { None };
                if door.identity_as_username && identity.is_none() {
                    // A verified certificate without a CN names no one.
                    let who = Who { listener: self.label, peer: self.peer, client_id: None, username: None };
                    let refusal = SecurityRefusal::CertificateUntrusted;
                    self.ctx.gateway.refused(self.metrics, refusal, &who, AuditAction::Connect, None);
                    return Err(HandshakeError::Io);
                }
                Ok((tls, identity))
            }
            Err(e) => {
                tracing::debug!(peer = %self.peer, error = %e, "tls handshake refused");
                // A peer that simply left was refused nothing.
                if let Some(refusal) = SecurityRefusal::from_tls(&e) {
                    let who = Who { listener: self.label, peer: self.peer, client_id: None, username: None };
                    self.ctx.gateway.refused(self.metrics, refusal, &who, AuditAction::Connect, None);
                }
                Err(HandshakeError::Io)
            }
        }
    }

    async fn upgrade<S: ClientIo>(&self, stream: S, deadline: Instant) -> Result<WsIo<S>, HandshakeError> {
        // tungstenite holds a whole message before we see a byte of it, outside the
        // engine's byte budget: a message is capped at the packet size limit and at
        // most 16 MiB, so K hostile WebSocket clients hold at most K × 16 MiB.
        let max_message = self.ctx.limits().max_packet_size.min(MAX_WEBSOCKET_MESSAGE);
        match tokio::time::timeout_at(deadline, websocket::upgrade(stream, max_message)).await {
            Ok(Ok(ws)) => Ok(ws),
            Ok(Err(refusal)) => Err(HandshakeError::Refused(refusal.into())),
            Err(_) => Err(HandshakeError::Refused(Refusal::ConnectTimeout)),
        }
    }

    /// The CONNECT, `[security]` and the connection limit; then the client goes to its
    /// node. `identity` is the certificate's CN when it is the username.
    async fn connect<S: IntoClientStream>(
        self,
        mut stream: S,
        deadline: Instant,
        identity: Option<String>,
    ) -> Result<(), HandshakeError> {
        let Arrival { peer, label, mut permit, ctx, workers, metrics } = self;
        let limits = ctx.limits.load_full();
        let read = tokio::time::timeout_at(deadline, handshake::read_connect(&mut stream, &limits));
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
        accepted.request.listener = label;
        accepted.request.peer = peer;
        if let Err(refusal) = handshake::admit(&ctx.gateway, &mut accepted.request, login, identity) {
            let who = Who {
                listener: label,
                peer,
                client_id: Some(accepted.request.client_id.clone()),
                username: accepted.request.username.clone(),
            };
            // A refused will is named by its topic.
            let will_topic = accepted.request.will.as_ref().map(|will| will.message.topic_str());
            let topic = will_topic.filter(|_| refusal == SecurityRefusal::WillDenied || refusal.is_signature());
            ctx.gateway.refused(metrics, refusal, &who, AuditAction::Connect, topic);
            let code = crate::security::connack_code(refusal);
            handshake::refuse_with(&mut stream, version, refusal.as_label(), code).await;
            return Err(HandshakeError::Refused(Refusal::NotAuthorized));
        }
        if !permit.activate() {
            handshake::refuse_busy(&mut stream, version, Refusal::ServerBusy).await;
            return Err(HandshakeError::Refused(Refusal::ServerBusy));
        }
        let node = node_for(&accepted.request.client_id, workers.len());
        let stream = stream.into_client_stream().map_err(|_| HandshakeError::Io)?;
        let client = Client {
            peer,
            request: accepted.request,
            leftover: accepted.leftover,
            permit,
            connected_at: accepted.connected_at,
        };
        workers.dispatch(node, Handoff { stream, client });
        Ok(())
    }
}

/// The io node a client id lives on: always the same one, so its session (and any
/// takeover) stays on one thread.
pub(crate) fn node_for(client_id: &str, nodes: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    client_id.hash(&mut hasher);
    (hasher.finish() % nodes as u64) as usize
}
