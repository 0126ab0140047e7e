//! Retained messages.
//!
//! rumqttd's retained store is unbounded, forgets MQTT 5 properties, sends at most 100
//! messages to a new subscriber and erases a topic's message on any empty PUBLISH, so
//! the engine keeps its own: the router only ever sees RETAIN=0.
//!
//! Admission is decided once, where the message enters, against the engine-wide limits
//! ([`RetainedIndex`]: count and bytes). Each node then applies the retained messages it
//! reads from the log to its own [`RetainedStore`], so a subscription made at some
//! point of the log sees exactly the retained messages as of that point and then every
//! later message live: never a message twice, never one lost in between.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::bus::{Message, Routed};
use crate::topic::matches;

/// Why a retained PUBLISH was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetainedRefusal {
    TooManyMessages,
    TooManyBytes,
}

struct IndexEntry {
    bytes: usize,
    deadline: Option<Instant>,
}

#[derive(Default)]
struct IndexState {
    entries: HashMap<Bytes, IndexEntry>,
    bytes: usize,
}

/// Engine-wide sizes of the retained messages, for admission; and, with `[storage]`, the
/// one place a retained message is written to the store (under the same lock, so the
/// store keeps them in the order the index took them).
pub(crate) struct RetainedIndex {
    state: Mutex<IndexState>,
    /// Read under `state`'s lock; a config update may change them (admission only:
    /// what is retained stays when they are lowered).
    max_messages: AtomicUsize,
    max_bytes: AtomicUsize,
    store: Option<alicia_store::Store>,
}

impl std::fmt::Debug for RetainedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (messages, bytes) = self.size();
        f.debug_struct("RetainedIndex").field("messages", &messages).field("bytes", &bytes).finish()
    }
}

impl RetainedIndex {
    pub(crate) fn new(max_messages: usize, max_bytes: usize, store: Option<alicia_store::Store>) -> RetainedIndex {
        RetainedIndex {
            state: Mutex::new(IndexState::default()),
            max_messages: AtomicUsize::new(max_messages),
            max_bytes: AtomicUsize::new(max_bytes),
            store,
        }
    }

    /// New limits for admission from now on; nothing retained is dropped.
    pub(crate) fn set_limits(&self, max_messages: usize, max_bytes: usize) {
        let _state = self.state.lock();
        self.max_messages.store(max_messages, Ordering::Relaxed);
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
    }

    fn limits(&self) -> (usize, usize) {
        (self.max_messages.load(Ordering::Relaxed), self.max_bytes.load(Ordering::Relaxed))
    }

    /// Takes up the retained messages the store kept; past the limits (lowered since
    /// they were kept) the rest are dropped and erased from the store. What it keeps.
    pub(crate) fn seed(&self, messages: Vec<Message>, now: Instant) -> Vec<Message> {
        let store = self.store.as_ref();
        let (max_messages, max_bytes) = self.limits();
        let mut kept = Vec::with_capacity(messages.len());
        let mut dropped = 0;
        for message in messages {
            let mut state = self.state.lock();
            let bytes = message.topic.len() + message.payload.len();
            if state.entries.len() >= max_messages || state.bytes + bytes > max_bytes {
                dropped += 1;
                if let Some(store) = store {
                    store.clear_retained(&message.topic);
                }
                continue;
            }
            let deadline = message.expiry_interval().map(|s| now + std::time::Duration::from_secs(u64::from(s)));
            if let Some(old) = state.entries.insert(message.topic.clone(), IndexEntry { bytes, deadline }) {
                state.bytes -= old.bytes;
            }
            state.bytes += bytes;
            kept.push(message);
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "stored retained messages past limits.max_retained_messages or max_retained_bytes were dropped"
            );
        }
        kept
    }

    /// Admits setting (non-empty payload) or clearing (empty payload) `topic`'s retained
    /// message. A clear, or a message no larger than the one it replaces, always fits.
    pub(crate) fn admit(&self, message: &Message, now: Instant) -> Result<(), RetainedRefusal> {
        let mut state = self.state.lock();
        let state = &mut *state;
        let (max_messages, max_bytes) = self.limits();
        if message.payload.is_empty() {
            if let Some(old) = state.entries.remove(&message.topic) {
                state.bytes -= old.bytes;
                if let Some(store) = &self.store {
                    store.clear_retained(&message.topic);
                }
            }
            return Ok(());
        }
        let bytes = message.topic.len() + message.payload.len();
        let old = state.entries.get(&message.topic).map(|e| e.bytes);
        let count = state.entries.len() + usize::from(old.is_none());
        let total = state.bytes - old.unwrap_or(0) + bytes;
        if count > max_messages || total > max_bytes {
            // Expired messages still count until someone looks; look now.
            state.entries.retain(|_, e| e.deadline.is_none_or(|d| d > now));
            state.bytes = state.entries.values().map(|e| e.bytes).sum();
            let old = state.entries.get(&message.topic).map(|e| e.bytes);
            if state.entries.len() + usize::from(old.is_none()) > max_messages {
                return Err(RetainedRefusal::TooManyMessages);
            }
            if state.bytes - old.unwrap_or(0) + bytes > max_bytes {
                return Err(RetainedRefusal::TooManyBytes);
            }
        }
        let deadline = message.expiry_interval().map(|s| now + std::time::Duration::from_secs(u64::from(s)));
        if let Some(old) = state.entries.insert(message.topic.clone(), IndexEntry { bytes, deadline }) {
            state.bytes -= old.bytes;
        }
        state.bytes += bytes;
        if let Some(store) = &self.store {
            store.put_retained(&crate::persist::to_stored(message, deadline, now));
        }
        Ok(())
    }

    /// (messages, bytes) retained now.
    pub(crate) fn size(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.entries.len(), state.bytes)
    }
}

