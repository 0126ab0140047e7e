//! Steps that come as crowds of connections: resets at every point of the handshake,
//! client-id churn, sockets that never say anything, and CONNECTs that announce 256 MB.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::ctx::{listen, Ctx, Outcome, CLIENT_TIMEOUT};
use crate::client::{self, Client, Next};
use crate::packet::{self, Connect, Incoming, Version};
use crate::report::thousands;

/// Connections opened at once by a flood.
const OPENING_AT_ONCE: usize = 200;

/// `3 × connection closed, 1 × CONNACK 0x03 (server unavailable)`, most frequent first.
pub fn tally(answers: impl IntoIterator<Item = String>) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    answers.into_iter().for_each(|a| *counts.entry(a).or_default() += 1);
    let mut sorted: Vec<(String, usize)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    sorted.iter().map(|(a, n)| format!("{} × {a}", thousands(*n as f64))).collect::<Vec<_>>().join(", ")
}

/// Where in the handshake the reset comes.
#[derive(Debug, Clone, Copy)]
pub enum ResetAt {
    AfterAccept,
    MidConnect,
    AfterConnect,
}

pub async fn resets(ctx: &Ctx, at: ResetAt) -> Result<Outcome> {
    let n = ctx.scale.n(1_200);
    let gate = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let mut connect = BytesMut::new();
        packet::encode_connect(&mut connect, &Connect::new(Version::V311, ctx.client_id(&format!("reset-{i}")), 60));
        let send = match at {
            ResetAt::AfterAccept => connect.split_to(0),
            ResetAt::MidConnect => connect.split_to(connect.len() / 2),
            ResetAt::AfterConnect => connect,
        };
        let (gate, addr) = (gate.clone(), ctx.mqtt);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let mut stream =
                client::tcp(addr, None, CLIENT_TIMEOUT).await.map_err(|e| format!("tcp connect failed: {e:#}"))?;
            if !send.is_empty() {
                stream.write_all(&send).await.map_err(|e| format!("write failed: {e}"))?;
            }
            client::reset(stream);
            Ok::<(), String>(())
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            failures.push(e);
        }
    }
    let what = match at {
        ResetAt::AfterAccept => "reset right after the TCP handshake",
        ResetAt::MidConnect => "half a CONNECT, then reset",
        ResetAt::AfterConnect => "CONNECT (distinct client ids), then reset at once",
    };
    let mut out = Outcome::default();
    out.answer(format!("{} connections: {what}", thousands((n - failures.len()) as f64)));
    if !failures.is_empty() {
        out.answer(format!("failed before the reset: {}", tally(failures)));
    }
    Ok(out)
}

/// TCP, CONNECT and whatever answered it; the client when it was accepted.
async fn handshake(ctx: &Ctx, version: Version, id: String) -> (Option<Client>, String) {
    let stream = match ctx.tcp().await {
        Ok(s) => s,
        Err(e) => return (None, format!("{e:#}")),
    };
    let mut c = Client::new(stream, version);
    let deadline = tokio::time::Instant::now() + CLIENT_TIMEOUT;
    match c.handshake(&Connect::new(version, id, 0), deadline).await {
        Next::Packet(Incoming::ConnAck { code: 0, .. }) => (Some(c), "CONNACK 0x00".into()),
        other => (None, other.describe(version)),
    }
}

pub async fn client_id_churn(ctx: &Ctx) -> Result<Outcome> {
    let n = ctx.scale.n(20_000);
    let workers = 32.min(n);
    let next = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let closed_by_broker = Arc::new(AtomicUsize::new(0));
    let lingering = Arc::new(Semaphore::new(2_000));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let (next, answers, closed, lingering) =
            (next.clone(), answers.clone(), closed_by_broker.clone(), lingering.clone());
        let probe = ctx.clone();
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::AcqRel);
                if i >= n {
                    return;
                }
                if i > 0 && i % 5_000 == 0 {
                    println!("    client-id-churn: {}/{}", thousands(i as f64), thousands(n as f64));
                }
                let (client, answer) = handshake(&probe, Version::V311, probe.client_id(&format!("churn-{i}"))).await;
                answers.lock().unwrap().push(answer);
                let Some(client) = client else { continue };
                // DISCONNECT, and let the broker's close arrive in the background so the
                // next connection does not wait for it.
                let permit = lingering.clone().acquire_owned().await;
                let mut stream = client.into_stream();
                let closed = closed.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let mut bye = BytesMut::new();
                    packet::encode_disconnect(&mut bye);
                    if stream.write_all(&bye).await.is_ok() && closed_within(&mut stream, Duration::from_secs(2)).await
                    {
                        closed.fetch_add(1, Ordering::AcqRel);
                    }
                });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // Wait for the lingering closes to finish counting.
    let _ = lingering.acquire_many(2_000).await;
    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let accepted = answers.iter().filter(|a| a.as_str() == "CONNACK 0x00").count();
    let mut out = Outcome::default();
    out.answer(format!(
        "{} CONNECTs with distinct client ids in {:.1} s: {}",
        thousands(n as f64),
        started.elapsed().as_secs_f64(),
        tally(answers)
    ));
    let closed = closed_by_broker.load(Ordering::Acquire);
    out.observe(
        "the broker closes the connection after DISCONNECT",
        closed == accepted,
        format!("{} of {} closed within 2 s", thousands(closed as f64), thousands(accepted as f64)),
    );
    Ok(out)
}

