//! [`Picture`]: every followed component's state and the open alerts, bounded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::alerts::{Alert, AlertBook, AlertEvent, Severity};
use super::heartbeat::{Observation, OfflineCause, Reported};

/// A component's state as the monitor judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Reported(Reported),
    Offline(OfflineCause),
}

impl State {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Reported(Reported::Healthy) => "healthy",
            State::Reported(Reported::Degraded) => "degraded",
            State::Reported(Reported::Unhealthy) => "unhealthy",
            State::Offline(_) => "offline",
        }
    }

    /// The alert this state stands for, if any.
    fn alert(self, component: &str, timeout: Duration) -> Option<Alert> {
        let (kind, severity, cause) = match self {
            State::Reported(Reported::Healthy) => return None,
            State::Reported(Reported::Degraded) => {
                ("reported_degraded", Severity::Warning, "reports degraded".to_string())
            }
            State::Reported(Reported::Unhealthy) => {
                ("reported_unhealthy", Severity::Critical, "reports unhealthy".to_string())
            }
            State::Offline(OfflineCause::MissedHeartbeats) => {
                ("missed_heartbeats", Severity::Critical, format!("no heartbeat for {} s", timeout.as_secs()))
            }
            State::Offline(OfflineCause::Reported) => {
                ("offline", Severity::Critical, "went offline (its last will or goodbye)".to_string())
            }
        };
        Some(Alert::new(kind, severity, component, cause))
    }
}

#[derive(Debug)]
struct Component {
    state: State,
    last_heard: Instant,
    version: Option<String>,
}

/// The table is full: the observation of a new component was dropped.
#[derive(Debug)]
pub(crate) struct Full;

#[derive(Debug)]
pub(crate) struct Picture {
    components: HashMap<String, Component>,
    alerts: AlertBook,
    max_components: usize,
    timeout: Duration,
}

impl Picture {
    pub(crate) fn new(max_components: usize, timeout: Duration) -> Picture {
        Picture { components: HashMap::new(), alerts: AlertBook::default(), max_components, timeout }
    }

    /// Takes in one observation; the alerts it raises or resolves.
    pub(crate) fn observe(&mut self, observation: Observation, now: Instant) -> Result<Vec<AlertEvent>, Full> {
        let (name, state, version) = match observation {
            Observation::Status { name, reported, version } => (name, State::Reported(reported), version),
            Observation::Offline { name } => (name, State::Offline(OfflineCause::Reported), None),
        };
        if !self.components.contains_key(&name) && self.components.len() >= self.max_components {
            return Err(Full);
        }
        let before = self.components.get(&name).map(|c| c.state);
        let entry = self.components.entry(name.clone()).or_insert(Component { state, last_heard: now, version: None });
        entry.state = state;
        entry.last_heard = now;
        if version.is_some() {
            entry.version = version;
        }
        Ok(self.changed(&name, before, state))
    }

    /// Marks offline every component silent for longer than the timeout.
    pub(crate) fn sweep(&mut self, now: Instant) -> Vec<AlertEvent> {
        let timeout = self.timeout;
        let silent: Vec<String> = self
            .components
            .iter()
            .filter(|(_, c)| !matches!(c.state, State::Offline(_)) && now.duration_since(c.last_heard) > timeout)
            .map(|(name, _)| name.clone())
            .collect();
        let mut events = Vec::new();
        for name in silent {
            let Some(component) = self.components.get_mut(&name) else { continue };
            let before = component.state;
            component.state = State::Offline(OfflineCause::MissedHeartbeats);
            events.extend(self.changed(&name, Some(before), State::Offline(OfflineCause::MissedHeartbeats)));
        }
        events
    }

    fn changed(&mut self, name: &str, before: Option<State>, after: State) -> Vec<AlertEvent> {
        let old = before.and_then(|s| s.alert(name, self.timeout));
        let new = after.alert(name, self.timeout);
        let mut events = Vec::new();
        if let Some(old) = &old {
            if new.as_ref().is_none_or(|new| new.id != old.id) {
                events.extend(self.alerts.resolve(&old.id));
            }
        }
        if let Some(new) = new {
            events.extend(self.alerts.raise(new));
        }
        events
    }

