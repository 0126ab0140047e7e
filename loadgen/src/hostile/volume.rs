//! Steps that come as volume on few connections: topics, filters, retained messages,
//! wills and topic aliases by the ten thousand, and subscribers that stop reading.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::watch;

use super::ctx::{Ctx, Outcome, ANSWER_WAIT, CLIENT_TIMEOUT};
use super::floods::tally;
use super::pipeline;
use super::rules::puback_text;
use crate::client::{Client, Next};
use crate::large::pattern::Pattern;
use crate::large::transfer;
use crate::packet::{self, code_counts, prop, Connect, Incoming, PropValue, Properties, Publish, Version, Will};
use crate::report::thousands;

/// Unacknowledged QoS 1 publishes when the broker does not say (the seeds'
/// `max_inflight_messages`): this step is about volume, not about the in-flight limit.
const SEEDS_INFLIGHT: u16 = 100;
/// How long stalled subscribers stay stalled after the publisher is done.
const STALL_AFTER_PUBLISH: Duration = Duration::from_secs(3);
/// Budget for one pipelined step.
const PIPELINE_TIMEOUT: Duration = Duration::from_secs(180);

pub async fn distinct_topics(ctx: &Ctx) -> Result<Outcome> {
    let n = ctx.scale.n(100_000);
    let c = ctx.connect(Version::V311, "topics").await?;
    let prefix = format!("alicia/loadgen/{}/t", ctx.run);
    let done = pipeline::run(c, n, 1, false, PIPELINE_TIMEOUT, |i, _, buf| {
        let topic = format!("{prefix}{i}");
        packet::encode_publish(
            buf,
            Version::V311,
            &Publish { topic: topic.as_bytes(), payload: b"x", ..Default::default() },
        );
    })
    .await;
    let mut out = Outcome::default();
    out.answer(format!("qos 0 publishes to distinct topics under alicia/: {}", done.describe(Version::V311)));
    Ok(out)
}

pub async fn subscribe_churn(ctx: &Ctx) -> Result<Outcome> {
    let n = ctx.scale.n(50_000);
    let c = ctx.connect(Version::V311, "filters").await?;
    let prefix = ctx.topic("f");
    // One request per index: SUBSCRIBE for the first n, UNSUBSCRIBE of the same filters after.
    let done = pipeline::run(c, 2 * n, 1_000, true, PIPELINE_TIMEOUT, |i, pkid, buf| {
        let filter = format!("{prefix}/{}/+", i % n);
        if i < n {
            packet::encode_subscribe(buf, Version::V311, pkid, &[(&filter, 1)]);
        } else {
            packet::encode_unsubscribe(buf, Version::V311, pkid, &[&filter]);
        }
    })
    .await;
    let mut out = Outcome::default();
    out.answer(format!(
        "{} distinct filters subscribed then unsubscribed: {}",
        thousands(n as f64),
        done.describe(Version::V311)
    ));
    Ok(out)
}

/// Counts what a fresh subscriber to `filter` receives until the broker is quiet for a second.
async fn fresh_subscriber_count(ctx: &Ctx, filter: &str) -> Result<String> {
    let mut sub = ctx.connect(Version::V311, "counter").await?;
    if let Err(next) = sub.subscribe(&[(filter, 1)], CLIENT_TIMEOUT).await {
        return Ok(format!("subscribe failed: {}", next.describe(Version::V311)));
    }
    let (mut count, started) = (0usize, Instant::now());
    let ending = loop {
        match sub.next(Duration::from_secs(1)).await {
            Next::Packet(Incoming::Publish(_)) => count += 1,
            Next::Packet(_) => {}
            Next::TimedOut => break None,
            other => break Some(other.describe(Version::V311)),
        }
        if started.elapsed() > Duration::from_secs(60) {
            break Some("still arriving after 60 s".into());
        }
    };
    Ok(match ending {
        None => format!("{} delivered", thousands(count as f64)),
        Some(e) => format!("{} delivered, then {e}", thousands(count as f64)),
    })
}

/// Encodes retained QoS 1 publishes of `body` to `<prefix>/<index>`.
fn retained<'a>(prefix: &'a str, body: &'a [u8]) -> impl FnMut(usize, u16, &mut bytes::BytesMut) + 'a {
    move |i, pkid, buf| {
        let topic = format!("{prefix}/{i}");
        let p = Publish { topic: topic.as_bytes(), qos: 1, retain: true, pkid, payload: body, ..Default::default() };
        packet::encode_publish(buf, Version::V5, &p);
    }
}

