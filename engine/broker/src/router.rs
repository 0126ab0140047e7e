//! The embedded rumqttd router and the links the engine's nodes read and append through.
//!
//! The engine uses the router as its ordered log between threads (see `bus`): each node
//! (io thread or the in-process services' node) has one link, subscribed to the one
//! filter `+`, and appends under its own one-level topic. So the router holds as many
//! links, topics and filters as the engine has nodes, whatever clients do, and its event
//! queue (1,000 events) can never fill: a link has at most one data event and one wake
//! event outstanding at a time, so even `LinkTx::send`, which blocks on a full queue,
//! never blocks here. [`RouterHandle::spawn`] checks that bound at start.
//!
//! rumqttd's router channel carries `(ConnectionId, Event)`, but `Event` lives in a
//! private module, so the handle keeps the sender inside a closure that only makes links.

use std::sync::Arc;

use futures::FutureExt;
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::Packet;
use rumqttd::{Notification, Router, RouterConfig};

type NewLink = dyn for<'a> Fn(&'a str) -> LinkBuilder<'a> + Send + Sync;

/// rumqttd's router event queue.
const ROUTER_QUEUE: usize = 1000;
/// Outstanding events one link can cause at most: a data event, a wake event, its
/// connect, and one spare.
const EVENTS_PER_LINK: usize = 4;

/// The router refused or dropped a link. (rumqttd's own error carries whole router
/// events, 800+ bytes; this keeps only what a caller can act on: the message.)
#[derive(Debug, Clone, thiserror::Error)]
#[error("router link failed: {0}")]
pub struct LinkError(pub String);

impl From<rumqttd::local::LinkError> for LinkError {
    fn from(e: rumqttd::local::LinkError) -> Self {
        LinkError(e.to_string())
    }
}

/// Sizing of the embedded router.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// Nodes that will hold a link.
    pub nodes: usize,
    pub segment_size_bytes: usize,
    pub segment_count: usize,
}

impl RouterSettings {
    /// Bytes of entries the log keeps for its slowest reader.
    pub(crate) fn window_bytes(&self) -> usize {
        self.segment_size_bytes.saturating_mul(self.segment_count)
    }
}

/// Cheap to clone; every clone keeps the router alive.
#[derive(Clone)]
pub struct RouterHandle {
    new_link: Arc<NewLink>,
}

impl std::fmt::Debug for RouterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterHandle").finish_non_exhaustive()
    }
}

/// A node's link: append through `tx`, read everything through `rx`.
pub(crate) struct NodeLink {
    pub tx: LinkTx,
    pub rx: LinkRx,
}

impl RouterHandle {
    /// Starts the router on its own thread (`router-0`).
    pub fn spawn(settings: &RouterSettings) -> RouterHandle {
        assert!(
            settings.nodes * EVENTS_PER_LINK < ROUTER_QUEUE,
            "{} nodes could fill the router's event queue",
            settings.nodes
        );
        let config = RouterConfig {
            max_connections: settings.nodes,
            // How many entries one read hands a link at most.
            max_outgoing_packet_count: 200,
            max_segment_size: settings.segment_size_bytes,
            max_segment_count: settings.segment_count,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        };
        let router_tx = Router::new(0, config).spawn();
        RouterHandle { new_link: Arc::new(move |client_id| LinkBuilder::new(client_id, router_tx.clone())) }
    }

    /// Opens node `name`'s link and subscribes it to every entry. Blocks until the
    /// router answers: call from a thread that may block.
    pub(crate) fn node_link(&self, name: &str) -> Result<NodeLink, LinkError> {
        let (mut tx, mut rx, connack) = (self.new_link)(name).build()?;
        if !matches!(connack, Notification::DeviceAck(_)) {
            return Err(LinkError(format!("router refused node link {name}")));
        }
        tx.subscribe("+")?;
        // Wait for the SUBACK: from then on the node misses no entry.
        loop {
            match rx.recv()? {
                Some(Notification::DeviceAck(_)) => return Ok(NodeLink { tx, rx }),
                Some(Notification::Unschedule) => rx.ready()?,
                _ => {}
            }
        }
    }
}

/// Hands a batch of entries to the router with at most one wake-up event: the router
/// drains a link's whole buffer per event, so while the buffer holds entries an event
/// for it is still queued and none is needed.
pub(crate) fn send_batch(tx: &mut LinkTx, batch: &mut Vec<Packet>) -> Result<(), LinkError> {
    let Some(last) = batch.pop() else { return Ok(()) };
    let last = {
        // Under the buffer's lock the router cannot drain it between the look and the
        // push: a non-empty buffer has its event queued.
        let mut buffer = tx.buffer();
        let was_empty = buffer.is_empty();
        buffer.extend(batch.drain(..));
        if was_empty {
            Some(last)
        } else {
            buffer.push_back(last);
            None
        }
    };
    if let Some(last) = last {
        // `send` never waits here: the router's queue cannot fill (see above), and the
        // future completes on its first poll.
        return match tx.send(last).now_or_never() {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(LinkError(format!("the router is gone: {e}"))),
            None => Err(LinkError("router link send did not complete at once".into())),
        };
    }
    Ok(())
}
