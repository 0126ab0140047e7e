//! Deliveries to the client: QoS, the in-flight window, packet ids, topic aliases, and
//! the client's acknowledgements.
//!
//! A delivery's QoS is the lower of the published QoS and the subscription's (the node
//! works that out). QoS 0 goes straight to the connection's queue, or is dropped when
//! the client is offline or its queue is full. QoS 1/2 go out while fewer than the
//! window (the client's Receive Maximum, at most `max_inflight_messages`) are
//! unacknowledged; the rest wait in order, also while a persistent session's client is
//! away, and go out (or, in flight, again with DUP) when it comes back.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Instant;

use alicia_store::{DeliveryState, StoredDelivery};
use bytes::Bytes;
use rumqttd::protocol::{Packet, PubRel, PubRelReason};

use super::{Connection, Session};
use crate::bus::Routed;
use crate::codec::publish::OutboundPublish;
use crate::limits::LARGE_PAYLOAD;
use crate::metrics::DropReason;
use crate::node::Node;

/// Topic aliases the broker uses towards one client at most, whatever it allows: each
/// costs a topic's bytes for the connection's life.
const MAX_OUTBOUND_ALIASES: u16 = 64;

/// One delivery held for a client.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub routed: Rc<Routed>,
    pub qos: u8,
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// Sent from the retained store because of a SUBSCRIBE, not live traffic: the
    /// count limit gives these room of their own (see [`Session::count_limit`]).
    pub from_retained_store: bool,
    /// Its key in the durable store, once kept there (a persistent session's QoS 1/2).
    pub seq: Option<u64>,
    /// Whether its state moved on after it was kept (a state record of its own exists).
    pub state_record: bool,
}

impl Queued {
    fn payload(&self) -> &Bytes {
        &self.routed.message.payload
    }

    /// What holding it costs the engine's budget: a small payload is held here; a large
    /// one was charged once when it was read.
    fn charge(&self) -> usize {
        let len = self.payload().len();
        if len >= LARGE_PAYLOAD {
            0
        } else {
            len
        }
    }
}

#[derive(Debug)]
enum InflightState {
    /// PUBLISH sent; PUBACK (QoS 1) or PUBREC (QoS 2) awaited.
    Sent(Queued),
    /// PUBREL sent; PUBCOMP awaited (with the delivery's key in the durable store).
    Released(Option<u64>),
}

#[derive(Debug)]
struct Inflight {
    order: u64,
    state: InflightState,
}

/// Topic aliases from the broker to one client: assigned on a topic's first delivery
/// and kept for the connection.
#[derive(Debug, Default)]
struct OutboundAliases {
    max: u16,
    by_topic: HashMap<Bytes, u16>,
}

pub(super) struct Outbound {
    waiting: VecDeque<Queued>,
    inflight: HashMap<u16, Inflight>,
    next_pkid: u16,
    next_order: u64,
    aliases: OutboundAliases,
    /// Payload bytes of `waiting` and `inflight` (for `max_queued_bytes`).
    held_bytes: usize,
    /// What of them is charged to the memory budget.
    charged: usize,
}

impl Outbound {
    pub(super) fn new(client_alias_maximum: u16) -> Outbound {
        Outbound {
            waiting: VecDeque::new(),
            inflight: HashMap::new(),
            next_pkid: 0,
            next_order: 0,
            aliases: OutboundAliases { max: client_alias_maximum.min(MAX_OUTBOUND_ALIASES), by_topic: HashMap::new() },
            held_bytes: 0,
            charged: 0,
        }
    }

    /// A new connection starts with no aliases (MQTT 5 §3.3.2.3.4) and its own maximum.
    pub(super) fn reset_aliases(&mut self, client_alias_maximum: u16) {
        self.aliases =
            OutboundAliases { max: client_alias_maximum.min(MAX_OUTBOUND_ALIASES), by_topic: HashMap::new() };
    }

    fn take_pkid(&mut self) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&self.next_pkid) {
                return self.next_pkid;
            }
        }
    }

    fn hold(&mut self, q: &Queued) {
        self.held_bytes += q.payload().len();
        self.charged += q.charge();
    }

    fn unhold(&mut self, node: &Node, q: &Queued) {
        self.held_bytes -= q.payload().len();
        self.charged -= q.charge();
        node.budget.release(q.charge());
    }
}

impl Session {
    fn window(&self, node: &Node) -> usize {
        usize::from(self.client.receive_maximum.min(node.ctx.limits().max_inflight))
    }

