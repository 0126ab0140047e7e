//! A node: one io thread's view of the bus.
//!
//! Each node reads every entry of the router's log, in order, and keeps in step with
//! every other node the state that must be the same everywhere: the retained messages
//! and the shared-subscription groups. It hosts the sessions whose client ids hash to
//! it, matches each message against their subscriptions (its own trie) and delivers.
//! It appends what its clients publish, batched per socket read.
//!
//! - `sessions`: the node's session table.
//! - this file: [`Node`], the reading loop, routing, appending.

mod sessions;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::Packet;
use rumqttd::Notification;
use tokio::sync::Notify;

use crate::budget::NodeBudget;
use crate::bus::{self, Entry, Message, Routed};
use crate::context::Context;
use crate::retained::RetainedStore;
use crate::session::connection::CloseReason;
use crate::session::{Connection, Grant, Queued, Session};
use crate::shared::SharedGroups;
use crate::topic::SubscriptionTrie;
pub(crate) use sessions::Sessions;

/// How often keep-alives are checked; a client silent 1.5 × its keep-alive is closed
/// within this much more.
const KEEP_ALIVE_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) struct Node {
    pub id: u16,
    pub ctx: Arc<Context>,
    pub budget: Rc<NodeBudget>,
    link_tx: RefCell<LinkTx>,
    /// Entries appended during the current batch, handed to the router together.
    outbox: RefCell<Vec<Packet>>,
    /// Changes to the durable store made during the current batch, handed to its writer
    /// together by [`Node::flush`].
    store_changes: RefCell<alicia_store::StoreBatch>,
    pub sessions: RefCell<Sessions>,
    pub trie: RefCell<SubscriptionTrie<u32, Grant>>,
    pub retained: RefCell<RetainedStore>,
    shared_groups: RefCell<SharedGroups>,
    matches: RefCell<Vec<(u32, Grant)>>,
    next_offset: Cell<Option<u64>>,
    /// Connection tasks running on this node.
    live: Cell<usize>,
    all_ended: Notify,
}

/// Counts a connection task as running until dropped.
pub(crate) struct LiveConnection(Rc<Node>);

impl Drop for LiveConnection {
    fn drop(&mut self) {
        let live = self.0.live.get() - 1;
        self.0.live.set(live);
        if live == 0 {
            self.0.all_ended.notify_waiters();
        }
    }
}

impl Node {
    pub(crate) fn new(id: u16, ctx: Arc<Context>, link_tx: LinkTx) -> Node {
        // The retained messages the store kept are where every node's replica starts.
        let mut retained = RetainedStore::default();
        let now = Instant::now();
        for message in &ctx.boot.retained {
            retained.apply(&Rc::new(Routed::new(message.clone(), now)));
        }
        Node {
            id,
            budget: Rc::new(NodeBudget::new(ctx.budget.clone())),
            ctx,
            link_tx: RefCell::new(link_tx),
            outbox: RefCell::new(Vec::new()),
            store_changes: RefCell::new(alicia_store::StoreBatch::default()),
            sessions: RefCell::new(Sessions::default()),
            trie: RefCell::new(SubscriptionTrie::default()),
            retained: RefCell::new(retained),
            shared_groups: RefCell::new(SharedGroups::default()),
            matches: RefCell::new(Vec::new()),
            next_offset: Cell::new(None),
            live: Cell::new(0),
            all_ended: Notify::new(),
        }
    }

    pub(crate) fn connection_started(self: &Rc<Self>) -> LiveConnection {
        self.live.set(self.live.get() + 1);
        LiveConnection(self.clone())
    }

    /// Every live connection of this node.
    fn connections(&self) -> Vec<Rc<Connection>> {
        self.sessions.borrow().iter().filter_map(|s| s.try_borrow().ok()?.conn.clone()).collect()
    }

    /// Closes clients silent past 1.5 × their keep-alive: one sweep a second for the
    /// whole node instead of a timer in every connection.
    pub(crate) async fn sweep_keep_alives(self: Rc<Self>) {
        let mut tick = tokio::time::interval(KEEP_ALIVE_SWEEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Instant::now();
            for conn in self.connections() {
                if conn.silent_too_long(now) {
                    conn.close(CloseReason::KeepAliveTimeout);
                }
            }
        }
    }

