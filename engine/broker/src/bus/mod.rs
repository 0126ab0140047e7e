//! Messages on their way through rumqttd's router.
//!
//! The router is the engine's one ordered log between threads: every application
//! message and every control entry is appended to it once, and every node (each io
//! thread, and the in-process services' node) reads all of it in the same order. The
//! router sees a bounded set of topics (a few per node, see [`tags`]: who appended the
//! entry, padded to what it costs) and one filter, so none of its per-topic and
//! per-filter state can grow with what clients send; what the message is about travels
//! in the PUBLISH properties:
//!
//! - `correlation_data` holds the real topic; when the message also has a message
//!   expiry interval or correlation data, it holds `0xFF` (which never starts UTF-8),
//!   which of the two there are, the expiry (4 bytes), the topic's length and the topic,
//!   then the client's correlation data;
//! - `payload_format_indicator` packs the flags ([`Flags`]): the client's indicator,
//!   QoS as published, RETAIN, control entry, large payload, publisher present;
//! - the publisher's session (only when no-local needs it) is a trailing user property
//!   whose key starts with U+0000, which no client can send;
//! - the other properties are the client's own and pass untouched. The expiry stays
//!   out of `message_expiry_interval`, because the router drops an entry whose interval
//!   has run out instead of delivering it, and every node must read every entry.
//!
//! Messages with a payload of 64 KiB or more, or topic and properties longer than the
//! largest class, travel beside the log ([`large`]), so the log never pins big buffers.

pub(crate) mod control;
pub(crate) mod large;
pub(crate) mod tags;

use bytes::{BufMut, Bytes, BytesMut};
use rumqttd::protocol::{Publish, PublishProperties};
use rumqttd::Forward;

pub(crate) use control::Control;
use large::LargePayloads;
use tags::Tags;

use crate::limits::LARGE_PAYLOAD;

/// Where a session lives: its node, its slot there, and which occupant of the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SessionKey {
    pub node: u16,
    pub slot: u32,
    pub generation: u32,
}

impl SessionKey {
    fn encode(&self) -> String {
        format!("{}.{}.{}", self.node, self.slot, self.generation)
    }

    fn decode(s: &str) -> Option<SessionKey> {
        let mut parts = s.split('.').map(str::parse::<u64>);
        let (Some(Ok(node)), Some(Ok(slot)), Some(Ok(generation)), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        Some(SessionKey { node: u16::try_from(node).ok()?, slot: slot as u32, generation: generation as u32 })
    }
}

/// An application message as the bus carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// A checked topic name (UTF-8).
    pub topic: Bytes,
    pub payload: Bytes,
    /// QoS as published.
    pub qos: u8,
    pub retain: bool,
    /// The publisher's MQTT 5 properties (never a topic alias or subscription id).
    pub properties: Option<PublishProperties>,
    /// Set when the publishing session has a no-local subscription that could match.
    pub publisher: Option<SessionKey>,
}

impl Message {
    pub(crate) fn topic_str(&self) -> &str {
        // Checked at the door; an engine-made topic is a &str to begin with.
        std::str::from_utf8(&self.topic).unwrap_or("")
    }

    pub(crate) fn expiry_interval(&self) -> Option<u32> {
        self.properties.as_ref().and_then(|p| p.message_expiry_interval)
    }

    /// The bytes it carries besides its payload: topic and what its properties hold.
    pub(crate) fn header_footprint(&self) -> usize {
        let properties = self.properties.as_ref().map_or(0, |p| {
            p.response_topic.as_ref().map_or(0, String::len)
                + p.correlation_data.as_ref().map_or(0, Bytes::len)
                + p.content_type.as_ref().map_or(0, String::len)
                + p.user_properties.iter().map(|(k, v)| 48 + k.len() + v.len()).sum::<usize>()
        });
        self.topic.len() + properties
    }
}

/// A message as a node routes it: read once, shared by every delivery on the node.
#[derive(Debug)]
pub(crate) struct Routed {
    pub message: Message,
    /// When its message expiry interval runs out, counted from when the node read it.
    pub deadline: Option<std::time::Instant>,
}

