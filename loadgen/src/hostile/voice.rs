//! Steps against the voice plane: the Wyoming server (absurd audio formats, a megabyte
//! of text, a client that leaves mid-synthesis) and the voice topics over MQTT (empty
//! frames, huge session ids, unknown sites, a 200 MB speech-to-text request).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alicia_envelope::{Destination, Envelope, MessageType};
use anyhow::{Context, Result};
use bytes::BytesMut;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::ctx::{Ctx, Outcome, CLIENT_TIMEOUT};
use super::floods::tally;
use super::rules::puback_text;
use crate::client::{self, Client, Next};
use crate::packet::{self, Incoming, Properties, Publish, Version};
use crate::report::thousands;

const SITE: &str = "kitchen";
/// Where the engine answers voice requests and reports their errors.
const RESULT_FILTERS: [&str; 4] =
    ["alicia/voice/stt/#", "alicia/voice/tts/#", "alicia/voice/command/#", "alicia/monitoring/alerts"];

/// One Wyoming event: a JSON header line, `data_length` bytes of JSON data, a payload.
async fn send_event(w: &mut TcpStream, kind: &str, data: &Value, payload: &[u8]) -> std::io::Result<()> {
    let data = serde_json::to_vec(data).expect("json values serialise");
    let mut header = json!({"type": kind, "version": "1.8.0", "data_length": data.len()});
    if !payload.is_empty() {
        header["payload_length"] = json!(payload.len());
    }
    let mut out = serde_json::to_vec(&header).expect("json values serialise");
    out.push(b'\n');
    out.extend_from_slice(&data);
    w.write_all(&out).await?;
    w.write_all(payload).await
}

/// An event the server sent: type, merged data, payload length.
struct Heard {
    kind: String,
    data: Value,
    payload_len: usize,
}

async fn read_event(r: &mut BufReader<TcpStream>) -> Result<Option<Heard>, String> {
    let mut line = String::new();
    match r.read_line(&mut line).await {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(client::io_end(&e).describe(Version::V311)),
    }
    let header: Value = serde_json::from_str(line.trim()).map_err(|e| format!("not a Wyoming header: {e}"))?;
    let len = |k: &str| header.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
    let mut data = header.get("data").cloned().unwrap_or(json!({}));
    if len("data_length") > 0 {
        let mut extra = vec![0u8; len("data_length")];
        r.read_exact(&mut extra).await.map_err(|e| e.to_string())?;
        if let (Some(map), Ok(Value::Object(more))) = (data.as_object_mut(), serde_json::from_slice::<Value>(&extra)) {
            map.extend(more);
        }
    }
    let mut payload = vec![0u8; len("payload_length")];
    r.read_exact(&mut payload).await.map_err(|e| e.to_string())?;
    let kind = header.get("type").and_then(Value::as_str).unwrap_or("?").to_string();
    Ok(Some(Heard { kind, data, payload_len: payload.len() }))
}

fn heard_text(h: &Heard) -> String {
    match h.kind.as_str() {
        "error" => format!(
            "error event: {} ({})",
            h.data.get("text").and_then(Value::as_str).unwrap_or(""),
            h.data.get("code").and_then(Value::as_str).unwrap_or("")
        ),
        "transcript" => format!("transcript: {:?}", h.data.get("text").and_then(Value::as_str).unwrap_or("")),
        other => other.to_string(),
    }
}

fn wyoming(ctx: &Ctx) -> Result<SocketAddr> {
    ctx.wyoming.context("the engine runs no Wyoming server")
}

