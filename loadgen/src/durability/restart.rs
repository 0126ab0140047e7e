//! Restart with R retained messages and N persistent sessions (each subscribed, with Q
//! queued QoS 1 messages): fill, stop with SIGTERM, start again on the same data and
//! time it; queue Q more, `kill -9` right after the last PUBACK, start again and time it.
//! After each start: how long until the ready line (first CONNACK for mosquitto), until
//! a fresh client got a retained message, and whether everything came back (every
//! retained topic with the right payload, every session present with its queue).

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use tokio::runtime::Runtime;

use super::clients::{self, RetainedCount, SessionsCount};
use super::targets::{Home, Running, Target};
use super::DurabilityOptions;
use crate::session::Dialer;

/// The size of the restart measurement.
#[derive(Debug, Clone, Serialize)]
pub struct RestartSize {
    pub retained: usize,
    pub sessions: usize,
    pub queued_per_session: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    Sigterm,
    Sigkill,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Stop::Sigterm => "SIGTERM",
            Stop::Sigkill => "kill -9",
        }
    }
}

/// One start after a stop.
#[derive(Debug, Clone, Serialize)]
pub struct Restart {
    pub after: Stop,
    /// How long the stop took (SIGTERM: the broker saving and exiting).
    pub stop_s: f64,
    /// Spawn → ready line (engine) / first CONNACK (mosquitto, polled every 25 ms).
    pub ready_s: f64,
    /// Ready + a fresh client's connect, subscribe and retained message.
    pub first_retained_s: Option<f64>,
    /// The engine's own account: its `durable store opened` line.
    pub store_opened: Option<String>,
    pub retained: RetainedCount,
    pub sessions: SessionsCount,
    pub error: Option<String>,
}

