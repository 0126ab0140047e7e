//! The engine's HTTP API: Prometheus `/metrics` and `/healthz`.
//!
//! # Layout
//! - [`recorder`]: installs the process's one Prometheus recorder.
//! - this file: the server (axum) and its routes.

pub mod recorder;

use std::net::SocketAddr;
use std::sync::Arc;

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
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot bind HTTP listener on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    health: Arc<dyn HealthSource>,
}

/// A running HTTP server.
pub struct HttpServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Binds now (a taken port is an error naming it) and serves in the background.
    pub async fn start(
        listen: SocketAddr,
        metrics: PrometheusHandle,
        health: Arc<dyn HealthSource>,
    ) -> Result<HttpServer, HttpError> {
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|source| HttpError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| HttpError::Bind { addr: listen, source })?;
        let app = Router::new()
            .route("/metrics", get(metrics_page))
            .route("/healthz", get(healthz))
            .with_state(AppState { metrics, health });
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let served =
                axum::serve(listener, app).with_graceful_shutdown(async move { until.cancelled().await }).await;
            if let Err(e) = served {
                tracing::error!(error = %e, "http server failed");
            }
        });
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
