//! What a message on a health, heartbeat, discovery or device status topic says about
//! its component, if anything.

use alicia_envelope::topics::{self, is_topic_level};
use alicia_envelope::{Envelope, MessageType};
use serde_json::Value;

/// Longest component name followed; a longer one is refused.
pub(crate) const MAX_NAME_BYTES: usize = 128;
/// Longest version string kept per component.
const MAX_VERSION_BYTES: usize = 64;

/// The health a component reports of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reported {
    Healthy,
    Degraded,
    Unhealthy,
}

/// How a component came to be offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OfflineCause {
    /// Nothing heard for `heartbeat_timeout_secs`.
    MissedHeartbeats,
    /// It said so, or its last will did (`status: offline`, an emptied retained
    /// health report, a discovery unregistration).
    Reported,
}

/// One thing heard about a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Observation {
    Status { name: String, reported: Reported, version: Option<String> },
    Offline { name: String },
}

/// Why a message that should have been a heartbeat was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a valid envelope or too large (the gatekeeper tells the sender).
    Invalid,
    /// No usable component name.
    BadName,
    /// A status that is none of healthy, degraded, unhealthy, offline.
    BadStatus,
}

impl Refused {
    pub(crate) fn as_label(self) -> &'static str {
        match self {
            Refused::Invalid => "invalid_envelope",
            Refused::BadName => "bad_name",
            Refused::BadStatus => "bad_status",
        }
    }
}

/// Which kind of topic a (canonical) topic is, for the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `alicia/system/health/{name}`: the level is the name.
    Health(String),
    DiscoveryHeartbeat,
    DiscoveryUnregister,
    /// `alicia/devices/{id}/status`: health only when its status says one.
    DeviceStatus(String),
    Check,
}

pub(crate) fn source_of(topic: &str) -> Option<Source> {
    if topic == topics::SYSTEM_HEALTH_CHECK {
        return Some(Source::Check);
    }
    if topic == topics::SYSTEM_DISCOVERY_HEARTBEAT {
        return Some(Source::DiscoveryHeartbeat);
    }
    if topic == topics::SYSTEM_DISCOVERY_UNREGISTER {
        return Some(Source::DiscoveryUnregister);
    }
    if let Some(name) = topic.strip_prefix("alicia/system/health/") {
        return Some(Source::Health(name.to_string()));
    }
    let device = topic.strip_prefix("alicia/devices/")?.strip_suffix("/status")?;
    (!device.contains('/')).then(|| Source::DeviceStatus(device.to_string()))
}

/// What `envelope` on `source` says; `Ok(None)` when it says nothing about health
/// (a check's response, a device status that is not a health state).
pub(crate) fn observe(source: &Source, envelope: &Envelope) -> Result<Option<Observation>, Refused> {
    if matches!(envelope.message_type, MessageType::Request | MessageType::Response | MessageType::Command) {
        return Ok(None);
    }
    let data = &envelope.payload.data;
    let named = |key: &str| data.get(key).and_then(Value::as_str);
    let (name, status) = match source {
        Source::Health(name) => (name.as_str(), named("status")),
        Source::DiscoveryHeartbeat => {
            (named("service_name").or(named("device_id")).unwrap_or_default(), named("status"))
        }
        Source::DiscoveryUnregister => {
            (named("service_name").or(named("device_id")).unwrap_or_default(), Some("offline"))
        }
        Source::DeviceStatus(device) => match named("status") {
            Some(status @ ("healthy" | "degraded" | "unhealthy" | "offline" | "online")) => {
                (device.as_str(), Some(status))
            }
            _ => return Ok(None),
        },
        Source::Check => return Ok(None),
    };
    let name = checked_name(name)?;
    let reported = match status {
        Some("healthy" | "online") => Reported::Healthy,
        Some("degraded") => Reported::Degraded,
        Some("unhealthy") => Reported::Unhealthy,
        Some("offline") => return Ok(Some(Observation::Offline { name })),
        _ => return Err(Refused::BadStatus),
    };
    let version = named("version").map(|v| v.chars().take(MAX_VERSION_BYTES).collect::<String>());
    Ok(Some(Observation::Status { name, reported, version }))
}

pub(crate) fn checked_name(name: &str) -> Result<String, Refused> {
    if !is_topic_level(name) || name.len() > MAX_NAME_BYTES || name == "check" {
        return Err(Refused::BadName);
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alicia_envelope::Destination;
    use serde_json::json;

    fn event(data: Value) -> Envelope {
        Envelope::new("x", Destination::Broadcast, MessageType::Event, data)
    }

    #[test]
    fn reads_reports_heartbeats_and_wills() {
        let health = source_of("alicia/system/health/stt_service").unwrap();
        assert_eq!(health, Source::Health("stt_service".into()));
        let seen = observe(&health, &event(json!({"status": "degraded", "version": "1.2"}))).unwrap();
        let expected = Observation::Status {
            name: "stt_service".into(),
            reported: Reported::Degraded,
            version: Some("1.2".into()),
        };
        assert_eq!(seen, Some(expected));
        let will = observe(&health, &event(json!({"status": "offline"}))).unwrap();
        assert_eq!(will, Some(Observation::Offline { name: "stt_service".into() }));

        let beat = event(json!({"device_id": "esp32_1", "status": "healthy"}));
        let seen = observe(&Source::DiscoveryHeartbeat, &beat).unwrap();
        assert!(matches!(seen, Some(Observation::Status { name, .. }) if name == "esp32_1"));
    }

    #[test]
    fn refuses_what_cannot_be_followed_and_ignores_what_is_not_health() {
        let health = Source::Health("svc".into());
        assert_eq!(observe(&health, &event(json!({"status": "sleepy"}))), Err(Refused::BadStatus));
        assert_eq!(observe(&health, &event(json!({}))), Err(Refused::BadStatus));
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        assert_eq!(
            observe(&Source::DiscoveryHeartbeat, &event(json!({"service_name": long, "status": "healthy"}))),
            Err(Refused::BadName)
        );
        assert_eq!(observe(&Source::DiscoveryHeartbeat, &event(json!({"status": "healthy"}))), Err(Refused::BadName));
        let response = Envelope::new("x", Destination::Broadcast, MessageType::Response, json!({"status": "?"}));
        assert_eq!(observe(&health, &response), Ok(None));
        let lamp = source_of("alicia/devices/lamp_1/status").unwrap();
        assert_eq!(observe(&lamp, &event(json!({"status": "on"}))), Ok(None));
        assert!(observe(&lamp, &event(json!({"status": "online"}))).unwrap().is_some());
        assert_eq!(source_of("alicia/devices/a/b/status"), None);
    }
}
