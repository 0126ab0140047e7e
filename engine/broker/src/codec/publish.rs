//! PUBLISH, both ways, for 3.1.1 and 5.
//!
//! Decoding slices topic and payload out of the packet's `Bytes` (no copy) and checks
//! what the specifications make a receiver check: QoS 3, DUP on QoS 0, a zero packet id,
//! property lengths that disagree, repeated single-valued properties, strings that are
//! not UTF-8 or hold U+0000. Encoding writes the fixed and variable header and leaves
//! the payload to the caller, who may append it or send it as its own chunk.

use bytes::{BufMut, Bytes, BytesMut};
use rumqttd::protocol::PublishProperties;

use super::wire::{varint_len, write_binary, write_varint, Malformed, Reader};
use super::MqttVersion;

const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION_DATA: u8 = 0x09;
const SUBSCRIPTION_IDENTIFIER: u8 = 0x0b;
const TOPIC_ALIAS: u8 = 0x23;
const USER_PROPERTY: u8 = 0x26;

/// A PUBLISH as a client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InboundPublish {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    /// Empty when the client relies on a topic alias.
    pub topic: Bytes,
    pub pkid: u16,
    pub properties: Option<PublishProperties>,
    pub payload: Bytes,
}

/// Why a PUBLISH could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PublishError {
    /// MQTT 5 reason 0x81.
    Malformed(&'static str),
    /// MQTT 5 reason 0x82.
    Protocol(&'static str),
}

impl From<Malformed> for PublishError {
    fn from(m: Malformed) -> Self {
        PublishError::Malformed(m.0)
    }
}

/// Decodes one whole PUBLISH packet (fixed header included).
pub(crate) fn decode(packet: Bytes, header_len: usize, version: MqttVersion) -> Result<InboundPublish, PublishError> {
    let byte1 = packet[0];
    let qos = (byte1 >> 1) & 0b11;
    let dup = byte1 & 0b1000 != 0;
    if qos == 3 {
        return Err(PublishError::Malformed("QoS 3"));
    }
    if qos == 0 && dup {
        return Err(PublishError::Malformed("DUP set on a QoS 0 PUBLISH"));
    }
    let mut r = Reader::new(packet.slice(header_len..));
    let topic = r.binary()?;
    let pkid = if qos > 0 { r.u16()? } else { 0 };
    if qos > 0 && pkid == 0 {
        return Err(PublishError::Malformed("packet identifier 0"));
    }
    let properties = match version {
        MqttVersion::V5 => read_properties(&mut r)?,
        MqttVersion::V311 => None,
    };
    Ok(InboundPublish { dup, qos, retain: byte1 & 1 != 0, topic, pkid, properties, payload: r.rest() })
}

fn read_properties(r: &mut Reader) -> Result<Option<PublishProperties>, PublishError> {
    let len = r.varint()? as usize;
    if len == 0 {
        return Ok(None);
    }
    let mut props = Reader::new(r.take(len)?);
    let mut p = PublishProperties::default();
    let once = |seen: bool| if seen { Err(PublishError::Protocol("a property given twice")) } else { Ok(()) };
    while props.remaining() > 0 {
        match props.u8()? {
            PAYLOAD_FORMAT_INDICATOR => {
                once(p.payload_format_indicator.is_some())?;
                let value = props.u8()?;
                if value > 1 {
                    return Err(PublishError::Protocol("payload format indicator other than 0 or 1"));
                }
                p.payload_format_indicator = Some(value);
            }
            MESSAGE_EXPIRY_INTERVAL => {
                once(p.message_expiry_interval.is_some())?;
                p.message_expiry_interval = Some(props.u32()?);
            }
            TOPIC_ALIAS => {
                once(p.topic_alias.is_some())?;
                p.topic_alias = Some(props.u16()?);
            }
            RESPONSE_TOPIC => {
                once(p.response_topic.is_some())?;
                let topic = props.string()?;
                if topic.is_empty() || topic.contains(['+', '#']) {
                    return Err(PublishError::Protocol("response topic is not a topic name"));
                }
                p.response_topic = Some(topic);
            }
            CORRELATION_DATA => {
                once(p.correlation_data.is_some())?;
                p.correlation_data = Some(props.binary()?);
            }
            USER_PROPERTY => {
                let key = props.string()?;
                let value = props.string()?;
                p.user_properties.push((key, value));
            }
            SUBSCRIPTION_IDENTIFIER => {
                // Only a server sends these (5 §3.3.4): a protocol error, once read.
                props.varint()?;
                return Err(PublishError::Protocol("subscription identifier in a client's PUBLISH"));
            }
            CONTENT_TYPE => {
                once(p.content_type.is_some())?;
                p.content_type = Some(props.string()?);
            }
            _ => return Err(PublishError::Malformed("unknown PUBLISH property")),
        }
    }
    Ok(Some(p))
}

/// A PUBLISH to encode for one subscriber.
#[derive(Debug)]
pub(crate) struct OutboundPublish<'a> {
    /// Empty when `topic_alias` names a mapping the client already has.
    pub topic: &'a [u8],
    pub qos: u8,
    pub dup: bool,
    pub retain: bool,
    pub pkid: u16,
    /// The application's properties (MQTT 5 only; ignored for 3.1.1).
    pub properties: Option<&'a PublishProperties>,
    /// Remaining lifetime, which replaces the published message expiry interval.
    pub expiry: Option<u32>,
    pub topic_alias: Option<u16>,
    pub subscription_ids: &'a [u32],
    pub payload_len: usize,
}

