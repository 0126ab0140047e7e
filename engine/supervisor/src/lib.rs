//! Which parts of the engine are alive.
//!
//! # Layout
//! - this file: [`Supervisor`], the registry every long-lived part of the engine (the
//!   router thread, the io workers, the voice pipeline, the Wyoming server) registers
//!   with, and [`Component`], the handle a part uses to say it died or came back.
//!
//! - [`throttle`]: [`LogThrottle`], for log lines a client can cause.
//!
//! A part watches itself (its thread's or task's end) and reports; the supervisor
//! keeps the truth for `/healthz` and `alicia_component_up{component}`, and hands each
//! failure to whoever decides what follows (the composition root: restart or exit).
//! Nothing here polls: a failure is an event.

pub mod throttle;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use throttle::LogThrottle;

use parking_lot::Mutex;
use tokio::sync::broadcast;

/// What the engine does when a component dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// The component holds no client state the engine cannot rebuild; its owner
    /// restarts it and reports it up again.
    Restart,
    /// The component held state that died with it (client sessions); the process
    /// exits non-zero so the service manager starts it afresh.
    Exit,
}

/// A component's status, as `/healthz` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentStatus {
    pub name: String,
    pub up: bool,
    /// Why it last went down (kept after a restart, for the record).
    pub last_failure: Option<String>,
    pub restarts: u64,
    pub on_failure: OnFailure,
    /// How long ago it last changed state.
    pub since: Duration,
}

/// A component went down or came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Down { component: String, cause: String, on_failure: OnFailure },
    Up { component: String, restarts: u64 },
}

struct Entry {
    name: String,
    up: bool,
    last_failure: Option<String>,
    restarts: u64,
    on_failure: OnFailure,
    changed: Instant,
}

struct Inner {
    entries: Mutex<Vec<Entry>>,
    events: broadcast::Sender<Event>,
}

/// The engine's registry of components. Cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("components", &self.snapshot()).finish()
    }
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    pub fn new() -> Supervisor {
        // Failures are rare; a lagging listener only loses old events, never the state.
        let (events, _) = broadcast::channel(64);
        Supervisor { inner: Arc::new(Inner { entries: Mutex::new(Vec::new()), events }) }
    }

    /// Registers a component as up. Registering a name again returns a handle to the
    /// same entry (a restarted component keeps its history).
    pub fn register(&self, name: impl Into<String>, on_failure: OnFailure) -> Component {
        let name = name.into();
        let mut entries = self.inner.entries.lock();
        let index = match entries.iter().position(|e| e.name == name) {
            Some(i) => i,
            None => {
                entries.push(Entry {
                    name: name.clone(),
                    up: true,
                    last_failure: None,
                    restarts: 0,
                    on_failure,
                    changed: Instant::now(),
                });
                entries.len() - 1
            }
        };
        metrics::gauge!("alicia_component_up", "component" => name.clone()).set(1.0);
        Component { supervisor: self.clone(), index, name }
    }

    /// Every registered component, in registration order.
    pub fn snapshot(&self) -> Vec<ComponentStatus> {
        self.inner
            .entries
            .lock()
            .iter()
            .map(|e| ComponentStatus {
                name: e.name.clone(),
                up: e.up,
                last_failure: e.last_failure.clone(),
                restarts: e.restarts,
                on_failure: e.on_failure,
                since: e.changed.elapsed(),
            })
            .collect()
    }

    /// The components that are down now.
    pub fn down(&self) -> Vec<ComponentStatus> {
        self.snapshot().into_iter().filter(|c| !c.up).collect()
    }

    /// Failure and recovery events from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    fn set(&self, index: usize, down_cause: Option<String>) {
        let event = {
            let mut entries = self.inner.entries.lock();
            let entry = &mut entries[index];
            match down_cause {
                Some(cause) => {
                    if !entry.up {
                        return;
                    }
                    entry.up = false;
                    entry.last_failure = Some(cause.clone());
                    entry.changed = Instant::now();
                    // Under the lock: `/healthz` and the gauge never disagree.
                    metrics::gauge!("alicia_component_up", "component" => entry.name.clone()).set(0.0);
                    Event::Down { component: entry.name.clone(), cause, on_failure: entry.on_failure }
                }
                None => {
                    if entry.up {
                        return;
                    }
                    entry.up = true;
                    entry.restarts += 1;
                    entry.changed = Instant::now();
                    metrics::gauge!("alicia_component_up", "component" => entry.name.clone()).set(1.0);
                    Event::Up { component: entry.name.clone(), restarts: entry.restarts }
                }
            }
        };
        match &event {
            Event::Down { component, cause, .. } => {
                metrics::counter!("alicia_component_failures_total", "component" => component.clone()).increment(1);
                tracing::error!(component, cause, "component down");
            }
            Event::Up { component, restarts } => {
                tracing::warn!(component, restarts, "component restarted");
            }
        }
        let _ = self.inner.events.send(event);
    }
}

/// One component's handle on its own status.
#[derive(Clone)]
pub struct Component {
    supervisor: Supervisor,
    index: usize,
    name: String,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component").field("name", &self.name).finish()
    }
}

impl Component {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The component died (or can no longer do its work); `cause` says why in a line.
    pub fn down(&self, cause: impl Into<String>) {
        self.supervisor.set(self.index, Some(cause.into()));
    }

    /// The component runs again after a restart.
    pub fn up(&self) {
        self.supervisor.set(self.index, None);
    }

    pub fn is_up(&self) -> bool {
        self.supervisor.inner.entries.lock()[self.index].up
    }
}

/// The message of a panic payload, for a failure's cause.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_and_up_are_events_and_counted_once() {
        let supervisor = Supervisor::new();
        let mut events = supervisor.events();
        let router = supervisor.register("router", OnFailure::Restart);
        let _io = supervisor.register("mqtt-io-0", OnFailure::Exit);
        assert!(supervisor.down().is_empty());

        router.down("panicked: boom");
        router.down("again");
        assert_eq!(
            events.try_recv().unwrap(),
            Event::Down { component: "router".into(), cause: "panicked: boom".into(), on_failure: OnFailure::Restart }
        );
        assert!(events.try_recv().is_err(), "a second down while down is not an event");
        let down = supervisor.down();
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].name, "router");

        router.up();
        assert_eq!(events.try_recv().unwrap(), Event::Up { component: "router".into(), restarts: 1 });
        let status = &supervisor.snapshot()[0];
        assert!(status.up);
        assert_eq!(status.last_failure.as_deref(), Some("panicked: boom"));
    }

    #[test]
    fn registering_again_keeps_the_history() {
        let supervisor = Supervisor::new();
        let first = supervisor.register("wyoming", OnFailure::Restart);
        first.down("listener ended");
        let second = supervisor.register("wyoming", OnFailure::Restart);
        assert!(!second.is_up());
        second.up();
        assert_eq!(supervisor.snapshot().len(), 1);
        assert_eq!(supervisor.snapshot()[0].restarts, 1);
    }

    #[test]
    fn panic_messages_are_read() {
        let payload = std::panic::catch_unwind(|| panic!("at {}", 3)).unwrap_err();
        assert_eq!(panic_message(payload.as_ref()), "panicked: at 3");
    }
}
