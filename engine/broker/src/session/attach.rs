//! A connection takes up its session: takeover, resume or a fresh start, the CONNACK;
//! and what follows when the connection ends: the will, the session's expiry.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::FutureExt;
use rumqttd::protocol::{ConnAck, ConnAckProperties, ConnectReturnCode, Packet};

use super::connection::{CloseReason, Connection, Told};
use super::{inbound, writer, ClientLimits, Session, Will};
use crate::bus::SessionKey;
use crate::codec::MqttVersion;
use crate::gateway::Who;
use crate::io::{SocketReader, SocketWriter};
use crate::listener::ConnectionPermit;
use crate::metrics::Refusal;
use crate::node::Node;
use crate::security::Rules;

/// A timer's longest single sleep; longer waits (a session expiry of 136 years) re-arm.
const MAX_SLEEP: Duration = Duration::from_secs(30 * 24 * 3600);
/// The largest remaining length a packet can encode (MQTT 5 §1.5.5).
const MAX_REMAINING_LENGTH: usize = 268_435_455;
/// How long a client may go on sending after the broker's DISCONNECT.
const DRAIN_BEFORE_CLOSE: Duration = Duration::from_secs(1);

/// A CONNECT the listener accepted, on its way to the client id's node.
#[derive(Debug)]
pub(crate) struct ConnectRequest {
    pub version: MqttVersion,
    pub client_id: String,
    /// The client sent an empty id and got this one (MQTT 5 reports it).
    pub assigned: bool,
    pub clean_start: bool,
    /// Seconds of silence after which the connection is dropped (0: none).
    pub keep_alive: u16,
    /// Set when the broker overrides the client's keep-alive (MQTT 5 Server Keep Alive).
    pub server_keep_alive: Option<u16>,
    /// Session expiry the broker grants, and whether that is less than asked.
    pub session_expiry: u32,
    pub session_expiry_capped: bool,
    pub client: ClientLimits,
    pub problem_info: bool,
    pub will: Option<Box<Will>>,
    /// The client's ACL rules (`[security]`), worked out at the door.
    pub rules: Rules,
    /// The username the rules were made for (the certificate's CN, or the CONNECT's).
    pub username: Option<String>,
    /// The reloads the rules had seen: a SIGHUP between the door and the node means
    /// they are made again on arrival.
    pub rules_generation: u64,
    /// The listener it came through and the peer's address, for the audit log.
    pub listener: &'static str,
    pub peer: std::net::SocketAddr,
}

/// A socket with its checked CONNECT, handed from the listener to a node.
pub(crate) struct Handoff {
    pub stream: crate::stream::ClientStream,
    pub client: Client,
}

/// Everything about a handed-off connection but its socket.
pub(crate) struct Client {
    pub peer: SocketAddr,
    pub request: ConnectRequest,
    /// Bytes that arrived after the CONNECT.
    pub leftover: BytesMut,
    pub permit: ConnectionPermit,
    /// When the CONNECT was complete, for the connect latency metric.
    pub connected_at: Instant,
}

/// Runs a connection from its CONNACK to its end.
///
/// The setup runs before the returned future exists, so the future (which lives, and
/// is allocated, for the whole connection) holds only what the connection needs from
/// then on, not the CONNECT it started from: an idle connection's memory is mostly this.
pub(crate) fn attach<R: SocketReader, W: SocketWriter>(
    node: Rc<Node>,
    client: Client,
    mut reader: R,
    writer: W,
) -> impl std::future::Future<Output = ()> {
    let Client { peer, request, leftover, permit, connected_at } = client;
    // The listener's buffer came from another thread's heap: holding it for the
    // connection's life would pin that heap's pages. Bytes that came early are copied.
    let leftover = if leftover.is_empty() { BytesMut::new() } else { BytesMut::from(&leftover[..]) };
    let metrics = node.ctx.listener_metrics_arc(request.listener);
    let rate_generation = node.ctx.rate_generation.load(Ordering::Acquire);
    let (told, rate) = {
        let limits = node.ctx.limits();
        (Told::from_limits(&limits), limits.client_rate())
    };
    let conn = Rc::new(Connection::new(
        request.version,
        request.keep_alive,
        request.problem_info,
        told,
        node.budget.clone(),
        metrics,
    ));
    conn.rate.set(rate);
    conn.rate_generation.set(rate_generation);
    let attached = take_up(&node, &conn, &request);
    let writer = tokio::task::spawn_local(writer::run(writer, conn.clone(), node.clone()));
    if attached.is_some() {
        conn.metrics.connect_seconds.record(connected_at.elapsed().as_secs_f64());
        tracing::debug!(%peer, client_id = request.client_id, version = request.version.as_str(), "client connected");
    }
    drop(request);
    let live = node.connection_started();
    async move {
        let Some((key, session)) = attached else {
            conn.close(CloseReason::ServerShutdown);
            let _ = writer.await;
            drop(live);
            return;
        };
        let reading = inbound::run(&mut reader, leftover, &node, &session, &conn);
        let reason = match AssertUnwindSafe(reading).catch_unwind().await {
            Ok(reason) => reason,
            Err(panic) => {
                let client_id = session.borrow().client_id.clone();
                let cause = alicia_supervisor::panic_message(panic.as_ref());
                tracing::error!(client_id = &*client_id, cause, "session task panicked");
                CloseReason::InternalError
            }
        };
        conn.close(reason);
        let reason = conn.reason();
        let _ = writer.await;
        if reason.disconnect_code().is_some() && reason != CloseReason::ServerShutdown {
            drain_before_close(&mut reader).await;
        }
        if let Some(refusal) = reason.refusal() {
            conn.metrics.refused(refusal);
        }
        conn.metrics.disconnected(reason.as_label());
        tracing::debug!(%peer, reason = reason.as_label(), "client disconnected");
        detach(&node, key, &session, &conn, reason);
        drop(permit);
        drop(live);
    }
}

