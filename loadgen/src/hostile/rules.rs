//! Steps that break the rules of one conversation: topics and properties a broker must
//! pass on intact, retained messages it must keep, and packets it must refuse.

use anyhow::Result;
use bytes::{BufMut, BytesMut};
use tokio::time::Instant;

use super::ctx::{Ctx, Outcome, ANSWER_WAIT, CLIENT_TIMEOUT};
use crate::client::{Client, Next};
use crate::packet::{self, code_counts, prop, Connect, Incoming, Properties, Version};

const BOTH: [Version; 2] = [Version::V311, Version::V5];
/// How long a subscriber waits for a message the step published.
const DELIVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub fn puback_text(r: &Result<Option<u8>, Next>, v: Version) -> String {
    match r {
        Ok(Some(code)) => Incoming::PubAck { pkid: 0, code: *code }.describe(v),
        Ok(None) => "sent (qos 0)".into(),
        Err(next) => next.describe(v),
    }
}

fn suback_text(r: &Result<Vec<u8>, Next>, v: Version) -> String {
    match r {
        Ok(codes) => format!("SUBACK {}", code_counts(v, codes)),
        Err(next) => next.describe(v),
    }
}

/// The next delivery of `payload` to `client` within [`DELIVERY_WAIT`].
async fn delivery(client: &mut Client, payload: &[u8]) -> Result<packet::Delivery, Next> {
    let wanted = |p: &Incoming| matches!(p, Incoming::Publish(d) if d.payload == payload);
    match client.expect(Instant::now() + DELIVERY_WAIT, wanted).await? {
        Incoming::Publish(d) => Ok(d),
        _ => unreachable!("expect returns what it was asked for"),
    }
}

pub async fn utf8_topic(ctx: &Ctx, v: Version) -> Result<Outcome> {
    let mut out = Outcome::default();
    let (filter, topic) = ("é/#", "é/x");
    let payload = format!("utf8 {}", ctx.run);
    let mut sub = ctx.connect(v, "utf8-sub").await?;
    let granted = sub.subscribe(&[(filter, 1)], CLIENT_TIMEOUT).await;
    out.answer(format!("subscriber to `{filter}`: {}", suback_text(&granted, v)));
    let mut publisher = ctx.connect(v, "utf8-pub").await?;
    let acked =
        publisher.publish(topic.as_bytes(), 1, false, Properties::new(), payload.as_bytes(), CLIENT_TIMEOUT).await;
    out.answer(format!("PUBLISH to `{topic}`: {}", puback_text(&acked, v)));
    let what = format!("a subscriber to `{filter}` gets the message to `{topic}` unchanged");
    match delivery(&mut sub, payload.as_bytes()).await {
        Ok(d) => {
            let same = d.topic == topic.as_bytes();
            out.observe(what, same, format!("delivered with topic `{}`", String::from_utf8_lossy(&d.topic)));
        }
        Err(next) => out.observe(what, false, format!("not delivered: {}", next.describe(v))),
    }
    Ok(out)
}

fn rich_properties() -> Properties {
    Properties::new()
        .user("origin", "alicia-loadgen")
        .u32(prop::MESSAGE_EXPIRY, 3_600)
        .string(prop::CONTENT_TYPE, "application/json")
}

/// An MQTT 5 message with properties reaches an MQTT 3.1.1 subscriber, live or retained.
pub async fn v5_properties_to_v3(ctx: &Ctx, retained: bool) -> Result<Outcome> {
    let mut out = Outcome::default();
    let topic = ctx.topic("props");
    let payload = format!("{{\"from\":\"v5\",\"run\":\"{}\"}}", ctx.run);
    let mut publisher = ctx.connect(Version::V5, "props-pub").await?;
    let mut early = None;
    if !retained {
        let mut sub = ctx.connect(Version::V311, "props-sub").await?;
        let granted = sub.subscribe(&[(&topic, 1)], CLIENT_TIMEOUT).await;
        out.answer(format!("3.1.1 subscriber: {}", suback_text(&granted, Version::V311)));
        early = Some(sub);
    }
    let acked =
        publisher.publish(topic.as_bytes(), 1, retained, rich_properties(), payload.as_bytes(), CLIENT_TIMEOUT).await;
    out.answer(format!(
        "MQTT 5 PUBLISH with properties{}: {}",
        if retained { ", retained" } else { "" },
        puback_text(&acked, Version::V5)
    ));
    let mut sub = match early {
        Some(sub) => sub,
        None => {
            let mut sub = ctx.connect(Version::V311, "props-late-sub").await?;
            let granted = sub.subscribe(&[(&topic, 1)], CLIENT_TIMEOUT).await;
            out.answer(format!("fresh 3.1.1 subscriber: {}", suback_text(&granted, Version::V311)));
            sub
        }
    };
    let who = if retained {
        "a fresh 3.1.1 subscriber gets the retained message"
    } else {
        "the 3.1.1 subscriber gets the message"
    };
    match delivery(&mut sub, payload.as_bytes()).await {
        Ok(d) => out.must(who, true, format!("qos {}, retain flag {}", d.qos, d.retain)),
        Err(next) => out.must(who, false, next.describe(Version::V311)),
    }
    match sub.ping(ANSWER_WAIT).await {
        Ok(()) => out.must("the 3.1.1 subscriber keeps its connection", true, "PINGRESP"),
        Err(next) => out.must("the 3.1.1 subscriber keeps its connection", false, next.describe(Version::V311)),
    }
    if retained {
        let cleared = publisher.publish(topic.as_bytes(), 1, true, Properties::new(), b"", CLIENT_TIMEOUT).await;
        out.answer(format!("clearing the retained message: {}", puback_text(&cleared, Version::V5)));
    }
    Ok(out)
}

