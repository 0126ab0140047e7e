//! MQTT 3.1.1 and 5 packets byte for byte, for scenarios that must control exactly what
//! goes on the wire (`hostile`, `large`) and say exactly what came back.
//!
//! `wire` is the hot path of `throughput`: 3.1.1 only, borrowed frames, no properties.
//! This codec trades that speed for reach: both protocol levels, MQTT 5 properties (user
//! properties, expiry, content type, topic aliases, will delay, reason strings), every
//! server-to-client packet, and a one-line description of each for reports.
//!
//! | file | what lives there |
//! |---|---|
//! | `mod.rs` | versions, MQTT 5 properties, the client-to-server packets |
//! | `incoming` | server-to-client packets decoded, and PUBLISH headers before their payload |
//! | `names` | reason codes by name, one-line descriptions for reports |

mod incoming;
mod names;

use bytes::{BufMut, BytesMut};

pub use incoming::{decode, publish_head, Delivery, Incoming, PropValue};
pub use names::code_counts;

/// The protocol level a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Version {
    #[serde(rename = "3.1.1")]
    V311,
    #[serde(rename = "5")]
    V5,
}

impl Version {
    pub fn level(self) -> u8 {
        match self {
            Version::V311 => 4,
            Version::V5 => 5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Version::V311 => "3.1.1",
            Version::V5 => "5",
        }
    }
}

impl std::str::FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "3.1.1" | "311" | "4" | "v4" | "v311" => Ok(Version::V311),
            "5" | "v5" | "5.0" => Ok(Version::V5),
            _ => Err(format!("mqtt version must be 3.1.1 or 5, got `{s}`")),
        }
    }
}

/// MQTT 5 property identifiers this crate writes or names.
pub mod prop {
    pub const MESSAGE_EXPIRY: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const SESSION_EXPIRY: u8 = 0x11;
    pub const WILL_DELAY: u8 = 0x18;
    pub const REASON_STRING: u8 = 0x1f;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const USER_PROPERTY: u8 = 0x26;
}

/// MQTT 5 properties in wire order, as the caller builds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties(Vec<u8>);

impl Properties {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn u16(mut self, id: u8, v: u16) -> Self {
        self.0.push(id);
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u32(mut self, id: u8, v: u32) -> Self {
        self.0.push(id);
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn string(mut self, id: u8, s: &str) -> Self {
        self.0.push(id);
        push_str(&mut self.0, s.as_bytes());
        self
    }

    pub fn user(mut self, key: &str, value: &str) -> Self {
        self.0.push(prop::USER_PROPERTY);
        push_str(&mut self.0, key.as_bytes());
        push_str(&mut self.0, value.as_bytes());
        self
    }

    /// The property block as it goes on the wire: its variable-integer length, then the bytes.
    fn encoded_len(&self) -> usize {
        varint_len(self.0.len()) + self.0.len()
    }

    fn put(&self, buf: &mut BytesMut) {
        put_varint(buf, self.0.len());
        buf.put_slice(&self.0);
    }
}

fn push_str(v: &mut Vec<u8>, s: &[u8]) {
    v.extend_from_slice(&(s.len() as u16).to_be_bytes());
    v.extend_from_slice(s);
}

pub fn varint_len(n: usize) -> usize {
    crate::wire::remaining_length_len(n)
}

pub fn put_varint(buf: &mut BytesMut, mut n: usize) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if n == 0 {
            return;
        }
    }
}

fn put_str(buf: &mut BytesMut, s: &[u8]) {
    buf.put_u16(s.len() as u16);
    buf.put_slice(s);
}

#[derive(Debug, Clone)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 only.
    pub properties: Properties,
}

#[derive(Debug, Clone)]
pub struct Connect {
    pub version: Version,
    pub client_id: String,
    pub keep_alive: u16,
    pub clean: bool,
    /// MQTT 5 only.
    pub properties: Properties,
    pub will: Option<Will>,
}

impl Connect {
    /// A clean session without will or credentials.
    pub fn new(version: Version, client_id: impl Into<String>, keep_alive: u16) -> Self {
        Connect {
            version,
            client_id: client_id.into(),
            keep_alive,
            clean: true,
            properties: Properties::new(),
            will: None,
        }
    }
}

pub fn encode_connect(buf: &mut BytesMut, c: &Connect) {
    let v5 = c.version == Version::V5;
    let props = |p: &Properties| if v5 { p.encoded_len() } else { 0 };
    let mut remaining = 10 + props(&c.properties) + 2 + c.client_id.len();
    if let Some(w) = &c.will {
        remaining += props(&w.properties) + 2 + w.topic.len() + 2 + w.payload.len();
    }
    let mut flags = if c.clean { 0x02 } else { 0 };
    if let Some(w) = &c.will {
        flags |= 0x04 | (w.qos << 3) | if w.retain { 0x20 } else { 0 };
    }
    buf.put_u8(0x10);
    put_varint(buf, remaining);
    put_str(buf, b"MQTT");
    buf.put_u8(c.version.level());
    buf.put_u8(flags);
    buf.put_u16(c.keep_alive);
    if v5 {
        c.properties.put(buf);
    }
    put_str(buf, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        if v5 {
            w.properties.put(buf);
        }
        put_str(buf, w.topic.as_bytes());
        put_str(buf, &w.payload);
    }
}

