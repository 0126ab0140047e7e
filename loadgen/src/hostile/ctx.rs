//! What a step gets to work with (addresses, scale, a run id of its own) and what it
//! gives back: the answers its hostile clients got, and its own checks.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use tokio::net::TcpStream;

use super::plan::Scale;
use crate::client::{self, Client, Next};
use crate::http;
use crate::ordinary;
use crate::packet::{Connect, Version};

/// How long a hostile client waits for an answer before calling it silence.
pub const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// Connect and handshake timeout of the step's own clients.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Ctx {
    pub mqtt: SocketAddr,
    /// The engine's HTTP API; none for mosquitto.
    pub http: Option<SocketAddr>,
    pub wyoming: Option<SocketAddr>,
    pub scale: Scale,
    /// Unique per step, so no step sees another's topics or client ids.
    pub run: String,
    /// How long the ordinary client may take to get through.
    pub probe_budget: Duration,
}

/// One check a step makes beyond the bus checks every step gets.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    /// A must fails the step; otherwise it is recorded for the report.
    pub must: bool,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// What the hostile clients got back, one line each.
    pub answers: Vec<String>,
    pub checks: Vec<Check>,
}

impl Outcome {
    pub fn answer(&mut self, line: impl Into<String>) {
        self.answers.push(line.into());
    }

    pub fn must(&mut self, what: impl Into<String>, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check { what: what.into(), must: true, passed, detail: detail.into() });
    }

    pub fn observe(&mut self, what: impl Into<String>, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check { what: what.into(), must: false, passed, detail: detail.into() });
    }
}

impl Ctx {
    pub fn topic(&self, leaf: &str) -> String {
        format!("loadgen/hostile/{}/{leaf}", self.run)
    }

    pub fn client_id(&self, what: &str) -> String {
        format!("lg-{}-{what}", self.run)
    }

    /// A connected client with a clean session and no keep-alive.
    pub async fn connect(&self, version: Version, what: &str) -> Result<Client> {
        Client::connect(self.mqtt, &Connect::new(version, self.client_id(what), 0), CLIENT_TIMEOUT).await
    }

    pub async fn tcp(&self) -> Result<TcpStream> {
        client::tcp(self.mqtt, None, CLIENT_TIMEOUT).await
    }

    /// Sends `bytes` and says what came back until the connection ended or the broker
    /// was silent for [`ANSWER_WAIT`]: `DISCONNECT 0x81 (malformed packet), then connection closed`.
    pub async fn answer_to(&self, client: &mut Client, bytes: &[u8]) -> String {
        if let Err(e) = client.send(bytes).await {
            return format!("write failed: {}", client::io_end(&e).describe(client.version));
        }
        listen(client).await
    }

    /// The ordinary client (and /healthz) now, while the step's hostile state is held.
    pub async fn bus_now(&self, out: &mut Outcome, during: &str) {
        match ordinary::through(self.mqtt, self.probe_budget).await {
            Ok(t) => out.must(format!("ordinary client through {during}"), true, format!("{:.1} ms", t.round_trip_ms)),
            Err(e) => out.must(format!("ordinary client through {during}"), false, e),
        }
        if let Some(http) = self.http {
            let (ok, detail) = healthz(http).await;
            out.must(format!("/healthz 200 {during}"), ok, detail);
        }
    }
}

/// What a broker says until the connection ends or it is silent for [`ANSWER_WAIT`].
pub async fn listen(client: &mut Client) -> String {
    let mut said = Vec::new();
    loop {
        let next = client.next(ANSWER_WAIT).await;
        let end = !matches!(next, Next::Packet(_)) || said.len() >= 4;
        if next == Next::TimedOut {
            said.push(if said.is_empty() { "no answer, connection kept open".to_string() } else { "silence".into() });
        } else {
            said.push(next.describe(client.version));
        }
        if end {
            return said.join(", then ");
        }
    }
}

/// `GET /healthz`: (200?, what it said).
pub async fn healthz(http: SocketAddr) -> (bool, String) {
    match http::get(http, "/healthz", Duration::from_secs(5)).await {
        Ok(r) => {
            let body: String = r.body.chars().take(120).collect();
            (r.status == 200, format!("{} in {:.1} ms: {body}", r.status, r.elapsed.as_secs_f64() * 1_000.0))
        }
        Err(e) => (false, format!("{e:#}")),
    }
}
