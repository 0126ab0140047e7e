//! How in-process services use the bus: [`LocalClient`], with no socket and no codec.
//!
//! Every local client shares one node of the bus, the local node, on a thread of its
//! own: it reads the router's log like the io threads do, keeps its own copy of the
//! retained messages, and hands each client what its subscriptions match. A client
//! publishes straight into the router through the node's link. A service that does not
//! keep up loses deliveries (counted), never stalls the bus.

use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use alicia_supervisor::{panic_message, Component};
use bytes::Bytes;
use futures::FutureExt;
use parking_lot::Mutex;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::Packet;
use rumqttd::Notification;
use tokio::sync::oneshot;

use crate::bus::{self, Entry, Message, Routed};
use crate::context::Context;
use crate::io::NodeCommand;
use crate::local_rules::LocalRules;
use crate::metrics::{DropReason, SecurityRefusal};
use crate::retained::RetainedStore;
use crate::router::{send_batch, LinkError, NodeLink};
use crate::topic::{check_name, parse_filter, SubscriptionTrie};
use alicia_audit::AuditAction;

/// Deliveries a service has not taken yet; past this they are dropped and counted.
const INBOX_CAPACITY: usize = 4096;

/// A message delivered to a local client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMessage {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
}

enum Command {
    Register {
        inbox: flume::Sender<LocalMessage>,
        /// What the client may read (and its own flush topic, which it always may).
        rules: LocalRules,
        flush_topic: String,
        reply: oneshot::Sender<u32>,
    },
    Subscribe {
        client: u32,
        filter: String,
        reply: oneshot::Sender<()>,
    },
    Unregister {
        client: u32,
    },
    /// A message for the local clients that does not go through the router.
    Deliver(Message),
}

/// The handle in-process services connect through. Cheap to clone.
#[derive(Clone)]
pub struct BusHandle {
    ctx: Arc<Context>,
    node: u16,
    tx: Arc<Mutex<LinkTx>>,
    commands: flume::Sender<Command>,
    /// The io nodes, once they run: for [`BusHandle::deliver_directly`].
    nodes: Arc<OnceLock<Vec<flume::Sender<NodeCommand>>>>,
}

impl std::fmt::Debug for BusHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusHandle").field("node", &self.node).finish_non_exhaustive()
    }
}

impl BusHandle {
    /// Starts the local node's thread; its death (and the router's, which it sees as
    /// its link closing) is reported to the supervisor.
    pub(crate) fn start(
        ctx: Arc<Context>,
        node: u16,
        link: NodeLink,
        component: Component,
        router: Component,
    ) -> std::io::Result<BusHandle> {
        let (commands, inbox) = flume::unbounded();
        let NodeLink { tx, rx } = link;
        let reader_ctx = ctx.clone();
        std::thread::Builder::new().name("bus-local".into()).spawn(move || {
            let stop = reader_ctx.stop.clone();
            let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot build the local node's runtime: {e}"))?;
                runtime.block_on(run(reader_ctx, node, rx, inbox, router))
            }));
            let cause = match ran {
                Ok(Ok(())) => return,
                Ok(Err(cause)) => cause,
                Err(panic) => panic_message(panic.as_ref()),
            };
            if !stop.is_cancelled() {
                component.down(cause);
            }
        })?;
        Ok(BusHandle { ctx, node, tx: Arc::new(Mutex::new(tx)), commands, nodes: Arc::new(OnceLock::new()) })
    }

    pub(crate) fn set_nodes(&self, nodes: Vec<flume::Sender<NodeCommand>>) {
        let _ = self.nodes.set(nodes);
    }

    /// Hands a message to every subscriber without the router: how the engine still
    /// says "the router died" to its clients before it exits.
    pub fn deliver_directly(&self, topic: &str, payload: Bytes) {
        let message = Message {
            topic: Bytes::copy_from_slice(topic.as_bytes()),
            payload,
            qos: 0,
            retain: false,
            properties: None,
            publisher: None,
        };
        for node in self.nodes.get().into_iter().flatten() {
            let _ = node.send(NodeCommand::Deliver(message.clone()));
        }
        let _ = self.commands.send(Command::Deliver(message));
    }

    /// Makes rumqttd's router thread panic, the way a topic starting with a non-ASCII
    /// character did before the engine kept real topics away from it (tests of the
    /// supervision only).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn kill_router(&self) {
        let publish = rumqttd::protocol::Publish::new(Bytes::from_static("é".as_bytes()), Bytes::new(), false);
        let _ = send_batch(&mut self.tx.lock(), &mut vec![Packet::Publish(publish, None)]);
    }

    /// Appends one message for an in-process client, after waiting for room in the log.
    async fn publish(&self, message: Message) -> Result<(), LinkError> {
        if message.retain {
            self.ctx
                .retained
                .admit(&message, Instant::now())
                .map_err(|r| LinkError(format!("retained message refused: {r:?}")))?;
        }
        self.ctx.log.room().await;
        let (publish, properties) = bus::to_router(Entry::Message(message), self.node, &self.ctx.tags, &self.ctx.large);
        self.ctx.log.appended(bus::entry_size(&publish));
        let mut batch = vec![Packet::Publish(publish, properties)];
        send_batch(&mut self.tx.lock(), &mut batch)
    }
}