/// After the broker's DISCONNECT, reads (and drops) what the client still sends, until
/// it closes or a second passes: closing a socket with unread bytes makes the kernel
/// reset the connection, and the client might lose the DISCONNECT that said why.
async fn drain_before_close<R: SocketReader>(reader: &mut R) {
    let drain = async {
        let mut buf = BytesMut::new();
        loop {
            buf.clear();
            let (result, returned) = reader.read(buf, 512).await;
            buf = returned;
            if !matches!(result, Ok(n) if n > 0) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_BEFORE_CLOSE, Box::pin(drain)).await;
}

/// Finds, takes over, resumes or creates the session and queues the CONNACK. `None`
/// when the engine holds `max_sessions` already (the refusal is queued instead).
fn take_up(
    node: &Rc<Node>,
    conn: &Rc<Connection>,
    request: &ConnectRequest,
) -> Option<(SessionKey, Rc<RefCell<Session>>)> {
    let existing = node.sessions.borrow().find(&request.client_id);
    let mut resumed = None;
    if let Some((slot, session)) = existing {
        let key = session.borrow().key;
        debug_assert_eq!(key.slot, slot);
        {
            let mut s = session.borrow_mut();
            if let Some(old) = s.conn.take() {
                old.close(CloseReason::SessionTakenOver);
            }
            s.epoch += 1;
            // The earlier connection's will: a fresh start ends the session, which sends
            // it; a resume within the will delay cancels it (MQTT 5 §3.1.2.5).
            if let Some(will) = s.will.take() {
                if request.clean_start || will.delay == 0 {
                    node.publish_will(will.message);
                }
            }
        }
        if request.clean_start {
            end_session(node, key);
        } else {
            resumed = Some((key, session));
        }
    }
    let session_present = resumed.is_some();
    let (key, session) = match resumed {
        Some(found) => found,
        None => {
            if !node.ctx.try_add_session() {
                node.ctx.metrics.refused(Refusal::SessionLimit);
                tracing::warn!(client_id = request.client_id, "refused: limits.max_sessions reached");
                let code = match request.version {
                    MqttVersion::V5 => ConnectReturnCode::QuotaExceeded,
                    MqttVersion::V311 => ConnectReturnCode::ServiceUnavailable,
                };
                conn.send(Packet::ConnAck(ConnAck { session_present: false, code }, None));
                return None;
            }
            let key = node.sessions.borrow_mut().reserve(node.id);
            let session = Session::new(request.client_id.as_str().into(), key, request.version, request.client);
            let session = Rc::new(RefCell::new(session));
            node.sessions.borrow_mut().insert(key, session.clone());
            (key, session)
        }
    };
    {
        let mut s = session.borrow_mut();
        s.conn = Some(conn.clone());
        s.version = request.version;
        s.client = request.client;
        s.expiry = request.session_expiry;
        s.will = request.will.clone();
        s.rules = if request.rules_generation == node.ctx.gateway.generation() {
            request.rules.clone()
        } else {
            node.ctx.gateway.rules_for(request.username.as_deref(), &request.client_id)
        };
        s.who = Some(Rc::new(Who {
            listener: request.listener,
            peer: request.peer,
            client_id: Some(request.client_id.clone()),
            username: request.username.clone(),
        }));
        s.aliases_in.clear();
        s.outbound.reset_aliases(request.client.topic_alias_maximum);
        s.epoch += 1;
        s.persist(node, None);
        s.persist_will(node);
        conn.send(connack(&conn.told, request, session_present));
        let now = Instant::now();
        if session_present {
            s.resend_in_flight(node, now);
        }
    }
    // The session and will as of this CONNECT reach the store now, not with the
    // client's first packet.
    node.flush();
    Some((key, session))
}

fn connack(told: &Told, request: &ConnectRequest, session_present: bool) -> Packet {
    let properties = request.version.is_v5().then(|| ConnAckProperties {
        session_expiry_interval: request.session_expiry_capped.then_some(request.session_expiry),
        receive_max: Some(told.receive_maximum),
        // Past the largest remaining length there is nothing to say, and clients such as
        // paho-mqtt refuse a CONNACK whose value is larger.
        max_packet_size: Some(told.max_packet_size.min(MAX_REMAINING_LENGTH) as u32),
        assigned_client_identifier: request.assigned.then(|| request.client_id.clone()),
        topic_alias_max: (told.topic_alias_maximum > 0).then_some(told.topic_alias_maximum),
        retain_available: Some(1),
        wildcard_subscription_available: Some(1),
        subscription_identifiers_available: Some(1),
        shared_subscription_available: Some(1),
        server_keep_alive: request.server_keep_alive,
        ..Default::default()
    });
    Packet::ConnAck(ConnAck { session_present, code: ConnectReturnCode::Success }, properties)
}

/// The connection ended: fire or schedule the will; end the session or let it wait
/// for its client.
fn detach(
    node: &Rc<Node>,
    key: SessionKey,
    session: &Rc<RefCell<Session>>,
    conn: &Rc<Connection>,
    reason: CloseReason,
) {
    let end_now = {
        let mut s = session.borrow_mut();
        if !s.conn.as_ref().is_some_and(|c| Rc::ptr_eq(c, conn)) {
            // Taken over: the new connection has dealt with the session.
            return;
        }
        s.conn = None;
        s.epoch += 1;
        let epoch = s.epoch;
        match s.will.take() {
            Some(will) if reason.fires_will() => {
                let delay = will.delay.min(s.expiry);
                if delay == 0 {
                    node.publish_will(will.message);
                } else {
                    s.will = Some(will);
                    schedule(node, key, epoch, delay, Timer::Will);
                }
            }
            _ => {}
        }
        // A shutdown keeps the stored will: its client never said goodbye, so it fires
        // when the engine is back (or is cancelled if its client returns in time).
        if reason != CloseReason::ServerShutdown {
            s.persist_will(node);
        }
        if s.expiry > 0 {
            s.persist(node, Some(crate::persist::now_ms()));
        }
        match s.expiry {
            0 => true,
            u32::MAX => false,
            expiry => {
                schedule(node, key, epoch, expiry, Timer::Expiry);
                false
            }
        }
    };
    if end_now {
        end_session(node, key);
    }
    // What the end wrote to the store (the session's clock, its will) goes now.
    node.flush();
}

#[derive(Debug, Clone, Copy)]
enum Timer {
    Will,
    Expiry,
}

fn schedule(node: &Rc<Node>, key: SessionKey, epoch: u64, seconds: u32, timer: Timer) {
    let node = node.clone();
    tokio::task::spawn_local(async move {
        let mut left = Duration::from_secs(u64::from(seconds));
        while !left.is_zero() {
            let step = left.min(MAX_SLEEP);
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = node.ctx.stop.cancelled() => return,
            }
            left -= step;
            if !current(&node, key, epoch) {
                return;
            }
        }
        fire(&node, key, epoch, timer);
    });
}

