//! The bearer token check (`[http] token_file`), in front of every route.
//!
//! With a token configured, a request needs `Authorization: Bearer <token>`; the one
//! exception is `/metrics`, `/healthz` and `/health` asked from a loopback peer, so a local
//! Prometheus or service manager needs no secret. The same paths from any other
//! address need the token: an exposed API gives nothing away, its health included.
//! Without a token (possible only on a loopback listener, `check-config` sees to it)
//! every request passes. A refusal is `401` with `WWW-Authenticate: Bearer` and a small
//! JSON body, counted in `alicia_security_refusals_total{listener="http",reason}` (the
//! broker's meter, same labels) and logged once per reason per ten seconds.

use std::net::SocketAddr;
use std::sync::Arc;

use alicia_auth::BearerToken;
use alicia_supervisor::LogThrottle;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use metrics::Counter;

/// The meter the broker's `[security]` refusals share; `listener="http"` here.
pub const SECURITY_REFUSALS_TOTAL: &str = "alicia_security_refusals_total";

/// Paths a loopback peer may ask without the token.
const OPEN_ON_LOOPBACK: [&str; 3] = ["/metrics", "/healthz", "/health"];

/// The connection's peer, put on each request by the accept loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

/// Why a request was turned away; the label of its refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    MissingToken,
    BadToken,
}

impl Refusal {
    fn as_label(self) -> &'static str {
        match self {
            Refusal::MissingToken => "missing_token",
            Refusal::BadToken => "bad_token",
        }
    }
}

pub(crate) struct Gate {
    token: Option<BearerToken>,
    missing_token: Counter,
    bad_token: Counter,
    logs: LogThrottle,
}

impl Gate {
    pub(crate) fn new(token: Option<BearerToken>) -> Arc<Gate> {
        metrics::describe_counter!(
            SECURITY_REFUSALS_TOTAL,
            metrics::Unit::Count,
            "clients refused by [security]: credentials, ACL, by reason"
        );
        let counter =
            |reason: &'static str| metrics::counter!(SECURITY_REFUSALS_TOTAL, "listener" => "http", "reason" => reason);
        Arc::new(Gate {
            token,
            missing_token: counter(Refusal::MissingToken.as_label()),
            bad_token: counter(Refusal::BadToken.as_label()),
            logs: LogThrottle::new(LogThrottle::INTERVAL),
        })
    }

    fn judge(&self, peer: SocketAddr, path: &str, authorization: Option<&HeaderValue>) -> Result<(), Refusal> {
        let Some(token) = &self.token else { return Ok(()) };
        if peer.ip().to_canonical().is_loopback() && OPEN_ON_LOOPBACK.contains(&path) {
            return Ok(());
        }
        let Some(value) = authorization else { return Err(Refusal::MissingToken) };
        // The scheme is case-insensitive (RFC 9110 §11.1); anything else is a wrong token.
        let value = value.as_bytes();
        let presented = match value.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => value.get(7..).unwrap_or_default(),
            _ => return Err(Refusal::BadToken),
        };
        if token.matches(presented.trim_ascii()) {
            Ok(())
        } else {
            Err(Refusal::BadToken)
        }
    }

    fn refused(&self, refusal: Refusal, peer: SocketAddr, path: &str) -> Response {
        match refusal {
            Refusal::MissingToken => self.missing_token.increment(1),
            Refusal::BadToken => self.bad_token.increment(1),
        }
        let reason = refusal.as_label();
        if let Some(suppressed) = self.logs.allow(reason) {
            tracing::warn!(%peer, path, reason, suppressed, "http request refused: no valid bearer token");
        }
        let body = serde_json::json!({
            "error": reason,
            "message": "this API needs an Authorization: Bearer <token> header with the token of [http] token_file",
        });
        let challenge = match refusal {
            Refusal::MissingToken => "Bearer",
            Refusal::BadToken => "Bearer error=\"invalid_token\"",
        };
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge), (header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// The middleware: passes a request on, or answers `401`.
pub(crate) async fn require_token(
    State(gate): State<Arc<Gate>>,
    Extension(Peer(peer)): Extension<Peer>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION);
    match gate.judge(peer, request.uri().path(), authorization) {
        Ok(()) => next.run(request).await,
        Err(refusal) => gate.refused(refusal, peer, request.uri().path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-http";

    fn gate() -> Arc<Gate> {
        Gate::new(Some(BearerToken::new(TOKEN).unwrap()))
    }

    fn judge(gate: &Gate, peer: &str, path: &str, authorization: Option<&str>) -> Result<(), Refusal> {
        let header = authorization.map(|value| HeaderValue::from_str(value).unwrap());
        gate.judge(peer.parse().unwrap(), path, header.as_ref())
    }

    #[test]
    fn loopback_peers_read_metrics_and_health_without_the_token() {
        let gate = gate();
        for peer in ["127.0.0.1:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"] {
            assert_eq!(judge(&gate, peer, "/metrics", None), Ok(()), "{peer}");
            assert_eq!(judge(&gate, peer, "/healthz", None), Ok(()), "{peer}");
            assert_eq!(judge(&gate, peer, "/registry", None), Err(Refusal::MissingToken), "{peer}");
        }
        assert_eq!(judge(&gate, "10.0.0.5:5000", "/metrics", None), Err(Refusal::MissingToken));
        assert_eq!(judge(&gate, "10.0.0.5:5000", "/healthz", None), Err(Refusal::MissingToken));
    }

    #[test]
    fn only_the_right_token_passes() {
        let gate = gate();
        let peer = "10.0.0.5:5000";
        assert_eq!(judge(&gate, peer, "/metrics", Some(&format!("Bearer {TOKEN}"))), Ok(()));
        assert_eq!(judge(&gate, peer, "/metrics", Some(&format!("bearer  {TOKEN} "))), Ok(()));
        assert_eq!(judge(&gate, peer, "/metrics", Some("Bearer wrong-token-0123456789")), Err(Refusal::BadToken));
        assert_eq!(judge(&gate, peer, "/metrics", Some(&format!("Basic {TOKEN}"))), Err(Refusal::BadToken));
        assert_eq!(judge(&gate, peer, "/metrics", Some("Bearer")), Err(Refusal::BadToken));
        assert_eq!(judge(&gate, peer, "/metrics", Some("")), Err(Refusal::BadToken));
    }

    #[test]
    fn without_a_token_everything_passes() {
        let gate = Gate::new(None);
        assert_eq!(judge(&gate, "10.0.0.5:5000", "/anything", None), Ok(()));
    }
}
