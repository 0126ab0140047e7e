//! The reader task: every packet a client sends, checked and acted on.
//!
//! Reads land in a buffer sized to what arrives: an idle connection holds a small one
//! (none on epoll), a busy one grows to 64 KiB, and a packet of 64 KiB or more gets a
//! buffer of exactly its size, reserved from the engine's byte budget before its body
//! is read. Between reads, the task waits while the slowest node is far behind the
//! router's log, which slows a client that publishes faster than the bus delivers.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rumqttd::protocol::{
    self, DisconnectReasonCode, Packet, PubAck, PubAckProperties, PubAckReason, PubComp, PubCompReason, PubRec,
    PubRecProperties, PubRecReason,
};

use super::connection::{CloseReason, Connection};
use super::Session;
use crate::budget::Reservation;
use crate::bus::{Entry, Message};
use crate::codec::publish::{self, InboundPublish, PublishError};
use crate::codec::{frame, ClientPacket, FrameError};
use crate::io::SocketReader;
use crate::limits::LARGE_PAYLOAD;
use crate::metrics::{Refusal, SecurityRefusal};
use crate::node::Node;
use crate::retained::RetainedRefusal;
use crate::security;
use crate::topic::{check_name, TopicError};
use alicia_audit::AuditAction;
use alicia_ratelimit::RateExceeded;

/// Read buffer sizes: where an idle connection starts, and the most a busy one grows to.
const MIN_READ: usize = 512;
const MAX_READ: usize = 64 * 1024;
/// How long a large packet may wait for room in the memory budget.
const BUDGET_WAIT: Duration = Duration::from_secs(30);

/// Runs until the connection should end and says why.
pub(super) async fn run<R: SocketReader>(
    reader: &mut R,
    mut buf: BytesMut,
    node: &Rc<Node>,
    session: &Rc<RefCell<Session>>,
    conn: &Rc<Connection>,
) -> CloseReason {
    let max_packet = conn.told.max_packet_size;
    let mut read_size = MIN_READ;
    let mut large: Option<Reservation> = None;
    // With `[storage]`: PUBACKs and PUBRECs held until what they acknowledge is kept.
    let mut acks: Vec<(u8, u16)> = Vec::new();
    loop {
        // Every complete packet in the buffer.
        let mut received = 0u64;
        let outcome = loop {
            let frame = match frame(&buf, conn.version, max_packet) {
                Ok(Some(frame)) => frame,
                Ok(None) => break Ok(None),
                Err(FrameError::TooLarge(size)) => {
                    tracing::debug!(size, limit = max_packet, "packet too large");
                    break Err(CloseReason::PacketTooLarge);
                }
                Err(FrameError::Malformed(why)) => break Err(CloseReason::MalformedPacket(why)),
                Err(FrameError::NotFromClient(_)) => {
                    break Err(CloseReason::ProtocolError("a packet type only a server sends"))
                }
            };
            if buf.len() < frame.len() {
                break Ok(Some(frame.len()));
            }
            received += 1;
            let reservation = large.take();
            let handled = if frame.kind == ClientPacket::Auth {
                // AUTH is only for a CONNECT that named an authentication method (5 §4.12).
                Err(CloseReason::ProtocolError("AUTH without an authentication method"))
            } else if frame.kind == ClientPacket::Publish {
                let packet = buf.split_to(frame.len()).freeze();
                on_publish(node, session, conn, packet, frame.header_len, reservation, &mut acks)
            } else {
                let packet = conn.codec.clone().read(&mut buf, max_packet);
                on_packet(node, session, conn, frame.kind, packet)
            };
            if let Err(reason) = handled {
                break Err(reason);
            }
        };
        if received > 0 {
            conn.metrics.packets_received.increment(received);
        }
        node.flush();
        if !acks.is_empty() {
            if let Err(reason) = kept(node, conn).await {
                return reason;
            }
            for (qos, pkid) in acks.drain(..) {
                send_ack(conn, qos, pkid);
            }
        }
        let incomplete = match outcome {
            Err(reason) => return reason,
            Ok(incomplete) => incomplete,
        };
        if conn.is_closing() {
            return conn.reason();
        }

        // Room in the log before reading more from this client.
        if !node.ctx.log.has_room() {
            node.ctx.metrics.ingress_waits.increment(1);
            // Boxed: rare, and the connection's future would otherwise carry its size
            // all the time.
            conn.hold_back(true);
            tokio::select! {
                _ = Box::pin(node.ctx.log.room()) => {}
                _ = conn.closed() => return conn.reason(),
            }
            conn.hold_back(false);
        }

        // A buffer for what comes next.
        match incomplete {
            Some(len) if len >= LARGE_PAYLOAD && large.is_none() => {
                conn.hold_back(true);
                let reserved = tokio::select! {
                    r = Box::pin(tokio::time::timeout(BUDGET_WAIT, node.ctx.budget.reserve(len))) => r,
                    _ = conn.closed() => return conn.reason(),
                };
                conn.hold_back(false);
                match reserved {
                    Ok(Some(reservation)) => large = Some(reservation),
                    _ => return CloseReason::QuotaExceeded,
                }
                // Exactly this packet's size: nothing after it lands in this buffer.
                let mut dedicated = BytesMut::with_capacity(len);
                dedicated.extend_from_slice(&buf);
                buf = dedicated;
            }
            Some(len) if len > buf.len() && large.is_none() => {
                let want = (len - buf.len()).max(read_size);
                if buf.capacity() - buf.len() < want {
                    buf.reserve(want);
                }
            }
            Some(_) => {}
            None => {
                if buf.is_empty() && buf.capacity() > 2 * read_size {
                    // Give an idle connection's large buffer back.
                    buf = BytesMut::new();
                }
            }
        }

        let (result, returned) = tokio::select! {
            r = reader.read(buf, read_size) => r,
            _ = conn.closed() => return conn.reason(),
        };
        buf = returned;
        conn.heard();
        match result {
            Ok(0) | Err(_) => return CloseReason::PeerClosed,
            Ok(n) => {
                conn.metrics.bytes_received.increment(n as u64);
                // Grow when reads fill what they were given; shrink when they trickle.
                read_size = if n >= read_size {
                    (read_size * 2).min(MAX_READ)
                } else if n < read_size / 4 {
                    (read_size / 2).max(MIN_READ)
                } else {
                    read_size
                };
            }
        }
    }
}

