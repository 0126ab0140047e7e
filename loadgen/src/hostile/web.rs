//! Steps against the HTTP API: connections that never finish their headers, and a flood
//! of requests, each while `/healthz` must keep answering.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::ctx::{healthz, Ctx, Outcome};
use super::floods::tally;
use crate::report::thousands;

/// How often `/healthz` is asked during an attack, and how long it may take.
const HEALTH_EVERY: Duration = Duration::from_millis(500);
const HEALTH_WITHIN: Duration = Duration::from_secs(2);

fn http(ctx: &Ctx) -> Result<SocketAddr> {
    ctx.http.context("the target has no HTTP API")
}

/// Asks `/healthz` every [`HEALTH_EVERY`] until `stop`; (answers, failures, slowest ms).
/// It runs on a thread and runtime of its own, so the attack's thousand tasks in
/// loadgen's runtime cannot delay the question and make the engine look slow.
async fn health_during(addr: SocketAddr, stop: watch::Receiver<bool>) -> (usize, Vec<String>, f64) {
    let asker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a current-thread runtime");
        rt.block_on(ask_until(addr, stop))
    });
    tokio::task::spawn_blocking(move || asker.join())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(|| (0, vec!["the /healthz asker failed".into()], 0.0))
}

async fn ask_until(addr: SocketAddr, mut stop: watch::Receiver<bool>) -> (usize, Vec<String>, f64) {
    let (mut ok, mut failures, mut slowest) = (0, Vec::new(), 0.0f64);
    let mut tick = tokio::time::interval(HEALTH_EVERY);
    loop {
        tokio::select! {
            _ = stop.changed() => return (ok, failures, slowest),
            _ = tick.tick() => {
                let started = Instant::now();
                let asked = tokio::time::timeout(HEALTH_WITHIN, healthz(addr)).await;
                let ms = started.elapsed().as_secs_f64() * 1e3;
                slowest = slowest.max(ms);
                match asked {
                    Ok((true, _)) => ok += 1,
                    Ok((false, detail)) => failures.push(detail),
                    Err(_) => failures.push(format!("no answer within {HEALTH_WITHIN:?}")),
                }
            }
        }
    }
}

fn health_check(out: &mut Outcome, during: &str, (ok, failures, slowest): (usize, Vec<String>, f64)) {
    let asked = ok + failures.len();
    let detail = if failures.is_empty() {
        format!("{ok} of {asked} answered 200, slowest {slowest:.0} ms")
    } else {
        format!("{ok} of {asked} answered 200 within {HEALTH_WITHIN:?}; failures: {}", tally(failures))
    };
    out.must(format!("/healthz answers 200 within 2 s {during}"), asked > 0 && ok == asked, detail);
}

pub async fn slowloris(ctx: &Ctx) -> Result<Outcome> {
    let addr = http(ctx)?;
    let n = ctx.scale.n(200);
    let hold = Duration::from_secs_f64((15.0 * ctx.scale.0).clamp(3.0, 15.0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let health = tokio::spawn(health_during(addr, stop_rx));
    let started = Instant::now();
    let mut slow = JoinSet::new();
    for i in 0..n {
        slow.spawn(async move {
            let mut s = match TcpStream::connect(addr).await {
                Ok(s) => s,
                Err(e) => return format!("connect failed: {e}"),
            };
            let mut line = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n");
            let mut sink = [0u8; 1024];
            let mut k = 0;
            while started.elapsed() < hold {
                if s.write_all(line.as_bytes()).await.is_err() {
                    return format!("closed by the server after {:.0} s", started.elapsed().as_secs_f64());
                }
                k += 1;
                line = format!("X-Slow-{i}-{k}: y\r\n");
                // A second per header line; a server that closes or answers ends the wait.
                match tokio::time::timeout(Duration::from_secs(1), s.read(&mut sink)).await {
                    Err(_) => {}
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        return format!("closed by the server after {:.0} s", started.elapsed().as_secs_f64())
                    }
                    Ok(Ok(_)) => return "answered before the headers ended".to_string(),
                }
            }
            "still open at the end".to_string()
        });
    }
    let mut endings = Vec::new();
    while let Some(done) = slow.join_next().await {
        endings.push(done.unwrap_or_else(|e| e.to_string()));
    }
    let _ = stop_tx.send(true);
    let mut out = Outcome::default();
    out.answer(format!("{n} connections sending a header line a second for {} s: {}", hold.as_secs(), tally(endings)));
    health_check(&mut out, "during the slowloris", health.await?);
    Ok(out)
}

pub async fn flood(ctx: &Ctx) -> Result<Outcome> {
    let addr = http(ctx)?;
    let n = ctx.scale.n(1_000);
    let length = Duration::from_secs_f64((10.0 * ctx.scale.0).clamp(2.0, 10.0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let health = tokio::spawn(health_during(addr, stop_rx));
    let started = Instant::now();
    let request = Arc::new(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"));
    let mut workers = JoinSet::new();
    for _ in 0..n {
        let request = request.clone();
        workers.spawn(async move {
            let mut results = Vec::new();
            while started.elapsed() < length {
                results.push(one_request(addr, &request).await);
            }
            results
        });
    }
    let mut results = Vec::new();
    while let Some(done) = workers.join_next().await {
        results.extend(done.unwrap_or_default());
    }
    let _ = stop_tx.send(true);
    let total = results.len();
    let mut out = Outcome::default();
    out.answer(format!(
        "{n} connections requesting /metrics for {} s: {} requests ({}/s): {}",
        length.as_secs(),
        thousands(total as f64),
        thousands(total as f64 / started.elapsed().as_secs_f64()),
        tally(results)
    ));
    health_check(&mut out, "during the flood", health.await?);
    Ok(out)
}

async fn one_request(addr: SocketAddr, request: &str) -> String {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| format!("connect failed: {}", e.kind()))?;
        s.write_all(request.as_bytes()).await.map_err(|e| format!("write failed: {}", e.kind()))?;
        let mut head = [0u8; 16];
        let n = s.read(&mut head).await.map_err(|e| format!("read failed: {}", e.kind()))?;
        let status = String::from_utf8_lossy(&head[..n]).split_whitespace().nth(1).unwrap_or("no status").to_string();
        let mut sink = vec![0u8; 64 * 1024];
        while s.read(&mut sink).await.map_err(|e| format!("read failed: {}", e.kind()))? > 0 {}
        Ok::<_, String>(format!("HTTP {status}"))
    };
    match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(s)) | Ok(Err(s)) => s,
        Err(_) => "no answer within 10 s".into(),
    }
}
