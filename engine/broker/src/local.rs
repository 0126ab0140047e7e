//! How in-process services use the bus: a client on a local router link, with no socket
//! and no codec in between.

use bytes::Bytes;
use rumqttd::local::LinkTx;
use rumqttd::protocol::{Packet, Publish};
use rumqttd::Notification;

use crate::client_id::internal_client_id;
use crate::router::{LinkError, RouterHandle};

/// Deliveries a service has not taken yet; past this the router waits for it.
const INBOX_CAPACITY: usize = 1024;

/// A message delivered to a local client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMessage {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
}

/// An in-process client of the embedded router.
pub struct LocalClient {
    name: String,
    tx: LinkTx,
    router: RouterHandle,
    inbox: flume::Receiver<LocalMessage>,
}

impl std::fmt::Debug for LocalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalClient").field("name", &self.name).finish_non_exhaustive()
    }
}

impl LocalClient {
    /// Opens a link named `name` (its router id can never collide with a device's).
    /// Must run inside a tokio runtime: a task drains the link.
    pub async fn connect(router: &RouterHandle, name: &str) -> Result<LocalClient, LinkError> {
        let id = internal_client_id(name);
        let link = {
            let router = router.clone();
            // Waits for the router thread's answer: keep it off the async workers.
            tokio::task::spawn_blocking(move || router.connect_local(&id))
                .await
                .map_err(|e| LinkError(e.to_string()))??
        };
        let (deliver, inbox) = flume::bounded(INBOX_CAPACITY);
        let mut rx = link.rx;
        tokio::spawn(async move {
            while let Ok(notification) = rx.next().await {
                match notification {
                    Some(Notification::Forward(forward)) => {
                        let publish = forward.publish;
                        let message = LocalMessage {
                            topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                            payload: publish.payload,
                            retain: publish.retain,
                        };
                        if deliver.send_async(message).await.is_err() {
                            return;
                        }
                    }
                    Some(Notification::Unschedule) => {
                        let woke = rx.wake().await;
                        if woke.is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        });
        let mut client = LocalClient { name: name.to_string(), tx: link.tx, router: router.clone(), inbox };
        // Subscribed from the start, so that at flush time the marker is plain data
        // routed in publish order (see `flush`).
        let topic = client.flush_topic();
        client.subscribe(&topic).await?;
        Ok(client)
    }

    fn flush_topic(&self) -> String {
        format!("alicia-engine/{}/flush", self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Subscribes at QoS 0 (in-process delivery cannot be lost in transit).
    pub async fn subscribe(&mut self, filter: &str) -> Result<(), LinkError> {
        self.router.room().await;
        self.tx.subscribe(filter).map(drop).map_err(LinkError::from)
    }

    /// Publishes at QoS 0; `retain` keeps it as the topic's retained message.
    pub async fn publish(&mut self, topic: impl Into<String>, payload: Bytes, retain: bool) -> Result<(), LinkError> {
        let topic = Bytes::from(topic.into());
        self.router.room().await;
        let publish = Packet::Publish(Publish::new(topic, payload, retain), None);
        self.tx.send(publish).await.map(drop).map_err(LinkError::from)
    }

    /// Waits (at most `limit`) until the router has delivered everything this client
    /// published so far, by sending a marker to a topic only this client hears and
    /// waiting for it to come back. The router wakes subscribers in the order their
    /// data was appended, so when the marker is back, every earlier message has been
    /// handed to its subscribers' links. Deliveries taken meanwhile are discarded: this
    /// is for the last words of a stopping service.
    pub async fn flush(&mut self, limit: std::time::Duration) -> bool {
        let topic = self.flush_topic();
        if self.publish(topic.clone(), Bytes::new(), false).await.is_err() {
            return false;
        }
        let wait = async {
            while let Ok(message) = self.inbox.recv_async().await {
                if message.topic == topic {
                    return true;
                }
            }
            false
        };
        tokio::time::timeout(limit, wait).await.unwrap_or(false)
    }

    /// The next delivery; `None` once the router is gone.
    pub async fn recv(&self) -> Option<LocalMessage> {
        self.inbox.recv_async().await.ok()
    }

    /// A receiver for the deliveries, for use in `select!` loops.
    pub fn inbox(&self) -> flume::Receiver<LocalMessage> {
        self.inbox.clone()
    }
}