pub async fn empty_publish_keeps_retained(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::default();
    let v = Version::V311;
    let topic = ctx.topic("kept");
    let payload = format!("retained {}", ctx.run);
    let mut publisher = ctx.connect(v, "kept-pub").await?;
    let acked =
        publisher.publish(topic.as_bytes(), 1, true, Properties::new(), payload.as_bytes(), CLIENT_TIMEOUT).await;
    out.answer(format!("retained PUBLISH: {}", puback_text(&acked, v)));
    let empty = publisher.publish(topic.as_bytes(), 1, false, Properties::new(), b"", CLIENT_TIMEOUT).await;
    out.answer(format!("empty non-retained PUBLISH: {}", puback_text(&empty, v)));
    let mut sub = ctx.connect(v, "kept-sub").await?;
    let granted = sub.subscribe(&[(&topic, 1)], CLIENT_TIMEOUT).await;
    out.answer(format!("fresh subscriber: {}", suback_text(&granted, v)));
    match delivery(&mut sub, payload.as_bytes()).await {
        Ok(_) => out.must("a fresh subscriber still gets the retained message", true, "delivered"),
        Err(next) => out.must("a fresh subscriber still gets the retained message", false, next.describe(v)),
    }
    let cleared = publisher.publish(topic.as_bytes(), 1, true, Properties::new(), b"", CLIENT_TIMEOUT).await;
    out.answer(format!("clearing: {}", puback_text(&cleared, v)));
    Ok(out)
}

/// A raw PUBLISH with any first byte and topic (no validation: that is the point).
fn raw_publish(v: Version, first: u8, topic: &[u8], pkid: Option<u16>, payload: &[u8]) -> BytesMut {
    let props = usize::from(v == Version::V5);
    let remaining = 2 + topic.len() + pkid.map_or(0, |_| 2) + props + payload.len();
    let mut b = BytesMut::new();
    b.put_u8(first);
    packet::put_varint(&mut b, remaining);
    b.put_u16(topic.len() as u16);
    b.put_slice(topic);
    if let Some(id) = pkid {
        b.put_u16(id);
    }
    if v == Version::V5 {
        b.put_u8(0);
    }
    b.put_slice(payload);
    b
}

/// Each case on a fresh connection: `(label, version, bytes after CONNECT)`.
async fn after_connect(ctx: &Ctx, cases: Vec<(String, Version, BytesMut)>) -> Result<Outcome> {
    let mut out = Outcome::default();
    for (i, (label, v, bytes)) in cases.into_iter().enumerate() {
        let mut c = ctx.connect(v, &format!("bad-{i}")).await?;
        let said = ctx.answer_to(&mut c, &bytes).await;
        out.answer(format!("{label} (mqtt {}): {said}", v.name()));
    }
    Ok(out)
}

pub async fn malformed_length(ctx: &Ctx) -> Result<Outcome> {
    let cases = BOTH.map(|v| {
        (
            "PUBLISH with a 5-byte remaining length".to_string(),
            v,
            BytesMut::from(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01][..]),
        )
    });
    after_connect(ctx, cases.into()).await
}

pub async fn publish_qos3(ctx: &Ctx) -> Result<Outcome> {
    let topic = ctx.topic("qos3");
    let cases = BOTH.map(|v| ("PUBLISH qos 3".to_string(), v, raw_publish(v, 0x36, topic.as_bytes(), Some(1), b"x")));
    after_connect(ctx, cases.into()).await
}