impl Routed {
    pub(crate) fn new(message: Message, now: std::time::Instant) -> Routed {
        let deadline = message.expiry_interval().map(|s| now + std::time::Duration::from_secs(u64::from(s)));
        Routed { message, deadline }
    }

    pub(crate) fn expired(&self, now: std::time::Instant) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }

    /// What is left of the expiry interval, rounded up, for the outgoing PUBLISH.
    pub(crate) fn remaining_expiry(&self, now: std::time::Instant) -> Option<u32> {
        self.deadline.map(|d| {
            let left = d.saturating_duration_since(now);
            (left.as_secs() + u64::from(left.subsec_nanos() > 0)).min(u64::from(u32::MAX)) as u32
        })
    }
}

/// The size rumqttd's log counts for an entry (`4 + topic + payload`), which bounds
/// how far behind a reader may fall.
pub(crate) fn entry_size(publish: &Publish) -> usize {
    4 + publish.topic.len() + publish.payload.len()
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Message(Message),
    Control(Control),
}

const PUBLISHER_KEY: &str = "\0p";
const COMBINED_TOPIC: u8 = 0xff;
const HAS_CORRELATION: u8 = 1;
const HAS_EXPIRY: u8 = 2;
/// Marker, presence flags, expiry, topic length.
const COMBINED_HEADER: usize = 8;

/// The flag byte in `payload_format_indicator`.
struct Flags;

impl Flags {
    const INDICATOR_VALUE: u8 = 1;
    const INDICATOR_PRESENT: u8 = 1 << 1;
    const QOS_SHIFT: u8 = 2;
    const RETAIN: u8 = 1 << 4;
    const CONTROL: u8 = 1 << 5;
    const LARGE: u8 = 1 << 6;
    const PUBLISHER: u8 = 1 << 7;
}

/// Why a log entry could not be read back (an engine bug, never client input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BusError {
    #[error("log entry without the engine's header")]
    NoHeader,
    #[error("log entry from an unknown node")]
    UnknownOrigin,
    #[error("large payload {0} no longer held (a reader fell behind)")]
    LargePayloadGone(u64),
    #[error("malformed control entry")]
    BadControl,
}

/// Turns an entry into what the router appends, from node `node`.
pub(crate) fn to_router(
    entry: Entry,
    node: u16,
    tags: &Tags,
    large: &LargePayloads,
) -> (Publish, Option<PublishProperties>) {
    match entry {
        Entry::Message(message) => match tags.for_header(node, message.header_footprint()) {
            Some(tag) if message.payload.len() < LARGE_PAYLOAD => message_to_router(message, tag),
            _ => {
                // Too big for the log: it holds a handle, the message waits beside it.
                let properties =
                    PublishProperties { payload_format_indicator: Some(Flags::LARGE), ..Default::default() };
                let handle = Bytes::copy_from_slice(&large.insert(message).to_be_bytes());
                (Publish::new(tags.small(node).clone(), handle, false), Some(properties))
            }
        },
        Entry::Control(control) => {
            let properties = PublishProperties { payload_format_indicator: Some(Flags::CONTROL), ..Default::default() };
            (Publish::new(tags.small(node).clone(), control.encode(), false), Some(properties))
        }
    }
}

