//! The config service on the bus.
//!
//! - `alicia/system/config/request`: `payload.data` may name a `service` (`broker`,
//!   `http`, `voice`, `services`, `security`) or a `section` (`limits`, ...); the answer
//!   is the effective config (file, environment overlay and flags, as in force), secrets
//!   redacted, plus the keys waiting for a restart.
//! - `alicia/system/config/update`: `payload.data.config` (a JSON object of sections
//!   and keys; `null` removes a key) or `payload.data.toml` (a partial TOML document).
//!   Answered with `status` (applied | accepted | unchanged | refused), `applied`,
//!   `restart_required` and every error with its path.
//!
//! Answers go to `alicia/system/config/response`, addressed to the requester's
//! `source`, correlated by `payload.metadata.correlation_id` = the request's
//! `message_id` (the bus's local clients see no MQTT 5 response topic). A message on
//! either topic that is not an envelope is answered with an error event on
//! `alicia/system/config/error`. Requests addressed to another service are left alone.
//!
//! Who may update is the ACL's decision (publishing to the update topic); every update
//! that reaches the service, applied or refused, is logged at info under the target
//! `alicia::audit` with the envelope's `source` and what it changed.

use std::sync::Arc;

use alicia_broker::LocalClient;
use alicia_envelope::topics::{
    SYSTEM_CONFIG_ERROR, SYSTEM_CONFIG_REQUEST, SYSTEM_CONFIG_RESPONSE, SYSTEM_CONFIG_UPDATE,
};
use alicia_envelope::{decode_within, Destination, Envelope, ErrorEvent};
use bytes::Bytes;
use metrics::counter;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::file::one_error;
use crate::merge;
use crate::state::{ConfigState, Outcome};

/// The sections each named service reads.
const SERVICES: [(&str, &[&str]); 8] = [
    ("broker", &["mqtt", "limits", "router", "security"]),
    ("mqtt", &["mqtt", "limits", "router", "security"]),
    ("http", &["http"]),
    ("voice", &["voice", "wyoming"]),
    ("wyoming", &["wyoming"]),
    ("services", &["engine", "services", "topics"]),
    ("health", &["engine", "services", "topics"]),
    ("security", &["security"]),
];
const SECTIONS: [&str; 10] =
    ["engine", "mqtt", "limits", "router", "http", "services", "topics", "voice", "wyoming", "security"];
/// `capability:NAME` destinations this service answers.
const CAPABILITIES: [&str; 2] = ["config", "configuration"];

pub struct ConfigService {
    pub state: Arc<ConfigState>,
    /// The engine's name: its own service name on the bus, and `source` of answers.
    pub name: String,
    /// Larger messages are not read (error event `too_large`).
    pub max_envelope_bytes: usize,
}

impl ConfigService {
    pub async fn run(self, mut client: LocalClient, stop: CancellationToken) {
        for topic in [SYSTEM_CONFIG_REQUEST, SYSTEM_CONFIG_UPDATE] {
            if let Err(e) = client.subscribe(topic).await {
                tracing::error!(error = %e, topic, "config service cannot subscribe");
                return;
            }
        }
        let inbox = client.inbox();
        loop {
            let message = tokio::select! {
                m = inbox.recv_async() => match m {
                    Ok(m) => m,
                    Err(_) => return,
                },
                _ = stop.cancelled() => return,
            };
            if message.payload.is_empty() && message.retain {
                continue;
            }
            let update = message.topic == SYSTEM_CONFIG_UPDATE;
            let kind = if update { "update" } else { "request" };
            let request = match decode_within(message.payload.clone(), self.max_envelope_bytes).await {
                Ok(request) => request,
                Err(error) => {
                    counter!("alicia_config_messages_total", "kind" => kind, "outcome" => "invalid").increment(1);
                    let event = ErrorEvent::for_invalid(&message.topic, &message.payload, &error);
                    publish(&mut client, SYSTEM_CONFIG_ERROR, event.to_envelope().encode()).await;
                    continue;
                }
            };
            if request.check_freshness(chrono::Utc::now()).is_err() {
                counter!("alicia_config_messages_total", "kind" => kind, "outcome" => "stale").increment(1);
                continue;
            }
            if !self.addressed_to_us(&request.destination) {
                continue;
            }
            let data = if update { self.update(&request).await } else { self.request(&request) };
            let outcome = data.get("status").and_then(Value::as_str).unwrap_or("ok").to_string();
            counter!("alicia_config_messages_total", "kind" => kind, "outcome" => outcome).increment(1);
            let response = Envelope::response_to(&request, &self.name, data);
            publish(&mut client, SYSTEM_CONFIG_RESPONSE, response.encode()).await;
        }
    }