/// Waits until what this connection published so far is kept: every node has routed it
/// (so each persistent subscriber's delivery is queued in the store) and the store has
/// committed everything queued before this moment (the retained message, those
/// deliveries). Only then may a PUBACK or PUBREC say the broker has the message.
async fn kept(node: &Node, conn: &Connection) -> Result<(), CloseReason> {
    let Some(store) = &node.ctx.store else { return Ok(()) };
    let position = node.ctx.log.appended_total();
    let routed = async {
        node.ctx.log.read_by_all(position).await;
        store.sync().await
    };
    // Boxed: only connections that publish at QoS 1/2 with a store pay for its size.
    let result = tokio::select! {
        r = Box::pin(routed) => r,
        _ = conn.closed() => return Err(conn.reason()),
    };
    result.map_err(|e| {
        tracing::error!(error = %e, "publishes not acknowledged: the store cannot keep them");
        CloseReason::StoreFailed
    })
}

/// A payload whose buffer was reserved from the budget: the reservation lives as long
/// as any part of the payload does.
struct Charged {
    payload: Bytes,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Charged {
    fn as_ref(&self) -> &[u8] {
        &self.payload
    }
}

fn on_publish(
    node: &Node,
    session: &Rc<RefCell<Session>>,
    conn: &Connection,
    packet: Bytes,
    header_len: usize,
    reservation: Option<Reservation>,
    acks: &mut Vec<(u8, u16)>,
) -> Result<(), CloseReason> {
    let p = publish::decode(packet, header_len, conn.version).map_err(|e| match e {
        PublishError::Malformed(why) => CloseReason::MalformedPacket(why),
        PublishError::Protocol(why) => CloseReason::ProtocolError(why),
    })?;
    conn.metrics.publishes_received.increment(1);
    let InboundPublish { qos, retain, pkid, mut properties, topic, payload, dup: _ } = p;
    let mut s = session.borrow_mut();
    let topic = resolve_topic(conn.told.topic_alias_maximum, &mut s, &topic, properties.as_mut())?;
    check_name(&topic, node.ctx.limits().max_topic_length).map_err(|e| match e {
        TopicError::NotUtf8 | TopicError::Nul => CloseReason::MalformedPacket("topic is not a valid UTF-8 string"),
        TopicError::Empty => CloseReason::ProtocolError("empty topic"),
        TopicError::Wildcard => CloseReason::TopicNameInvalid("wildcard in a PUBLISH topic"),
        _ => CloseReason::TopicNameInvalid("topic longer than the server's limit"),
    })?;
    let v5 = conn.version.is_v5();

    if qos == 2 && s.inbound_qos2.contains(&pkid) {
        // A retransmission of a message already taken: acknowledge it again, once only
        // (after the first one, when that still waits for the store).
        if node.ctx.store.is_some() {
            acks.push((2, pkid));
        } else {
            send_ack(conn, 2, pkid);
        }
        return Ok(());
    }
    if qos == 2 && s.inbound_qos2.len() >= usize::from(conn.told.receive_maximum) {
        return Err(CloseReason::ReceiveMaximumExceeded);
    }
    let payload = match reservation {
        Some(reservation) => Bytes::from_owner(Charged { payload, _reservation: reservation }),
        None => payload,
    };
    if v5
        && properties.as_ref().and_then(|p| p.payload_format_indicator) == Some(1)
        && !publish::payload_is_utf8(&payload)
    {
        conn.metrics.refused(Refusal::PayloadFormatInvalid);
        if qos == 0 {
            return Err(CloseReason::PayloadFormatInvalid);
        }
        refuse(conn, qos, pkid, AckRefusal::PayloadFormatInvalid);
        return Ok(());
    }

    // The topic is UTF-8: checked above.
    let topic_str = std::str::from_utf8(&topic).unwrap_or("");
    let rate_generation = node.ctx.rate_generation.load(Ordering::Acquire);
    if rate_generation != conn.rate_generation.get() {
        // A config update changed the rate: this client has the new one from here on.
        conn.rate.set(node.ctx.limits().client_rate());
        conn.rate_generation.set(rate_generation);
    }
    if let Some(mut rate) = conn.rate.get() {
        let admitted = rate.admit(payload.len() as u64, Instant::now());
        conn.rate.set(Some(rate));
        if let Err(exceeded) = admitted {
            let refusal = match exceeded {
                RateExceeded::Messages => SecurityRefusal::MessageRate,
                RateExceeded::Bytes => SecurityRefusal::ByteRate,
            };
            s.refused(node, refusal, AuditAction::Publish, Some(topic_str));
            return Err(CloseReason::MessageRateTooHigh);
        }
    }
    // The ACL, only for clients that have rules.
    if s.rules.is_some() && !security::may_publish(&s.rules, topic_str) {
        s.refused(node, SecurityRefusal::PublishDenied, AuditAction::Publish, Some(topic_str));
        refuse_unauthorized(conn, &mut s, v5, qos, pkid);
        return Ok(());
    }
    // Signed envelopes on the topics `[security.signing]` names: what passes goes on
    // as it came (an encrypted one decrypted), what fails goes nowhere.
    let payload = if node.ctx.gateway.requires_signature(topic_str) {
        match node.ctx.gateway.verify(&payload) {
            Ok(verified) => verified,
            Err(e) => {
                tracing::debug!(client_id = &*s.client_id, topic = topic_str, error = %e, "signature refused");
                let refusal = SecurityRefusal::from_signature(&e);
                s.refused(node, refusal, AuditAction::Publish, Some(topic_str));
                refuse_unauthorized(conn, &mut s, v5, qos, pkid);
                return Ok(());
            }
        }
    } else {
        payload
    };

    // A large packet's topic is copied so that only the payload holds its buffer; a
    // retained message may live long, so its small payload gets its own allocation too
    // instead of pinning the read buffer it arrived in.
    let topic = if payload.len() >= LARGE_PAYLOAD || retain { Bytes::copy_from_slice(&topic) } else { topic };
    let payload = if retain && payload.len() < LARGE_PAYLOAD { Bytes::copy_from_slice(&payload) } else { payload };
    let mut message = Message {
        topic,
        payload,
        qos,
        retain,
        properties: properties.filter(|p| *p != Default::default()),
        publisher: s.has_no_local().then_some(s.key),
    };
    if retain {
        if let Err(refusal) = node.ctx.retained.admit(&message, Instant::now()) {
            conn.metrics.refused(Refusal::RetainedLimit);
            tracing::debug!(client_id = &*s.client_id, ?refusal, "retained message refused");
            if v5 {
                // MQTT 5 can say so: not published at all.
                if qos > 0 {
                    refuse(conn, qos, pkid, AckRefusal::Quota(refusal));
                }
                return Ok(());
            }
            // 3.1.1 has no way to say it: the message goes to today's subscribers, but
            // is not kept.
            message.retain = false;
        }
    }
    node.append(Entry::Message(message));
    if node.ctx.store.is_some() && qos > 0 {
        if qos == 2 {
            s.inbound_qos2.push(pkid);
        }
        acks.push((qos, pkid));
    } else {
        acknowledge(conn, &mut s, qos, pkid);
    }
    Ok(())
}

/// A PUBLISH `[security]` refused: MQTT 5 says so in the acknowledgement (0x87); 3.1.1
/// cannot, and acknowledges as mosquitto does (the message goes nowhere).
fn refuse_unauthorized(conn: &Connection, s: &mut Session, v5: bool, qos: u8, pkid: u16) {
    if v5 && qos > 0 {
        refuse(conn, qos, pkid, AckRefusal::NotAuthorized);
    } else {
        acknowledge(conn, s, qos, pkid);
    }
}

/// A taken PUBLISH acknowledged: PUBACK (QoS 1), or PUBREC with the packet id kept
/// until its PUBREL (QoS 2).
fn acknowledge(conn: &Connection, s: &mut Session, qos: u8, pkid: u16) {
    if qos == 2 {
        s.inbound_qos2.push(pkid);
    }
    send_ack(conn, qos, pkid);
}

fn send_ack(conn: &Connection, qos: u8, pkid: u16) {
    match qos {
        1 => {
            conn.send(Packet::PubAck(PubAck { pkid, reason: PubAckReason::Success }, None));
        }
        2 => {
            conn.send(Packet::PubRec(PubRec { pkid, reason: PubRecReason::Success }, None));
        }
        _ => {}
    }
}

/// The topic a PUBLISH is about, with MQTT 5 topic aliases applied.
fn resolve_topic(
    max_alias: u16,
    s: &mut Session,
    topic: &Bytes,
    properties: Option<&mut rumqttd::protocol::PublishProperties>,
) -> Result<Bytes, CloseReason> {
    let Some(alias) = properties.and_then(|p| p.topic_alias.take()) else {
        if topic.is_empty() {
            return Err(CloseReason::ProtocolError("empty topic without a topic alias"));
        }
        return Ok(topic.clone());
    };
    if alias == 0 || alias > max_alias {
        return Err(CloseReason::TopicAliasInvalid);
    }
    if topic.is_empty() {
        let known = s.aliases_in.iter().find(|(a, _)| *a == alias);
        return known.map(|(_, topic)| topic.clone()).ok_or(CloseReason::ProtocolError("topic alias not set"));
    }
    // The alias outlives this packet's buffer: give the topic its own allocation.
    let topic = Bytes::copy_from_slice(topic);
    match s.aliases_in.iter_mut().find(|(a, _)| *a == alias) {
        Some(entry) => entry.1 = topic.clone(),
        None => s.aliases_in.push((alias, topic.clone())),
    }
    Ok(topic)
}

enum AckRefusal {
    PayloadFormatInvalid,
    NotAuthorized,
    Quota(RetainedRefusal),
}

/// A QoS 1/2 PUBLISH refused with an MQTT 5 reason code in its acknowledgement.
fn refuse(conn: &Connection, qos: u8, pkid: u16, why: AckRefusal) {
    let (ack, rec, text) = match why {
        AckRefusal::PayloadFormatInvalid => (
            PubAckReason::PayloadFormatInvalid,
            PubRecReason::PayloadFormatInvalid,
            "payload is not UTF-8 but its format indicator says it is",
        ),
        AckRefusal::NotAuthorized => {
            (PubAckReason::NotAuthorized, PubRecReason::NotAuthorized, "not authorized to publish to this topic")
        }
        AckRefusal::Quota(RetainedRefusal::TooManyMessages) => {
            (PubAckReason::QuotaExceeded, PubRecReason::QuotaExceeded, "retained message limit reached")
        }
        AckRefusal::Quota(RetainedRefusal::TooManyBytes) => {
            (PubAckReason::QuotaExceeded, PubRecReason::QuotaExceeded, "retained bytes limit reached")
        }
    };
    let reason_string = conn.problem_info.then(|| text.to_string());
    if qos == 1 {
        let properties = reason_string.map(|r| PubAckProperties { reason_string: Some(r), user_properties: vec![] });
        conn.send(Packet::PubAck(PubAck { pkid, reason: ack }, properties));
    } else {
        let properties = reason_string.map(|r| PubRecProperties { reason_string: Some(r), user_properties: vec![] });
        conn.send(Packet::PubRec(PubRec { pkid, reason: rec }, properties));
    }
}

/// Every packet but PUBLISH.
fn on_packet(
    node: &Node,
    session: &Rc<RefCell<Session>>,
    conn: &Connection,
    kind: ClientPacket,
    packet: Result<Packet, protocol::Error>,
) -> Result<(), CloseReason> {
    let packet = match packet {
        Ok(packet) => packet,
        Err(protocol::Error::PayloadSizeLimitExceeded(_)) => return Err(CloseReason::PacketTooLarge),
        Err(e) => {
            tracing::debug!(error = %e, ?kind, "malformed packet");
            return Err(CloseReason::MalformedPacket("malformed packet"));
        }
    };
    let now = Instant::now();
    match packet {
        Packet::PubAck(ack, _) => session.borrow_mut().on_puback(node, ack.pkid, now),
        Packet::PubRec(rec, _) => {
            let failed = !matches!(rec.reason, PubRecReason::Success | PubRecReason::NoMatchingSubscribers);
            session.borrow_mut().on_pubrec(node, rec.pkid, failed, now);
        }
        Packet::PubComp(comp, _) => session.borrow_mut().on_pubcomp(node, comp.pkid, now),
        Packet::PubRel(rel, _) => {
            let known = {
                let mut s = session.borrow_mut();
                let position = s.inbound_qos2.iter().position(|&p| p == rel.pkid);
                position.map(|i| s.inbound_qos2.swap_remove(i)).is_some()
            };
            let reason = if known { PubCompReason::Success } else { PubCompReason::PacketIdentifierNotFound };
            conn.send(Packet::PubComp(PubComp { pkid: rel.pkid, reason }, None));
        }
        Packet::Subscribe(subscribe, properties) => {
            super::subscribe::subscribe(node, &mut session.borrow_mut(), conn, subscribe, properties, now)?;
        }
        Packet::Unsubscribe(unsubscribe, _) => {
            super::subscribe::unsubscribe(node, &mut session.borrow_mut(), conn, unsubscribe)?;
        }
        Packet::PingReq(_) => {
            conn.send(Packet::PingResp(protocol::PingResp));
        }
        Packet::Disconnect(disconnect, properties) => {
            let mut s = session.borrow_mut();
            if let Some(expiry) = properties.and_then(|p| p.session_expiry_interval) {
                // 5 §3.14.2.2.2: a session that ends with its connection cannot be kept.
                if s.expiry == 0 && expiry != 0 {
                    return Err(CloseReason::ProtocolError("session expiry set on DISCONNECT after 0 on CONNECT"));
                }
                s.expiry = expiry.min(node.ctx.limits().max_session_expiry);
            }
            let with_will = disconnect.reason_code == DisconnectReasonCode::DisconnectWithWillMessage;
            return Err(CloseReason::ClientDisconnect { with_will });
        }
        Packet::Connect(..) => return Err(CloseReason::ProtocolError("a second CONNECT")),
        // AUTH without an authentication method in the CONNECT (5 §4.12).
        _ => return Err(CloseReason::ProtocolError("unexpected packet")),
    }
    Ok(())
}
