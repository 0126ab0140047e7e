//! [`TimerBook`]: the running timers, by id, each kept in the durable store as a small
//! JSON record under the `timers` namespace until it rings or is cancelled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alicia_stage_intent::{timer_spoken, RunningTimers, TimerLeft};
use alicia_store::Store;
use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// The store namespace of the timers' records.
const NAMESPACE: &str = "timers";
/// Longest timer: a day.
pub const MAX_TIMER_SECONDS: u32 = 24 * 3_600;
/// Timers running at once, all sites together: a client cannot make the engine hold
/// more.
pub const MAX_TIMERS: usize = 256;

/// One running timer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub id: String,
    pub site: String,
    /// The speaker it rings on.
    pub speaker: String,
    pub name: Option<String>,
    /// How long it was set for.
    pub seconds: u32,
    /// When it rings, in milliseconds since the Unix epoch: wall-clock time, so a timer
    /// kept across a restart rings when it was meant to. Not while paused.
    pub due_unix_ms: u64,
    /// Set while the timer is paused: the milliseconds it had left when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_left_ms: Option<u64>,
}

impl Timer {
    pub fn due(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.due_unix_ms)
    }

    pub fn is_paused(&self) -> bool {
        self.paused_left_ms.is_some()
    }

    /// What it has left at `now`: counting down, or frozen while paused.
    pub fn left(&self, now: SystemTime) -> Duration {
        match self.paused_left_ms {
            Some(left) => Duration::from_millis(left),
            None => self.due().duration_since(now).unwrap_or_default(),
        }
    }

    /// What the speaker says when it rings: "Your pizza timer is done.", "Your 5 minute
    /// timer is done."
    pub fn done_sentence(&self) -> String {
        let length = Duration::from_secs(u64::from(self.seconds));
        format!("Your {} is done.", timer_spoken(self.name.as_deref(), length))
    }
}

/// Why a timer could not be set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError {
    OutOfRange,
    TooMany,
}

/// The running timers, shared by the service that rings them and the matcher that
/// answers questions about them. Cheap to clone.
#[derive(Clone, Default)]
pub struct TimerBook {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    timers: Mutex<BTreeMap<String, Timer>>,
    store: Option<Store>,
    /// Woken whenever the timers change, so the ringer re-reads the next due time.
    changed: Notify,
}

impl std::fmt::Debug for TimerBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerBook").field("running", &self.inner.timers.lock().len()).finish()
    }
}

