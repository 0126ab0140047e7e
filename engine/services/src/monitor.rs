//! The health monitor (a core service of the seeds): follows every service's and
//! device's heartbeats, judges each component healthy / degraded / unhealthy (as
//! reported) or offline (silent for `[monitor] heartbeat_timeout_secs`, or at once on
//! its last will or goodbye), raises and resolves alerts on `alicia/monitoring/alerts`,
//! answers `alicia/system/health/check` for any service, and keeps the picture that
//! `GET /health` shows.
//!
//! It reads `alicia/system/health/+`, `alicia/system/discovery/heartbeat` and
//! `.../unregister`, `alicia/devices/+/status` (when its status is a health state), and
//! every configured legacy alias of those. An invalid or oversized message there is
//! counted (`alicia_monitor_heartbeats_refused_total{reason}`) and skipped; its sender
//! hears of it from the gatekeeper. Components are capped at `max_components`; a new
//! one past the cap is counted and dropped, with a warning at most once a minute.
//!
//! A check names its service with `payload.data.service` (or `"all"`), or by being
//! addressed to it. The engine answers for itself (see `health`); this service answers
//! for every other name, and for `"all"`, on `alicia/system/health/health_monitor` (or
//! the request's `payload.metadata.response_topic`), correlated to the request.
//!
//! # Layout
//! - `heartbeat`: what a message says about a component.
//! - `picture`: the bounded table of components and their alerts.
//! - `alerts`: alerts with stable ids, raised once and resolved once.
//! - `engine_meters`: alerts from the engine's own meters (drops, error rate, queues).

mod alerts;
mod engine_meters;
mod heartbeat;
mod picture;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alicia_broker::LocalClient;
use alicia_config::AliciaConfig;
use alicia_envelope::topics::{self, TopicAliases};
use alicia_envelope::{decode_within, Destination, Envelope};
use alicia_supervisor::Supervisor;
use metrics::{counter, gauge};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use alerts::AlertEvent;
use engine_meters::{EngineMeters, Thresholds};
use heartbeat::{Observation, Source};
use picture::Picture;

/// The monitor's name on the bus: the `source` of its alerts and answers.
pub const MONITOR_NAME: &str = "health_monitor";

/// The filters the monitor reads (their legacy aliases are added from the config).
const FILTERS: [&str; 5] = [
    topics::SYSTEM_HEALTH_ALL,
    topics::SYSTEM_DISCOVERY_HEARTBEAT,
    topics::SYSTEM_DISCOVERY_UNREGISTER,
    "alicia/devices/+/status",
    topics::SYSTEM_HEALTH_CHECK,
];

/// Between warnings about a full component table.
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);

/// What the monitor reads besides the bus: the engine's meters (the Prometheus page)
/// and its supervised components.
#[derive(Clone)]
pub struct MonitorInputs {
    pub metrics_page: Arc<dyn Fn() -> String + Send + Sync>,
    pub supervisor: Supervisor,
}

/// The monitor's picture, for `GET /health`. Cheap to clone.
#[derive(Clone)]
pub struct MonitorView {
    picture: Arc<Mutex<Picture>>,
    supervisor: Supervisor,
}

impl MonitorView {
    /// Every component with its state and last heartbeat's age, the engine's own
    /// supervised parts, and the open alerts.
    pub fn overview(&self) -> Value {
        let picture = self.picture.lock();
        let (components, mut alerts) = picture.to_json(Instant::now());
        let mut status = picture.overall();
        drop(picture);
        let mut engine = serde_json::Map::new();
        for part in self.supervisor.snapshot() {
            engine.insert(part.name.clone(), json!({"up": part.up, "restarts": part.restarts}));
            if !part.up {
                status = "unhealthy";
                alerts.push(json!({
                    "alert_id": format!("component_down:{}", part.name),
                    "type": "component_down",
                    "severity": "critical",
                    "component": part.name,
                    "cause": part.last_failure,
                }));
            }
        }
        json!({
            "status": status,
            "components": components,
            "engine_components": engine,
            "alerts": alerts,
        })
    }
}

