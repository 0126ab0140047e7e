//! `POST /auth/device`: a device proves who it is with its client certificate and gets
//! a short-lived token, its MQTT password (username = its device id).
//!
//! A listener of its own (`[http] tls_listen`), HTTPS only, serving this one endpoint:
//! the client certificate is required by the TLS handshake itself, so a peer without
//! one (or with one the CA did not sign, or the CRL revokes) never reaches HTTP, and
//! nothing else of the API is reachable with a device's certificate. The device id is
//! the certificate's CN. Handshake refusals are counted in
//! `alicia_security_refusals_total{listener="device_auth",reason}` (the handshake's
//! `error_type`); the connection caps and clocks are the HTTP door's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use alicia_auth::device_token::{self, TokenKey};
use alicia_supervisor::LogThrottle;
use alicia_tls::{HandshakeError, TlsAcceptor, TlsSettings};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Router};
use metrics::Counter;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::serve::{serve, Refusals};
use crate::{HttpError, HttpLimits, SECURITY_REFUSALS_TOTAL};

/// The `listener` label of this door's refusals.
const LISTENER: &str = "device_auth";
/// Every reason a handshake can fail for, so the counters exist from the start.
const HANDSHAKE_REASONS: [&str; 6] = [
    "handshake_timeout",
    "certificate_required",
    "certificate_untrusted",
    "certificate_revoked",
    "tls_protocol",
    "connection_lost",
];
/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the endpoint needs.
#[derive(Debug, Clone)]
pub struct DeviceAuthSettings {
    pub listen: SocketAddr,
    /// Server certificate and key, the devices' CA and CRL; a client certificate must
    /// be required (`require_certificate`), or the endpoint would not know who asks.
    pub tls: TlsSettings,
    pub key: TokenKey,
    pub ttl: Duration,
    /// The door's caps and clocks; the handshake must be done within `header_timeout`.
    pub limits: HttpLimits,
}

/// A running `POST /auth/device` listener.
pub struct DeviceAuthServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Issuer {
    key: TokenKey,
    ttl: Duration,
}

/// The verified certificate's CN, put on the request by the accept loop.
#[derive(Debug, Clone)]
struct DeviceId(String);

impl DeviceAuthServer {
    /// Builds the TLS config (an error names the bad file) and binds now.
    pub async fn start(settings: DeviceAuthSettings) -> Result<DeviceAuthServer, HttpError> {
        if !settings.tls.require_certificate {
            return Err(HttpError::Tls("POST /auth/device needs client certificates required".into()));
        }
        let config = alicia_tls::build_server_config(&settings.tls).map_err(|e| HttpError::Tls(e.to_string()))?;
        let acceptor = TlsAcceptor::from(config);
        let listen = settings.listen;
        let listener = TcpListener::bind(listen).await.map_err(|source| HttpError::Bind { addr: listen, source })?;
        let addr = listener.local_addr().map_err(|source| HttpError::Bind { addr: listen, source })?;
        let app = Router::new()
            .route("/auth/device", post(issue_token))
            .with_state(Issuer { key: settings.key, ttl: settings.ttl });
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, acceptor, app, settings.limits, stop.clone()));
        tracing::info!(%addr, "device token listener ready (POST /auth/device, client certificates required)");
        Ok(DeviceAuthServer { addr, stop, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn issue_token(
    State(issuer): State<Issuer>,
    Extension(DeviceId(device)): Extension<DeviceId>,
) -> impl IntoResponse {
    let token = device_token::issue(&issuer.key, &device, issuer.ttl, SystemTime::now());
    tracing::info!(device, ttl_secs = issuer.ttl.as_secs(), "device token issued");
    let body = serde_json::json!({
        "device_id": device,
        "token": token,
        "expires_in": issuer.ttl.as_secs(),
        "token_type": "Bearer",
    });
    // A token is a credential: no cache may keep it (RFC 6749 §5.1).
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
        body.to_string(),
    )
}

struct HandshakeRefusals {
    counters: Vec<Counter>,
    logs: LogThrottle,
}

impl HandshakeRefusals {
    fn new() -> Self {
        let counters = HANDSHAKE_REASONS
            .iter()
            .map(|reason| metrics::counter!(SECURITY_REFUSALS_TOTAL, "listener" => LISTENER, "reason" => *reason))
            .collect();
        Self { counters, logs: LogThrottle::new(LogThrottle::INTERVAL) }
    }

    fn refused(&self, peer: SocketAddr, error: &HandshakeError) {
        let reason = error.error_type();
        if let Some(counter) = HANDSHAKE_REASONS.iter().position(|r| *r == reason).and_then(|i| self.counters.get(i)) {
            counter.increment(1);
        }
        if let Some(suppressed) = self.logs.allow(reason) {
            tracing::warn!(%peer, reason, %error, suppressed, "device token listener refused a handshake");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    limits: HttpLimits,
    stop: CancellationToken,
) {
    let refusals = Arc::new(Refusals::new());
    let handshakes = Arc::new(HandshakeRefusals::new());
    let admission = Admission::new(
        limits.max_connections,
        limits.max_connections_per_source,
        metrics::gauge!(crate::CONNECTIONS_ACTIVE),
    );
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::debug!(error = %err, "device token listener: accept failed");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
                continue;
            }
        };
        // Over a cap the socket is closed: no plain-text answer can be read on a TLS port.
        let Ok(slot) = admission.admit(peer.ip()) else { continue };
        let (acceptor, app, refusals, handshakes, stop) =
            (acceptor.clone(), app.clone(), Arc::clone(&refusals), Arc::clone(&handshakes), stop.clone());
        connections.spawn(async move {
            match alicia_tls::accept(&acceptor, tcp, limits.header_timeout).await {
                Err(error) => handshakes.refused(peer, &error),
                Ok(tls) => match alicia_tls::peer_identity(tls.get_ref().1) {
                    Some(device) => {
                        let app = app.layer(Extension(DeviceId(device)));
                        serve(tls, peer, app, limits, &refusals, stop).await;
                    }
                    // A verified certificate without a text CN names no device.
                    None => tracing::warn!(%peer, "device certificate has no common name; closed"),
                },
            }
            drop(slot);
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}
