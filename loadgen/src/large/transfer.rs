//! One large message end to end: a publisher streams it from the pattern, K subscribers
//! stream it into checkers; nobody holds the whole message, so loadgen's own memory stays
//! small and the broker's is the only one that grows.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::pattern::{Checker, Digest, Pattern};
use crate::client::{self, Client, Next};
use crate::packet::{self, Connect, Incoming, Properties, Publish, Version};

/// Write and read in pieces of this size.
const CHUNK: usize = 1 << 20;
const KEEP_ALIVE: u16 = 0;

/// When the publisher wrote the first byte; delivery times are measured from it.
pub type Start = Arc<OnceLock<Instant>>;

fn ms_since(start: &Start, at: Instant) -> Option<f64> {
    start.get().map(|s| at.saturating_duration_since(*s).as_secs_f64() * 1_000.0)
}

#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub version: Version,
    pub written_bytes: u64,
    /// Until the last byte was handed to the socket.
    pub write_ms: Option<f64>,
    /// Until the PUBACK (QoS 1).
    pub acked_ms: Option<f64>,
    /// What the broker answered: `PUBACK 0x00`, a DISCONNECT, a closed connection…
    pub answer: String,
    pub digest: String,
}

/// The one large message: where it goes and what it is.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub qos: u8,
    pub size: usize,
    pub pattern: Pattern,
}

/// Connects, publishes the message's pattern bytes and waits for the PUBACK (QoS 1).
pub async fn publish(
    addr: SocketAddr,
    version: Version,
    message: Message,
    start: Start,
    deadline: Instant,
) -> Published {
    let Message { topic, qos, size, pattern } = message;
    let mut out = Published {
        version,
        written_bytes: 0,
        write_ms: None,
        acked_ms: None,
        answer: String::new(),
        digest: String::new(),
    };
    let connect = Connect::new(version, format!("lg-large-pub-{}", std::process::id()), KEEP_ALIVE);
    let mut client = match Client::connect(addr, &connect, Duration::from_secs(10)).await {
        Ok(c) => c,
        Err(e) => {
            out.answer = format!("{e:#}");
            return out;
        }
    };
    let publish =
        Publish { topic: topic.as_bytes(), qos, retain: false, pkid: 1, properties: Properties::new(), payload: &[] };
    let mut head = BytesMut::new();
    packet::encode_publish_head(&mut head, version, &publish, size);
    let mut digest = Digest::default();
    let mut chunk = vec![0u8; CHUNK.min(size.max(1))];
    let _ = start.set(Instant::now());
    let written = tokio::time::timeout_at(deadline.into(), async {
        client.send(&head).await?;
        let mut offset = 0usize;
        while offset < size {
            let n = CHUNK.min(size - offset);
            pattern.fill(offset as u64, &mut chunk[..n]);
            digest.update(&chunk[..n]);
            client.send(&chunk[..n]).await?;
            offset += n;
            out.written_bytes = offset as u64;
        }
        std::io::Result::Ok(())
    })
    .await;
    out.digest = format!("{:016x}", digest.finish());
    match written {
        Err(_) => {
            out.answer = format!("still writing at the deadline ({} of {size} bytes taken)", out.written_bytes);
            return out;
        }
        Ok(Err(e)) => {
            let why = client::io_end(&e).describe(version);
            // The broker may have said why before it closed.
            let said = client.next(Duration::from_millis(500)).await;
            out.answer = match said {
                Next::Packet(p) => format!("{} after {} bytes", p.describe(version), out.written_bytes),
                _ => format!("{why} after {} of {size} bytes", out.written_bytes),
            };
            return out;
        }
        Ok(Ok(())) => out.write_ms = ms_since(&start, Instant::now()),
    }
    if qos == 0 {
        out.answer = "written (qos 0: no acknowledgement)".into();
        client.disconnect().await;
        return out;
    }
    match client.expect(deadline.into(), |p| matches!(p, Incoming::PubAck { pkid: 1, .. })).await {
        Ok(p) => {
            out.acked_ms = ms_since(&start, Instant::now());
            out.answer = p.describe(version);
        }
        Err(next) => out.answer = format!("{} instead of a PUBACK", next.describe(version)),
    }
    client.disconnect().await;
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    pub subscriber: usize,
    pub version: Version,
    pub qos: u8,
    /// Payload bytes received.
    pub received_bytes: u64,
    /// The whole payload arrived, of the expected length.
    pub complete: bool,
    /// Complete, and every byte equal to what was published.
    pub verified: bool,
    pub first_mismatch: Option<u64>,
    pub digest: Option<String>,
    pub first_byte_ms: Option<f64>,
    pub delivered_ms: Option<f64>,
    /// How the subscription ended when it did not end with the message: a DISCONNECT, a
    /// close, a timeout, another packet.
    pub ending: Option<String>,
}

pub struct Subscriber {
    pub index: usize,
    pub version: Version,
    pub qos: u8,
    client: Client,
}

