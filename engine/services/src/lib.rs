//! The engine's core services, each an in-process client of the bus.
//!
//! # Layout
//! - `health`: publishes the engine's health and discovery heartbeat every
//!   `heartbeat_interval`, registers at start, unregisters at stop, and answers
//!   `alicia/system/health/check` with a correlated response.
//! - `gatekeeper`: validates the envelope of every message on an `alicia/` request topic
//!   and answers an invalid one with an error event naming the field.
//! - `monitor`: the health monitor: every component's heartbeats, alerts raised and
//!   resolved, health checks for any service, the picture behind `GET /health`.
//! - this file: [`CoreServices`], which starts and stops them together.

mod gatekeeper;
mod health;
mod monitor;

pub use monitor::{MonitorInputs, MonitorView, MONITOR_NAME};

use std::collections::HashMap;

use alicia_broker::{BusHandle, LocalClient};
use alicia_config::AliciaConfig;
use alicia_envelope::topics::TopicAliases;
use tokio_util::sync::CancellationToken;

/// Why the services could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("cannot join the bus for the {service} service: {source}")]
    Link { service: &'static str, source: alicia_broker::LinkError },
    #[error("invalid topic alias in config: {0}")]
    Alias(String),
}

/// The running core services.
pub struct CoreServices {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl CoreServices {
    pub async fn start(config: &AliciaConfig, bus: &BusHandle) -> Result<CoreServices, ServicesError> {
        let aliases: HashMap<String, String> = config.topics.aliases.clone().into_iter().collect();
        let aliases = TopicAliases::new(aliases).map_err(|e| ServicesError::Alias(e.to_string()))?;
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();

        let client = connect(bus, "health").await?;
        let health = health::HealthService::new(config, aliases.clone());
        tasks.push(tokio::spawn(health.run(client, stop.clone())));

        if config.services.validate_envelopes {
            let client = connect(bus, "gatekeeper").await?;
            let limit = config.services.max_envelope_bytes;
            tasks.push(tokio::spawn(gatekeeper::run(client, aliases, limit, stop.clone())));
        }
        Ok(CoreServices { stop, tasks })
    }

    /// Starts the health monitor (unless `[monitor] enabled = false`); its view is
    /// what `GET /health` shows.
    pub async fn start_monitor(
        &mut self,
        config: &AliciaConfig,
        bus: &BusHandle,
        inputs: MonitorInputs,
    ) -> Result<Option<MonitorView>, ServicesError> {
        if !config.monitor.enabled {
            return Ok(None);
        }
        let aliases: HashMap<String, String> = config.topics.aliases.clone().into_iter().collect();
        let aliases = TopicAliases::new(aliases).map_err(|e| ServicesError::Alias(e.to_string()))?;
        let client = connect(bus, "monitor").await?;
        let (view, spawn) = monitor::build(config, aliases, inputs);
        self.tasks.push(spawn(client, self.stop.clone()));
        Ok(Some(view))
    }

    /// Stops every service; health says goodbye on the bus first.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn connect(bus: &BusHandle, service: &'static str) -> Result<LocalClient, ServicesError> {
    LocalClient::connect(bus, service).await.map_err(|source| ServicesError::Link { service, source })
}