struct Monitor {
    engine_name: String,
    aliases: TopicAliases,
    filters: Vec<String>,
    max_envelope_bytes: usize,
    picture: Arc<Mutex<Picture>>,
    inputs: MonitorInputs,
    meters: EngineMeters,
    metrics_every: Duration,
    sweep_every: Duration,
    last_full_warning: Option<Instant>,
    full_suppressed: u64,
}

/// Builds the monitor; run it with [`run`].
pub(crate) fn build(
    config: &AliciaConfig,
    aliases: TopicAliases,
    inputs: MonitorInputs,
) -> (MonitorView, impl FnOnce(LocalClient, CancellationToken) -> tokio::task::JoinHandle<()>) {
    let settings = &config.monitor;
    let timeout = Duration::from_secs(settings.heartbeat_timeout_secs);
    let picture = Arc::new(Mutex::new(Picture::new(settings.max_components, timeout)));
    let mut filters: Vec<String> = FILTERS.iter().map(|f| f.to_string()).collect();
    for (legacy, canonical) in &config.topics.aliases {
        if FILTERS.contains(&canonical.as_str()) {
            filters.push(legacy.clone());
        }
    }
    describe_metrics();
    let monitor = Monitor {
        engine_name: config.engine.name.clone(),
        aliases,
        filters,
        max_envelope_bytes: config.services.max_envelope_bytes,
        picture: Arc::clone(&picture),
        inputs: inputs.clone(),
        meters: EngineMeters::new(Thresholds {
            dropped_per_minute: settings.dropped_messages_per_minute,
            invalid_per_minute: settings.invalid_envelopes_per_minute,
            queued_bytes: settings.queued_bytes_alert,
        }),
        metrics_every: Duration::from_secs(settings.metrics_interval_secs.max(1)),
        sweep_every: (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5)),
        last_full_warning: None,
        full_suppressed: 0,
    };
    let view = MonitorView { picture, supervisor: inputs.supervisor };
    (view, move |client, stop| tokio::spawn(monitor.run(client, stop)))
}

fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!("alicia_monitor_components", "components the health monitor follows");
    describe_gauge!("alicia_monitor_alerts_open", "alerts the health monitor has raised and not resolved");
    describe_counter!("alicia_monitor_heartbeats_total", "heartbeats and health reports the monitor took in");
    describe_counter!("alicia_monitor_heartbeats_refused_total", "heartbeats the monitor could not use, by reason");
    describe_counter!("alicia_monitor_alerts_total", "alerts the health monitor raised or resolved, by status");
}

impl Monitor {
    async fn run(mut self, mut client: LocalClient, stop: CancellationToken) {
        for filter in &self.filters {
            if let Err(e) = client.subscribe(filter).await {
                tracing::error!(error = %e, filter, "health monitor cannot subscribe");
                return;
            }
        }
        let inbox = client.inbox();
        let mut sweep = tokio::time::interval(self.sweep_every);
        let mut read_meters = tokio::time::interval(self.metrics_every);
        loop {
            let events = tokio::select! {
                _ = stop.cancelled() => return,
                _ = sweep.tick() => self.picture.lock().sweep(Instant::now()),
                _ = read_meters.tick() => self.judge_meters(),
                message = inbox.recv_async() => match message {
                    Ok(message) => self.take(&mut client, message).await,
                    Err(_) => return,
                },
            };
            self.publish_alerts(&mut client, events).await;
        }
    }

    async fn take(&mut self, client: &mut LocalClient, message: alicia_broker::LocalMessage) -> Vec<AlertEvent> {
        let topic = self.aliases.resolve(&message.topic).into_owned();
        let Some(source) = heartbeat::source_of(&topic) else { return Vec::new() };
        let observation = if message.payload.is_empty() {
            // An emptied retained health report: the service's goodbye.
            match &source {
                Source::Health(name) => heartbeat::checked_name(name).map(|name| Some(Observation::Offline { name })),
                _ => Ok(None),
            }
        } else {
            match decode_within(message.payload, self.max_envelope_bytes).await {
                Err(_) => Err(heartbeat::Refused::Invalid),
                Ok(envelope) if source == Source::Check => {
                    self.answer(client, envelope).await;
                    return Vec::new();
                }
                Ok(envelope) => heartbeat::observe(&source, &envelope),
            }
        };
        let observation = match observation {
            Ok(Some(observation)) => observation,
            Ok(None) => return Vec::new(),
            Err(refused) => {
                counter!("alicia_monitor_heartbeats_refused_total", "reason" => refused.as_label()).increment(1);
                return Vec::new();
            }
        };
        counter!("alicia_monitor_heartbeats_total").increment(1);
        let result = self.picture.lock().observe(observation, Instant::now());
        match result {
            Ok(events) => events,
            Err(picture::Full) => {
                counter!("alicia_monitor_heartbeats_refused_total", "reason" => "too_many_components").increment(1);
                self.warn_full();
                Vec::new()
            }
        }
    }