/// Connects and subscribes, ready to receive.
pub async fn subscribe(
    addr: SocketAddr,
    index: usize,
    version: Version,
    qos: u8,
    topic: &str,
) -> anyhow::Result<Subscriber> {
    let id = format!("lg-large-sub-{}-{index}", std::process::id());
    let mut client = Client::connect(addr, &Connect::new(version, id, KEEP_ALIVE), Duration::from_secs(10)).await?;
    match client.subscribe(&[(topic, qos)], Duration::from_secs(10)).await {
        Ok(codes) if codes.first().is_some_and(|c| *c <= 2) => Ok(Subscriber { index, version, qos, client }),
        Ok(codes) => anyhow::bail!("SUBSCRIBE {topic} refused: {}", packet::code_counts(version, &codes)),
        Err(next) => anyhow::bail!("SUBSCRIBE {topic}: {}", next.describe(version)),
    }
}

impl Subscriber {
    /// Waits for `resume` (a stalled subscriber reads nothing until then), then receives
    /// one PUBLISH of `expected` bytes and checks it against `pattern`.
    pub async fn receive(
        self,
        expected: u64,
        pattern: Pattern,
        start: Start,
        mut resume: watch::Receiver<bool>,
        deadline: Instant,
    ) -> Receipt {
        let _ = resume.wait_for(|go| *go).await;
        let (version, qos, subscriber) = (self.version, self.qos, self.index);
        let mut r = Receipt {
            subscriber,
            version,
            qos,
            received_bytes: 0,
            complete: false,
            verified: false,
            first_mismatch: None,
            digest: None,
            first_byte_ms: None,
            delivered_ms: None,
            ending: None,
        };
        let (mut stream, mut rbuf) = self.client.into_parts();
        let mut checker = Checker::new(pattern);
        let outcome = tokio::time::timeout_at(
            deadline.into(),
            stream_one(&mut stream, &mut rbuf, version, expected, &mut checker, &start, &mut r),
        )
        .await;
        r.received_bytes = checker.received();
        r.first_mismatch = checker.first_mismatch;
        r.digest = (r.received_bytes > 0).then(|| format!("{:016x}", checker.digest.finish()));
        match outcome {
            Err(_) => r.ending = Some(format!("no complete message by the deadline ({} bytes)", r.received_bytes)),
            Ok(Err(ending)) => r.ending = Some(ending),
            Ok(Ok(pkid)) => {
                r.complete = r.received_bytes == expected;
                r.verified = r.complete && r.first_mismatch.is_none();
                r.delivered_ms = ms_since(&start, Instant::now());
                if let Some(pkid) = pkid {
                    let mut ack = BytesMut::with_capacity(4);
                    packet::encode_puback(&mut ack, pkid);
                    let _ = stream.write_all(&ack).await;
                }
            }
        }
        r
    }
}

/// Reads up to and through one PUBLISH, feeding its payload to `checker`; returns its
/// packet id when QoS 1. Err says why it ended otherwise.
async fn stream_one(
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    version: Version,
    expected: u64,
    checker: &mut Checker,
    start: &Start,
    r: &mut Receipt,
) -> Result<Option<u16>, String> {
    let head = loop {
        if rbuf.first().is_some_and(|b| b >> 4 == 3) {
            if let Some(head) = packet::publish_head(rbuf, version)? {
                break head;
            }
        } else if !rbuf.is_empty() {
            match packet::decode(rbuf, version)? {
                Some((Incoming::PingResp, used)) => rbuf.advance(used),
                Some((other, _)) => return Err(other.describe(version)),
                None => {}
            }
            if rbuf.first().is_some_and(|b| b >> 4 == 3) {
                continue;
            }
        }
        if read_some(stream, rbuf).await? == 0 {
            return Err("connection closed before the message".into());
        }
    };
    if head.payload_len as u64 != expected {
        return Err(format!("a PUBLISH of {} bytes instead of {expected}", head.payload_len));
    }
    r.first_byte_ms = ms_since(start, Instant::now());
    rbuf.advance(head.header_len);
    let mut left = head.payload_len;
    let buffered = left.min(rbuf.len());
    checker.update(&rbuf[..buffered]);
    rbuf.advance(buffered);
    left -= buffered;
    let mut chunk = vec![0u8; CHUNK];
    while left > 0 {
        let want = left.min(CHUNK);
        let n = stream.read(&mut chunk[..want]).await.map_err(|e| ended(&e, checker.received()))?;
        if n == 0 {
            return Err(format!("connection closed after {} of {expected} bytes", checker.received()));
        }
        checker.update(&chunk[..n]);
        left -= n;
    }
    Ok((head.qos > 0).then_some(head.pkid))
}

async fn read_some(stream: &mut TcpStream, rbuf: &mut BytesMut) -> Result<usize, String> {
    rbuf.reserve(64 * 1024);
    stream.read_buf(rbuf).await.map_err(|e| ended(&e, 0))
}

fn ended(e: &std::io::Error, received: u64) -> String {
    format!("{} after {received} bytes", client::io_end(e).describe(Version::V311))
}