pub async fn wyoming_rate_one(ctx: &Ctx) -> Result<Outcome> {
    let mut stream = TcpStream::connect(wyoming(ctx)?).await?;
    let total = ctx.scale.bytes(1_600_000, 16_000);
    let format = json!({"rate": 1, "width": 2, "channels": 1});
    let chunk = vec![0x11u8; 16_000];
    let sent = async {
        send_event(&mut stream, "transcribe", &json!({"language": "en"}), &[]).await?;
        send_event(&mut stream, "audio-start", &format, &[]).await?;
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len());
            send_event(&mut stream, "audio-chunk", &format, &chunk[..n]).await?;
            left -= n;
        }
        send_event(&mut stream, "audio-stop", &json!({}), &[]).await
    }
    .await;
    let mut out = Outcome::default();
    if let Err(e) = sent {
        out.answer(format!("while sending: {}", client::io_end(&e).describe(Version::V311)));
    }
    let mut reader = BufReader::new(stream);
    let answer = tokio::time::timeout(Duration::from_secs(60), async {
        let mut said = Vec::new();
        loop {
            match read_event(&mut reader).await {
                Ok(Some(h)) => {
                    said.push(heard_text(&h));
                    if h.kind == "transcript" || h.kind == "error" {
                        break;
                    }
                }
                Ok(None) => {
                    said.push("connection closed".into());
                    break;
                }
                Err(e) => {
                    said.push(e);
                    break;
                }
            }
        }
        said.join(", then ")
    })
    .await
    .unwrap_or_else(|_| "no transcript or error within 60 s".into());
    out.answer(format!(
        "transcribe, audio-start rate 1, {} bytes of audio, audio-stop: {answer}",
        thousands(total as f64)
    ));
    Ok(out)
}

/// Sends `synthesize` and reads what comes back for up to `wait`, stopping at the first
/// audio chunk when `until_first_chunk`.
async fn synthesize(ctx: &Ctx, text: &str, wait: Duration, until_first_chunk: bool) -> Result<String> {
    let mut stream = TcpStream::connect(wyoming(ctx)?).await?;
    let started = Instant::now();
    if let Err(e) = send_event(&mut stream, "synthesize", &json!({"text": text}), &[]).await {
        return Ok(format!("while sending: {}", client::io_end(&e).describe(Version::V311)));
    }
    let mut reader = BufReader::new(stream);
    let (mut chunks, mut audio_bytes, mut events) = (0usize, 0usize, Vec::new());
    let ending = loop {
        let left = wait.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, read_event(&mut reader)).await {
            Err(_) => break format!("still going after {} s, then reset by loadgen", wait.as_secs()),
            Ok(Ok(Some(h))) if h.kind == "audio-chunk" => {
                chunks += 1;
                audio_bytes += h.payload_len;
                if until_first_chunk {
                    break format!(
                        "first audio chunk after {:.0} ms, then reset by loadgen",
                        started.elapsed().as_secs_f64() * 1e3
                    );
                }
            }
            Ok(Ok(Some(h))) if h.kind == "audio-stop" || h.kind == "error" => break heard_text(&h),
            Ok(Ok(Some(h))) => events.push(heard_text(&h)),
            Ok(Ok(None)) => break "connection closed".into(),
            Ok(Err(e)) => break e,
        }
    };
    client::reset(reader.into_inner());
    let first = if events.is_empty() { String::new() } else { format!("{}, ", events.join(", ")) };
    Ok(format!("{first}{} audio chunks ({} bytes), {ending}", thousands(chunks as f64), thousands(audio_bytes as f64)))
}

pub async fn wyoming_huge_text(ctx: &Ctx) -> Result<Outcome> {
    let size = ctx.scale.bytes(1 << 20, 1 << 10);
    let sentence = "Turn on the kitchen lights and tell me the weather. ";
    let text: String = sentence.repeat(size / sentence.len() + 1).chars().take(size).collect();
    let said = synthesize(ctx, &text, Duration::from_secs(30), false).await?;
    let mut out = Outcome::default();
    out.answer(format!("synthesize with {} bytes of text: {said}", thousands(size as f64)));
    Ok(out)
}