fn message_to_router(message: Message, tag: &Bytes) -> (Publish, Option<PublishProperties>) {
    let Message { topic, payload, qos, retain, properties, publisher } = message;
    let mut p = properties.unwrap_or_default();
    let mut flags = (qos & 0b11) << Flags::QOS_SHIFT;
    if retain {
        flags |= Flags::RETAIN;
    }
    if let Some(indicator) = p.payload_format_indicator {
        flags |= Flags::INDICATOR_PRESENT | (indicator & Flags::INDICATOR_VALUE);
    }
    let expiry = p.message_expiry_interval.take();
    p.correlation_data = Some(match (p.correlation_data.take(), expiry) {
        (None, None) => topic,
        (data, expiry) => {
            let present = (u8::from(data.is_some()) * HAS_CORRELATION) | (u8::from(expiry.is_some()) * HAS_EXPIRY);
            let data = data.unwrap_or_default();
            let mut combined = BytesMut::with_capacity(COMBINED_HEADER + topic.len() + data.len());
            combined.put_u8(COMBINED_TOPIC);
            combined.put_u8(present);
            combined.put_u32(expiry.unwrap_or(0));
            combined.put_u16(topic.len() as u16);
            combined.extend_from_slice(&topic);
            combined.extend_from_slice(&data);
            combined.freeze()
        }
    });
    if let Some(key) = publisher {
        flags |= Flags::PUBLISHER;
        p.user_properties.push((PUBLISHER_KEY.to_string(), key.encode()));
    }
    p.payload_format_indicator = Some(flags);
    (Publish::new(tag.clone(), payload, false), Some(p))
}