pub async fn many_retained(ctx: &Ctx) -> Result<Outcome> {
    let n = ctx.scale.n(20_000);
    let prefix = ctx.topic("r");
    let mut out = Outcome::default();
    let c = ctx.connect(Version::V5, "retained").await?;
    let window = c.publish_window(SEEDS_INFLIGHT);
    let stored = pipeline::run(c, n, window, true, PIPELINE_TIMEOUT, retained(&prefix, &[b'r'; 100])).await;
    out.answer(format!("retained 100-byte messages on distinct topics: {}", stored.describe(Version::V5)));
    let seen = fresh_subscriber_count(ctx, &format!("{prefix}/#")).await?;
    out.answer(format!("a fresh subscriber to all of them: {seen}"));
    let c = ctx.connect(Version::V5, "retained-clear").await?;
    let window = c.publish_window(SEEDS_INFLIGHT);
    let cleared = pipeline::run(c, n, window, true, PIPELINE_TIMEOUT, retained(&prefix, b"")).await;
    out.answer(format!("clearing them: {}", cleared.describe(Version::V5)));
    Ok(out)
}

pub async fn large_retained(ctx: &Ctx) -> Result<Outcome> {
    let n = ctx.scale.n(16);
    let size = ctx.scale.bytes(16 << 20, 64 << 10);
    let mut payload = vec![0u8; size];
    Pattern::new(7).fill(0, &mut payload);
    let mut out = Outcome::default();
    let mut answers = Vec::new();
    let mut c = ctx.connect(Version::V5, "big-retained").await?;
    for i in 0..n {
        let topic = ctx.topic(&format!("big/{i}"));
        let r = c.publish(topic.as_bytes(), 1, true, Properties::new(), &payload, Duration::from_secs(60)).await;
        let ended = matches!(&r, Err(next) if next.is_end());
        answers.push(puback_text(&r, Version::V5));
        if ended {
            break;
        }
    }
    out.answer(format!("{n} retained messages of {} bytes: {}", thousands(size as f64), tally(answers)));
    let mut clear = ctx.connect(Version::V5, "big-retained-clear").await?;
    let mut cleared = Vec::new();
    for i in 0..n {
        let topic = ctx.topic(&format!("big/{i}"));
        let r = clear.publish(topic.as_bytes(), 1, true, Properties::new(), b"", CLIENT_TIMEOUT).await;
        cleared.push(puback_text(&r, Version::V5));
    }
    out.answer(format!("clearing them: {}", tally(cleared)));
    Ok(out)
}

pub async fn will_max_delay(ctx: &Ctx) -> Result<Outcome> {
    let n = ctx.scale.n(100);
    let mut out = Outcome::default();
    let mut observer = ctx.connect(Version::V311, "will-observer").await?;
    let _ = observer.subscribe(&[(&ctx.topic("will/#"), 1)], CLIENT_TIMEOUT).await;
    let mut answers = Vec::new();
    for i in 0..n {
        let mut connect = Connect::new(Version::V5, ctx.client_id(&format!("will-{i}")), 0);
        connect.properties = Properties::new().u32(prop::SESSION_EXPIRY, u32::MAX);
        connect.will = Some(Will {
            topic: ctx.topic(&format!("will/{i}")),
            payload: b"gone".to_vec(),
            qos: 1,
            retain: false,
            properties: Properties::new().u32(prop::WILL_DELAY, u32::MAX),
        });
        let mut c = Client::new(ctx.tcp().await?, Version::V5);
        let answer = c.handshake(&connect, tokio::time::Instant::now() + CLIENT_TIMEOUT).await;
        answers.push(answer.describe(Version::V5));
        c.reset();
    }
    out.answer(format!("CONNECT with will delay and session expiry 4,294,967,295 s, then reset: {}", tally(answers)));
    let mut wills = 0;
    while let Next::Packet(p) = observer.next(ANSWER_WAIT).await {
        wills += usize::from(matches!(p, Incoming::Publish(_)));
    }
    out.observe(
        "no will is published before its delay or its session's end",
        wills == 0,
        format!("{wills} of {n} wills published within {} s of the resets", ANSWER_WAIT.as_secs()),
    );
    // Taking each session over with a clean start ends it without its will.
    let mut cleaned = Vec::new();
    for i in 0..n {
        let connect = Connect::new(Version::V5, ctx.client_id(&format!("will-{i}")), 0);
        match Client::connect(ctx.mqtt, &connect, CLIENT_TIMEOUT).await {
            Ok(c) => {
                c.disconnect().await;
                cleaned.push("taken over and closed".to_string());
            }
            Err(e) => cleaned.push(format!("{e:#}").replace(&ctx.client_id(&format!("will-{i}")), "…")),
        }
    }
    out.answer(format!("sessions taken over with a clean start: {}", tally(cleaned)));
    Ok(out)
}

pub async fn many_filters_one_subscribe(ctx: &Ctx) -> Result<Outcome> {
    let n = ctx.scale.n(10_000);
    let mut out = Outcome::default();
    for v in [Version::V311, Version::V5] {
        let filters: Vec<String> = (0..n).map(|i| ctx.topic(&format!("many/{i}"))).collect();
        let pairs: Vec<(&str, u8)> = filters.iter().map(|f| (f.as_str(), 1)).collect();
        let mut c = ctx.connect(v, "many-filters").await?;
        let granted = c.subscribe(&pairs, Duration::from_secs(30)).await;
        let said = match granted {
            Ok(codes) => format!("SUBACK {}", code_counts(v, &codes)),
            Err(next) => next.describe(v),
        };
        out.answer(format!("one SUBSCRIBE with {} filters (mqtt {}): {said}", thousands(n as f64), v.name()));
    }
    Ok(out)
}