pub async fn wyoming_disconnect(ctx: &Ctx) -> Result<Outcome> {
    let text =
        "Good evening. The kitchen lights are on, the front door is locked, and dinner is ready in ten minutes. "
            .repeat(5);
    let said = synthesize(ctx, &text, Duration::from_secs(30), true).await?;
    let mut out = Outcome::default();
    out.answer(format!("synthesize {} bytes of text: {said}", text.len()));
    Ok(out)
}

fn envelope(source: &str, kind: MessageType, data: Value) -> Vec<u8> {
    Envelope::new(source, Destination::Service("alicia".into()), kind, data).encode().to_vec()
}

/// A connection subscribed to the engine's voice answers and errors.
async fn watcher(ctx: &Ctx) -> Result<Client> {
    let mut w = ctx.connect(Version::V311, "voice-watch").await?;
    let filters: Vec<(&str, u8)> = RESULT_FILTERS.iter().map(|f| (*f, 0)).collect();
    w.subscribe(&filters, CLIENT_TIMEOUT)
        .await
        .map_err(|n| anyhow::anyhow!("watcher: {}", n.describe(Version::V311)))?;
    Ok(w)
}

/// What the engine published on its answer topics until 2 s of quiet (at most 30 s):
/// topics with counts, and the first error payload.
async fn answers_seen(w: &mut Client) -> String {
    let (started, mut topics, mut first_error) = (Instant::now(), BTreeMap::<String, usize>::new(), None);
    while started.elapsed() < Duration::from_secs(30) {
        match w.next(Duration::from_secs(2)).await {
            Next::Packet(Incoming::Publish(d)) => {
                let topic = String::from_utf8_lossy(&d.topic).into_owned();
                if topic.ends_with("error") || topic.ends_with("alerts") {
                    first_error.get_or_insert_with(|| error_text(&d.payload));
                }
                *topics.entry(topic).or_default() += 1;
            }
            Next::Packet(_) => {}
            _ => break,
        }
    }
    if topics.is_empty() {
        return "nothing on the voice answer topics".into();
    }
    let list: Vec<String> = topics.iter().map(|(t, n)| format!("{t} × {n}")).collect();
    match first_error {
        Some(e) => format!("{}; first error: {e}", list.join(", ")),
        None => list.join(", "),
    }
}

/// The part of an error envelope that says what went wrong: `payload.data`, compact.
fn error_text(payload: &[u8]) -> String {
    let data = serde_json::from_slice::<Value>(payload).ok().and_then(|v| v.pointer("/payload/data").cloned());
    let text = match data {
        Some(d) => d.to_string(),
        None => String::from_utf8_lossy(payload).into_owned(),
    };
    text.chars().take(240).collect()
}

async fn session(c: &mut Client, site: &str, session_id: &str, frames: &[Vec<u8>]) -> String {
    let base = format!("alicia/voice/audio/{site}");
    let source = format!("loadgen-hostile-{site}");
    let start = envelope(
        &source,
        MessageType::Event,
        json!({"session_id": session_id, "rate": 16000, "width": 2, "channels": 1}),
    );
    let stop = envelope(&source, MessageType::Event, json!({"session_id": session_id}));
    let mut acks = Vec::new();
    let started =
        c.publish(format!("{base}/start").as_bytes(), 1, false, Properties::new(), &start, CLIENT_TIMEOUT).await;
    acks.push(format!("start {}", puback_text(&started, Version::V311)));
    for f in frames {
        if let Err(next) =
            c.publish(format!("{base}/frame").as_bytes(), 0, false, Properties::new(), f, CLIENT_TIMEOUT).await
        {
            acks.push(format!("frame: {}", next.describe(Version::V311)));
            break;
        }
    }
    let stopped =
        c.publish(format!("{base}/stop").as_bytes(), 1, false, Properties::new(), &stop, CLIENT_TIMEOUT).await;
    acks.push(format!("stop {}", puback_text(&stopped, Version::V311)));
    acks.join(", ")
}