    /// Delivers one message to this session.
    pub(crate) fn deliver(&mut self, node: &Node, queued: Queued, now: Instant) {
        if queued.routed.expired(now) {
            node.ctx.metrics.dropped(DropReason::Expired, 1);
            return;
        }
        let online = self.conn.clone().filter(|c| !c.is_closing());
        if queued.qos == 0 {
            match online {
                Some(conn) => self.send_qos0(node, &conn, &queued, now),
                None => node.ctx.metrics.dropped(DropReason::OfflineQos0, 1),
            }
            return;
        }
        if let Some(conn) = online {
            if self.outbound.waiting.is_empty() && self.outbound.inflight.len() < self.window(node) {
                self.send_in_flight(node, &conn, queued, now);
                return;
            }
        }
        self.enqueue(node, queued);
    }

    fn held_bytes_with(&self, conn: Option<&Connection>) -> usize {
        self.outbound.held_bytes + conn.map_or(0, |c| c.out.borrow().bytes())
    }

    /// Whether one more delivery of `len` payload bytes fits this client's queue limits.
    fn fits(&self, node: &Node, conn: Option<&Connection>, len: usize) -> Result<(), DropReason> {
        let limits = node.ctx.limits();
        let held = self.held_bytes_with(conn);
        // A message larger than the limit still goes to an empty queue: the limit must
        // never make a message undeliverable.
        if held > 0 && held + len > limits.max_queued_bytes {
            return Err(DropReason::QueueBytes);
        }
        Ok(())
    }

    /// How many deliveries may wait for this client. A subscriber to a wide filter gets
    /// every matching retained message at once (a dashboard subscribing `alicia/#` on a
    /// home with thousands of devices): the store's own count limit is added for those,
    /// so they are not lost to a limit meant for live traffic. Bytes stay bounded by
    /// `max_queued_bytes` and the engine's budget either way.
    fn count_limit(node: &Node, q: &Queued) -> usize {
        let limits = node.ctx.limits();
        if q.from_retained_store {
            limits.max_queued_messages.saturating_add(limits.max_retained_messages)
        } else {
            limits.max_queued_messages
        }
    }

    fn send_qos0(&mut self, node: &Node, conn: &Connection, q: &Queued, now: Instant) {
        let result = if conn.out.borrow().publishes() >= Self::count_limit(node, q) {
            Err(DropReason::QueueFull)
        } else {
            self.fits(node, Some(conn), q.payload().len()).and_then(|()| self.encode(conn, q, 0, false, now))
        };
        if let Err(reason) = result {
            node.ctx.metrics.dropped(reason, 1);
        }
    }

    fn enqueue(&mut self, node: &Node, q: Queued) {
        let conn = self.conn.clone();
        let result = if self.outbound.waiting.len() >= Self::count_limit(node, &q) {
            Err(DropReason::QueueFull)
        } else if let Err(reason) = self.fits(node, conn.as_deref(), q.payload().len()) {
            Err(reason)
        } else if !node.budget.try_charge(q.charge()) {
            Err(DropReason::MemoryBudget)
        } else {
            Ok(())
        };
        match result {
            Ok(()) => {
                let mut q = q;
                self.keep(node, &mut q, DeliveryState::Waiting);
                self.outbound.hold(&q);
                self.outbound.waiting.push_back(q);
            }
            Err(reason) => {
                self.forget(node, &q);
                node.ctx.metrics.dropped(reason, 1);
            }
        }
    }

    /// Keeps a QoS 1/2 delivery of a persistent session in the durable store, or notes
    /// where it now stands.
    fn keep(&self, node: &Node, q: &mut Queued, state: DeliveryState) {
        let Some(store) = self.store(node) else { return };
        let seq = q.seq;
        let Some(mut changes) = node.store_changes() else { return };
        match seq {
            Some(seq) => {
                changes.set_state(&self.client_id, seq, state);
                q.state_record = true;
            }
            None => {
                let seq = store.next_seq();
                let delivery = StoredDelivery {
                    message: crate::persist::to_stored(&q.routed.message, q.routed.deadline, Instant::now()),
                    qos: q.qos,
                    retain: q.retain,
                    subscription_ids: q.subscription_ids.clone(),
                    state,
                };
                changes.put_delivery(&self.client_id, seq, &delivery);
                q.seq = Some(seq);
            }
        }
    }

    /// A delivery is done with (acknowledged, expired, dropped): out of the store.
    fn forget_seq(&self, node: &Node, seq: Option<u64>, state_record: bool) {
        if let (Some(mut changes), Some(seq)) = (node.store_changes(), seq) {
            changes.remove_delivery(&self.client_id, seq, state_record);
        }
    }

    fn forget(&self, node: &Node, q: &Queued) {
        self.forget_seq(node, q.seq, q.state_record);
    }