/// One node's copy of the retained messages.
#[derive(Debug, Default)]
pub(crate) struct RetainedStore {
    messages: HashMap<Bytes, Rc<Routed>>,
}

impl RetainedStore {
    /// Applies a retained message read from the log (the index admitted it).
    pub(crate) fn apply(&mut self, routed: &Rc<Routed>) {
        let topic = &routed.message.topic;
        if routed.message.payload.is_empty() {
            self.messages.remove(topic);
        } else {
            self.messages.insert(topic.clone(), routed.clone());
        }
    }

    /// The unexpired retained messages whose topic `filter` matches (a checked,
    /// non-shared filter), dropping expired ones on the way.
    pub(crate) fn matching(&mut self, filter: &str, now: Instant) -> Vec<Rc<Routed>> {
        // A filter without wildcards names one topic: a lookup, not a scan, so a device
        // subscribing to its own topic costs the same with 100,000 retained messages.
        if !filter.contains(['+', '#']) {
            let topic = filter.as_bytes();
            return match self.messages.get(topic) {
                Some(r) if r.expired(now) => {
                    self.messages.remove(topic);
                    Vec::new()
                }
                Some(r) => vec![r.clone()],
                None => Vec::new(),
            };
        }
        self.messages.retain(|_, r| !r.expired(now));
        self.messages.values().filter(|r| matches(r.message.topic_str(), filter)).cloned().collect()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &'static str, payload: &'static [u8]) -> Message {
        Message {
            topic: Bytes::from_static(topic.as_bytes()),
            payload: Bytes::from_static(payload),
            qos: 1,
            retain: true,
            properties: None,
            publisher: None,
        }
    }

    #[test]
    fn admission_counts_messages_and_bytes_and_clears_always_fit() {
        let index = RetainedIndex::new(2, 12, None);
        let now = Instant::now();
        assert_eq!(index.admit(&message("a", b"1234"), now), Ok(()));
        assert_eq!(index.admit(&message("b", b"1234"), now), Ok(()));
        assert_eq!(index.admit(&message("c", b"1"), now), Err(RetainedRefusal::TooManyMessages));
        assert_eq!(index.admit(&message("a", b"12345678"), now), Err(RetainedRefusal::TooManyBytes));
        assert_eq!(index.admit(&message("a", b"123"), now), Ok(()), "a smaller replacement fits");
        assert_eq!(index.admit(&message("b", b""), now), Ok(()));
        assert_eq!(index.size(), (1, 4));
        assert_eq!(index.admit(&message("c", b"1"), now), Ok(()));
    }

    #[test]
    fn expired_messages_make_room() {
        let index = RetainedIndex::new(1, 100, None);
        let mut short = message("a", b"x");
        short.properties =
            Some(rumqttd::protocol::PublishProperties { message_expiry_interval: Some(1), ..Default::default() });
        let then = Instant::now();
        assert_eq!(index.admit(&short, then), Ok(()));
        assert_eq!(index.admit(&message("b", b"y"), then), Err(RetainedRefusal::TooManyMessages));
        let later = then + std::time::Duration::from_secs(2);
        assert_eq!(index.admit(&message("b", b"y"), later), Ok(()));
    }

    #[test]
    fn a_store_matches_filters_and_forgets_cleared_topics() {
        let mut store = RetainedStore::default();
        let now = Instant::now();
        for (t, p) in [("温度/室内", &b"21"[..]), ("温度/室外", b"5"), ("x", b"1")] {
            let m = Message { topic: Bytes::copy_from_slice(t.as_bytes()), ..message("", b"") };
            store.apply(&Rc::new(Routed::new(Message { payload: Bytes::copy_from_slice(p), ..m }, now)));
        }
        assert_eq!(store.matching("温度/#", now).len(), 2);
        assert_eq!(store.matching("温度/室外", now).len(), 1, "a filter without wildcards is a lookup");
        assert!(store.matching("温度", now).is_empty());
        store.apply(&Rc::new(Routed::new(message("x", b""), now)));
        assert_eq!(store.len(), 2);
        assert!(store.matching("#", now + std::time::Duration::from_secs(1)).iter().all(|r| r.message.retain));
    }
}
