//! Large messages beside the log.
//!
//! rumqttd's commit log keeps what was appended until newer entries push it out, so a
//! 256 MiB payload appended once would stay in memory until 4 MiB of other traffic
//! followed. Instead the log carries an id, and the message (payload, topic and
//! properties) waits here until every node has read its entry (each node reads every
//! entry exactly once), then only the sessions that queued it hold it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Message;

struct Held {
    message: Message,
    readers_left: usize,
    since: Instant,
}

pub(crate) struct LargePayloads {
    next: AtomicU64,
    readers: usize,
    held: Mutex<HashMap<u64, Held>>,
}

impl std::fmt::Debug for LargePayloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LargePayloads").field("held", &self.held()).finish()
    }
}

impl LargePayloads {
    /// `readers`: how many nodes read every entry.
    pub(crate) fn new(readers: usize) -> LargePayloads {
        LargePayloads { next: AtomicU64::new(1), readers, held: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn insert(&self, message: Message) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let held = Held { message, readers_left: self.readers, since: Instant::now() };
        self.held.lock().insert(id, held);
        id
    }

    /// One reader's copy; the last reader takes it out.
    pub(crate) fn take(&self, id: u64) -> Option<Message> {
        let mut held = self.held.lock();
        let entry = held.get_mut(&id)?;
        entry.readers_left -= 1;
        if entry.readers_left == 0 {
            held.remove(&id).map(|h| h.message)
        } else {
            Some(entry.message.clone())
        }
    }

    /// Drops messages some reader never took (it fell behind the log and skipped their
    /// entries); returns how many.
    pub(crate) fn sweep(&self, older_than: Duration) -> usize {
        let mut held = self.held.lock();
        let before = held.len();
        held.retain(|_, h| h.since.elapsed() < older_than);
        before - held.len()
    }

    pub(crate) fn held(&self) -> usize {
        self.held.lock().len()
    }
}