impl OutboundPublish<'_> {
    fn properties_len(&self) -> usize {
        let mut len = 0;
        if let Some(p) = self.properties {
            len += p.payload_format_indicator.map_or(0, |_| 2);
            len += p.response_topic.as_ref().map_or(0, |t| 3 + t.len());
            len += p.correlation_data.as_ref().map_or(0, |d| 3 + d.len());
            len += p.user_properties.iter().map(|(k, v)| 5 + k.len() + v.len()).sum::<usize>();
            len += p.content_type.as_ref().map_or(0, |t| 3 + t.len());
        }
        len += self.expiry.map_or(0, |_| 5);
        len += self.topic_alias.map_or(0, |_| 3);
        len += self.subscription_ids.iter().map(|&id| 1 + varint_len(id as usize)).sum::<usize>();
        len
    }

    fn remaining_len(&self, version: MqttVersion) -> usize {
        let mut len = 2 + self.topic.len() + self.payload_len;
        if self.qos > 0 {
            len += 2;
        }
        if version.is_v5() {
            let props = self.properties_len();
            len += varint_len(props) + props;
        }
        len
    }

    /// The whole packet's size, for the client's Maximum Packet Size.
    pub(crate) fn packet_len(&self, version: MqttVersion) -> usize {
        let remaining = self.remaining_len(version);
        1 + varint_len(remaining) + remaining
    }

    /// Writes everything but the payload.
    pub(crate) fn write_header(&self, version: MqttVersion, out: &mut BytesMut) {
        let remaining = self.remaining_len(version);
        out.reserve(1 + varint_len(remaining) + remaining - self.payload_len);
        out.put_u8(0x30 | (u8::from(self.dup) << 3) | (self.qos << 1) | u8::from(self.retain));
        write_varint(out, remaining);
        write_binary(out, self.topic);
        if self.qos > 0 {
            out.put_u16(self.pkid);
        }
        if !version.is_v5() {
            return;
        }
        write_varint(out, self.properties_len());
        if let Some(indicator) = self.properties.and_then(|p| p.payload_format_indicator) {
            out.put_u8(PAYLOAD_FORMAT_INDICATOR);
            out.put_u8(indicator);
        }
        if let Some(expiry) = self.expiry {
            out.put_u8(MESSAGE_EXPIRY_INTERVAL);
            out.put_u32(expiry);
        }
        if let Some(alias) = self.topic_alias {
            out.put_u8(TOPIC_ALIAS);
            out.put_u16(alias);
        }
        if let Some(p) = self.properties {
            if let Some(topic) = &p.response_topic {
                out.put_u8(RESPONSE_TOPIC);
                write_binary(out, topic.as_bytes());
            }
            if let Some(data) = &p.correlation_data {
                out.put_u8(CORRELATION_DATA);
                write_binary(out, data);
            }
            for (key, value) in &p.user_properties {
                out.put_u8(USER_PROPERTY);
                write_binary(out, key.as_bytes());
                write_binary(out, value.as_bytes());
            }
        }
        for &id in self.subscription_ids {
            out.put_u8(SUBSCRIPTION_IDENTIFIER);
            write_varint(out, id as usize);
        }
        if let Some(content_type) = self.properties.and_then(|p| p.content_type.as_ref()) {
            out.put_u8(CONTENT_TYPE);
            write_binary(out, content_type.as_bytes());
        }
    }
}