/// Whether the session is still in the state the timer was set for.
fn current(node: &Node, key: SessionKey, epoch: u64) -> bool {
    node.sessions.borrow().by_key(key).is_some_and(|s| s.borrow().epoch == epoch)
}

fn fire(node: &Rc<Node>, key: SessionKey, epoch: u64, timer: Timer) {
    let Some(session) = node.sessions.borrow().by_key(key) else { return };
    let will = {
        let mut s = session.borrow_mut();
        if s.epoch != epoch {
            return;
        }
        let will = s.will.take();
        s.persist_will(node);
        will
    };
    // A session that ends sends its pending will first (MQTT 5 §3.1.2.5).
    if let Some(will) = will {
        node.publish_will(will.message);
    }
    if let Timer::Expiry = timer {
        end_session(node, key);
    }
}

/// Ends a session: its subscriptions leave the node's routing, what it held is dropped.
pub(crate) fn end_session(node: &Node, key: SessionKey) {
    let Some(session) = node.sessions.borrow_mut().remove(key) else { return };
    let mut s = session.borrow_mut();
    node.unsubscribe_all(&s, key.slot);
    node.ctx.metrics.subscriptions.decrement(s.subscriptions.len() as f64);
    s.subscriptions.clear();
    s.drop_queues(node);
    if s.stored {
        if let Some(mut store) = node.store_changes() {
            store.remove_session(&s.client_id);
        }
        s.stored = false;
    }
    s.epoch += 1;
    node.ctx.remove_session();
    node.flush();
}

