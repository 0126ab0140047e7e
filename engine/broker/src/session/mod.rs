//! MQTT sessions: the state a client keeps across connections, and the tasks of one
//! live connection.
//!
//! A session lives on one node (the io thread its client id hashes to), so a takeover
//! or a resumed persistent session never crosses threads. It holds the subscriptions
//! (also in the node's trie), the deliveries waiting for the in-flight window or for
//! the client to come back, the QoS 1/2 deliveries in flight, and the will.
//!
//! - `outbound`: deliveries, the in-flight window, packet ids, topic aliases to the
//!   client, acknowledgements from the client.
//! - `inbound`: the reader task: every packet a client sends.
//! - `subscribe`: SUBSCRIBE and UNSUBSCRIBE.
//! - `writer`: the writer task.
//! - `connection`: a live connection's queue and close reason.
//! - `attach`: a new connection taking up its session, the CONNACK, the end of a
//!   connection and of a session.

pub(crate) mod attach;
pub(crate) mod connection;
mod inbound;
mod outbound;
pub(crate) mod subscribe;
mod writer;

use crate::security::Rules;
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;

use crate::bus::{Message, SessionKey};
use crate::codec::MqttVersion;
use crate::gateway::Who;
use crate::metrics::SecurityRefusal;
use crate::node::Node;
use alicia_audit::AuditAction;
pub(crate) use attach::{attach, Client, Handoff};
pub(crate) use connection::Connection;
use outbound::Outbound;
pub(crate) use outbound::Queued;

/// A subscription's options (MQTT 5 §3.8.3.1; 3.1.1 has only the QoS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: u8,
    pub id: Option<u32>,
}

/// What the node's trie keeps per subscriber: what a matching message needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub id: Option<u32>,
}

impl From<Subscription> for Grant {
    fn from(s: Subscription) -> Grant {
        Grant { qos: s.qos, no_local: s.no_local, retain_as_published: s.retain_as_published, id: s.id }
    }
}

/// What the client said it can take (MQTT 5 CONNECT properties).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientLimits {
    pub receive_maximum: u16,
    pub maximum_packet_size: usize,
    pub topic_alias_maximum: u16,
}

/// A will, waiting for its connection to end.
#[derive(Debug, Clone)]
pub(crate) struct Will {
    pub message: Message,
    pub delay: u32,
}

pub(crate) struct Session {
    pub client_id: Rc<str>,
    pub key: SessionKey,
    pub version: MqttVersion,
    /// Seconds the session outlives its connection; 0: it ends with it; `u32::MAX`: never.
    pub expiry: u32,
    /// By filter as subscribed (shared ones with their `$share/{group}/` prefix).
    pub subscriptions: HashMap<String, Subscription>,
    /// Whether any subscription has no-local set (then its publishes carry its key).
    no_local: bool,
    /// Boxed: most clients set no will, and every session pays for the field.
    pub will: Option<Box<Will>>,
    pub conn: Option<Rc<Connection>>,
    pub client: ClientLimits,
    outbound: Outbound,
    /// QoS 2 publishes received (PUBREC sent) whose PUBREL has not come yet; at most
    /// `max_inflight_messages`, so a list.
    inbound_qos2: Vec<u16>,
    /// Topic aliases the client set (MQTT 5); at most `max_topic_aliases`.
    aliases_in: Vec<(u16, Bytes)>,
    /// Bumped whenever the session changes hands (connection, resume, end), so timers
    /// and tasks of an earlier state can tell they are stale.
    pub epoch: u64,
    /// What the client may publish, subscribe and read (`[security]`); `None`: all.
    pub rules: Rules,
    /// Who the client is (listener, address, id, username): what the audit log names,
    /// and the username its rules are rebuilt for when the ACL is reloaded.
    pub who: Option<Rc<Who>>,
    /// The durable store has this session (it is persistent and `[storage]` is on): its
    /// QoS 1/2 deliveries are kept there too.
    pub stored: bool,
    /// The durable store has this client's will.
    pub will_stored: bool,
}

impl Session {
    pub(crate) fn new(client_id: Rc<str>, key: SessionKey, version: MqttVersion, client: ClientLimits) -> Session {
        Session {
            client_id,
            key,
            version,
            expiry: 0,
            subscriptions: HashMap::new(),
            no_local: false,
            will: None,
            conn: None,
            client,
            outbound: Outbound::new(client.topic_alias_maximum),
            inbound_qos2: Vec::new(),
            aliases_in: Vec::new(),
            epoch: 0,
            rules: None,
            who: None,
            stored: false,
            will_stored: false,
        }
    }

    /// The durable store, when this session's deliveries are kept there.
    pub(crate) fn store<'a>(&self, node: &'a Node) -> Option<&'a alicia_store::Store> {
        node.ctx.store.as_ref().filter(|_| self.stored)
    }

    /// Writes the session as it is now to the store (a persistent one), or takes it out
    /// (one that now ends with its connection). `disconnected_at_ms`: when its
    /// connection ended, if it has.
    pub(crate) fn persist(&mut self, node: &Node, disconnected_at_ms: Option<u64>) {
        let Some(mut store) = node.store_changes() else { return };
        if self.expiry == 0 {
            if self.stored {
                store.remove_session(&self.client_id);
                self.stored = false;
            }
            return;
        }
        let mut subscriptions: Vec<alicia_store::StoredSubscription> = self
            .subscriptions
            .iter()
            .map(|(filter, s)| alicia_store::StoredSubscription {
                filter: filter.clone(),
                qos: s.qos,
                no_local: s.no_local,
                retain_as_published: s.retain_as_published,
                retain_handling: s.retain_handling,
                id: s.id,
            })
            .collect();
        subscriptions.sort_unstable_by(|a, b| a.filter.cmp(&b.filter));
        store.put_session(&alicia_store::StoredSession {
            client_id: self.client_id.to_string(),
            username: self.who.as_ref().and_then(|w| w.username.clone()),
            protocol: if self.version.is_v5() { 5 } else { 4 },
            expiry_secs: self.expiry,
            disconnected_at_ms,
            subscriptions,
        });
        self.stored = true;
    }

    /// Writes the client's will to the store, or takes it out when there is none now.
    pub(crate) fn persist_will(&mut self, node: &Node) {
        let Some(mut store) = node.store_changes() else { return };
        match &self.will {
            Some(will) => {
                store.put_will(&self.client_id, &crate::persist::will_to_stored(will, std::time::Instant::now()));
                self.will_stored = true;
            }
            None if self.will_stored => {
                store.remove_will(&self.client_id);
                self.will_stored = false;
            }
            None => {}
        }
    }

    /// Counts, audits and (when it matters) raises a refusal of this client's.
    pub(crate) fn refused(&self, node: &Node, refusal: SecurityRefusal, action: AuditAction, topic: Option<&str>) {
        let fallback;
        let who = match &self.who {
            Some(who) => who.as_ref(),
            None => {
                fallback = Who {
                    listener: "tcp",
                    peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
                    client_id: Some(self.client_id.to_string()),
                    username: None,
                };
                &fallback
            }
        };
        node.ctx.gateway.refused(node.ctx.metrics_for(who.listener), refusal, who, action, topic);
    }

    pub(crate) fn has_no_local(&self) -> bool {
        self.no_local
    }

    fn refresh_no_local(&mut self) {
        self.no_local = self.subscriptions.values().any(|s| s.no_local);
    }
}