/// Whether a payload marked as UTF-8 (payload format indicator 1) is (5 §3.3.2.3.2).
pub(crate) fn payload_is_utf8(payload: &[u8]) -> bool {
    std::str::from_utf8(payload).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use rumqttd::protocol::Packet;

    fn encode(p: &OutboundPublish, payload: &[u8], version: MqttVersion) -> BytesMut {
        let mut out = BytesMut::new();
        p.write_header(version, &mut out);
        out.extend_from_slice(payload);
        assert_eq!(out.len(), p.packet_len(version));
        out
    }

    fn props() -> PublishProperties {
        PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(30),
            topic_alias: None,
            response_topic: Some("reply/here".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            user_properties: vec![("k".into(), "温度".into())],
            subscription_identifiers: vec![],
            content_type: Some("application/json".into()),
        }
    }

    #[test]
    fn v5_round_trip_keeps_every_property() {
        let properties = props();
        let out = OutboundPublish {
            topic: "温度/室内".as_bytes(),
            qos: 1,
            dup: true,
            retain: true,
            pkid: 7,
            properties: Some(&properties),
            expiry: Some(30),
            topic_alias: None,
            subscription_ids: &[],
            payload_len: 3,
        };
        let bytes = encode(&out, b"abc", MqttVersion::V5).freeze();
        let header_len = 1 + crate::codec::read_varint(&bytes[1..]).unwrap().unwrap().1;
        let back = decode(bytes, header_len, MqttVersion::V5).unwrap();
        assert_eq!(&back.topic[..], "温度/室内".as_bytes());
        assert_eq!((back.qos, back.dup, back.retain, back.pkid), (1, true, true, 7));
        assert_eq!(back.properties, Some(properties));
        assert_eq!(&back.payload[..], b"abc");
    }

    #[test]
    fn rumqttd_reads_what_we_write() {
        // A subscriber-side check with an independent decoder, subscription ids included.
        let properties = props();
        let out = OutboundPublish {
            topic: b"",
            qos: 2,
            dup: false,
            retain: false,
            pkid: 9,
            properties: Some(&properties),
            expiry: Some(12),
            topic_alias: Some(3),
            subscription_ids: &[1, 268_435_455],
            payload_len: 2,
        };
        let mut bytes = encode(&out, b"hi", MqttVersion::V5);
        let Packet::Publish(publish, Some(p)) = Codec::new(MqttVersion::V5).read(&mut bytes, 1 << 20).unwrap() else {
            panic!("not a publish with properties")
        };
        assert_eq!(&publish.payload[..], b"hi");
        assert_eq!(p.topic_alias, Some(3));
        assert_eq!(p.message_expiry_interval, Some(12));
        assert_eq!(p.subscription_identifiers, [1, 268_435_455]);
        assert_eq!(p.user_properties, properties.user_properties);

        // 3.1.1 never sees properties.
        let v4 = OutboundPublish { topic: b"t", topic_alias: None, ..out };
        let mut bytes = encode(&v4, b"hi", MqttVersion::V311);
        let Packet::Publish(publish, None) = Codec::new(MqttVersion::V311).read(&mut bytes, 1 << 20).unwrap() else {
            panic!("not a plain publish")
        };
        assert_eq!(&publish.topic[..], b"t");
    }

    #[test]
    fn refuses_what_the_spec_refuses() {
        let decode5 = |b: &'static [u8]| decode(Bytes::from_static(b), 2, MqttVersion::V5);
        assert!(matches!(decode5(&[0x36, 3, 0, 1, b'a']), Err(PublishError::Malformed("QoS 3"))));
        assert!(matches!(decode5(&[0x38, 4, 0, 1, b'a', 0]), Err(PublishError::Malformed(_))));
        assert!(matches!(decode5(&[0x32, 6, 0, 1, b'a', 0, 0, 0]), Err(PublishError::Malformed(_))));
        // Property length runs past the packet.
        assert!(matches!(decode5(&[0x30, 5, 0, 1, b'a', 9, 1]), Err(PublishError::Malformed(_))));
        // Payload format indicator twice.
        assert!(matches!(decode5(&[0x30, 8, 0, 1, b'a', 4, 1, 0, 1, 0]), Err(PublishError::Protocol(_))));
        // A subscription identifier from a client.
        assert!(matches!(decode5(&[0x30, 6, 0, 1, b'a', 2, 0x0b, 1]), Err(PublishError::Protocol(_))));
        // A user property key with U+0000.
        let nul = [0x30, 11, 0, 1, b'a', 7, 0x26, 0, 1, 0, 0, 1, b'v'];
        assert!(matches!(decode(Bytes::copy_from_slice(&nul), 2, MqttVersion::V5), Err(PublishError::Malformed(_))));
        // The same bytes are only topic + payload in 3.1.1.
        let p = decode(Bytes::from_static(&[0x30, 5, 0, 1, b'a', 9, 1]), 2, MqttVersion::V311).unwrap();
        assert_eq!(&p.payload[..], &[9, 1]);
    }

    #[test]
    fn utf8_payloads() {
        assert!(payload_is_utf8("温度 21".as_bytes()));
        assert!(!payload_is_utf8(&[0xff, 0xfe]));
    }
}
