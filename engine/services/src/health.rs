//! The engine's own health on the bus, and answers to health checks.
//!
//! - at start: a discovery registration on `alicia/system/discovery/register`,
//!   retained so a registry that starts later still learns the engine is up;
//! - every `heartbeat_interval`: the health report, retained, on
//!   `alicia/system/health/<name>` (a late subscriber sees the current state at once)
//!   and a heartbeat on `alicia/system/discovery/heartbeat`;
//! - on `alicia/system/health/check` (or an alias of it) addressed to this engine,
//!   to `broadcast` or to `capability:health`: a response correlated to the request
//!   (`payload.metadata.correlation_id`), on the engine's health topic;
//! - at stop: an unregistration, and the retained registration and report cleared so
//!   no stale "healthy" outlives the engine.
//!
//! Invalid check requests are the gatekeeper's to answer; this service ignores them.

use std::time::{Duration, Instant};

use alicia_broker::LocalClient;
use alicia_config::AliciaConfig;
use alicia_envelope::health::{HealthReport, HealthStatus, Heartbeat, ServiceRegistration, ServiceUnregistration};
use alicia_envelope::topics::{self, TopicAliases};
use alicia_envelope::{decode_within, Destination, Envelope};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

/// What the engine offers, for `capability:NAME` addressing.
const CAPABILITIES: [&str; 3] = ["mqtt-broker", "health", "envelope-validation"];

pub(crate) struct HealthService {
    name: String,
    interval: Duration,
    started: Instant,
    aliases: TopicAliases,
    check_filters: Vec<String>,
    checks_answered: u64,
    /// Larger check requests are not read (the gatekeeper tells their sender).
    max_envelope_bytes: usize,
}

impl HealthService {
    pub(crate) fn new(config: &AliciaConfig, aliases: TopicAliases) -> HealthService {
        // Subscribe to the canonical check topic and every legacy spelling of it.
        let mut check_filters = vec![topics::SYSTEM_HEALTH_CHECK.to_string()];
        check_filters.extend(
            config
                .topics
                .aliases
                .iter()
                .filter(|(_, canonical)| canonical.as_str() == topics::SYSTEM_HEALTH_CHECK)
                .map(|(legacy, _)| legacy.clone()),
        );
        HealthService {
            name: config.engine.name.clone(),
            interval: Duration::from_secs(config.services.heartbeat_interval_secs),
            started: Instant::now(),
            aliases,
            check_filters,
            checks_answered: 0,
            max_envelope_bytes: config.services.max_envelope_bytes,
        }
    }

    pub(crate) async fn run(mut self, mut client: LocalClient, stop: CancellationToken) {
        for filter in &self.check_filters {
            if let Err(e) = client.subscribe(filter).await {
                tracing::error!(error = %e, filter, "health service cannot subscribe");
                return;
            }
        }
        let registration = ServiceRegistration::new(&self.name, env!("CARGO_PKG_VERSION"), capabilities());
        publish(&mut client, topics::SYSTEM_DISCOVERY_REGISTER, registration.to_envelope().encode(), true).await;

        let check_seconds = metrics::histogram!("alicia_services_health_check_seconds");
        let inbox = client.inbox();
        let mut tick = tokio::time::interval(self.interval);
        loop {
            tokio::select! {
                _ = tick.tick() => self.beat(&mut client).await,
                message = inbox.recv_async() => match message {
                    Ok(message) => {
                        let topic = self.aliases.resolve(&message.topic);
                        if topic == topics::SYSTEM_HEALTH_CHECK {
                            let started = Instant::now();
                            if self.answer(&mut client, message.payload).await {
                                check_seconds.record(started.elapsed().as_secs_f64());
                            }
                        }
                    }
                    Err(_) => return,
                },
                _ = stop.cancelled() => break,
            }
        }
        let goodbye = ServiceUnregistration::new(&self.name);
        publish(&mut client, topics::SYSTEM_DISCOVERY_UNREGISTER, goodbye.to_envelope().encode(), false).await;
        // An empty retained payload deletes the retained message.
        publish(&mut client, topics::SYSTEM_DISCOVERY_REGISTER, Bytes::new(), true).await;
        publish(&mut client, &topics::health(&self.name), Bytes::new(), true).await;
        // The broker stops right after us: make sure the router has routed the goodbye.
        if !client.flush(Duration::from_secs(1)).await {
            tracing::warn!("goodbye may not have reached subscribers");
        }
    }

    fn report(&self) -> HealthReport {
        let mut report = HealthReport::new(&self.name, HealthStatus::Healthy, self.started.elapsed());
        report.version = Some(env!("CARGO_PKG_VERSION").to_string());
        report.messages_processed = self.checks_answered;
        report.mqtt_connected = Some(true);
        report.capabilities = capabilities();
        report
    }

    async fn beat(&self, client: &mut LocalClient) {
        let report = self.report();
        publish(client, &report.topic(), report.to_envelope().encode(), true).await;
        let heartbeat = Heartbeat::new(&self.name, HealthStatus::Healthy);
        publish(client, topics::SYSTEM_DISCOVERY_HEARTBEAT, heartbeat.to_envelope().encode(), false).await;
    }

    /// Answers a check addressed to this engine; true when it did.
    async fn answer(&mut self, client: &mut LocalClient, payload: Bytes) -> bool {
        let Ok(request) = decode_within(payload, self.max_envelope_bytes).await else { return false };
        // A check naming another service (`data.service`) is the monitor's to answer.
        let named = request.payload.data.get("service").and_then(serde_json::Value::as_str);
        if named.is_some_and(|name| name != self.name && name != "all") {
            return false;
        }
        let for_us = match &request.destination {
            Destination::Broadcast => true,
            Destination::Service(name) => *name == self.name,
            Destination::Capability(capability) => CAPABILITIES.contains(&capability.as_str()),
            Destination::Device(_) => false,
        };
        if !for_us || request.check_freshness(chrono::Utc::now()).is_err() {
            return false;
        }
        self.checks_answered += 1;
        let data = match serde_json::to_value(self.report()) {
            Ok(data) => data,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise health report");
                return false;
            }
        };
        let response = Envelope::response_to(&request, &self.name, data);
        publish(client, &topics::health(&self.name), response.encode(), false).await;
        true
    }
}

fn capabilities() -> Vec<String> {
    CAPABILITIES.iter().map(|c| c.to_string()).collect()
}

async fn publish(client: &mut LocalClient, topic: &str, payload: Bytes, retain: bool) {
    if let Err(e) = client.publish(topic, payload, retain).await {
        tracing::warn!(error = %e, topic, "health service cannot publish");
    }
}
