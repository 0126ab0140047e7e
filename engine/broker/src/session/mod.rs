//! One client connection, from CONNECT to close.
//!
//! ```text
//! socket ─► inbound (decode, rules) ─► LinkTx ─► router
//! socket ◄─ writer ◄─ pending bytes ◄─ pump ◄─ LinkRx ◄─ router
//! ```
//! Three local tasks share a [`Shared`] state: the inbound loop (this task), the pump that
//! drains the router's notifications into an encoded, bounded queue, and the writer
//! that flushes that queue to the socket. The first to see the end records why in
//! `Shared::close`; the others follow. Cleanup then removes the link from the router
//! (which keeps a persistent session's state) and hands a will to the will publisher.

mod connect;
mod inbound;
mod outbound;
mod subscribe;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttd::protocol::{Disconnect, DisconnectReasonCode, Packet};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::codec::MqttVersion;
use crate::io::{SocketReader, SocketWriter};
use crate::metrics::{FrontDoorMetrics, Refusal};
use crate::router::RouterHandle;
use crate::will::WillPublisher;

/// Limits every session applies.
#[derive(Debug, Clone)]
pub(crate) struct SessionLimits {
    pub max_connections: usize,
    pub max_packet_size: usize,
    pub max_inflight: usize,
    pub max_queued: usize,
    pub connect_timeout: Duration,
}

/// What every session on every io thread shares.
pub(crate) struct SessionContext {
    pub router: RouterHandle,
    pub limits: SessionLimits,
    pub metrics: FrontDoorMetrics,
    pub wills: WillPublisher,
    pub stop: CancellationToken,
    pub active: AtomicUsize,
}

/// One of `max_connections` session slots; released on drop.
pub(crate) struct ConnectionPermit {
    ctx: Arc<SessionContext>,
}

impl ConnectionPermit {
    fn acquire(ctx: &Arc<SessionContext>) -> Option<ConnectionPermit> {
        let max = ctx.limits.max_connections;
        ctx.active.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        ctx.metrics.connections_active.increment(1.0);
        Some(ConnectionPermit { ctx: ctx.clone() })
    }
}

/// Why a session ended; decides the v5 DISCONNECT sent and whether the will fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// DISCONNECT from the client; v5 reason 0x04 asks for the will anyway.
    ClientDisconnect {
        with_will: bool,
    },
    PeerClosed,
    KeepAliveTimeout,
    PacketTooLarge,
    MalformedPacket,
    ProtocolError,
    ReceiveMaximumExceeded,
    /// The router dropped the link: another connection took the client id.
    SessionTakenOver,
    ServerShutdown,
    WriteFailed,
}

impl CloseReason {
    /// The DISCONNECT a v5 client is told; none when the client ended it or cannot hear.
    fn disconnect_code(self) -> Option<DisconnectReasonCode> {
        use CloseReason::*;
        match self {
            KeepAliveTimeout => Some(DisconnectReasonCode::KeepAliveTimeout),
            PacketTooLarge => Some(DisconnectReasonCode::PacketTooLarge),
            MalformedPacket => Some(DisconnectReasonCode::MalformedPacket),
            ProtocolError => Some(DisconnectReasonCode::ProtocolError),
            ReceiveMaximumExceeded => Some(DisconnectReasonCode::ReceiveMaximumExceeded),
            SessionTakenOver => Some(DisconnectReasonCode::SessionTakenOver),
            ServerShutdown => Some(DisconnectReasonCode::ServerShuttingDown),
            ClientDisconnect { .. } | PeerClosed | WriteFailed => None,
        }
    }

    /// The reason string a v5 client reads in the DISCONNECT.
    fn explain(self) -> &'static str {
        use CloseReason::*;
        match self {
            KeepAliveTimeout => "no packet within 1.5 times the keep-alive",
            PacketTooLarge => "packet exceeds the server's maximum packet size",
            MalformedPacket => "malformed packet",
            ProtocolError => "protocol error",
            ReceiveMaximumExceeded => "more unacknowledged QoS 1/2 publishes than the receive maximum",
            SessionTakenOver => "another connection took over this client id",
            ServerShutdown => "server shutting down",
            ClientDisconnect { .. } | PeerClosed | WriteFailed => "",
        }
    }

    /// MQTT publishes the will on every end but a normal DISCONNECT; a server that is
    /// shutting down has nobody left to deliver it to.
    fn fires_will(self) -> bool {
        !matches!(self, CloseReason::ClientDisconnect { with_will: false } | CloseReason::ServerShutdown)
    }

    fn as_label(self) -> &'static str {
        use CloseReason::*;
        match self {
            ClientDisconnect { .. } => "client_disconnect",
            PeerClosed => "peer_closed",
            KeepAliveTimeout => "keep_alive_timeout",
            PacketTooLarge => "packet_too_large",
            MalformedPacket => "malformed_packet",
            ProtocolError => "protocol_error",
            ReceiveMaximumExceeded => "receive_maximum_exceeded",
            SessionTakenOver => "session_taken_over",
            ServerShutdown => "server_shutdown",
            WriteFailed => "write_failed",
        }
    }

    /// Which ends count as a refusal of the client's input.
    fn refusal(self) -> Option<Refusal> {
        match self {
            CloseReason::PacketTooLarge => Some(Refusal::PacketTooLarge),
            CloseReason::MalformedPacket => Some(Refusal::MalformedPacket),
            CloseReason::ProtocolError => Some(Refusal::ProtocolError),
            CloseReason::ReceiveMaximumExceeded => Some(Refusal::ReceiveMaximumExceeded),
            _ => None,
        }
    }
}

