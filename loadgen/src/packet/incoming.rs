//! Server-to-client packets, owned, for both protocol levels; and the header of a PUBLISH
//! read before its payload, so a huge payload can be streamed.

use bytes::Bytes;

use super::{prop, Version};

/// A decoded MQTT 5 property value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    Int(u32),
    Str(String),
    Pair(String, String),
    Bin(Vec<u8>),
}

/// A server-to-client packet, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    ConnAck { session_present: bool, code: u8, properties: Vec<(u8, PropValue)> },
    Publish(Delivery),
    PubAck { pkid: u16, code: u8 },
    SubAck { pkid: u16, codes: Vec<u8> },
    UnsubAck { pkid: u16, codes: Vec<u8> },
    PingResp,
    Disconnect { code: u8, reason: Option<String> },
    Other { first_byte: u8, len: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub qos: u8,
    pub retain: bool,
    pub topic: Vec<u8>,
    pub pkid: u16,
    pub properties: Vec<(u8, PropValue)>,
    pub payload: Bytes,
}

/// `(length, bytes the field took)` of the variable integer at `buf[0..]`, or `Ok(None)` if
/// more bytes are needed.
pub fn read_varint(buf: &[u8]) -> Result<Option<(usize, usize)>, String> {
    let mut n = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(i) else { return Ok(None) };
        n += ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((n, i + 1)));
        }
    }
    Err("variable integer longer than 4 bytes".into())
}

struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let out = self.body.get(self.at..self.at + n).ok_or("field overruns its packet")?;
        self.at += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bin(&mut self) -> Result<&'a [u8], String> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, String> {
        Ok(String::from_utf8_lossy(self.bin()?).into_owned())
    }

    fn rest(&self) -> &'a [u8] {
        &self.body[self.at.min(self.body.len())..]
    }

    fn properties(&mut self) -> Result<Vec<(u8, PropValue)>, String> {
        let (len, used) = read_varint(self.rest())?.ok_or("properties length overruns its packet")?;
        self.at += used;
        let mut inner = Reader { body: self.take(len)?, at: 0 };
        let mut out = Vec::new();
        while inner.at < inner.body.len() {
            let id = inner.u8()?;
            let value = match id {
                0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => PropValue::Int(inner.u8()?.into()),
                0x13 | 0x21 | 0x22 | 0x23 => PropValue::Int(inner.u16()?.into()),
                0x02 | 0x11 | 0x18 | 0x27 => PropValue::Int(inner.u32()?),
                0x0b => {
                    let (v, used) = read_varint(inner.rest())?.ok_or("subscription identifier overruns")?;
                    inner.at += used;
                    PropValue::Int(v as u32)
                }
                0x03 | 0x08 | 0x12 | 0x15 | 0x1a | 0x1c | 0x1f => PropValue::Str(inner.string()?),
                0x09 | 0x16 => PropValue::Bin(inner.bin()?.to_vec()),
                0x26 => PropValue::Pair(inner.string()?, inner.string()?),
                other => return Err(format!("unknown property 0x{other:02x}")),
            };
            out.push((id, value));
        }
        Ok(out)
    }
}

/// Decodes one server packet from the front of `buf`: `Ok(None)` until it is complete,
/// else the packet and the bytes it took. `Err` means the stream cannot be parsed further.
pub fn decode(buf: &[u8], version: Version) -> Result<Option<(Incoming, usize)>, String> {
    let Some(&first) = buf.first() else { return Ok(None) };
    let Some((remaining, len_len)) = read_varint(&buf[1..])? else { return Ok(None) };
    let total = 1 + len_len + remaining;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[1 + len_len..total];
    let mut r = Reader { body, at: 0 };
    let v5 = version == Version::V5;
    let packet = match first >> 4 {
        2 => {
            let flags = r.u8()?;
            let code = r.u8()?;
            let properties = if v5 && r.at < body.len() { r.properties()? } else { Vec::new() };
            Incoming::ConnAck { session_present: flags & 1 == 1, code, properties }
        }
        3 => {
            let qos = (first >> 1) & 3;
            if qos == 3 {
                return Err("PUBLISH with qos 3".into());
            }
            let topic = r.bin()?.to_vec();
            let pkid = if qos > 0 { r.u16()? } else { 0 };
            let properties = if v5 { r.properties()? } else { Vec::new() };
            let payload = Bytes::copy_from_slice(r.rest());
            Incoming::Publish(Delivery { qos, retain: first & 1 == 1, topic, pkid, properties, payload })
        }
        4 => {
            let pkid = r.u16()?;
            let code = if r.at < body.len() { r.u8()? } else { 0 };
            Incoming::PubAck { pkid, code }
        }
        9 | 11 => {
            let pkid = r.u16()?;
            if v5 && r.at < body.len() {
                r.properties()?;
            }
            let codes = r.rest().to_vec();
            if first >> 4 == 9 {
                Incoming::SubAck { pkid, codes }
            } else {
                Incoming::UnsubAck { pkid, codes }
            }
        }
        13 => Incoming::PingResp,
        14 => {
            let code = if r.at < body.len() { r.u8()? } else { 0 };
            let reason = if r.at < body.len() {
                r.properties()?.into_iter().find_map(|(id, v)| match (id, v) {
                    (prop::REASON_STRING, PropValue::Str(s)) => Some(s),
                    _ => None,
                })
            } else {
                None
            };
            Incoming::Disconnect { code, reason }
        }
        _ => Incoming::Other { first_byte: first, len: total },
    };
    Ok(Some((packet, total)))
}

