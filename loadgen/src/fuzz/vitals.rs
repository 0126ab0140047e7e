//! The engine's vital signs, taken between batches of cases: the process is alive,
//! `/healthz` answers 200, an ordinary MQTT client on a fresh connection subscribes,
//! publishes at QoS 1 and receives its own message, and the resident memory is under
//! the budget. The kernel's high-water mark (VmHWM) is read as well as the current
//! RSS, so a spike between two checks is not missed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::wire::{self, Packet};

/// Generous: the engine answers in milliseconds, but a debug build on two busy cores
/// with Whisper running may take a while, and only a real failure should fail a run.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a process's `/proc/PID/status` says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ProcStatus {
    /// `Z` (zombie) and `X` (dead) mean the process is gone though its entry is not.
    pub state: char,
    pub rss_mb: f64,
    pub hwm_mb: f64,
}

pub(crate) fn proc_status(pid: u32) -> Option<ProcStatus> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&text)
}

fn parse_status(text: &str) -> Option<ProcStatus> {
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
    let kb = |name: &str| field(name).and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok());
    let state = field("State:")?.chars().next()?;
    Some(ProcStatus {
        state,
        rss_mb: kb("VmRSS:").unwrap_or(0.0) / 1024.0,
        hwm_mb: kb("VmHWM:").unwrap_or(0.0) / 1024.0,
    })
}

/// One check's findings.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Seconds since the fuzzing started.
    pub at_s: f64,
    pub cases: u64,
    pub rss_mb: Option<f64>,
    pub hwm_mb: Option<f64>,
    pub health_ms: Option<f64>,
    pub probe_ms: Option<f64>,
    /// What the engine says it holds (`/metrics` gauges), to tell growth within its
    /// limits from growth outside them.
    pub held: Option<Held>,
    pub failures: Vec<String>,
}

/// The engine's own gauges of what it holds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Held {
    pub queued_mb: f64,
    pub retained_mb: f64,
    pub retained_messages: f64,
    pub sessions: f64,
    pub connections: f64,
    pub log_lag_mb: f64,
}

impl Held {
    fn from_metrics(text: &str) -> Held {
        let value = |name: &str| {
            text.lines()
                .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        };
        const MB: f64 = 1024.0 * 1024.0;
        Held {
            queued_mb: value("alicia_mqtt_queued_bytes") / MB,
            retained_mb: value("alicia_mqtt_retained_bytes") / MB,
            retained_messages: value("alicia_mqtt_retained_messages"),
            sessions: value("alicia_mqtt_sessions"),
            connections: value("alicia_mqtt_connections_active"),
            log_lag_mb: value("alicia_bus_log_lag_bytes") / MB,
        }
    }
}

/// Where the engine is and what it may use.
#[derive(Debug, Clone)]
pub(crate) struct Watch {
    pub pid: Option<u32>,
    pub mqtt: SocketAddr,
    pub http: Option<SocketAddr>,
    pub wyoming: Option<SocketAddr>,
    pub max_rss_mb: f64,
    /// The engine's `limits.max_queued_bytes_total` in MiB, when known: what its own
    /// account of held message bytes may not exceed by more than [`QUEUED_SLACK_MB`].
    pub max_queued_mb: Option<f64>,
}

/// What the queued-bytes account may exceed its limit by: each io thread forces acks in
/// past a full budget a 1 MiB chunk at a time and keeps up to 2 MiB of slack.
pub(crate) const QUEUED_SLACK_MB: f64 = 16.0;