    /// Raises or resolves an alert about the engine's own meters.
    pub(crate) fn condition(&mut self, alert: Alert, holds: bool) -> Option<AlertEvent> {
        if holds {
            self.alerts.raise(alert)
        } else {
            self.alerts.resolve(&alert.id)
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.components.len()
    }

    pub(crate) fn open_alerts(&self) -> usize {
        self.alerts.len()
    }

    /// One component's entry, `None` when it was never heard of.
    pub(crate) fn component_json(&self, name: &str, now: Instant) -> Option<Value> {
        let component = self.components.get(name)?;
        let alerts: Vec<Value> = self.alerts.for_component(name).map(Alert::to_json).collect();
        let mut entry = json!({
            "state": component.state.as_str(),
            "last_heartbeat_age_seconds": now.duration_since(component.last_heard).as_secs_f64(),
            "alerts": alerts,
        });
        if let State::Offline(cause) = component.state {
            entry["offline_because"] = match cause {
                OfflineCause::MissedHeartbeats => "missed_heartbeats",
                OfflineCause::Reported => "reported",
            }
            .into();
        }
        if let Some(version) = &component.version {
            entry["version"] = version.clone().into();
        }
        Some(entry)
    }

    /// Every component (sorted by name) and every open alert.
    pub(crate) fn to_json(&self, now: Instant) -> (Map<String, Value>, Vec<Value>) {
        let mut names: Vec<&String> = self.components.keys().collect();
        names.sort_unstable();
        let components =
            names.into_iter().filter_map(|name| Some((name.clone(), self.component_json(name, now)?))).collect();
        (components, self.alerts.open().map(Alert::to_json).collect())
    }

    /// The worst state reported by anyone: healthy < degraded < unhealthy (an
    /// offline component makes the picture degraded: it may just be switched off).
    pub(crate) fn overall(&self) -> &'static str {
        let mut worst = "healthy";
        for component in self.components.values() {
            match component.state {
                State::Reported(Reported::Unhealthy) => return "unhealthy",
                State::Reported(Reported::Degraded) | State::Offline(_) => worst = "degraded",
                State::Reported(Reported::Healthy) => {}
            }
        }
        worst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, reported: Reported) -> Observation {
        Observation::Status { name: name.into(), reported, version: None }
    }

    fn ids(events: &[AlertEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                AlertEvent::Raised(a) => format!("+{}", a.id),
                AlertEvent::Resolved(a) => format!("-{}", a.id),
            })
            .collect()
    }

    #[test]
    fn silence_raises_once_and_a_heartbeat_resolves() {
        let t0 = Instant::now();
        let mut picture = Picture::new(10, Duration::from_secs(5));
        assert!(picture.observe(status("stt", Reported::Healthy), t0).unwrap().is_empty());
        assert!(picture.sweep(t0 + Duration::from_secs(5)).is_empty());
        let later = t0 + Duration::from_secs(6);
        assert_eq!(ids(&picture.sweep(later)), ["+missed_heartbeats:stt"]);
        assert!(picture.sweep(later + Duration::from_secs(60)).is_empty(), "no storm");
        assert_eq!(picture.component_json("stt", later).unwrap()["state"], "offline");
        let back = picture.observe(status("stt", Reported::Healthy), later).unwrap();
        assert_eq!(ids(&back), ["-missed_heartbeats:stt"]);
    }

    #[test]
    fn reported_states_move_between_alerts() {
        let t0 = Instant::now();
        let mut picture = Picture::new(10, Duration::from_secs(5));
        assert_eq!(ids(&picture.observe(status("tts", Reported::Degraded), t0).unwrap()), ["+reported_degraded:tts"]);
        assert!(picture.observe(status("tts", Reported::Degraded), t0).unwrap().is_empty());
        assert_eq!(
            ids(&picture.observe(status("tts", Reported::Unhealthy), t0).unwrap()),
            ["-reported_degraded:tts", "+reported_unhealthy:tts"]
        );
        assert_eq!(picture.overall(), "unhealthy");
        let will = picture.observe(Observation::Offline { name: "tts".into() }, t0).unwrap();
        assert_eq!(ids(&will), ["-reported_unhealthy:tts", "+offline:tts"]);
    }

    #[test]
    fn the_table_is_capped() {
        let t0 = Instant::now();
        let mut picture = Picture::new(2, Duration::from_secs(5));
        picture.observe(status("a", Reported::Healthy), t0).unwrap();
        picture.observe(status("b", Reported::Healthy), t0).unwrap();
        assert!(picture.observe(status("c", Reported::Healthy), t0).is_err());
        assert!(picture.observe(status("a", Reported::Degraded), t0).is_ok(), "known ones still update");
        assert_eq!(picture.len(), 2);
    }
}