pub async fn topic_aliases(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::default();
    let mut c = Client::new(ctx.tcp().await?, Version::V5);
    let connack = c
        .handshake(
            &Connect::new(Version::V5, ctx.client_id("aliases"), 0),
            tokio::time::Instant::now() + CLIENT_TIMEOUT,
        )
        .await;
    let max = match &connack {
        Next::Packet(Incoming::ConnAck { code: 0, properties, .. }) => properties
            .iter()
            .find_map(|(id, v)| match (id, v) {
                (&prop::TOPIC_ALIAS_MAXIMUM, PropValue::Int(n)) => Some(*n as usize),
                _ => None,
            })
            .unwrap_or(0),
        other => {
            out.answer(format!("CONNECT: {}", other.describe(Version::V5)));
            return Ok(out);
        }
    };
    let topic_len = ctx.scale.bytes(65_000, 1_000);
    let long_topic = |i: usize| {
        let mut t = format!("{}/{i}/", ctx.topic("alias"));
        t.extend(std::iter::repeat_n('x', topic_len.saturating_sub(t.len())));
        t
    };
    if max == 0 {
        out.answer("the CONNACK allows no topic aliases (Topic Alias Maximum 0 or absent)");
        let topic = long_topic(1);
        let p = Publish {
            topic: topic.as_bytes(),
            properties: Properties::new().u16(prop::TOPIC_ALIAS, 1),
            payload: b"a",
            ..Default::default()
        };
        let mut bytes = bytes::BytesMut::new();
        packet::encode_publish(&mut bytes, Version::V5, &p);
        let said = ctx.answer_to(&mut c, &bytes).await;
        out.answer(format!("PUBLISH with topic alias 1 anyway: {said}"));
        return Ok(out);
    }
    let aliases = ctx.scale.n(max).min(max);
    let topics: Vec<String> = (1..=aliases).map(long_topic).collect();
    // Each alias set with its long topic, then each used with an empty topic.
    let done = pipeline::run(c, 2 * aliases, 1, false, PIPELINE_TIMEOUT, |i, _, buf| {
        let alias = i % aliases;
        let topic = if i < aliases { topics[alias].as_bytes() } else { &b""[..] };
        let properties = Properties::new().u16(prop::TOPIC_ALIAS, (alias + 1) as u16);
        packet::encode_publish(buf, Version::V5, &Publish { topic, properties, payload: b"a", ..Default::default() });
    })
    .await;
    out.answer(format!(
        "{} aliases (the broker's maximum is {max}) set to {}-byte topics, then used: {}",
        thousands(aliases as f64),
        thousands(topic_len as f64),
        done.describe(Version::V5)
    ));
    Ok(out)
}

pub async fn stalled_subscribers(ctx: &Ctx) -> Result<Outcome> {
    let k = 3;
    let size = ctx.scale.bytes(64 << 20, 1 << 20);
    let mut out = Outcome::default();
    let topic = ctx.topic("stalled");
    let pattern = Pattern::new(11);
    let (resume_tx, resume_rx) = watch::channel(false);
    let start: transfer::Start = Arc::new(std::sync::OnceLock::new());
    let stall = Duration::from_secs(10);
    let mut receivers = Vec::new();
    for i in 0..k {
        let v = if i % 2 == 0 { Version::V311 } else { Version::V5 };
        let sub = transfer::subscribe(ctx.mqtt, i, v, 1, &topic).await?;
        let deadline = Instant::now() + stall + Duration::from_secs(60);
        receivers.push(tokio::spawn(sub.receive(size as u64, pattern, start.clone(), resume_rx.clone(), deadline)));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let message = transfer::Message { topic, qos: 1, size, pattern };
    let publisher = tokio::spawn(transfer::publish(ctx.mqtt, Version::V311, message, start.clone(), deadline));
    // Stalled while the publisher sends (at most `stall`), then a while longer with the
    // message inside the broker and nobody reading it.
    let stalled_since = Instant::now();
    while !publisher.is_finished() && stalled_since.elapsed() < stall {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(STALL_AFTER_PUBLISH).await;
    ctx.bus_now(&mut out, &format!("while {k} subscribers are stalled on a {} MiB message", size >> 20)).await;
    let _ = resume_tx.send(true);
    let published = publisher.await?;
    out.answer(format!("publisher ({} bytes, qos 1): {}", thousands(size as f64), published.answer));
    for r in receivers {
        let r = r.await?;
        let what = match (&r.ending, r.verified) {
            (_, true) => format!("got it whole after resuming, at {:.0} ms", r.delivered_ms.unwrap_or(0.0)),
            (Some(e), false) => e.clone(),
            (None, false) => format!("{} bytes, first mismatch at {:?}", r.received_bytes, r.first_mismatch),
        };
        out.answer(format!("stalled subscriber {} (mqtt {}): {what}", r.subscriber, r.version.name()));
    }
    Ok(out)
}