/// True if the peer closes (or resets) `stream` within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut sink = [0u8; 512];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Opens `n` TCP connections to the broker, `OPENING_AT_ONCE` at a time.
async fn open_sockets(ctx: &Ctx, n: usize) -> (Vec<TcpStream>, Vec<String>) {
    let gate = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (gate, addr) = (gate.clone(), ctx.mqtt);
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            client::tcp(addr, None, CLIENT_TIMEOUT).await.map_err(|e| format!("{e:#}"))
        });
    }
    let (mut open, mut failed) = (Vec::with_capacity(n), Vec::new());
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(s)) => open.push(s),
            Ok(Err(e)) => failed.push(e),
            Err(e) => failed.push(e.to_string()),
        }
    }
    (open, failed)
}

pub async fn never_connect(ctx: &Ctx) -> Result<Outcome> {
    let n = ctx.scale.n(2_000);
    let mut out = Outcome::default();
    let (sockets, failed) = open_sockets(ctx, n).await;
    out.answer(format!("{} silent TCP connections open", thousands(sockets.len() as f64)));
    if !failed.is_empty() {
        out.answer(format!("could not open: {}", tally(failed)));
    }
    ctx.bus_now(&mut out, &format!("while {} sockets are silent", thousands(sockets.len() as f64))).await;
    // The broker should close them after its CONNECT timeout (the engine: 10 s).
    let started = Instant::now();
    let wait = Duration::from_secs(15);
    let mut watching = JoinSet::new();
    for mut s in sockets {
        watching.spawn(async move { closed_within(&mut s, wait).await.then(Instant::now) });
    }
    let (mut closed, mut last) = (0usize, None);
    while let Some(done) = watching.join_next().await {
        if let Ok(Some(at)) = done {
            closed += 1;
            last = Some(at.duration_since(started));
        }
    }
    let detail = match last {
        Some(t) => format!(
            "the broker closed {} of {n}, the last {:.1} s after the check",
            thousands(closed as f64),
            t.as_secs_f64()
        ),
        None => format!("the broker closed none of {n} within {} s", wait.as_secs()),
    };
    out.answer(detail.clone());
    out.observe("the broker closes connections that never send CONNECT", closed == n, detail);
    Ok(out)
}

pub async fn huge_connect(ctx: &Ctx) -> Result<Outcome> {
    let n = ctx.scale.n(8);
    let mut out = Outcome::default();
    // Remaining length 268,435,455 (the MQTT maximum), then the start of a 3.1.1 CONNECT.
    let announce: &[u8] = &[0x10, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x00];
    let (sockets, failed) = open_sockets(ctx, n).await;
    if !failed.is_empty() {
        out.answer(format!("could not open: {}", tally(failed)));
    }
    let mut listening = JoinSet::new();
    for s in sockets {
        listening.spawn(async move {
            let mut c = Client::new(s, Version::V311);
            if let Err(e) = c.send(announce).await {
                return (format!("write failed: {}", client::io_end(&e).describe(Version::V311)), None);
            }
            let said = listen(&mut c).await;
            let open = said.starts_with("no answer").then_some(c);
            (said, open)
        });
    }
    let (mut answers, mut still_open) = (Vec::new(), Vec::new());
    while let Some(Ok((said, open))) = listening.join_next().await {
        answers.push(said);
        still_open.extend(open);
    }
    out.answer(format!("CONNECT announcing 268,435,455 bytes, 10 of them sent: {}", tally(answers)));
    ctx.bus_now(&mut out, &format!("while {} of them stay open", still_open.len())).await;
    drop(still_open);
    Ok(out)
}