    fn addressed_to_us(&self, destination: &Destination) -> bool {
        match destination {
            Destination::Broadcast => true,
            Destination::Service(name) => *name == self.name || name == "config_service",
            Destination::Capability(capability) => CAPABILITIES.contains(&capability.as_str()),
            Destination::Device(_) => false,
        }
    }

    fn request(&self, request: &Envelope) -> Value {
        let field = |key: &str| request.payload.data.get(key).and_then(Value::as_str);
        let (sections, named): (Option<Vec<&str>>, Value) = match (field("service"), field("section")) {
            (Some(service), _) if service == self.name || service == "engine" && field("section").is_none() => {
                (None, json!(service))
            }
            (Some(service), _) => match SERVICES.iter().find(|(name, _)| *name == service) {
                Some((_, sections)) => (Some(sections.to_vec()), json!(service)),
                None => {
                    let known: Vec<&str> = SERVICES.iter().map(|(name, _)| *name).collect();
                    let message = format!("unknown service {service:?} (known: {}, {})", self.name, known.join(", "));
                    return refusal("payload.data.service", message);
                }
            },
            (None, Some(section)) if SECTIONS.contains(&section) => (Some(vec![section]), Value::Null),
            (None, Some(section)) => {
                let message = format!("unknown section {section:?} (known: {})", SECTIONS.join(", "));
                return refusal("payload.data.section", message);
            }
            (None, None) => (None, json!(self.name)),
        };
        let mut view = self.state.view(sections.as_deref());
        view["status"] = json!("ok");
        view["service"] = named;
        view
    }

    async fn update(&self, request: &Envelope) -> Value {
        let data = &request.payload.data;
        let changes = match (data.get("config"), data.get("toml")) {
            (Some(config), None) => merge::from_json(config),
            (None, Some(Value::String(text))) => merge::from_toml(text),
            _ => Err(one_error(
                "payload.data",
                "needs either `config` (a JSON object of sections and keys) or `toml` (a TOML document)".into(),
            )),
        };
        let outcome = match changes {
            Ok(changes) => {
                let state = self.state.clone();
                // Reading, checking and syncing a file is blocking work.
                match tokio::task::spawn_blocking(move || state.update(&changes)).await {
                    Ok(outcome) => outcome,
                    Err(_) => return refusal("<engine>", "the update did not run: the engine is stopping".into()),
                }
            }
            Err(errors) => Outcome::refused_with(errors),
        };
        let errors: Vec<String> = outcome.errors.iter().map(ToString::to_string).collect();
        tracing::info!(
            target: "alicia::audit",
            who = %request.source,
            message_id = %request.message_id,
            status = outcome.status.as_str(),
            applied = ?outcome.applied,
            restart_required = ?outcome.restart_required,
            errors = ?errors,
            "config update"
        );
        outcome.to_json()
    }
}

fn refusal(path: &str, message: String) -> Value {
    Outcome::refused_with(one_error(path, message)).to_json()
}

async fn publish(client: &mut LocalClient, topic: &str, payload: Bytes) {
    if let Err(e) = client.publish(topic, payload, false).await {
        tracing::warn!(error = %e, topic, "config service cannot publish");
    }
}
