//! Health, heartbeat and discovery payloads, shaped after the seeds' services so
//! their monitors can read ours. Each goes in an envelope's `payload.data`.
//!
//! Field names are the seeds' (`service_name`, `uptime`, `messages_processed`,
//! `errors`, `device_id`, ...). Two things differ on purpose: timestamps are
//! RFC 3339 strings like the envelope's, where the seeds' Python sends
//! `time.time()` floats; and health has a `degraded` state between the seeds'
//! `healthy` and `unhealthy`, for a service that answers but has lost a part
//! (a model failed to load, a queue is full).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::envelope::{now_millis, Destination, Envelope, MessageType};
use crate::topics;

/// How well a service is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

/// Whether a service is on the bus at all (discovery register / unregister).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Online,
    Offline,
}

/// `alicia/system/health/{service_name}`: a service's periodic health report
/// (the seeds' `publish_health_status` plus the optional resource fields their
/// health monitor reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    pub service_name: String,
    pub status: HealthStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Seconds since the service started.
    pub uptime: f64,
    #[serde(default)]
    pub messages_processed: u64,
    #[serde(default)]
    pub errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_connected: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_time_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Anything else worth a number, in base units (`queue_depth`, `p99_seconds`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    #[serde(with = "crate::rfc3339")]
    pub timestamp: DateTime<Utc>,
}

impl HealthReport {
    /// A report stamped now, with no counters or extras yet.
    pub fn new(service_name: impl Into<String>, status: HealthStatus, uptime: Duration) -> HealthReport {
        HealthReport {
            service_name: service_name.into(),
            status,
            version: None,
            uptime: uptime.as_secs_f64(),
            messages_processed: 0,
            errors: 0,
            mqtt_connected: None,
            cpu_percent: None,
            memory_mb: None,
            response_time_ms: None,
            capabilities: Vec::new(),
            metrics: BTreeMap::new(),
            timestamp: now_millis(),
        }
    }

    /// `alicia/system/health/{service_name}`.
    pub fn topic(&self) -> String {
        topics::health(&self.service_name)
    }

    /// A broadcast `event` from the service, as the seeds send it.
    pub fn to_envelope(&self) -> Envelope {
        envelope(&self.service_name, MessageType::Event, self)
    }
}

/// `alicia/system/discovery/heartbeat`: "still here". Devices in the seeds send
/// `device_id` instead of `service_name`; both are read, `service_name` written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    #[serde(alias = "device_id")]
    pub service_name: String,
    pub status: HealthStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(with = "crate::rfc3339")]
    pub timestamp: DateTime<Utc>,
}

impl Heartbeat {
    pub fn new(service_name: impl Into<String>, status: HealthStatus) -> Heartbeat {
        Heartbeat { service_name: service_name.into(), status, ip_address: None, timestamp: now_millis() }
    }

    /// A broadcast `heartbeat` from the service.
    pub fn to_envelope(&self) -> Envelope {
        envelope(&self.service_name, MessageType::Heartbeat, self)
    }
}

/// `alicia/system/discovery/register`: a service announces itself
/// (the seeds' `_publish_service_online` and `register_service`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRegistration {
    pub service_name: String,
    /// `online` on register.
    pub status: Presence,
    pub version: String,
    /// Capability names other services can address as `capability:NAME`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Where the service's HTTP API is, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Services this one needs, for the health monitor's dependency map.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    #[serde(with = "crate::rfc3339")]
    pub timestamp: DateTime<Utc>,
}

impl ServiceRegistration {
    pub fn new(service_name: impl Into<String>, version: impl Into<String>, capabilities: Vec<String>) -> Self {
        ServiceRegistration {
            service_name: service_name.into(),
            status: Presence::Online,
            version: version.into(),
            capabilities,
            endpoint: None,
            dependencies: Vec::new(),
            timestamp: now_millis(),
        }
    }

    /// A broadcast `event` from the service.
    pub fn to_envelope(&self) -> Envelope {
        envelope(&self.service_name, MessageType::Event, self)
    }
}

/// `alicia/system/discovery/unregister`: a service leaves (status `offline`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceUnregistration {
    pub service_name: String,
    pub status: Presence,
    #[serde(with = "crate::rfc3339")]
    pub timestamp: DateTime<Utc>,
}

impl ServiceUnregistration {
    pub fn new(service_name: impl Into<String>) -> Self {
        ServiceUnregistration { service_name: service_name.into(), status: Presence::Offline, timestamp: now_millis() }
    }

    /// A broadcast `event` from the service.
    pub fn to_envelope(&self) -> Envelope {
        envelope(&self.service_name, MessageType::Event, self)
    }
}

