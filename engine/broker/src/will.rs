//! Last wills, published by the engine on its own link.
//!
//! rumqttd only fires a will on an internal event its embedders cannot send, so the
//! front door keeps each client's will and, when a session ends in a way that fires
//! it, hands it here. MQTT 5's will delay is honoured (bounded by the session expiry) and
//! cancelled when the same client id connects again in time.
//!
//! Wills go out at QoS 0: a local link cannot originate QoS 1/2 PUBLISH packets, and the
//! router delivers each message at the subscriber's own QoS anyway.

use std::collections::HashMap;
use std::time::Duration;

use rumqttd::protocol::{LastWill, LastWillProperties, Packet, Publish, PublishProperties};

use crate::router::RouterHandle;

enum Command {
    Publish { router_id: String, will: LastWill, props: Option<LastWillProperties> },
    Cancel { router_id: String },
    Due { router_id: String, generation: u64 },
}

/// Cheap to clone; sends to the will task.
#[derive(Clone)]
pub(crate) struct WillPublisher {
    tx: flume::Sender<Command>,
}

impl WillPublisher {
    /// Starts the will task on the current tokio runtime with its own router link.
    pub(crate) fn start(router: &RouterHandle) -> Result<WillPublisher, crate::router::LinkError> {
        let link = router.connect_local(&crate::client_id::internal_client_id("wills"))?;
        let (tx, rx) = flume::unbounded();
        tokio::spawn(run(router.clone(), link, rx, tx.clone()));
        Ok(WillPublisher { tx })
    }

    pub(crate) fn publish(&self, router_id: String, will: LastWill, props: Option<LastWillProperties>) {
        let _ = self.tx.send(Command::Publish { router_id, will, props });
    }

    pub(crate) fn cancel(&self, router_id: &str) {
        let _ = self.tx.send(Command::Cancel { router_id: router_id.to_string() });
    }
}

async fn run(
    router: RouterHandle,
    link: crate::router::Link,
    rx: flume::Receiver<Command>,
    me: flume::Sender<Command>,
) {
    let crate::router::Link { tx: mut link_tx, rx: mut link_rx, .. } = link;
    // QoS 0 publishes get no acks, but the router still talks (e.g. unschedule): keep
    // draining so its buffer for this link stays empty.
    tokio::spawn(async move {
        while let Ok(n) = link_rx.next().await {
            if matches!(n, Some(rumqttd::Notification::Unschedule)) && link_rx.wake().await.is_err() {
                break;
            }
        }
    });
    let mut waiting: HashMap<String, (u64, LastWill, Option<LastWillProperties>)> = HashMap::new();
    let mut generation = 0u64;
    while let Ok(command) = rx.recv_async().await {
        match command {
            Command::Publish { router_id, will, props } => {
                let delay = props.as_ref().and_then(|p| p.delay_interval).unwrap_or(0);
                if delay == 0 {
                    send(&router, &mut link_tx, will, props).await;
                    continue;
                }
                generation += 1;
                waiting.insert(router_id.clone(), (generation, will, props));
                let me = me.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
                    let _ = me.send(Command::Due { router_id, generation });
                });
            }
            Command::Cancel { router_id } => {
                waiting.remove(&router_id);
            }
            Command::Due { router_id, generation } => {
                if waiting.get(&router_id).is_some_and(|(g, ..)| *g == generation) {
                    if let Some((_, will, props)) = waiting.remove(&router_id) {
                        send(&router, &mut link_tx, will, props).await;
                    }
                }
            }
        }
    }
}

async fn send(
    router: &RouterHandle,
    link: &mut rumqttd::local::LinkTx,
    will: LastWill,
    props: Option<LastWillProperties>,
) {
    let publish = Publish::new(will.topic, will.message, will.retain);
    let properties = props.map(|p| PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
        content_type: p.content_type,
        ..Default::default()
    });
    router.room().await;
    if let Err(e) = link.send(Packet::Publish(publish, properties)).await {
        tracing::warn!(error = %e, "cannot publish will");
    }
}