    /// A delivery the store kept, back in this session's queues (at start-up).
    pub(crate) fn restore_delivery(&mut self, node: &Node, seq: u64, delivery: StoredDelivery, state: DeliveryState) {
        let now = Instant::now();
        let message = crate::persist::from_stored(delivery.message, crate::persist::now_ms());
        let Some(message) = message else {
            node.ctx.metrics.dropped(DropReason::Expired, 1);
            self.forget_seq(node, Some(seq), true);
            return;
        };
        let q = Queued {
            routed: Rc::new(Routed::new(message, now)),
            qos: delivery.qos.clamp(1, 2),
            retain: delivery.retain,
            subscription_ids: delivery.subscription_ids,
            from_retained_store: false,
            seq: Some(seq),
            // Whether one exists is not known here; deleting one that does not is harmless.
            state_record: true,
        };
        let order = self.outbound.next_order;
        self.outbound.next_order += 1;
        let pkid = match state {
            DeliveryState::Sent(p) | DeliveryState::Released(p)
                if p != 0 && !self.outbound.inflight.contains_key(&p) =>
            {
                Some(p)
            }
            _ => None,
        };
        if let (DeliveryState::Released(_), Some(pkid)) = (state, pkid) {
            self.outbound.inflight.insert(pkid, Inflight { order, state: InflightState::Released(Some(seq)) });
            return;
        }
        if !node.budget.try_charge(q.charge()) {
            node.ctx.metrics.dropped(DropReason::MemoryBudget, 1);
            self.forget(node, &q);
            return;
        }
        self.outbound.held_bytes += q.payload().len();
        self.outbound.charged += q.charge();
        match pkid {
            Some(pkid) => {
                self.outbound.inflight.insert(pkid, Inflight { order, state: InflightState::Sent(q) });
            }
            None => self.outbound.waiting.push_back(q),
        }
    }

    /// Sends a QoS 1/2 delivery under a fresh packet id and keeps it until acknowledged.
    fn send_in_flight(&mut self, node: &Node, conn: &Connection, mut q: Queued, now: Instant) {
        if !node.budget.try_charge(q.charge()) {
            node.ctx.metrics.dropped(DropReason::MemoryBudget, 1);
            self.forget(node, &q);
            return;
        }
        let pkid = self.outbound.take_pkid();
        if let Err(reason) = self.encode(conn, &q, pkid, false, now) {
            node.budget.release(q.charge());
            node.ctx.metrics.dropped(reason, 1);
            self.forget(node, &q);
            return;
        }
        self.keep(node, &mut q, DeliveryState::Sent(pkid));
        self.outbound.held_bytes += q.payload().len();
        self.outbound.charged += q.charge();
        let order = self.outbound.next_order;
        self.outbound.next_order += 1;
        self.outbound.inflight.insert(pkid, Inflight { order, state: InflightState::Sent(q) });
    }

    /// Encodes one PUBLISH into the connection's queue.
    fn encode(&mut self, conn: &Connection, q: &Queued, pkid: u16, dup: bool, now: Instant) -> Result<(), DropReason> {
        let message = &q.routed.message;
        let v5 = conn.version.is_v5();
        let mut publish = OutboundPublish {
            topic: &message.topic,
            qos: q.qos,
            dup,
            retain: q.retain,
            pkid,
            properties: if v5 { message.properties.as_ref() } else { None },
            expiry: if v5 { q.routed.remaining_expiry(now) } else { None },
            topic_alias: None,
            subscription_ids: if v5 { &q.subscription_ids } else { &[] },
            payload_len: message.payload.len(),
        };
        // Checked with the whole topic: an alias only makes the packet smaller.
        if publish.packet_len(conn.version) > self.client.maximum_packet_size {
            return Err(DropReason::TooLargeForClient);
        }
        let aliases = &mut self.outbound.aliases;
        if v5 && aliases.max > 0 {
            match aliases.by_topic.get(&message.topic) {
                Some(&alias) => {
                    publish.topic = b"";
                    publish.topic_alias = Some(alias);
                }
                None if (aliases.by_topic.len() as u16) < aliases.max => {
                    let alias = aliases.by_topic.len() as u16 + 1;
                    aliases.by_topic.insert(message.topic.clone(), alias);
                    publish.topic_alias = Some(alias);
                }
                None => {}
            }
        }
        if !conn.try_send_publish(&publish, &message.payload) {
            return Err(DropReason::MemoryBudget);
        }
        conn.metrics.publishes_sent.increment(1);
        Ok(())
    }

