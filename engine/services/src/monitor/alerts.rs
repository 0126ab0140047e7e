//! Alerts with a stable id: raised once per cause, resolved with the same id when the
//! cause is gone. Shaped like the supervision's `component_down` alerts.

use std::collections::BTreeMap;

use alicia_envelope::{Destination, Envelope, MessageType, Priority};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Warning,
    Critical,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One open alert.
#[derive(Debug, Clone)]
pub(crate) struct Alert {
    /// `{kind}:{component}`: the same for the raise and the resolution.
    pub(crate) id: String,
    /// `missed_heartbeats`, `offline`, `reported_unhealthy`, `reported_degraded`,
    /// `dropped_messages`, `error_rate`, `queue_growth`.
    pub(crate) kind: &'static str,
    pub(crate) severity: Severity,
    pub(crate) component: String,
    pub(crate) cause: String,
    pub(crate) raised_at: DateTime<Utc>,
}

impl Alert {
    pub(crate) fn new(kind: &'static str, severity: Severity, component: &str, cause: String) -> Alert {
        Alert {
            id: format!("{kind}:{component}"),
            kind,
            severity,
            component: component.to_string(),
            cause,
            raised_at: Utc::now(),
        }
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "alert_id": self.id,
            "type": self.kind,
            "severity": self.severity.as_str(),
            "component": self.component,
            "cause": self.cause,
            "raised_at": crate::monitor::rfc3339(self.raised_at),
        })
    }
}

/// A raise or a resolution, to publish.
#[derive(Debug, Clone)]
pub(crate) enum AlertEvent {
    Raised(Alert),
    Resolved(Alert),
}

impl AlertEvent {
    pub(crate) fn to_envelope(&self, source: &str) -> Envelope {
        let (alert, status, priority) = match self {
            AlertEvent::Raised(alert) => (alert, "raised", priority_of(alert.severity)),
            AlertEvent::Resolved(alert) => (alert, "resolved", Priority::Normal),
        };
        let mut data = alert.to_json();
        data["status"] = status.into();
        if matches!(self, AlertEvent::Resolved(_)) {
            data["resolved_at"] = crate::monitor::rfc3339(Utc::now()).into();
        }
        Envelope::new(source, Destination::Broadcast, MessageType::Event, data).with_priority(priority)
    }
}

fn priority_of(severity: Severity) -> Priority {
    match severity {
        Severity::Warning => Priority::High,
        Severity::Critical => Priority::Critical,
    }
}

/// The open alerts. At most a few per component, and components are capped.
#[derive(Debug, Default)]
pub(crate) struct AlertBook {
    open: BTreeMap<String, Alert>,
}

impl AlertBook {
    /// Raises `alert` unless one with its id is already open (no storms).
    pub(crate) fn raise(&mut self, alert: Alert) -> Option<AlertEvent> {
        if self.open.contains_key(&alert.id) {
            return None;
        }
        self.open.insert(alert.id.clone(), alert.clone());
        Some(AlertEvent::Raised(alert))
    }

    pub(crate) fn resolve(&mut self, id: &str) -> Option<AlertEvent> {
        self.open.remove(id).map(AlertEvent::Resolved)
    }

    pub(crate) fn open(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    pub(crate) fn for_component<'a>(&'a self, component: &'a str) -> impl Iterator<Item = &'a Alert> + 'a {
        self.open.values().filter(move |a| a.component == component)
    }

    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_raise_per_cause_until_resolved() {
        let mut book = AlertBook::default();
        let alert = || Alert::new("missed_heartbeats", Severity::Critical, "stt", "silent".into());
        assert!(matches!(book.raise(alert()), Some(AlertEvent::Raised(a)) if a.id == "missed_heartbeats:stt"));
        assert!(book.raise(alert()).is_none());
        let resolved = book.resolve("missed_heartbeats:stt").unwrap();
        let envelope = resolved.to_envelope("health_monitor");
        assert_eq!(envelope.payload.data["status"], "resolved");
        assert_eq!(envelope.payload.data["alert_id"], "missed_heartbeats:stt");
        assert!(book.resolve("missed_heartbeats:stt").is_none());
        assert!(book.raise(alert()).is_some(), "raised again after its resolution");
    }
}
