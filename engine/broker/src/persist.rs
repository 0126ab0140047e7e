//! The broker's side of the durable store (`[storage]`): what its messages, sessions and
//! wills become in the store and back, and what a node restores at start-up.
//!
//! What is written, and when (each is a queued change; the store's writer commits them
//! in groups, in the order they were made):
//! - a retained message, when the engine-wide index admits it (`retained`);
//! - a persistent session (expiry > 0), when its client connects, subscribes or
//!   unsubscribes, and when its connection ends; removed with everything it held when
//!   it ends (`session::attach`);
//! - a will, when its client connects with one; removed when it is published or its
//!   client disconnects normally. A clean shutdown keeps it: the client did not say
//!   goodbye, so it fires when the engine is back (unless its client returns within
//!   the will delay);
//! - each QoS 1/2 delivery to a persistent session, with where it stands (waiting,
//!   sent under a packet id, released); removed when acknowledged (`session::outbound`).
//!
//! A PUBACK or PUBREC goes out only after every node has routed the message (so every
//! persistent subscriber's delivery is queued in the store) and the store has committed
//! what was queued (`session::inbound`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alicia_store::{RestoredSession, StoredMessage, StoredProperties, StoredWill};
use parking_lot::Mutex;
use rumqttd::protocol::PublishProperties;

use crate::bus::Message;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A message as the store keeps it. `deadline` is when it expires on this node's clock
/// (none: counted from its expiry interval, as when it was just published).
pub(crate) fn to_stored(message: &Message, deadline: Option<Instant>, now: Instant) -> StoredMessage {
    let wall = now_ms();
    let expires_at_ms = match deadline {
        Some(d) => Some(wall + d.saturating_duration_since(now).as_millis() as u64),
        None => message.expiry_interval().map(|s| wall + u64::from(s) * 1000),
    };
    let properties = message.properties.as_ref().map_or_else(StoredProperties::default, |p| StoredProperties {
        payload_format_indicator: p.payload_format_indicator,
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.clone(),
        content_type: p.content_type.clone(),
        user_properties: p.user_properties.clone(),
    });
    StoredMessage {
        topic: message.topic.clone(),
        payload: message.payload.clone(),
        qos: message.qos,
        retain: message.retain,
        expires_at_ms,
        properties,
    }
}

/// A stored message back on the bus, with what is left of its expiry interval; `None`
/// when it expired while the engine was away.
pub(crate) fn from_stored(stored: StoredMessage, now_ms: u64) -> Option<Message> {
    let remaining = match stored.expires_at_ms {
        Some(at) if at <= now_ms => return None,
        Some(at) => Some((at - now_ms).div_ceil(1000).min(u64::from(u32::MAX)) as u32),
        None => None,
    };
    let p = stored.properties;
    let properties = (remaining.is_some() || !p.is_empty()).then(|| PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: remaining,
        topic_alias: None,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
        subscription_identifiers: Vec::new(),
        content_type: p.content_type,
    });
    Some(Message {
        topic: stored.topic,
        payload: stored.payload,
        qos: stored.qos.min(2),
        retain: stored.retain,
        properties,
        publisher: None,
    })
}

/// What the store held at start-up, waiting for the nodes to take it up.
pub(crate) struct Boot {
    /// When the store was read: a session whose connection was live when the engine
    /// stopped counts as disconnected then.
    pub at_ms: u64,
    /// Every node applies these to its replica of the retained messages.
    pub retained: Vec<Message>,
    /// Per io node (by client id): its persistent sessions and its clients' wills.
    pub per_node: Mutex<Vec<Option<NodeBoot>>>,
}

/// One io node's share of the store.
#[derive(Default)]
pub(crate) struct NodeBoot {
    pub sessions: Vec<RestoredSession>,
    pub wills: Vec<(String, StoredWill)>,
}

impl Boot {
    pub(crate) fn empty() -> Boot {
        Boot { at_ms: now_ms(), retained: Vec::new(), per_node: Mutex::new(Vec::new()) }
    }

    pub(crate) fn new(restored: alicia_store::Restored, io_nodes: usize) -> Boot {
        let at_ms = now_ms();
        let retained: Vec<Message> = restored
            .retained
            .into_iter()
            .filter_map(|m| from_stored(m, at_ms))
            .map(|m| Message { retain: true, ..m })
            .collect();
        let mut per_node: Vec<NodeBoot> = (0..io_nodes).map(|_| NodeBoot::default()).collect();
        for session in restored.sessions {
            per_node[crate::listener::node_for(&session.session.client_id, io_nodes)].sessions.push(session);
        }
        for (client_id, will) in restored.wills {
            per_node[crate::listener::node_for(&client_id, io_nodes)].wills.push((client_id, will));
        }
        Boot { at_ms, retained, per_node: Mutex::new(per_node.into_iter().map(Some).collect()) }
    }

    /// Io node `id`'s share, once.
    pub(crate) fn take(&self, id: usize) -> NodeBoot {
        self.per_node.lock().get_mut(id).and_then(Option::take).unwrap_or_default()
    }
}

/// Seconds since `then_ms`, rounded down.
pub(crate) fn seconds_since(then_ms: u64, now_ms: u64) -> u64 {
    Duration::from_millis(now_ms.saturating_sub(then_ms)).as_secs()
}

/// A will as the store keeps it.
pub(crate) fn will_to_stored(will: &crate::session::Will, now: Instant) -> StoredWill {
    StoredWill { message: to_stored(&will.message, None, now), delay_secs: will.delay }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_message_keeps_its_properties_and_what_is_left_of_its_expiry() {
        let message = Message {
            topic: Bytes::from_static(b"a/b"),
            payload: Bytes::from_static(b"x"),
            qos: 1,
            retain: true,
            properties: Some(PublishProperties {
                message_expiry_interval: Some(60),
                content_type: Some("text/plain".into()),
                user_properties: vec![("k".into(), "v".into())],
                ..Default::default()
            }),
            publisher: None,
        };
        let stored = to_stored(&message, None, Instant::now());
        let at = stored.expires_at_ms.unwrap();
        let back = from_stored(stored.clone(), at - 20_500).unwrap();
        assert_eq!(back.expiry_interval(), Some(21), "rounded up");
        assert_eq!(back.properties.as_ref().unwrap().content_type.as_deref(), Some("text/plain"));
        assert_eq!((back.topic, back.payload, back.qos, back.retain), (message.topic, message.payload, 1, true));
        assert!(from_stored(stored, at).is_none(), "expired while away");
    }
}