impl Watch {
    /// Everything but "alive", which the caller knows best (it may own the process).
    pub(crate) async fn check(&self, at_s: f64, cases: u64, probe_no: u64) -> Check {
        let mut check = Check {
            at_s,
            cases,
            rss_mb: None,
            hwm_mb: None,
            health_ms: None,
            probe_ms: None,
            held: None,
            failures: vec![],
        };
        if let Some(pid) = self.pid {
            match proc_status(pid) {
                Some(s) if s.state != 'Z' && s.state != 'X' => {
                    check.rss_mb = Some(s.rss_mb);
                    check.hwm_mb = Some(s.hwm_mb);
                    let peak = s.rss_mb.max(s.hwm_mb);
                    if peak > self.max_rss_mb {
                        check.failures.push(format!(
                            "engine memory {peak:.0} MB (RSS {:.0} MB, high-water mark {:.0} MB) is over --max-rss-mb {}",
                            s.rss_mb, s.hwm_mb, self.max_rss_mb
                        ));
                    }
                }
                Some(s) => check.failures.push(format!("engine process {pid} is dead (state {})", s.state)),
                None => check.failures.push(format!("engine process {pid} is gone")),
            }
        }
        if let Some(http) = self.http {
            let started = Instant::now();
            match http_get(http, "/healthz").await {
                Ok((200, _)) => check.health_ms = Some(started.elapsed().as_secs_f64() * 1e3),
                Ok((status, body)) => {
                    check.failures.push(format!("/healthz answered {status}: {}", body.trim()));
                }
                Err(e) => check.failures.push(format!("/healthz failed: {e}")),
            }
            if let Ok((200, body)) = http_get(http, "/metrics").await {
                let held = Held::from_metrics(&body);
                if let Some(max) = self.max_queued_mb.filter(|max| held.queued_mb > max + QUEUED_SLACK_MB) {
                    check.failures.push(format!(
                        "the engine's byte budget in use (alicia_mqtt_queued_bytes) is {:.1} MiB, over \
                         max_queued_bytes_total ({max} MiB) by more than {QUEUED_SLACK_MB} MiB: bytes charged \
                         and never given back",
                        held.queued_mb
                    ));
                }
                check.held = Some(held);
            }
        }
        if let Some(wyoming) = self.wyoming {
            match timeout(PROBE_TIMEOUT, describe(wyoming)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => check.failures.push(format!("Wyoming describe failed: {e}")),
                Err(_) => check.failures.push(format!("Wyoming describe got no answer within {PROBE_TIMEOUT:?}")),
            }
        }
        let started = Instant::now();
        match timeout(PROBE_TIMEOUT, ordinary_client(self.mqtt, probe_no)).await {
            Ok(Ok(())) => check.probe_ms = Some(started.elapsed().as_secs_f64() * 1e3),
            Ok(Err(e)) => check.failures.push(format!("ordinary MQTT client failed: {e}")),
            Err(_) => check.failures.push(format!("ordinary MQTT client got no answer within {PROBE_TIMEOUT:?}")),
        }
        check
    }
}

/// A plain HTTP/1.1 GET; (status, body).
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: alicia\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status =
            text.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| format!("no status line in {text:?}"))?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((status, body))
    };
    timeout(HTTP_TIMEOUT, exchange).await.map_err(|_| format!("no answer within {HTTP_TIMEOUT:?}"))?
}

/// Wyoming's `describe` must be answered with `info`. From 127.0.0.2: the fuzzer's
/// own connections from 127.0.0.1 may hold every slot the server gives one address.
async fn describe(addr: SocketAddr) -> Result<(), String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    if addr.ip().is_loopback() {
        socket.bind(([127, 0, 0, 2], 0).into()).map_err(|e| format!("bind 127.0.0.2: {e}"))?;
    }
    let mut stream = socket.connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    stream.write_all(b"{\"type\": \"describe\"}\n").await.map_err(|e| format!("write: {e}"))?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 64 * 1024 {
        match stream.read(&mut byte).await {
            Ok(0) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&line))),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let header: serde_json::Value = serde_json::from_slice(&line).map_err(|e| format!("header not JSON: {e}"))?;
    match header["type"].as_str() {
        Some("info") => Ok(()),
        _ => Err(format!("expected info, got {}", String::from_utf8_lossy(&line))),
    }
}