    /// Moves waiting deliveries into the window while there is room.
    pub(super) fn fill_window(&mut self, node: &Node, now: Instant) {
        let Some(conn) = self.conn.clone().filter(|c| !c.is_closing()) else { return };
        while self.outbound.inflight.len() < self.window(node) {
            let Some(q) = self.outbound.waiting.pop_front() else { return };
            self.outbound.unhold(node, &q);
            if q.routed.expired(now) {
                node.ctx.metrics.dropped(DropReason::Expired, 1);
                self.forget(node, &q);
                continue;
            }
            self.send_in_flight(node, &conn, q, now);
        }
    }

    /// PUBACK from the client.
    pub(super) fn on_puback(&mut self, node: &Node, pkid: u16, now: Instant) {
        if let Some(Inflight { state: InflightState::Sent(q), .. }) =
            self.take_inflight(pkid, |s| matches!(s, InflightState::Sent(q) if q.qos == 1))
        {
            self.outbound.unhold(node, &q);
            self.forget(node, &q);
            self.fill_window(node, now);
        }
    }

    /// PUBREC from the client; a reason of 0x80 or more ends the delivery there.
    pub(super) fn on_pubrec(&mut self, node: &Node, pkid: u16, failed: bool, now: Instant) {
        let Some(entry) = self.outbound.inflight.get_mut(&pkid) else { return };
        match &entry.state {
            InflightState::Sent(q) if q.qos == 2 => {
                let seq = q.seq;
                let InflightState::Sent(q) = std::mem::replace(&mut entry.state, InflightState::Released(seq)) else {
                    unreachable!("matched above")
                };
                self.outbound.unhold(node, &q);
                if failed {
                    self.outbound.inflight.remove(&pkid);
                    self.forget(node, &q);
                    self.fill_window(node, now);
                    return;
                }
                if let (Some(mut changes), Some(seq), true) = (node.store_changes(), seq, self.stored) {
                    changes.set_state(&self.client_id, seq, DeliveryState::Released(pkid));
                }
            }
            // A repeated PUBREC gets its PUBREL again.
            InflightState::Released(_) => {}
            InflightState::Sent(_) => return,
        }
        if let Some(conn) = &self.conn {
            conn.send(Packet::PubRel(PubRel { pkid, reason: PubRelReason::Success }, None));
        }
    }

    /// PUBCOMP from the client.
    pub(super) fn on_pubcomp(&mut self, node: &Node, pkid: u16, now: Instant) {
        if let Some(Inflight { state: InflightState::Released(seq), .. }) =
            self.take_inflight(pkid, |s| matches!(s, InflightState::Released(_)))
        {
            // Released: its state record says so.
            self.forget_seq(node, seq, true);
            self.fill_window(node, now);
        }
    }

    fn take_inflight(&mut self, pkid: u16, expected: impl Fn(&InflightState) -> bool) -> Option<Inflight> {
        if expected(&self.outbound.inflight.get(&pkid)?.state) {
            self.outbound.inflight.remove(&pkid)
        } else {
            None
        }
    }

    /// A resumed session: what was in flight goes again (PUBLISH with DUP, or PUBREL),
    /// in the order first sent, then the waiting deliveries fill the window.
    pub(super) fn resend_in_flight(&mut self, node: &Node, now: Instant) {
        let Some(conn) = self.conn.clone() else { return };
        let mut pkids: Vec<(u64, u16)> = self.outbound.inflight.iter().map(|(&p, i)| (i.order, p)).collect();
        pkids.sort_unstable();
        for (_, pkid) in pkids {
            let resend = match &self.outbound.inflight[&pkid].state {
                InflightState::Sent(q) => Some(q.clone()),
                InflightState::Released(_) => None,
            };
            match resend {
                Some(q) => {
                    if let Err(reason) = self.encode(&conn, &q, pkid, true, now) {
                        // Gone for good (expired, or too large for the client's new limit).
                        node.ctx.metrics.dropped(reason, 1);
                        self.outbound.inflight.remove(&pkid);
                        self.outbound.unhold(node, &q);
                        self.forget(node, &q);
                    }
                }
                None => {
                    conn.send(Packet::PubRel(PubRel { pkid, reason: PubRelReason::Success }, None));
                }
            }
        }
        self.fill_window(node, now);
    }

    /// The session ends: everything it held is dropped and returned to the budget.
    pub(super) fn drop_queues(&mut self, node: &Node) {
        let dropped = self.outbound.waiting.len() + self.outbound.inflight.len();
        node.budget.release(self.outbound.charged);
        self.outbound.waiting.clear();
        self.outbound.inflight.clear();
        self.outbound.held_bytes = 0;
        self.outbound.charged = 0;
        if dropped > 0 {
            node.ctx.metrics.dropped(DropReason::SessionEnded, dropped as u64);
        }
    }
}