/// Reads an entry back; returns the index of the node that appended it too.
pub(crate) fn from_router(forward: Forward, large: &LargePayloads) -> Result<(u16, Entry), BusError> {
    let origin = tags::origin(&forward.publish.topic).ok_or(BusError::UnknownOrigin)?;
    let mut p = forward.properties.ok_or(BusError::NoHeader)?;
    let flags = p.payload_format_indicator.ok_or(BusError::NoHeader)?;
    let payload = forward.publish.payload;
    if flags & Flags::CONTROL != 0 {
        return Control::decode(&payload).map(|c| (origin, Entry::Control(c))).ok_or(BusError::BadControl);
    }
    if flags & Flags::LARGE != 0 {
        let id = <[u8; 8]>::try_from(&payload[..]).map(u64::from_be_bytes).map_err(|_| BusError::NoHeader)?;
        let message = large.take(id).ok_or(BusError::LargePayloadGone(id))?;
        return Ok((origin, Entry::Message(message)));
    }
    let topic = match p.correlation_data.take().ok_or(BusError::NoHeader)? {
        combined if combined.first() == Some(&COMBINED_TOPIC) => {
            let header = combined.get(1..COMBINED_HEADER).ok_or(BusError::NoHeader)?;
            let present = header[0];
            let expiry = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            let len = u16::from_be_bytes([header[5], header[6]]) as usize;
            let end = COMBINED_HEADER + len;
            if combined.len() < end {
                return Err(BusError::NoHeader);
            }
            p.message_expiry_interval = (present & HAS_EXPIRY != 0).then_some(expiry);
            p.correlation_data = (present & HAS_CORRELATION != 0).then(|| combined.slice(end..));
            combined.slice(COMBINED_HEADER..end)
        }
        topic => topic,
    };
    let publisher = if flags & Flags::PUBLISHER != 0 {
        let position = p.user_properties.iter().rposition(|(k, _)| k == PUBLISHER_KEY);
        position.and_then(|i| SessionKey::decode(&p.user_properties.remove(i).1))
    } else {
        None
    };
    p.payload_format_indicator = (flags & Flags::INDICATOR_PRESENT != 0).then_some(flags & Flags::INDICATOR_VALUE);
    let properties = (p != PublishProperties::default()).then_some(p);
    let message = Message {
        topic,
        payload,
        qos: (flags >> Flags::QOS_SHIFT) & 0b11,
        retain: flags & Flags::RETAIN != 0,
        properties,
        publisher,
    };
    Ok((origin, Entry::Message(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through_router(entry: Entry, large: &LargePayloads) -> (u16, Entry) {
        let (publish, properties) = to_router(entry, 3, &Tags::new(4), large);
        let forward = Forward { cursor: None, size: 0, publish, properties };
        from_router(forward, large).unwrap()
    }

    fn plain(topic: &'static str) -> Message {
        Message {
            topic: Bytes::from_static(topic.as_bytes()),
            payload: Bytes::from_static(b"on"),
            qos: 2,
            retain: true,
            properties: None,
            publisher: None,
        }
    }

    #[test]
    fn a_plain_message_comes_back_as_it_went() {
        let large = LargePayloads::new(1);
        let message = plain("温度/室内");
        assert_eq!(through_router(Entry::Message(message.clone()), &large), (3, Entry::Message(message)));
    }

    #[test]
    fn every_property_and_the_publisher_survive() {
        let large = LargePayloads::new(1);
        let mut message = plain("a/b");
        message.properties = Some(PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            topic_alias: None,
            response_topic: Some("r".into()),
            correlation_data: Some(Bytes::from_static(&[0xff, 0, 1])),
            user_properties: vec![("k".into(), "v".into())],
            subscription_identifiers: vec![],
            content_type: Some("text/plain".into()),
        });
        message.publisher = Some(SessionKey { node: 1, slot: 42, generation: 7 });
        assert_eq!(through_router(Entry::Message(message.clone()), &large).1, Entry::Message(message));
    }

    #[test]
    fn expiry_travels_outside_the_routers_reach() {
        let large = LargePayloads::new(1);
        for (expiry, correlation) in
            [(Some(0), None), (Some(7), Some(Bytes::new())), (None, Some(Bytes::from_static(b"c")))]
        {
            let mut message = plain("t");
            message.properties = Some(PublishProperties {
                message_expiry_interval: expiry,
                correlation_data: correlation,
                ..Default::default()
            });
            let (publish, properties) = to_router(Entry::Message(message.clone()), 0, &Tags::new(1), &large);
            assert_eq!(properties.as_ref().unwrap().message_expiry_interval, None, "the router never sees an expiry");
            let forward = Forward { cursor: None, size: 0, publish, properties };
            assert_eq!(from_router(forward, &large).unwrap().1, Entry::Message(message));
        }
    }

    #[test]
    fn large_messages_travel_beside_the_log() {
        let large = LargePayloads::new(2);
        let mut message = plain("big");
        message.payload = Bytes::from(vec![7u8; 64 * 1024]);
        let (publish, properties) = to_router(Entry::Message(message.clone()), 0, &Tags::new(1), &large);
        assert_eq!(publish.payload.len(), 8, "the log holds a handle, not the payload");
        let forward = Forward { cursor: None, size: 0, publish, properties };
        assert_eq!(from_router(forward.clone(), &large).unwrap().1, Entry::Message(message.clone()));
        assert_eq!(from_router(forward.clone(), &large).unwrap().1, Entry::Message(message));
        assert_eq!(large.held(), 0, "released once every reader took it");
        assert!(matches!(from_router(forward, &large), Err(BusError::LargePayloadGone(_))));
    }

    #[test]
    fn what_an_entry_costs_picks_its_topic_and_long_topics_go_beside_the_log() {
        let large = LargePayloads::new(1);
        let tags = Tags::new(1);
        let mut message = plain("t");
        let (publish, _) = to_router(Entry::Message(message.clone()), 0, &tags, &large);
        assert_eq!(publish.topic.len(), 64);
        message.topic = Bytes::from("l".repeat(4000));
        let (publish, _) = to_router(Entry::Message(message.clone()), 0, &tags, &large);
        assert_eq!(publish.topic.len(), 4096, "the router counts the topic it cannot see");
        message.properties =
            Some(PublishProperties { user_properties: vec![("k".into(), "v".repeat(40_000))], ..Default::default() });
        let (publish, properties) = to_router(Entry::Message(message.clone()), 0, &tags, &large);
        assert_eq!(publish.payload.len(), 8);
        let forward = Forward { cursor: None, size: 0, publish, properties };
        assert_eq!(from_router(forward, &large).unwrap().1, Entry::Message(message));
    }

    #[test]
    fn session_keys_round_trip() {
        let key = SessionKey { node: 3, slot: 4_000_000_000, generation: 9 };
        assert_eq!(SessionKey::decode(&key.encode()), Some(key));
        assert_eq!(SessionKey::decode("1.2"), None);
        assert_eq!(SessionKey::decode("70000.1.1"), None);
    }
}