impl TimerBook {
    /// The timers kept in `store` (none without a store: they then live only as long
    /// as the engine). A record that cannot be read is reported and dropped.
    pub fn open(store: Option<Store>) -> TimerBook {
        let mut timers = BTreeMap::new();
        if let Some(store) = &store {
            match store.read_owned(NAMESPACE) {
                Ok(records) => {
                    for (id, bytes) in records {
                        match serde_json::from_slice::<Timer>(&bytes) {
                            Ok(timer) => {
                                timers.insert(id, timer);
                            }
                            Err(e) => {
                                tracing::warn!(id, error = %e, "a kept timer could not be read; dropped");
                                store.remove_owned(NAMESPACE, &id);
                            }
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "the kept timers could not be read"),
            }
        }
        if !timers.is_empty() {
            tracing::info!(timers = timers.len(), "timers restored from the store");
        }
        TimerBook { inner: Arc::new(Inner { timers: Mutex::new(timers), store, changed: Notify::new() }) }
    }

    /// Sets a timer of `seconds` at `site`, ringing on `speaker`. A running timer of the
    /// same name at the site is replaced (an unnamed one is not: several may run).
    pub fn set(
        &self,
        site: &str,
        speaker: &str,
        name: Option<String>,
        seconds: u32,
        now: SystemTime,
    ) -> Result<(Timer, Option<Timer>), SetError> {
        if seconds == 0 || seconds > MAX_TIMER_SECONDS {
            return Err(SetError::OutOfRange);
        }
        let name = name.map(|n| n.trim().to_lowercase()).filter(|n| !n.is_empty());
        let due = now + Duration::from_secs(u64::from(seconds));
        let timer = Timer {
            id: uuid::Uuid::new_v4().to_string(),
            site: site.to_string(),
            speaker: speaker.to_string(),
            name,
            seconds,
            due_unix_ms: unix_ms(due),
            paused_left_ms: None,
        };
        let replaced = {
            let mut timers = self.inner.timers.lock();
            let same = timers.values().find(|t| t.site == site && t.name.is_some() && t.name == timer.name);
            let replaced = same.map(|t| t.id.clone()).and_then(|id| timers.remove(&id));
            if timers.len() >= MAX_TIMERS {
                if let Some(old) = replaced {
                    timers.insert(old.id.clone(), old);
                }
                return Err(SetError::TooMany);
            }
            timers.insert(timer.id.clone(), timer.clone());
            replaced
        };
        if let Some(old) = &replaced {
            self.forget(std::slice::from_ref(old));
        }
        self.keep(std::slice::from_ref(&timer));
        Ok((timer, replaced))
    }

    /// Pauses the site's running timer called `name`, or all of its running timers;
    /// returns those paused.
    pub fn pause(&self, site: &str, name: Option<&str>, now: SystemTime) -> Vec<Timer> {
        let paused = self.change(site, name, |timer| {
            if timer.is_paused() {
                return false;
            }
            timer.paused_left_ms = Some(timer.left(now).as_millis() as u64);
            true
        });
        self.keep(&paused);
        paused
    }

    /// Resumes the site's paused timer called `name`, or all of its paused timers:
    /// each rings when the time it had left has passed again.
    pub fn resume(&self, site: &str, name: Option<&str>, now: SystemTime) -> Vec<Timer> {
        let resumed = self.change(site, name, |timer| match timer.paused_left_ms.take() {
            Some(left) => {
                timer.due_unix_ms = unix_ms(now + Duration::from_millis(left));
                true
            }
            None => false,
        });
        self.keep(&resumed);
        resumed
    }

    /// Applies `change` to the site's timers of `name` (all without one); returns
    /// copies of those it changed.
    fn change(&self, site: &str, name: Option<&str>, mut change: impl FnMut(&mut Timer) -> bool) -> Vec<Timer> {
        let name = name.map(|n| n.trim().to_lowercase());
        let mut timers = self.inner.timers.lock();
        timers
            .values_mut()
            .filter(|t| t.site == site && (name.is_none() || t.name == name))
            .filter_map(|t| change(t).then(|| t.clone()))
            .collect()
    }

    /// Cancels the site's timer called `name`, or all of the site's timers.
    pub fn cancel(&self, site: &str, name: Option<&str>) -> Vec<Timer> {
        let name = name.map(|n| n.trim().to_lowercase());
        let cancelled: Vec<Timer> = {
            let mut timers = self.inner.timers.lock();
            let ids: Vec<String> = timers
                .values()
                .filter(|t| t.site == site && (name.is_none() || t.name == name))
                .map(|t| t.id.clone())
                .collect();
            ids.iter().filter_map(|id| timers.remove(id)).collect()
        };
        self.forget(&cancelled);
        cancelled
    }

    /// Removes and returns the timers due at `now`, soonest first.
    pub fn take_due(&self, now: SystemTime) -> Vec<Timer> {
        let mut due: Vec<Timer> = {
            let mut timers = self.inner.timers.lock();
            let due = |t: &&Timer| !t.is_paused() && t.due() <= now;
            let ids: Vec<String> = timers.values().filter(due).map(|t| t.id.clone()).collect();
            ids.iter().filter_map(|id| timers.remove(id)).collect()
        };
        due.sort_by_key(|t| t.due_unix_ms);
        self.forget(&due);
        due
    }

    /// How many timers are running.
    pub fn len(&self) -> usize {
        self.inner.timers.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When the next timer rings (paused ones do not).
    pub fn next_due(&self) -> Option<SystemTime> {
        self.inner.timers.lock().values().filter(|t| !t.is_paused()).map(Timer::due).min()
    }

    /// Every running timer, soonest first.
    pub fn all(&self) -> Vec<Timer> {
        let mut all: Vec<Timer> = self.inner.timers.lock().values().cloned().collect();
        all.sort_by_key(|t| t.due_unix_ms);
        all
    }

    /// Resolves when the timers change.
    pub async fn changed(&self) {
        self.inner.changed.notified().await;
    }

    /// Writes `changed` to the store (a timer is a few hundred bytes of JSON, kept
    /// once) and wakes the ringer.
    fn keep(&self, changed: &[Timer]) {
        if let Some(store) = &self.inner.store {
            for timer in changed {
                let record = serde_json::to_vec(timer).map(Bytes::from).unwrap_or_default();
                store.put_owned(NAMESPACE, &timer.id, record);
            }
        }
        if !changed.is_empty() {
            self.inner.changed.notify_one();
        }
    }

    fn forget(&self, gone: &[Timer]) {
        if let Some(store) = &self.inner.store {
            for timer in gone {
                store.remove_owned(NAMESPACE, &timer.id);
            }
        }
        if !gone.is_empty() {
            self.inner.changed.notify_one();
        }
    }
}

impl RunningTimers for TimerBook {
    fn running(&self, site: &str) -> Vec<TimerLeft> {
        let now = SystemTime::now();
        let mut left: Vec<TimerLeft> = self
            .all()
            .into_iter()
            .filter(|t| t.site == site)
            .map(|t| TimerLeft {
                remaining: t.left(now),
                length: Duration::from_secs(u64::from(t.seconds)),
                paused: t.is_paused(),
                name: t.name,
            })
            .collect();
        // Soonest to ring first, a paused timer by the time it has left.
        left.sort_by_key(|t| t.remaining);
        left
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use alicia_store::{StoreSettings, SyncMode};

    fn store(dir: &std::path::Path) -> Store {
        let settings =
            StoreSettings { dir: dir.to_path_buf(), sync: SyncMode::Always, sync_interval: Duration::from_millis(50) };
        Store::open(&settings).unwrap().0
    }

    #[test]
    fn timers_are_set_replaced_by_name_cancelled_and_rung_in_order() {
        let book = TimerBook::open(None);
        let now = SystemTime::now();
        let (pizza, _) = book.set("kitchen", "kitchen_speaker", Some("Pizza".into()), 600, now).unwrap();
        assert_eq!(pizza.name.as_deref(), Some("pizza"));
        let (egg, _) = book.set("kitchen", "kitchen_speaker", None, 300, now).unwrap();
        book.set("bedroom", "bedroom_speaker", None, 60, now).unwrap();
        let (_, replaced) = book.set("kitchen", "kitchen_speaker", Some("pizza".into()), 900, now).unwrap();
        assert_eq!(replaced, Some(pizza));
        let kitchen = book.running("kitchen");
        assert_eq!(kitchen.len(), 2);
        assert_eq!(kitchen[0].length, Duration::from_secs(300), "soonest first");
        assert_eq!(book.set("kitchen", "kitchen_speaker", None, 0, now), Err(SetError::OutOfRange));
        assert_eq!(book.set("kitchen", "kitchen_speaker", None, MAX_TIMER_SECONDS + 1, now), Err(SetError::OutOfRange));

        let due = book.take_due(now + Duration::from_secs(301));
        assert_eq!(due.iter().map(|t| t.site.as_str()).collect::<Vec<_>>(), ["bedroom", "kitchen"]);
        assert_eq!(due[1], egg);
        assert_eq!(due[1].done_sentence(), "Your 5 minute timer is done.");
        assert_eq!(book.cancel("kitchen", Some("tea")), []);
        let cancelled = book.cancel("kitchen", Some("pizza"));
        assert_eq!(cancelled.len(), 1);
        assert_eq!(cancelled[0].done_sentence(), "Your pizza timer is done.");
        assert!(book.all().is_empty());
    }

    #[test]
    fn a_paused_timer_keeps_its_time_left_does_not_ring_and_goes_on_when_resumed() {
        let dir = tempfile::tempdir().unwrap();
        // Whole milliseconds, as the book keeps times.
        let now = UNIX_EPOCH + Duration::from_millis(unix_ms(SystemTime::now()));
        let minute = Duration::from_secs(60);
        let (tea, id) = {
            let store = store(dir.path());
            let book = TimerBook::open(Some(store.clone()));
            let (tea, _) = book.set("kitchen", "kitchen_speaker", Some("tea".into()), 300, now).unwrap();
            book.set("kitchen", "kitchen_speaker", Some("egg".into()), 600, now).unwrap();
            let paused = book.pause("kitchen", Some("tea"), now + minute);
            assert_eq!(paused.len(), 1);
            assert!(book.pause("kitchen", Some("tea"), now + minute).is_empty(), "already paused");
            assert_eq!(book.running("kitchen")[0].remaining, 4 * minute);
            store.sync_blocking().unwrap();
            (tea, paused[0].id.clone())
        };
        // Kept paused across a restart: long past its first due time, it has not rung.
        let book = TimerBook::open(Some(store(dir.path())));
        let hour_later = now + 60 * minute;
        let left: Vec<(Option<String>, bool)> =
            book.running("kitchen").into_iter().map(|t| (t.name, t.paused)).collect();
        assert_eq!(left, [(Some("tea".into()), true), (Some("egg".into()), false)], "soonest to ring first");
        assert_eq!(book.take_due(hour_later).iter().map(|t| t.name.clone()).collect::<Vec<_>>(), [Some("egg".into())]);
        assert_eq!(book.next_due(), None, "a paused timer has no due time");
        let resumed = book.resume("kitchen", None, hour_later);
        assert_eq!((resumed.len(), resumed[0].id.as_str()), (1, id.as_str()));
        assert_eq!(book.next_due(), Some(hour_later + 4 * minute));
        assert!(book.take_due(hour_later + 4 * minute - Duration::from_millis(1)).is_empty());
        assert_eq!(book.take_due(hour_later + 4 * minute)[0].id, tea.id);
    }

    #[test]
    fn the_number_of_timers_is_bounded() {
        let book = TimerBook::open(None);
        let now = SystemTime::now();
        for _ in 0..MAX_TIMERS {
            book.set("kitchen", "kitchen_speaker", None, 60, now).unwrap();
        }
        assert_eq!(book.set("kitchen", "kitchen_speaker", None, 60, now), Err(SetError::TooMany));
    }

    #[test]
    fn running_timers_are_kept_in_the_store_and_rung_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let kept = {
            let store = store(dir.path());
            let book = TimerBook::open(Some(store.clone()));
            let (kept, _) = book.set("kitchen", "kitchen_speaker", Some("bread".into()), 3_600, now).unwrap();
            book.set("kitchen", "kitchen_speaker", None, 5, now).unwrap();
            book.set("hallway", "hallway_speaker", None, 60, now).unwrap();
            assert_eq!(book.take_due(now + Duration::from_secs(10)).len(), 1);
            book.cancel("hallway", None);
            store.sync_blocking().unwrap();
            kept
        };
        let book = TimerBook::open(Some(store(dir.path())));
        assert_eq!(book.all(), std::slice::from_ref(&kept));
        assert_eq!(book.take_due(now + Duration::from_secs(3_601)), [kept], "one due while the engine was down rings");
    }
}