/// Reads until one whole packet is decoded; `what` names the wait in errors.
async fn next_packet(stream: &mut TcpStream, buf: &mut Vec<u8>, what: &str) -> Result<(u8, Vec<u8>, u16), String> {
    loop {
        match wire::decode(buf) {
            Ok(Some((packet, used))) => {
                let found = match packet {
                    Packet::ConnAck { code, .. } => (2, vec![code], 0),
                    Packet::SubAck { pkid, codes } => (9, codes.to_vec(), pkid),
                    Packet::PubAck { pkid } => (4, vec![], pkid),
                    Packet::Publish(p) => {
                        let mut topic_and_payload = p.topic.to_vec();
                        topic_and_payload.push(0);
                        topic_and_payload.extend_from_slice(p.payload);
                        (3 | (p.qos << 4), topic_and_payload, p.pkid)
                    }
                    Packet::PingResp => (13, vec![], 0),
                    Packet::Other { kind } => (kind, vec![], 0),
                };
                buf.drain(..used);
                return Ok(found);
            }
            Ok(None) => {}
            Err(e) => return Err(format!("{what}: {e}")),
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) => return Err(format!("{what}: the engine closed the connection")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

/// CONNECT, SUBSCRIBE at QoS 1, PUBLISH at QoS 1, then both the PUBACK and the message
/// itself must come back.
async fn ordinary_client(addr: SocketAddr, n: u64) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let id = format!("alicia-fuzz-probe-{}-{n}", std::process::id());
    let topic = format!("alicia-fuzz-probe/{}/{n}", std::process::id());
    let payload = format!("probe {n}");
    let mut out = BytesMut::new();
    let mut buf = Vec::new();
    wire::encode_connect(&mut out, &id, 30);
    stream.write_all(&out).await.map_err(|e| format!("write CONNECT: {e}"))?;
    match next_packet(&mut stream, &mut buf, "waiting for CONNACK").await? {
        (2, code, _) if code == [0] => {}
        other => return Err(format!("expected CONNACK 0, got {other:?}")),
    }
    out.clear();
    wire::encode_subscribe(&mut out, 1, &topic, 1);
    stream.write_all(&out).await.map_err(|e| format!("write SUBSCRIBE: {e}"))?;
    match next_packet(&mut stream, &mut buf, "waiting for SUBACK").await? {
        (9, codes, 1) if codes == [1] => {}
        other => return Err(format!("expected SUBACK 1 granting QoS 1, got {other:?}")),
    }
    out.clear();
    wire::encode_publish_head(&mut out, topic.as_bytes(), 1, 2, payload.len());
    out.extend_from_slice(payload.as_bytes());
    stream.write_all(&out).await.map_err(|e| format!("write PUBLISH: {e}"))?;
    let (mut acked, mut received) = (false, false);
    while !(acked && received) {
        match next_packet(&mut stream, &mut buf, "waiting for PUBACK and the message").await? {
            (4, _, 2) => acked = true,
            (kind, body, pkid) if kind & 0x0f == 3 => {
                let expected = [topic.as_bytes(), &[0], payload.as_bytes()].concat();
                if body != expected {
                    return Err(format!("received a message it did not publish: {}", String::from_utf8_lossy(&body)));
                }
                if kind >> 4 == 1 {
                    out.clear();
                    wire::encode_puback(&mut out, pkid);
                    stream.write_all(&out).await.map_err(|e| format!("write PUBACK: {e}"))?;
                }
                received = true;
            }
            other => return Err(format!("unexpected packet {other:?}")),
        }
    }
    out.clear();
    wire::encode_disconnect(&mut out);
    let _ = stream.write_all(&out).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_and_memory_from_proc() {
        let text = "Name:\talicia\nState:\tS (sleeping)\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(parse_status(text), Some(ProcStatus { state: 'S', rss_mb: 100.0, hwm_mb: 200.0 }));
        assert_eq!(parse_status("State:\tZ (zombie)\n").map(|s| s.state), Some('Z'));
        let held = Held::from_metrics(
            "alicia_mqtt_queued_bytes 1048576\nalicia_mqtt_sessions{listener=\"tcp\"} 3\nalicia_mqtt_sessions_x 9\n",
        );
        assert_eq!((held.queued_mb, held.sessions, held.retained_mb), (1.0, 3.0, 0.0));
        let me = proc_status(std::process::id()).expect("our own status");
        assert!(me.rss_mb > 0.0 && me.hwm_mb >= me.rss_mb);
    }
}
