//! The engine's HTTP API: Prometheus `/metrics`, `/healthz` (the engine's own parts)
//! and `/health` (the health monitor's picture of every component on the bus).
//!
//! The door has limits ([`HttpLimits`], `[http]` in `alicia.toml`): a header timeout
//! (slowloris), a request timeout, connections in total and per source address. Over a
//! cap a client gets `503` or `429` at once; every refusal or cut is counted in
//! `alicia_http_refused_total{reason}` (the limit's config key).
//!
//! With a bearer token (`[http] token_file`) every request needs it, except `/metrics`,
//! `/healthz` and `/health` from a loopback peer; see `gate`.
//!
//! # Layout
//! - [`recorder`]: installs the process's one Prometheus recorder.
//! - `serve`: the listener, hyper per connection, the timeouts and the refusals.
//! - `admission`: the connection caps.
//! - `gate`: the bearer token check and its refusals (`401`).
//! - `backup`: `GET /store/backup`, the durable store's online backup as a stream.
//! - [`device_auth`]: [`DeviceAuthServer`], the HTTPS listener of `POST /auth/device`
//!   (mutual TLS in, a device token out), and [`DeviceAuthSettings`].
//! - this file: [`HttpServer`], [`HttpLimits`] and the routes (axum).

mod admission;
mod backup;
pub mod device_auth;
mod gate;
pub mod recorder;
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alicia_auth::BearerToken;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

/// Reports the engine's health as JSON; `healthy == false` answers 503.
pub trait HealthSource: Send + Sync + 'static {
    fn health(&self) -> (bool, serde_json::Value);

    /// The health monitor's whole picture for `GET /health`; `None` (404) when the
    /// monitor is off.
    fn overview(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Writes an online backup of the engine's durable store (`GET /store/backup`).
pub trait BackupSource: Send + Sync + 'static {
    fn write_backup(&self, out: &mut dyn std::io::Write) -> Result<(), String>;
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot bind HTTP listener on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("device token listener: {0}")]
    Tls(String),
}

pub use device_auth::{DeviceAuthServer, DeviceAuthSettings};
pub use gate::SECURITY_REFUSALS_TOTAL;
pub use serve::{CONNECTIONS_ACTIVE, REFUSED_TOTAL};

/// The door's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// All of a request's headers must be in within this of the connection's start.
    pub header_timeout: Duration,
    /// A connection (one request) must be read and answered within this.
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_source: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_connections: 64,
            max_connections_per_source: 16,
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    health: Arc<dyn HealthSource>,
    backup: Option<Arc<dyn BackupSource>>,
}

/// A running HTTP server.
pub struct HttpServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Binds now (a taken port is an error naming it) and serves in the background.
    /// With `token`, requests need it as `Authorization: Bearer` (see the module doc).
    pub async fn start(
        listen: SocketAddr,
        limits: HttpLimits,
        token: Option<BearerToken>,
        metrics: PrometheusHandle,
        health: Arc<dyn HealthSource>,
        backup: Option<Arc<dyn BackupSource>>,
    ) -> Result<HttpServer, HttpError> {
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|source| HttpError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| HttpError::Bind { addr: listen, source })?;
        let app = Router::new()
            .route("/metrics", get(metrics_page))
            .route("/healthz", get(healthz))
            .route("/health", get(health_overview))
            .route("/store/backup", get(backup::store_backup))
            .with_state(AppState { metrics, health, backup })
            .layer(axum::middleware::from_fn_with_state(gate::Gate::new(token), gate::require_token));
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve::accept_loop(listener, app, limits, stop.clone()));
        tracing::info!(%addr, "http listener ready");
        Ok(HttpServer { addr, stop, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn metrics_page(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let (healthy, body) = state.health.health();
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string())
}

async fn health_overview(State(state): State<AppState>) -> impl IntoResponse {
    match state.health.overview() {
        Some(body) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"the health monitor is off ([monitor] enabled = false)"}"#.to_string(),
        ),
    }
}