    /// After a SIGHUP: every session's rules from the ACL now in force, for the
    /// username they were made for. Live connections stay; what they may do changes.
    pub(crate) fn rebuild_rules(&self) {
        for session in self.sessions.borrow().iter() {
            let mut s = session.borrow_mut();
            let username = s.who.as_ref().and_then(|who| who.username.clone());
            s.rules = self.ctx.gateway.rules_for(username.as_deref(), &s.client_id);
        }
    }

    /// Server shutdown: every client is told, and the node waits for their tasks.
    pub(crate) async fn close_all(&self) {
        let ended = self.all_ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        for conn in self.connections() {
            conn.close(CloseReason::ServerShutdown);
        }
        if self.live.get() > 0 {
            ended.await;
        }
    }

    /// Queues an entry for the log; [`Node::flush`] hands the batch over.
    pub(crate) fn append(&self, entry: Entry) {
        let (publish, properties) = bus::to_router(entry, self.id, &self.ctx.tags, &self.ctx.large);
        self.ctx.log.appended(bus::entry_size(&publish));
        self.outbox.borrow_mut().push(Packet::Publish(publish, properties));
    }

    /// The store changes of this batch, when `[storage]` is on.
    pub(crate) fn store_changes(&self) -> Option<std::cell::RefMut<'_, alicia_store::StoreBatch>> {
        self.ctx.store.as_ref().map(|_| self.store_changes.borrow_mut())
    }

    /// Hands the entries appended so far to the router, and the store changes made so
    /// far to the store's writer.
    pub(crate) fn flush(&self) {
        if let Some(store) = &self.ctx.store {
            store.submit(&mut self.store_changes.borrow_mut());
        }
        let mut outbox = self.outbox.borrow_mut();
        if !outbox.is_empty() {
            if let Err(e) = crate::router::send_batch(&mut self.link_tx.borrow_mut(), &mut outbox) {
                outbox.clear();
                tracing::error!(node = self.id, error = %e, "entries lost");
            }
        }
    }

    /// Reads the log until the engine stops; an error means the router is gone.
    pub(crate) async fn run(self: Rc<Self>, mut rx: LinkRx) -> Result<(), String> {
        loop {
            let first = tokio::select! {
                n = rx.next() => n,
                _ = self.ctx.stop.cancelled() => return Ok(()),
            };
            let mut next = first;
            let mut bytes = 0;
            let mut unscheduled = false;
            loop {
                match next {
                    Ok(Some(Notification::Forward(forward))) => {
                        bytes += bus::entry_size(&forward.publish);
                        self.read_entry(forward);
                    }
                    Ok(Some(Notification::Unschedule)) => unscheduled = true,
                    Ok(_) => {}
                    Err(e) => return Err(format!("router link closed: {e}")),
                }
                match rx.next().now_or_never() {
                    Some(n) => next = n,
                    None => break,
                }
            }
            // The store changes of what was routed go first: a publisher waiting for this
            // node to read past its message then finds them queued before its barrier.
            self.flush();
            self.ctx.log.read(self.id as usize, bytes);
            if unscheduled {
                rx.wake().await.map_err(|e| format!("router link closed: {e}"))?;
            }
        }
    }

    fn read_entry(&self, forward: rumqttd::Forward) {
        if let Some((_, offset)) = forward.cursor {
            if let Some(expected) = self.next_offset.get() {
                if offset > expected {
                    self.ctx.metrics.log_gaps.increment(offset - expected);
                    tracing::error!(node = self.id, skipped = offset - expected, "node fell behind the router's log");
                }
            }
            self.next_offset.set(Some(offset + 1));
        }
        match bus::from_router(forward, &self.ctx.large) {
            Ok((_, Entry::Message(message))) => self.route(message),
            Ok((_, Entry::Control(control))) => self.shared_groups.borrow_mut().apply(&control),
            Err(e) => tracing::error!(node = self.id, error = %e, "unreadable log entry"),
        }
    }

    /// Delivers a message to every session on this node that should have it (from the
    /// log; or, when the router is gone, straight from the engine).
    pub(crate) fn route(&self, message: Message) {
        let now = Instant::now();
        let routed = Rc::new(Routed::new(message, now));
        if routed.message.retain {
            self.retained.borrow_mut().apply(&routed);
        }
        let topic = routed.message.topic_str();
        let mut matches = self.matches.take();
        matches.clear();
        self.trie.borrow().for_each_match(topic, |slot, grant| matches.push((slot, *grant)));
        self.shared_groups.borrow_mut().choose(topic, |share, member| {
            if member.node != self.id {
                return;
            }
            let sessions = self.sessions.borrow();
            if let Some(pick) = sessions.shared_pick(member, share) {
                matches.push(pick);
            }
        });
        if matches.is_empty() {
            self.matches.replace(matches);
            return;
        }
        matches.sort_unstable_by_key(|(slot, _)| *slot);
        let mut rest = &matches[..];
        while let Some(&(slot, _)) = rest.first() {
            let end = rest.iter().position(|(s, _)| *s != slot).unwrap_or(rest.len());
            let (grants, tail) = rest.split_at(end);
            rest = tail;
            let Some(session) = self.sessions.borrow().get(slot) else { continue };
            let mut session = session.borrow_mut();
            if let Some(queued) = merge(&session, &routed, grants) {
                session.deliver(self, queued, now);
            }
        }
        self.matches.replace(matches);
    }

    /// Publishes a message for a session (its will, or an engine-made message).
    pub(crate) fn publish_now(&self, message: Message) {
        self.append(Entry::Message(message));
        self.flush();
    }

    /// Publishes a will: a retained one is admitted as every retained PUBLISH is (and so
    /// kept in the store), or goes out without RETAIN past the limits, as 3.1.1 allows.
    pub(crate) fn publish_will(&self, mut message: Message) {
        if message.retain && self.ctx.retained.admit(&message, Instant::now()).is_err() {
            message.retain = false;
        }
        self.publish_now(message);
    }

    /// Removes everything a session's subscriptions put in the node's routing state.
    pub(crate) fn unsubscribe_all(&self, session: &Session, slot: u32) {
        let mut trie = self.trie.borrow_mut();
        for (path, _) in session.subscriptions.iter() {
            match crate::topic::parse_filter(path, usize::MAX) {
                Ok(f) if f.is_shared() => {
                    self.append(Entry::Control(bus::Control::ShareLeave { share: path.clone(), member: session.key }))
                }
                Ok(f) => {
                    trie.remove(f.filter, slot);
                }
                Err(_) => {}
            }
        }
    }
}

/// One delivery for one session from every subscription of it that matched: the
/// highest granted QoS (never above the published one), RETAIN kept if any of them asks
/// for it (Retain As Published), every subscription identifier; none at all when the
/// only matches are no-local subscriptions of the publisher itself, or when the
/// client's ACL does not let it read the topic.
fn merge(session: &Session, routed: &Rc<Routed>, grants: &[(u32, Grant)]) -> Option<Queued> {
    let message = &routed.message;
    // A wider filter never carries a topic the client may not read.
    if !crate::security::may_read(&session.rules, message.topic_str()) {
        return None;
    }
    let own = message.publisher == Some(session.key);
    let mut qos = None::<u8>;
    let mut retain = false;
    let mut subscription_ids = Vec::new();
    for (_, grant) in grants {
        if own && grant.no_local {
            continue;
        }
        qos = Some(qos.map_or(grant.qos, |q| q.max(grant.qos)));
        retain |= grant.retain_as_published && message.retain;
        if let Some(id) = grant.id {
            subscription_ids.push(id);
        }
    }
    let qos = qos?.min(message.qos);
    Some(Queued {
        routed: routed.clone(),
        qos,
        retain,
        subscription_ids,
        from_retained_store: false,
        seq: None,
        state_record: false,
    })
}