pub async fn voice_empty_frames(ctx: &Ctx) -> Result<Outcome> {
    let n = ctx.scale.n(500);
    let mut w = watcher(ctx).await?;
    let mut c = ctx.connect(Version::V311, "voice-empty").await?;
    let acks = session(&mut c, SITE, &ctx.client_id("empty"), &vec![Vec::new(); n]).await;
    let mut out = Outcome::default();
    out.answer(format!("session on {SITE} with {n} empty frames: {acks}"));
    out.answer(format!("engine answered: {}", answers_seen(&mut w).await));
    Ok(out)
}

pub async fn voice_huge_session_id(ctx: &Ctx) -> Result<Outcome> {
    let id = "s".repeat(ctx.scale.bytes(1 << 20, 1 << 10));
    let mut w = watcher(ctx).await?;
    let mut c = ctx.connect(Version::V311, "voice-huge-id").await?;
    let acks = session(&mut c, SITE, &id, &vec![vec![0u8; 640]; 50]).await;
    let mut out = Outcome::default();
    out.answer(format!("session on {SITE} with a {}-byte session_id: {acks}", thousands(id.len() as f64)));
    out.answer(format!("engine answered: {}", answers_seen(&mut w).await));
    Ok(out)
}

pub async fn voice_unknown_sites(ctx: &Ctx) -> Result<Outcome> {
    let n = ctx.scale.n(1_000);
    let mut w = watcher(ctx).await?;
    let mut c = ctx.connect(Version::V311, "voice-sites").await?;
    let mut acks = Vec::new();
    for i in 0..n {
        let site = format!("lg-unknown-{}-{i}", ctx.run);
        acks.push(session(&mut c, &site, &format!("s{i}"), &[vec![0u8; 640]]).await);
    }
    let mut out = Outcome::default();
    out.answer(format!("sessions (start, one frame, stop) on {n} unknown sites: {}", tally(acks)));
    out.answer(format!("engine answered: {}", answers_seen(&mut w).await));
    Ok(out)
}

pub async fn stt_request_huge(ctx: &Ctx) -> Result<Outcome> {
    let size = ctx.scale.bytes(200_000_000, 64 << 10);
    const HOLE: &str = "@@AUDIO@@";
    let body = envelope(
        "loadgen-hostile",
        MessageType::Request,
        json!({"audio_data": HOLE, "site_id": SITE, "format": "wav"}),
    );
    let text = String::from_utf8(body).expect("an envelope is JSON text");
    let (prefix, suffix) = text.split_once(HOLE).context("the placeholder is in the envelope")?;
    let fill = size.saturating_sub(prefix.len() + suffix.len());
    let mut w = watcher(ctx).await?;
    let mut c = ctx.connect(Version::V311, "stt-huge").await?;
    let topic = b"alicia/voice/stt/request";
    let mut head = BytesMut::new();
    let p = Publish { topic, qos: 1, pkid: 1, ..Default::default() };
    packet::encode_publish_head(&mut head, Version::V311, &p, prefix.len() + fill + suffix.len());
    head.extend_from_slice(prefix.as_bytes());
    let sent = async {
        c.send(&head).await?;
        let chunk = vec![b'A'; 1 << 20];
        let mut left = fill;
        while left > 0 {
            let n = left.min(chunk.len());
            c.send(&chunk[..n]).await?;
            left -= n;
        }
        c.send(suffix.as_bytes()).await
    }
    .await;
    let mut out = Outcome::default();
    let answer = match sent {
        Err(e) => format!("while sending: {}", client::io_end(&e).describe(Version::V311)),
        Ok(()) => {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            match c.expect(deadline, |p| matches!(p, Incoming::PubAck { pkid: 1, .. })).await {
                Ok(p) => p.describe(Version::V311),
                Err(next) => next.describe(Version::V311),
            }
        }
    };
    out.answer(format!("a {}-byte envelope on alicia/voice/stt/request (qos 1): {answer}", thousands(size as f64)));
    out.answer(format!("engine answered: {}", answers_seen(&mut w).await));
    Ok(out)
}