impl Restart {
    /// Everything acknowledged came back.
    pub fn complete(&self) -> bool {
        self.error.is_none()
            && self.retained.found == self.retained.expected
            && self.sessions.present == self.sessions.sessions
            && self.sessions.queued_delivered == self.sessions.queued_expected
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetRestarts {
    pub target: Target,
    /// Publishing the retained messages, creating the sessions, queueing their messages.
    pub fill_s: f64,
    pub fill_error: Option<String>,
    pub restarts: Vec<Restart>,
    /// Size of mosquitto's database after the SIGTERM (its save at shutdown).
    pub mosquitto_db_bytes: Option<u64>,
    pub commands: Vec<String>,
}

pub fn run(opts: &DurabilityOptions, target: Target, parent: &std::path::Path, rt: &Runtime) -> Result<TargetRestarts> {
    let size = &opts.restart;
    let home = Home::new(target, opts, &parent.join("restart"))?;
    let broker = home.start(opts)?;
    let mut out = TargetRestarts {
        target,
        fill_s: 0.0,
        fill_error: None,
        restarts: Vec::new(),
        mosquitto_db_bytes: None,
        commands: vec![broker.command()],
    };
    println!(
        "restart {}: filling {} retained, {} sessions × {} queued",
        target.name(),
        size.retained,
        size.sessions,
        size.queued_per_session
    );
    let started = Instant::now();
    let filled = rt.block_on(async {
        let dialer = dialer(&broker);
        let retained = (0..size.retained).map(|i| (clients::retained_topic(i), true)).collect();
        publish_checked(opts, &dialer, retained, 1).await?;
        clients::create_sessions(&dialer, size.sessions, opts.concurrency).await?;
        queue(opts, &dialer, 1).await
    });
    out.fill_s = started.elapsed().as_secs_f64();
    if let Err(e) = filled {
        out.fill_error = Some(format!("{e:#}"));
        let _ = broker.stop();
        return Ok(out);
    }
    println!("restart {}: filled in {:.1} s", target.name(), out.fill_s);
    let mut broker = broker;
    for (stop, generation) in [(Stop::Sigterm, 1), (Stop::Sigkill, 2)] {
        let stopping = Instant::now();
        match stop {
            Stop::Sigterm => broker.stop()?,
            Stop::Sigkill => broker.kill()?,
        }
        let stop_s = stopping.elapsed().as_secs_f64();
        if stop == Stop::Sigterm {
            out.mosquitto_db_bytes = home.mosquitto_db().and_then(|db| std::fs::metadata(db).ok()).map(|m| m.len());
        }
        broker = home.start(opts)?;
        out.commands.push(broker.command());
        let restart = measure(opts, &broker, stop, stop_s, generation, rt);
        println!(
            "restart {} after {}: ready {:.3} s, first retained {}, retained {} of {}, sessions {} of {}, queued {} of {} ({} stale){}",
            target.name(),
            stop.name(),
            restart.ready_s,
            restart.first_retained_s.map_or("-".into(), |s| format!("{s:.3} s")),
            restart.retained.found,
            restart.retained.expected,
            restart.sessions.present,
            restart.sessions.sessions,
            restart.sessions.queued_delivered,
            restart.sessions.queued_expected,
            restart.sessions.stale_delivered,
            restart.error.as_ref().map(|e| format!(" ERROR {e}")).unwrap_or_default(),
        );
        out.restarts.push(restart);
        if stop == Stop::Sigterm {
            // The next generation of queued messages, acknowledged just before the kill.
            if let Err(e) = rt.block_on(queue(opts, &dialer(&broker), 2)) {
                out.fill_error = Some(format!("queueing before kill -9: {e:#}"));
                break;
            }
        }
    }
    let _ = broker.stop();
    Ok(out)
}

fn dialer(broker: &Running) -> Dialer {
    Dialer { addr: broker.addr(), tls: None }
}

async fn publish_checked(
    opts: &DurabilityOptions,
    dialer: &Dialer,
    messages: Vec<(String, bool)>,
    generation: u32,
) -> Result<()> {
    let want = messages.len() as u64;
    let acked =
        clients::publish_all(dialer, messages, generation, opts.payload, 4, opts.inflight, opts.row_timeout).await?;
    anyhow::ensure!(acked == want, "{acked} of {want} publishes acknowledged");
    Ok(())
}

/// Q messages of `generation` to each session's topic.
async fn queue(opts: &DurabilityOptions, dialer: &Dialer, generation: u32) -> Result<()> {
    let size = &opts.restart;
    let messages = (0..size.queued_per_session)
        .flat_map(|_| (0..size.sessions).map(|i| (clients::session_topic(i), false)))
        .collect();
    publish_checked(opts, dialer, messages, generation).await
}

fn measure(
    opts: &DurabilityOptions,
    broker: &Running,
    after: Stop,
    stop_s: f64,
    generation: u32,
    rt: &Runtime,
) -> Restart {
    let size = &opts.restart;
    let dialer = dialer(broker);
    let ready_s = broker.ready_after().as_secs_f64();
    let timeout = opts.row_timeout;
    let (first, retained, sessions) = rt.block_on(async {
        let first = clients::first_retained(&dialer, size.retained.saturating_sub(1), Duration::from_secs(10)).await;
        let retained = clients::count_retained(&dialer, size.retained, 1, timeout).await;
        let sessions = clients::drain_sessions(
            &dialer,
            size.sessions,
            size.queued_per_session,
            generation,
            opts.concurrency,
            timeout,
        )
        .await;
        (first, retained, sessions)
    });
    let store_opened = broker
        .log_text()
        .lines()
        .find(|l| l.contains("durable store opened"))
        .map(|l| l.split_once("durable store opened").map_or(l, |(_, rest)| rest).trim().to_string());
    let (first_retained_s, error) = match first {
        Ok(took) => (Some(ready_s + took.as_secs_f64()), None),
        Err(e) => (None, Some(format!("first retained message: {e:#}"))),
    };
    Restart { after, stop_s, ready_s, first_retained_s, store_opened, retained, sessions, error }
}