/// Takes up the persistent sessions and wills the store kept for this node's clients
/// (at start-up, before any client is handed to the node): each session offline, with
/// its subscriptions routed, its deliveries queued, its expiry counted from when its
/// connection ended (or from the restart, when the engine stopped under it); each will
/// of a client whose connection the engine's stop ended fires (after its delay, when
/// its session can wait that long).
pub(crate) fn restore(node: &Rc<Node>, boot: crate::persist::NodeBoot) {
    let Some(store) = node.ctx.store.clone() else { return };
    // Restored in one batch: what a session's restore changes goes with the node's flush.
    let now_ms = crate::persist::now_ms();
    let mut wills: std::collections::HashMap<String, alicia_store::StoredWill> = boot.wills.into_iter().collect();
    for restored in boot.sessions {
        let stored = restored.session;
        let will = wills.remove(&stored.client_id);
        let gone_at = stored.disconnected_at_ms.unwrap_or(node.ctx.boot.at_ms).min(now_ms);
        let away = crate::persist::seconds_since(gone_at, now_ms);
        let expired =
            stored.expiry_secs == 0 || (stored.expiry_secs != u32::MAX && away >= u64::from(stored.expiry_secs));
        if expired || !node.ctx.try_add_session() {
            if !expired {
                tracing::warn!(
                    client_id = stored.client_id,
                    "limits.max_sessions reached: a stored session is dropped"
                );
            }
            if let Some(message) = will.and_then(|w| crate::persist::from_stored(w.message, now_ms)) {
                node.publish_will(message);
            }
            store.remove_will(&stored.client_id);
            store.remove_session(&stored.client_id);
            continue;
        }
        let key = node.sessions.borrow_mut().reserve(node.id);
        let version = if stored.protocol == 5 { MqttVersion::V5 } else { MqttVersion::V311 };
        // The client's own limits come with its next CONNECT; until then it is offline.
        let client =
            ClientLimits { receive_maximum: u16::MAX, maximum_packet_size: usize::MAX, topic_alias_maximum: 0 };
        let mut s = Session::new(stored.client_id.as_str().into(), key, version, client);
        s.expiry = stored.expiry_secs;
        s.stored = true;
        s.rules = node.ctx.gateway.rules_for(stored.username.as_deref(), &stored.client_id);
        s.who = Some(Rc::new(Who {
            listener: "restored",
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            client_id: Some(stored.client_id.clone()),
            username: stored.username.clone(),
        }));
        for sub in &stored.subscriptions {
            let subscription = super::Subscription {
                qos: sub.qos.min(2),
                no_local: sub.no_local,
                retain_as_published: sub.retain_as_published,
                retain_handling: sub.retain_handling.min(2),
                id: sub.id,
            };
            super::subscribe::restore(node, &mut s, sub.filter.clone(), subscription);
        }
        s.refresh_no_local();
        for (seq, delivery, state) in restored.deliveries {
            s.restore_delivery(node, seq, delivery, state);
        }
        s.epoch += 1;
        let epoch = s.epoch;
        if let Some(will) = will {
            match crate::persist::from_stored(will.message, now_ms) {
                Some(message) if will.delay_secs.min(s.expiry) > 0 => {
                    let delay = will.delay_secs.min(s.expiry);
                    s.will = Some(Box::new(Will { message, delay }));
                    s.will_stored = true;
                    schedule(node, key, epoch, delay, Timer::Will);
                }
                Some(message) => {
                    node.publish_will(message);
                    store.remove_will(&stored.client_id);
                }
                None => store.remove_will(&stored.client_id),
            }
        }
        if s.expiry != u32::MAX {
            let left = u64::from(s.expiry).saturating_sub(away).max(1);
            schedule(node, key, epoch, left.min(u64::from(u32::MAX)) as u32, Timer::Expiry);
        }
        // The clock of a session the engine's stop cut off starts now, and stays put.
        s.persist(node, Some(gone_at));
        node.sessions.borrow_mut().insert(key, Rc::new(RefCell::new(s)));
    }
    // The other wills' clients had sessions that ended with their connections.
    for (client_id, will) in wills {
        if let Some(message) = crate::persist::from_stored(will.message, now_ms) {
            node.publish_will(message);
        }
        store.remove_will(&client_id);
    }
    node.flush();
}