/// `alicia/system/discovery/register` from a device: the guide's *Device
/// Registration Message* `payload.data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRegistration {
    pub device_id: String,
    /// `speaker`, `sensor`, `microphone`, ...
    pub device_type: String,
    #[serde(default)]
    pub capabilities: Vec<DeviceCapability>,
    /// Role → topic, e.g. `control` → `alicia/devices/{id}/command`.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// `manufacturer`, `model`, `location`, `ip_address`, ...
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// One capability of a device, with its own parameters and topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceCapability {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
}

impl DeviceRegistration {
    /// A broadcast `event` from the device, as in the guide's example.
    pub fn to_envelope(&self) -> Envelope {
        envelope(&self.device_id, MessageType::Event, self)
    }
}

fn envelope(source: &str, message_type: MessageType, data: &impl Serialize) -> Envelope {
    let data = serde_json::to_value(data).expect("health payloads have only string map keys");
    Envelope::new(source, Destination::Broadcast, message_type, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn health_report_uses_seed_names() {
        let mut report = HealthReport::new("alicia", HealthStatus::Degraded, Duration::from_millis(12_500));
        report.messages_processed = 7;
        report.metrics.insert("queue_depth".into(), 3.0);
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(value["service_name"], "alicia");
        assert_eq!(value["status"], "degraded");
        assert_eq!(value["uptime"], 12.5);
        assert_eq!(value["messages_processed"], 7);
        assert_eq!(value["errors"], 0);
        assert_eq!(value["metrics"], json!({"queue_depth": 3.0}));
        assert!(value.get("cpu_percent").is_none(), "absent extras are left out");
        assert!(value["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(report.topic(), "alicia/system/health/alicia");
        assert_eq!(serde_json::from_value::<HealthReport>(value).unwrap(), report);
    }

    #[test]
    fn reads_a_seed_style_health_report() {
        let seed = json!({
            "service_name": "stt_service", "status": "unhealthy", "uptime": 3.25,
            "messages_processed": 10, "errors": 2, "mqtt_connected": false,
            "timestamp": "2025-01-08T14:30:00.000Z"
        });
        let report: HealthReport = serde_json::from_value(seed).unwrap();
        assert_eq!(report.status, HealthStatus::Unhealthy);
        assert_eq!(report.mqtt_connected, Some(false));
    }

    #[test]
    fn heartbeat_reads_device_id_and_writes_service_name() {
        let heartbeat: Heartbeat = serde_json::from_value(json!({
            "device_id": "esp32_sensor_001", "status": "healthy", "ip_address": "192.168.1.50",
            "timestamp": "2025-01-08T14:30:00Z"
        }))
        .unwrap();
        assert_eq!(heartbeat.service_name, "esp32_sensor_001");
        let envelope = heartbeat.to_envelope();
        assert_eq!(envelope.message_type, MessageType::Heartbeat);
        assert_eq!(envelope.payload.data["service_name"], "esp32_sensor_001");
        assert!(Envelope::decode(&envelope.encode()).is_ok());
    }

    #[test]
    fn registrations_round_trip_and_wrap() {
        let mut registration = ServiceRegistration::new("alicia", "0.1.0", vec!["speech_to_text".into()]);
        registration.dependencies.push("mqtt".into());
        let value = serde_json::to_value(&registration).unwrap();
        assert_eq!(value["status"], "online");
        assert_eq!(serde_json::from_value::<ServiceRegistration>(value).unwrap(), registration);
        assert_eq!(registration.to_envelope().source, "alicia");

        let leaving = ServiceUnregistration::new("alicia");
        assert_eq!(serde_json::to_value(&leaving).unwrap()["status"], "offline");
    }

    #[test]
    fn reads_the_guide_device_registration() {
        let data = json!({
            "device_id": "sonos_kitchen_001",
            "device_type": "speaker",
            "capabilities": [{
                "name": "audio_playback", "version": "1.0.0",
                "parameters": {"supported_formats": ["wav", "mp3"], "max_volume": 100},
                "endpoints": {"input": "alicia/devices/sonos_kitchen_001/audio"}
            }],
            "endpoints": {"control": "alicia/devices/sonos_kitchen_001/command"},
            "metadata": {"manufacturer": "Sonos", "location": "kitchen"}
        });
        let device: DeviceRegistration = serde_json::from_value(data.clone()).unwrap();
        assert_eq!(device.capabilities[0].name, "audio_playback");
        assert_eq!(device.endpoints["control"], topics::device_command("sonos_kitchen_001"));
        assert_eq!(serde_json::to_value(&device).unwrap(), data);
        assert_eq!(device.to_envelope().source, "sonos_kitchen_001");
    }
}
