//! The embedded rumqttd router and the one handle everything else uses to reach it.
//!
//! rumqttd's router channel carries `(ConnectionId, Event)`, but `Event` lives in a
//! private module: the sender's type cannot be named outside rumqttd. So the handle keeps
//! it inside closures that only expose what the engine needs: making links and seeing
//! whether the router's queue is full. When the last handle and every link are dropped the
//! router thread sees its channel close and ends, which is how the engine shuts it down
//! (`Broker::start()` could not be stopped).

use std::sync::Arc;
use std::time::Duration;

use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::{Notification, Router, RouterConfig};

type NewLink = dyn for<'a> Fn(&'a str) -> LinkBuilder<'a> + Send + Sync;
type QueueFull = dyn Fn() -> bool + Send + Sync;

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
    /// Client sessions plus in-process links the router must hold at once.
    pub max_connections: usize,
    pub segment_size_bytes: usize,
    pub segment_count: usize,
}

/// Cheap to clone; every clone keeps the router alive.
#[derive(Clone)]
pub struct RouterHandle {
    new_link: Arc<NewLink>,
    queue_full: Arc<QueueFull>,
}

impl std::fmt::Debug for RouterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterHandle").finish_non_exhaustive()
    }
}

/// A link's two halves and the router's CONNACK for it.
pub struct Link {
    pub tx: LinkTx,
    pub rx: LinkRx,
    pub connack: Notification,
}

impl RouterHandle {
    /// Starts the router on its own thread (`router-0`).
    pub fn spawn(settings: &RouterSettings) -> RouterHandle {
        let config = RouterConfig {
            max_connections: settings.max_connections,
            // rumqttd fixes the outgoing in-flight window at 100; this field is unused there.
            max_outgoing_packet_count: 100,
            max_segment_size: settings.segment_size_bytes,
            max_segment_count: settings.segment_count,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        };
        let router_tx = Router::new(0, config).spawn();
        let full_tx = router_tx.clone();
        RouterHandle {
            new_link: Arc::new(move |client_id| LinkBuilder::new(client_id, router_tx.clone())),
            queue_full: Arc::new(move || full_tx.is_full()),
        }
    }

    /// A builder for a link under `client_id` (already in router-safe form).
    pub fn link_builder<'a>(&self, client_id: &'a str) -> LinkBuilder<'a> {
        (self.new_link)(client_id)
    }

    /// Builds a plain clean-session link, for in-process services.
    pub fn connect_local(&self, client_id: &str) -> Result<Link, LinkError> {
        let (tx, rx, connack) = self.link_builder(client_id).build()?;
        Ok(Link { tx, rx, connack })
    }

    /// True while the router's event queue is full; a sender would block.
    pub fn queue_full(&self) -> bool {
        (self.queue_full)()
    }

    /// Waits (without blocking the thread) until the router's queue has room.
    /// Returns how many times it had to wait, for the metric.
    pub async fn room(&self) -> u32 {
        let mut waits = 0;
        while self.queue_full() {
            waits += 1;
            tokio::time::sleep(Duration::from_micros(250)).await;
        }
        waits
    }
}