/// An in-process client of the bus.
pub struct LocalClient {
    name: String,
    id: u32,
    bus: BusHandle,
    inbox: flume::Receiver<LocalMessage>,
    /// The ACL under the service's own username.
    rules: LocalRules,
}

impl std::fmt::Debug for LocalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalClient").field("name", &self.name).finish_non_exhaustive()
    }
}

fn gone() -> LinkError {
    LinkError("the local node has stopped".into())
}

impl LocalClient {
    /// Joins the bus under `name` (for logs and the flush topic).
    pub async fn connect(bus: &BusHandle, name: &str) -> Result<LocalClient, LinkError> {
        let (deliver, inbox) = flume::bounded(INBOX_CAPACITY);
        let (reply, answer) = oneshot::channel();
        let rules = LocalRules::new(&bus.ctx, name);
        let flush_topic = flush_topic(name);
        let register = Command::Register { inbox: deliver, rules: rules.clone(), flush_topic, reply };
        bus.commands.send(register).map_err(|_| gone())?;
        let id = answer.await.map_err(|_| gone())?;
        let mut client = LocalClient { name: name.to_string(), id, bus: bus.clone(), inbox, rules };
        // Subscribed from the start, so that at flush time the marker is plain data
        // routed in publish order (see `flush`).
        let topic = client.flush_topic();
        client.subscribe(&topic).await?;
        Ok(client)
    }