/// An outgoing PUBLISH; the topic is bytes so hostile topics (NUL, invalid UTF-8) fit.
#[derive(Debug, Clone, Default)]
pub struct Publish<'a> {
    pub topic: &'a [u8],
    pub qos: u8,
    pub retain: bool,
    pub pkid: u16,
    /// MQTT 5 only.
    pub properties: Properties,
    pub payload: &'a [u8],
}

/// Remaining length of a PUBLISH whose payload is `payload_len` bytes.
pub fn publish_remaining(version: Version, p: &Publish<'_>, payload_len: usize) -> usize {
    let props = if version == Version::V5 { p.properties.encoded_len() } else { 0 };
    2 + p.topic.len() + if p.qos > 0 { 2 } else { 0 } + props + payload_len
}

/// Fixed and variable header of a PUBLISH whose `payload_len` bytes the caller streams next.
pub fn encode_publish_head(buf: &mut BytesMut, version: Version, p: &Publish<'_>, payload_len: usize) {
    buf.put_u8(0x30 | (p.qos << 1) | u8::from(p.retain));
    put_varint(buf, publish_remaining(version, p, payload_len));
    put_str(buf, p.topic);
    if p.qos > 0 {
        buf.put_u16(p.pkid);
    }
    if version == Version::V5 {
        p.properties.put(buf);
    }
}

pub fn encode_publish(buf: &mut BytesMut, version: Version, p: &Publish<'_>) {
    encode_publish_head(buf, version, p, p.payload.len());
    buf.put_slice(p.payload);
}

pub fn encode_subscribe(buf: &mut BytesMut, version: Version, pkid: u16, filters: &[(&str, u8)]) {
    let props = if version == Version::V5 { 1 } else { 0 };
    let remaining = 2 + props + filters.iter().map(|(f, _)| 2 + f.len() + 1).sum::<usize>();
    buf.put_u8(0x82);
    put_varint(buf, remaining);
    buf.put_u16(pkid);
    if version == Version::V5 {
        buf.put_u8(0);
    }
    for (filter, qos) in filters {
        put_str(buf, filter.as_bytes());
        buf.put_u8(*qos);
    }
}

pub fn encode_unsubscribe(buf: &mut BytesMut, version: Version, pkid: u16, filters: &[&str]) {
    let props = if version == Version::V5 { 1 } else { 0 };
    let remaining = 2 + props + filters.iter().map(|f| 2 + f.len()).sum::<usize>();
    buf.put_u8(0xa2);
    put_varint(buf, remaining);
    buf.put_u16(pkid);
    if version == Version::V5 {
        buf.put_u8(0);
    }
    for filter in filters {
        put_str(buf, filter.as_bytes());
    }
}

/// PUBACK with success; the short form is valid in both versions.
pub fn encode_puback(buf: &mut BytesMut, pkid: u16) {
    buf.put_slice(&[0x40, 0x02]);
    buf.put_u16(pkid);
}

pub fn encode_pingreq(buf: &mut BytesMut) {
    buf.put_slice(&[0xc0, 0x00]);
}

/// DISCONNECT, normal (the empty form means reason 0x00 in MQTT 5).
pub fn encode_disconnect(buf: &mut BytesMut) {
    buf.put_slice(&[0xe0, 0x00]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v311_connect_matches_the_hot_path_codec() {
        let mut ours = BytesMut::new();
        encode_connect(&mut ours, &Connect::new(Version::V311, "lg", 60));
        let mut theirs = BytesMut::new();
        crate::wire::encode_connect(&mut theirs, "lg", 60);
        assert_eq!(ours, theirs);
    }

    #[test]
    fn v5_connect_with_will_delay_has_the_spec_layout() {
        let mut c = Connect::new(Version::V5, "c", 0);
        c.properties = Properties::new().u32(prop::SESSION_EXPIRY, 7);
        c.will = Some(Will {
            topic: "w".into(),
            payload: b"x".to_vec(),
            qos: 1,
            retain: true,
            properties: Properties::new().u32(prop::WILL_DELAY, u32::MAX),
        });
        let mut buf = BytesMut::new();
        encode_connect(&mut buf, &c);
        #[rustfmt::skip]
        let expected = [
            0x10, 31, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02 | 0x04 | 0x08 | 0x20, 0, 0,
            5, 0x11, 0, 0, 0, 7,
            0, 1, b'c',
            5, 0x18, 0xff, 0xff, 0xff, 0xff,
            0, 1, b'w', 0, 1, b'x',
        ];
        assert_eq!(&buf[..], &expected);
    }

    #[test]
    fn subscribe_and_unsubscribe_layouts() {
        let mut buf = BytesMut::new();
        encode_subscribe(&mut buf, Version::V5, 3, &[("a", 1), ("b/#", 0)]);
        assert_eq!(&buf[..], &[0x82, 13, 0, 3, 0, 0, 1, b'a', 1, 0, 3, b'b', b'/', b'#', 0]);
        buf.clear();
        encode_unsubscribe(&mut buf, Version::V311, 4, &["a"]);
        assert_eq!(&buf[..], &[0xa2, 5, 0, 4, 0, 1, b'a']);
    }
}