/// A PUBLISH's header, parsed before its payload arrives, so a payload of hundreds of
/// megabytes can be streamed rather than buffered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishHead {
    pub qos: u8,
    pub retain: bool,
    pub topic: Vec<u8>,
    pub pkid: u16,
    /// Bytes from the first byte of the packet to the first byte of the payload.
    pub header_len: usize,
    pub payload_len: usize,
}

/// The PUBLISH header at the front of `buf`, `Ok(None)` until enough bytes are there.
pub fn publish_head(buf: &[u8], version: Version) -> Result<Option<PublishHead>, String> {
    let Some(&first) = buf.first() else { return Ok(None) };
    if first >> 4 != 3 {
        return Err(format!("expected a PUBLISH, got packet type {}", first >> 4));
    }
    let qos = (first >> 1) & 3;
    if qos == 3 {
        return Err("PUBLISH with qos 3".into());
    }
    let Some((remaining, len_len)) = read_varint(&buf[1..])? else { return Ok(None) };
    let start = 1 + len_len;
    let Some(topic_len) = buf.get(start..start + 2).map(|b| u16::from_be_bytes([b[0], b[1]]) as usize) else {
        return Ok(None);
    };
    let mut at = start + 2 + topic_len;
    let Some(topic) = buf.get(start + 2..at) else { return Ok(None) };
    let mut pkid = 0;
    if qos > 0 {
        let Some(b) = buf.get(at..at + 2) else { return Ok(None) };
        pkid = u16::from_be_bytes([b[0], b[1]]);
        at += 2;
    }
    if version == Version::V5 {
        let Some((props_len, used)) = read_varint(buf.get(at..).unwrap_or(&[]))? else { return Ok(None) };
        at += used + props_len;
        if buf.len() < at {
            return Ok(None);
        }
    }
    let variable = at - start;
    if variable > remaining {
        return Err("PUBLISH header longer than its packet".into());
    }
    Ok(Some(PublishHead {
        qos,
        retain: first & 1 == 1,
        topic: topic.to_vec(),
        pkid,
        header_len: at,
        payload_len: remaining - variable,
    }))
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::packet::{encode_publish, encode_publish_head, Properties, Publish};

    #[test]
    fn publish_head_is_read_before_the_payload() {
        for version in [Version::V311, Version::V5] {
            let props = Properties::new().u32(prop::MESSAGE_EXPIRY, 5);
            let p = Publish { topic: b"big/one", qos: 1, retain: false, pkid: 3, properties: props, payload: &[] };
            let mut buf = BytesMut::new();
            encode_publish_head(&mut buf, version, &p, 300_000);
            let head_len = buf.len();
            for cut in 0..head_len {
                assert_eq!(publish_head(&buf[..cut], version).unwrap(), None, "cut {cut}");
            }
            let head = publish_head(&buf, version).unwrap().unwrap();
            assert_eq!((head.header_len, head.payload_len, head.pkid), (head_len, 300_000, 3));
            assert_eq!(head.topic, b"big/one");
        }
    }

    #[test]
    fn v5_publish_round_trips_with_properties() {
        let props = Properties::new().user("k", "v").u32(prop::MESSAGE_EXPIRY, 60).string(prop::CONTENT_TYPE, "a/b");
        let p = Publish { topic: "t/é".as_bytes(), qos: 1, retain: true, pkid: 9, properties: props, payload: b"hi" };
        let mut buf = BytesMut::new();
        encode_publish(&mut buf, Version::V5, &p);
        let (packet, used) = decode(&buf, Version::V5).unwrap().unwrap();
        assert_eq!(used, buf.len());
        let Incoming::Publish(d) = packet else { panic!("not a publish: {packet:?}") };
        assert_eq!((d.topic.as_slice(), d.qos, d.retain, d.pkid, &d.payload[..]), (p.topic, 1, true, 9, &b"hi"[..]));
        assert_eq!(d.properties[0], (prop::USER_PROPERTY, PropValue::Pair("k".into(), "v".into())));
        assert_eq!(d.properties[1], (prop::MESSAGE_EXPIRY, PropValue::Int(60)));
        assert_eq!(d.properties[2], (prop::CONTENT_TYPE, PropValue::Str("a/b".into())));
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut], Version::V5).unwrap(), None);
        }
    }
}