pub async fn reserved_flags(ctx: &Ctx) -> Result<Outcome> {
    let mut cases = Vec::new();
    for v in BOTH {
        let mut subscribe = BytesMut::new();
        packet::encode_subscribe(&mut subscribe, v, 1, &[(&ctx.topic("flags"), 0)]);
        subscribe[0] = 0x80;
        cases.push(("SUBSCRIBE with flags 0000".to_string(), v, subscribe));
        cases.push(("PINGREQ with flags 0001".to_string(), v, BytesMut::from(&[0xc1, 0x00][..])));
        cases.push(("packet type 0".to_string(), v, BytesMut::from(&[0x00, 0x00][..])));
    }
    after_connect(ctx, cases).await
}

pub async fn second_connect(ctx: &Ctx) -> Result<Outcome> {
    let cases = BOTH
        .map(|v| {
            let mut again = BytesMut::new();
            packet::encode_connect(&mut again, &Connect::new(v, ctx.client_id("second"), 0));
            ("a second CONNECT".to_string(), v, again)
        })
        .into();
    after_connect(ctx, cases).await
}

pub async fn garbage_after_connect(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::default();
    for v in BOTH {
        let mut bytes = BytesMut::new();
        packet::encode_connect(&mut bytes, &Connect::new(v, ctx.client_id("garbage"), 0));
        // Fixed, not random: the same garbage every run. 0xde and 0xad are no valid packet
        // type with valid flags for a client to send.
        bytes.extend((0..64u8).map(|i| if i % 2 == 0 { 0xde } else { 0xad ^ i }));
        let mut c = Client::new(ctx.tcp().await?, v);
        let said = ctx.answer_to(&mut c, &bytes).await;
        out.answer(format!("CONNECT + 64 bytes of garbage (mqtt {}): {said}", v.name()));
    }
    Ok(out)
}

/// Publishes each bad topic and records whether a subscriber to `<run>/<leaf>/#` got it.
async fn bad_topics(ctx: &Ctx, leaf: &str, topics: &[(&str, Vec<u8>)], versions: &[Version]) -> Result<Outcome> {
    let mut out = Outcome::default();
    let parent = ctx.topic(&format!("{leaf}/#"));
    let mut observer = ctx.connect(Version::V311, "observer").await?;
    let granted = observer.subscribe(&[(&parent, 1)], CLIENT_TIMEOUT).await;
    out.answer(format!("observer on `{parent}`: {}", suback_text(&granted, Version::V311)));
    for &v in versions {
        for (label, topic) in topics {
            let mut c = ctx.connect(v, &format!("{leaf}-pub")).await?;
            let said = ctx.answer_to(&mut c, &raw_publish(v, 0x32, topic, Some(1), b"bad topic")).await;
            out.answer(format!("PUBLISH to {label} (mqtt {}): {said}", v.name()));
        }
    }
    let mut delivered = Vec::new();
    while let Next::Packet(Incoming::Publish(d)) = observer.next(ANSWER_WAIT).await {
        delivered.push(format!("`{}`", String::from_utf8_lossy(&d.topic).escape_debug()));
    }
    let detail = if delivered.is_empty() {
        "none delivered".to_string()
    } else {
        format!("delivered: {}", delivered.join(", "))
    };
    out.observe(format!("a subscriber to `{parent}` gets none of them"), delivered.is_empty(), detail);
    Ok(out)
}

pub async fn wildcard_topic(ctx: &Ctx) -> Result<Outcome> {
    let plus = ctx.topic("w/+");
    let hash = ctx.topic("w/#");
    bad_topics(ctx, "w", &[("`…/w/+`", plus.into_bytes()), ("`…/w/#`", hash.into_bytes())], &BOTH).await
}

pub async fn nul_topic(ctx: &Ctx) -> Result<Outcome> {
    let nul = format!("{}\0b", ctx.topic("n/a"));
    bad_topics(ctx, "n", &[("`…/n/a\\0b`", nul.into_bytes())], &BOTH).await
}

pub async fn empty_topic(ctx: &Ctx) -> Result<Outcome> {
    let mut out = Outcome::default();
    for v in BOTH {
        let mut c = ctx.connect(v, "empty-topic").await?;
        let said = ctx.answer_to(&mut c, &raw_publish(v, 0x32, b"", Some(1), b"no topic")).await;
        let how = if v == Version::V5 { "an empty topic and no topic alias" } else { "an empty topic" };
        out.answer(format!("PUBLISH with {how} (mqtt {}): {said}", v.name()));
    }
    Ok(out)
}