    fn warn_full(&mut self) {
        if self.last_full_warning.is_some_and(|at| at.elapsed() < FULL_WARNING_EVERY) {
            self.full_suppressed += 1;
            return;
        }
        let limit = self.picture.lock().len();
        tracing::warn!(
            limit,
            suppressed = self.full_suppressed,
            "health monitor follows [monitor] max_components already; heartbeats of new components dropped"
        );
        self.last_full_warning = Some(Instant::now());
        self.full_suppressed = 0;
    }

    fn judge_meters(&mut self) -> Vec<AlertEvent> {
        let page = (self.inputs.metrics_page)();
        let verdicts = self.meters.judge(&page, Instant::now());
        let mut picture = self.picture.lock();
        verdicts.into_iter().filter_map(|(alert, holds)| picture.condition(alert, holds)).collect()
    }

    async fn publish_alerts(&self, client: &mut LocalClient, events: Vec<AlertEvent>) {
        if events.is_empty() {
            return;
        }
        let (components, open) = {
            let picture = self.picture.lock();
            (picture.len(), picture.open_alerts())
        };
        gauge!("alicia_monitor_components").set(components as f64);
        gauge!("alicia_monitor_alerts_open").set(open as f64);
        for event in events {
            let status = if matches!(event, AlertEvent::Raised(_)) { "raised" } else { "resolved" };
            counter!("alicia_monitor_alerts_total", "status" => status).increment(1);
            let envelope = event.to_envelope(MONITOR_NAME).encode();
            if let Err(e) = client.publish(topics::MONITORING_ALERTS, envelope, false).await {
                tracing::warn!(error = %e, "health monitor cannot publish an alert");
            }
        }
    }

    /// Answers a check naming a service other than the engine, or `all`.
    async fn answer(&self, client: &mut LocalClient, request: Envelope) {
        if request.check_freshness(chrono::Utc::now()).is_err() {
            return;
        }
        let named = request.payload.data.get("service").and_then(Value::as_str).map(str::to_string);
        let addressed_to_us = request.destination == Destination::Service(MONITOR_NAME.into());
        let target = match (named, &request.destination) {
            (Some(name), _) => name,
            (None, Destination::Service(name)) if !addressed_to_us => name.clone(),
            (None, _) if addressed_to_us => "all".to_string(),
            _ => return,
        };
        if target == self.engine_name && !addressed_to_us {
            return;
        }
        let data = self.state_of(&target);
        let response = Envelope::response_to(&request, MONITOR_NAME, data);
        let topic = request
            .payload
            .metadata
            .get("response_topic")
            .and_then(Value::as_str)
            .filter(|t| topics::is_valid_topic(t))
            .map_or_else(|| topics::health(MONITOR_NAME), str::to_string);
        if let Err(e) = client.publish(topic, response.encode(), false).await {
            tracing::warn!(error = %e, "health monitor cannot answer a check");
        }
    }

    fn state_of(&self, target: &str) -> Value {
        if target == "all" {
            let view = MonitorView { picture: Arc::clone(&self.picture), supervisor: self.inputs.supervisor.clone() };
            let mut all = view.overview();
            all["service"] = "all".into();
            return all;
        }
        if let Some(mut entry) = self.picture.lock().component_json(target, Instant::now()) {
            entry["service"] = target.into();
            return entry;
        }
        if let Some(part) = self.inputs.supervisor.snapshot().into_iter().find(|p| p.name == target) {
            let state = if part.up { "healthy" } else { "offline" };
            return json!({"service": target, "state": state, "restarts": part.restarts, "engine_component": true});
        }
        json!({"service": target, "state": "unknown"})
    }
}

/// RFC 3339 in UTC with milliseconds, as the envelope's timestamps.
pub(crate) fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