/// State the three tasks of one session share (all on one thread).
pub(crate) struct Shared {
    closing: CancellationToken,
    /// Set once the pump has taken its last notification from the router.
    pump_finished: CancellationToken,
    reason: Cell<Option<CloseReason>>,
    /// Encoded packets waiting for the writer.
    pending: RefCell<BytesMut>,
    /// PUBLISH packets in `pending`, bounded by `max_queued_messages`.
    queued_publishes: Cell<usize>,
    data_ready: Notify,
    /// Client QoS 1/2 publishes not yet acknowledged (Receive Maximum).
    inbound_inflight: Cell<usize>,
    /// SUBSCRIBEs the front door partly refused, to complete their SUBACKs.
    suback_fixups: RefCell<subscribe::SubAckFixups>,
    version: MqttVersion,
}

impl Shared {
    /// Records the first reason to end and tells every task.
    fn close(&self, reason: CloseReason) {
        if self.reason.get().is_none() {
            self.reason.set(Some(reason));
        }
        self.closing.cancel();
    }

    fn reason(&self) -> CloseReason {
        self.reason.get().unwrap_or(CloseReason::ServerShutdown)
    }
}

/// Runs a client connection to its end.
pub(crate) async fn serve<R: SocketReader, W: SocketWriter>(
    mut reader: R,
    mut writer: W,
    peer: SocketAddr,
    ctx: Arc<SessionContext>,
) {
    ctx.metrics.sockets_accepted.increment(1);
    let handshake = tokio::select! {
        r = tokio::time::timeout(ctx.limits.connect_timeout, connect::handshake(&mut reader, &mut writer, &ctx)) => r,
        _ = ctx.stop.cancelled() => return,
    };
    let established = match handshake {
        Ok(Ok(established)) => established,
        Ok(Err(connect::HandshakeError::Refused(refusal))) => {
            tracing::debug!(%peer, reason = refusal.as_label(), "connection refused");
            return;
        }
        Ok(Err(connect::HandshakeError::Io)) => return,
        Err(_) => {
            ctx.metrics.refused(Refusal::ConnectTimeout);
            tracing::debug!(%peer, "no CONNECT in time");
            return;
        }
    };
    let connect::Established { codec, link, client_id, router_id, keep_alive, will, permit, leftover } = established;
    tracing::debug!(%peer, client_id, version = codec.version().as_str(), "client connected");
    let shared = Rc::new(Shared {
        closing: ctx.stop.child_token(),
        pump_finished: CancellationToken::new(),
        reason: Cell::new(None),
        pending: RefCell::new(BytesMut::with_capacity(16 * 1024)),
        queued_publishes: Cell::new(0),
        data_ready: Notify::new(),
        inbound_inflight: Cell::new(0),
        suback_fixups: RefCell::new(subscribe::SubAckFixups::default()),
        version: codec.version(),
    });
    let (mut link_tx, link_rx) = (link.tx, link.rx);
    let pump = tokio::task::spawn_local(outbound::pump(link_rx, codec.clone(), shared.clone(), ctx.clone()));
    let flush = tokio::task::spawn_local(outbound::write_loop(writer, codec.clone(), shared.clone(), ctx.clone()));

    let reason = inbound::run(&mut reader, leftover, &mut link_tx, codec, keep_alive, &shared, &ctx).await;
    shared.close(reason);
    let reason = shared.reason();
    let _ = pump.await;
    let _ = flush.await;

    if reason != CloseReason::SessionTakenOver {
        // Removes the link; the router keeps a persistent session's subscriptions.
        let disconnect = Disconnect { reason_code: DisconnectReasonCode::NormalDisconnection };
        let _ = link_tx.send(Packet::Disconnect(disconnect, None)).await;
    }
    if let Some(refusal) = reason.refusal() {
        ctx.metrics.refused(refusal);
    }
    ctx.metrics.disconnected(reason.as_label());
    if reason.fires_will() {
        if let Some((will, props)) = will {
            ctx.wills.publish(router_id, will, props);
        }
    }
    tracing::debug!(%peer, client_id, reason = reason.as_label(), "client disconnected");
    drop(permit);
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let ctx = &self.ctx;
        ctx.active.fetch_sub(1, Ordering::AcqRel);
        ctx.metrics.connections_active.decrement(1.0);
    }
}