    fn flush_topic(&self) -> String {
        flush_topic(&self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Subscribes at QoS 0 (in-process delivery cannot be lost in transit); the
    /// matching retained messages arrive first.
    pub async fn subscribe(&mut self, filter: &str) -> Result<(), LinkError> {
        let parsed = parse_filter(filter, usize::MAX).map_err(|e| LinkError(format!("filter {filter:?}: {e}")))?;
        if parsed.is_shared() {
            return Err(LinkError("in-process clients do not take shared subscriptions".into()));
        }
        if filter != self.flush_topic() && !self.rules.may_subscribe(&self.bus.ctx, filter) {
            self.rules.refused(&self.bus.ctx, SecurityRefusal::SubscribeDenied, AuditAction::Subscribe, filter);
            return Err(LinkError(format!("{} may not subscribe to {filter} (acl)", self.rules.username())));
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::Subscribe { client: self.id, filter: filter.to_string(), reply };
        self.bus.commands.send(command).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }

    /// Publishes at QoS 0; `retain` keeps it as the topic's retained message.
    pub async fn publish(&mut self, topic: impl Into<String>, payload: Bytes, retain: bool) -> Result<(), LinkError> {
        let topic = topic.into();
        check_name(topic.as_bytes(), usize::MAX).map_err(|e| LinkError(format!("topic {topic:?}: {e}")))?;
        let ctx = &self.bus.ctx;
        if topic != self.flush_topic() && !self.rules.may_publish(ctx, &topic) {
            self.rules.refused(ctx, SecurityRefusal::PublishDenied, AuditAction::Publish, &topic);
            return Err(LinkError(format!("{} may not publish to {topic} (acl)", self.rules.username())));
        }
        // On a topic that requires signatures, the engine signs what it says itself.
        let payload = match ctx.gateway.sign_own(&topic, &payload) {
            Some(Ok(signed)) => Bytes::from(signed),
            Some(Err(e)) => return Err(LinkError(format!("cannot sign for {topic}: {e}"))),
            None => payload,
        };
        let message = Message { topic: Bytes::from(topic), payload, qos: 0, retain, properties: None, publisher: None };
        self.bus.publish(message).await
    }

    /// Waits (at most `limit`) until the local node has read back everything this
    /// client published so far, by sending a marker to a topic only this client hears.
    /// Deliveries taken meanwhile are discarded: this is for the last words of a
    /// stopping service.
    pub async fn flush(&mut self, limit: Duration) -> bool {
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

    /// The next delivery; `None` once the bus is gone.
    pub async fn recv(&self) -> Option<LocalMessage> {
        self.inbox.recv_async().await.ok()
    }

    /// A receiver for the deliveries, for use in `select!` loops.
    pub fn inbox(&self) -> flume::Receiver<LocalMessage> {
        self.inbox.clone()
    }
}

impl Drop for LocalClient {
    fn drop(&mut self) {
        let _ = self.bus.commands.send(Command::Unregister { client: self.id });
    }
}

/// Where a local client's deliveries go, and what it may read.
struct LocalReader {
    inbox: flume::Sender<LocalMessage>,
    rules: LocalRules,
    flush_topic: String,
}

fn flush_topic(name: &str) -> String {
    format!("alicia-engine/{name}/flush")
}

/// The local node's state, on its own thread.
struct LocalNode {
    ctx: Arc<Context>,
    id: u16,
    clients: Vec<Option<LocalReader>>,
    free: Vec<u32>,
    subscriptions: Vec<Vec<String>>,
    trie: SubscriptionTrie<u32, ()>,
    retained: RetainedStore,
    matched: Vec<u32>,
}

async fn run(
    ctx: Arc<Context>,
    id: u16,
    mut rx: LinkRx,
    commands: flume::Receiver<Command>,
    router: Component,
) -> Result<(), String> {
    let stop = ctx.stop.clone();
    let mut router_gone = false;
    let mut node = LocalNode {
        ctx,
        id,
        clients: Vec::new(),
        free: Vec::new(),
        subscriptions: Vec::new(),
        trie: SubscriptionTrie::default(),
        retained: RetainedStore::default(),
        matched: Vec::new(),
    };
    loop {
        tokio::select! {
            biased;
            command = commands.recv_async() => match command {
                Ok(command) => node.command(command),
                Err(_) => return Ok(()),
            },
            n = rx.next(), if !router_gone => {
                let mut next = n;
                let mut bytes = 0;
                let mut unscheduled = false;
                loop {
                    match next {
                        Ok(Some(Notification::Forward(forward))) => {
                            bytes += bus::entry_size(&forward.publish);
                            node.read_entry(forward);
                        }
                        Ok(Some(Notification::Unschedule)) => unscheduled = true,
                        Ok(_) => {}
                        Err(e) => {
                            // Keep serving commands: direct deliveries still reach the
                            // local clients until the engine exits.
                            router.down(format!("router link closed: {e}"));
                            router_gone = true;
                            break;
                        }
                    }
                    match rx.next().now_or_never() {
                        Some(n) => next = n,
                        None => break,
                    }
                }
                node.ctx.log.read(node.id as usize, bytes);
                if unscheduled && !router_gone && rx.wake().await.is_err() {
                    router.down("router link closed");
                    router_gone = true;
                }
            }
            _ = stop.cancelled() => return Ok(()),
        }
    }
}

impl LocalNode {
    fn command(&mut self, command: Command) {
        match command {
            Command::Register { inbox, rules, flush_topic, reply } => {
                let reader = LocalReader { inbox, rules, flush_topic };
                let id = match self.free.pop() {
                    Some(id) => {
                        self.clients[id as usize] = Some(reader);
                        id
                    }
                    None => {
                        self.clients.push(Some(reader));
                        self.subscriptions.push(Vec::new());
                        (self.clients.len() - 1) as u32
                    }
                };
                let _ = reply.send(id);
            }
            Command::Subscribe { client, filter, reply } => {
                if self.trie.insert(&filter, client, ()).is_none() {
                    self.subscriptions[client as usize].push(filter.clone());
                }
                let now = Instant::now();
                for routed in self.retained.matching(&filter, now) {
                    self.deliver(client, &routed, true);
                }
                let _ = reply.send(());
            }
            Command::Deliver(message) => self.route(message),
            Command::Unregister { client } => {
                for filter in std::mem::take(&mut self.subscriptions[client as usize]) {
                    self.trie.remove(&filter, client);
                }
                self.clients[client as usize] = None;
                self.free.push(client);
            }
        }
    }

    fn read_entry(&mut self, forward: rumqttd::Forward) {
        match bus::from_router(forward, &self.ctx.large) {
            Ok((_, Entry::Message(message))) => self.route(message),
            // Shared subscriptions have no members here.
            Ok((_, Entry::Control(_))) => {}
            Err(e) => tracing::error!(error = %e, "local node: unreadable log entry"),
        }
    }

    fn route(&mut self, message: Message) {
        let routed = Rc::new(Routed::new(message, Instant::now()));
        if routed.message.retain {
            self.retained.apply(&routed);
        }
        let mut matched = std::mem::take(&mut self.matched);
        matched.clear();
        self.trie.for_each_match(routed.message.topic_str(), |client, _| matched.push(client));
        matched.sort_unstable();
        matched.dedup();
        for &client in &matched {
            self.deliver(client, &routed, false);
        }
        self.matched = matched;
    }

    fn deliver(&mut self, client: u32, routed: &Routed, retained: bool) {
        let Some(Some(reader)) = self.clients.get_mut(client as usize) else { return };
        let topic = routed.message.topic_str();
        // A wider filter never carries what the service may not read.
        if topic != reader.flush_topic && !reader.rules.may_read(&self.ctx, topic) {
            return;
        }
        let inbox = &reader.inbox;
        let message = LocalMessage {
            topic: routed.message.topic_str().to_string(),
            payload: routed.message.payload.clone(),
            retain: retained,
        };
        if inbox.try_send(message).is_err() {
            self.ctx.metrics.dropped(DropReason::LocalInboxFull, 1);
        }
    }
}
