//! What the store keeps, and its byte encoding.
//!
//! Records are written by this engine and read back by it at start-up, once: a small
//! versioned binary layout (lengths before bytes, big-endian numbers) that a reader
//! checks field by field. A record that does not decode is reported with its key and
//! skipped, never trusted.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The layout version written in front of every record.
const VERSION: u8 = 1;

/// An application message as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredMessage {
    pub topic: Bytes,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// When its message expiry interval runs out, in milliseconds since the Unix epoch:
    /// a wall-clock time, so a restart does not restart the interval.
    pub expires_at_ms: Option<u64>,
    pub properties: StoredProperties,
}

/// The MQTT 5 properties a message carries to its subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredProperties {
    pub payload_format_indicator: Option<u8>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub content_type: Option<String>,
    pub user_properties: Vec<(String, String)>,
}

impl StoredProperties {
    pub fn is_empty(&self) -> bool {
        *self == StoredProperties::default()
    }
}

/// A subscription of a persistent session, with its MQTT 5 options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    pub filter: String,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: u8,
    pub id: Option<u32>,
}

/// A persistent session: what its client finds again when it comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub client_id: String,
    /// Whom its ACL rules were made for, so a restored session reads no more than its
    /// client may before it comes back.
    pub username: Option<String>,
    /// 4 (3.1.1) or 5.
    pub protocol: u8,
    /// Seconds it outlives its connection; `u32::MAX`: never expires.
    pub expiry_secs: u32,
    /// When its connection ended (ms since the Unix epoch); `None` while connected, and
    /// then a restart counts as the end.
    pub disconnected_at_ms: Option<u64>,
    pub subscriptions: Vec<StoredSubscription>,
}

/// A will waiting for its connection to end (any client that set one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWill {
    pub message: StoredMessage,
    pub delay_secs: u32,
}

/// Where a queued delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not sent yet (offline client, or the in-flight window was full).
    Waiting,
    /// PUBLISH sent under this packet id; PUBACK or PUBREC awaited.
    Sent(u16),
    /// QoS 2: PUBREC came, PUBREL sent under this packet id; PUBCOMP awaited.
    Released(u16),
}

/// One QoS 1/2 delivery held for a persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDelivery {
    pub message: StoredMessage,
    /// The delivery's QoS (the lower of the published and the granted one).
    pub qos: u8,
    /// RETAIN as it goes to the client.
    pub retain: bool,
    pub subscription_ids: Vec<u32>,
    /// Where it stood when it was kept (most are sent at once); a later change is a
    /// state record of its own, which wins.
    pub state: DeliveryState,
}

/// Why a record could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record ends early")]
    Truncated,
    #[error("record layout version {0} is not one this engine reads")]
    Version(u8),
    #[error("record holds text that is not UTF-8")]
    NotUtf8,
    #[error("record has {0} bytes left over")]
    Trailing(usize),
    #[error("record holds an unknown delivery state {0}")]
    State(u8),
}

struct Writer(BytesMut);

impl Writer {
    fn new() -> Writer {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_u8(VERSION);
        Writer(buf)
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.put_u32(b.len() as u32);
        self.0.put_slice(b);
    }
    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                self.0.put_u8(1);
                self.bytes(b);
            }
            None => self.0.put_u8(0),
        }
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                self.0.put_u8(1);
                self.0.put_u64(v);
            }
            None => self.0.put_u8(0),
        }
    }
    fn opt_u32(&mut self, v: Option<u32>) {
        self.opt_u64(v.map(u64::from));
    }
    fn message(&mut self, m: &StoredMessage) {
        self.bytes(&m.topic);
        self.bytes(&m.payload);
        self.0.put_u8(m.qos);
        self.0.put_u8(u8::from(m.retain));
        self.opt_u64(m.expires_at_ms);
        let p = &m.properties;
        self.opt_u32(p.payload_format_indicator.map(u32::from));
        self.opt_bytes(p.response_topic.as_deref().map(str::as_bytes));
        self.opt_bytes(p.correlation_data.as_deref());
        self.opt_bytes(p.content_type.as_deref().map(str::as_bytes));
        self.0.put_u32(p.user_properties.len() as u32);
        for (k, v) in &p.user_properties {
            self.bytes(k.as_bytes());
            self.bytes(v.as_bytes());
        }
    }
    fn finish(self) -> Bytes {
        self.0.freeze()
    }
}

struct Reader(Bytes);

impl Reader {
    fn new(mut record: Bytes) -> Result<Reader, DecodeError> {
        let version = Reader::take_u8(&mut record)?;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        Ok(Reader(record))
    }
    fn take_u8(b: &mut Bytes) -> Result<u8, DecodeError> {
        if b.remaining() < 1 {
            return Err(DecodeError::Truncated);
        }
        Ok(b.get_u8())
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Reader::take_u8(&mut self.0)
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        if self.0.remaining() < 2 {
            return Err(DecodeError::Truncated);
        }
        Ok(self.0.get_u16())
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        if self.0.remaining() < 4 {
            return Err(DecodeError::Truncated);
        }
        Ok(self.0.get_u32())
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        if self.0.remaining() < 8 {
            return Err(DecodeError::Truncated);
        }
        Ok(self.0.get_u64())
    }
    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.u32()? as usize;
        if self.0.remaining() < len {
            return Err(DecodeError::Truncated);
        }
        Ok(self.0.split_to(len))
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError::NotUtf8)
    }
    fn present(&mut self) -> Result<bool, DecodeError> {
        Ok(self.u8()? != 0)
    }
    fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        if self.present()? {
            self.u64().map(Some)
        } else {
            Ok(None)
        }
    }
    fn opt_bytes(&mut self) -> Result<Option<Bytes>, DecodeError> {
        if self.present()? {
            self.bytes().map(Some)
        } else {
            Ok(None)
        }
    }
    fn opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        if self.present()? {
            self.string().map(Some)
        } else {
            Ok(None)
        }
    }
    fn message(&mut self) -> Result<StoredMessage, DecodeError> {
        let topic = self.bytes()?;
        std::str::from_utf8(&topic).map_err(|_| DecodeError::NotUtf8)?;
        let payload = self.bytes()?;
        let qos = self.u8()?;
        let retain = self.u8()? != 0;
        let expires_at_ms = self.opt_u64()?;
        let payload_format_indicator = self.opt_u64()?.map(|v| v as u8);
        let response_topic = self.opt_string()?;
        let correlation_data = self.opt_bytes()?;
        let content_type = self.opt_string()?;
        let count = self.u32()? as usize;
        let mut user_properties = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            user_properties.push((self.string()?, self.string()?));
        }
        let properties = StoredProperties {
            payload_format_indicator,
            response_topic,
            correlation_data,
            content_type,
            user_properties,
        };
        Ok(StoredMessage { topic, payload, qos, retain, expires_at_ms, properties })
    }
    fn end(self) -> Result<(), DecodeError> {
        match self.0.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

impl StoredMessage {
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        w.message(self);
        w.finish()
    }

    pub fn decode(record: Bytes) -> Result<StoredMessage, DecodeError> {
        let mut r = Reader::new(record)?;
        let m = r.message()?;
        r.end()?;
        Ok(m)
    }
}

impl StoredSession {
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        w.bytes(self.client_id.as_bytes());
        w.opt_bytes(self.username.as_deref().map(str::as_bytes));
        w.0.put_u8(self.protocol);
        w.0.put_u32(self.expiry_secs);
        w.opt_u64(self.disconnected_at_ms);
        w.0.put_u32(self.subscriptions.len() as u32);
        for s in &self.subscriptions {
            w.bytes(s.filter.as_bytes());
            w.0.put_u8(s.qos);
            w.0.put_u8(u8::from(s.no_local) | u8::from(s.retain_as_published) << 1 | s.retain_handling << 2);
            w.opt_u32(s.id);
        }
        w.finish()
    }

    pub fn decode(record: Bytes) -> Result<StoredSession, DecodeError> {
        let mut r = Reader::new(record)?;
        let client_id = r.string()?;
        let username = r.opt_string()?;
        let protocol = r.u8()?;
        let expiry_secs = r.u32()?;
        let disconnected_at_ms = r.opt_u64()?;
        let count = r.u32()? as usize;
        let mut subscriptions = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let filter = r.string()?;
            let qos = r.u8()?;
            let flags = r.u8()?;
            let id = r.opt_u64()?.map(|v| v as u32);
            subscriptions.push(StoredSubscription {
                filter,
                qos,
                no_local: flags & 1 != 0,
                retain_as_published: flags & 2 != 0,
                retain_handling: (flags >> 2) & 3,
                id,
            });
        }
        r.end()?;
        Ok(StoredSession { client_id, username, protocol, expiry_secs, disconnected_at_ms, subscriptions })
    }
}

impl StoredWill {
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        w.0.put_u32(self.delay_secs);
        w.message(&self.message);
        w.finish()
    }

    pub fn decode(record: Bytes) -> Result<StoredWill, DecodeError> {
        let mut r = Reader::new(record)?;
        let delay_secs = r.u32()?;
        let message = r.message()?;
        r.end()?;
        Ok(StoredWill { message, delay_secs })
    }
}

impl StoredDelivery {
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        w.0.put_u8(self.qos);
        w.0.put_u8(u8::from(self.retain));
        let (tag, pkid) = self.state.parts();
        w.0.put_u8(tag);
        w.0.put_u16(pkid);
        w.0.put_u32(self.subscription_ids.len() as u32);
        for id in &self.subscription_ids {
            w.0.put_u32(*id);
        }
        w.message(&self.message);
        w.finish()
    }

    pub fn decode(record: Bytes) -> Result<StoredDelivery, DecodeError> {
        let mut r = Reader::new(record)?;
        let qos = r.u8()?;
        let retain = r.u8()? != 0;
        let state = DeliveryState::from_parts(r.u8()?, r.u16()?)?;
        let count = r.u32()? as usize;
        let mut subscription_ids = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            subscription_ids.push(r.u32()?);
        }
        let message = r.message()?;
        r.end()?;
        Ok(StoredDelivery { message, qos, retain, subscription_ids, state })
    }
}

impl DeliveryState {
    fn parts(&self) -> (u8, u16) {
        match *self {
            DeliveryState::Waiting => (0, 0),
            DeliveryState::Sent(p) => (1, p),
            DeliveryState::Released(p) => (2, p),
        }
    }

    fn from_parts(tag: u8, pkid: u16) -> Result<DeliveryState, DecodeError> {
        match tag {
            0 => Ok(DeliveryState::Waiting),
            1 => Ok(DeliveryState::Sent(pkid)),
            2 => Ok(DeliveryState::Released(pkid)),
            other => Err(DecodeError::State(other)),
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        let (tag, pkid) = self.parts();
        w.0.put_u8(tag);
        w.0.put_u16(pkid);
        w.finish()
    }

    pub fn decode(record: Bytes) -> Result<DeliveryState, DecodeError> {
        let mut r = Reader::new(record)?;
        let state = DeliveryState::from_parts(r.u8()?, r.u16()?)?;
        r.end()?;
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> StoredMessage {
        StoredMessage {
            topic: Bytes::from_static("温度/室内".as_bytes()),
            payload: Bytes::from_static(b"\x00\x01\xff"),
            qos: 2,
            retain: true,
            expires_at_ms: Some(1_800_000_000_000),
            properties: StoredProperties {
                payload_format_indicator: Some(1),
                response_topic: Some("reply/x".into()),
                correlation_data: Some(Bytes::from_static(b"\x00id")),
                content_type: Some("application/json".into()),
                user_properties: vec![("k".into(), "v".into()), ("k".into(), "".into())],
            },
        }
    }

    #[test]
    fn every_record_reads_back_as_written() {
        let m = message();
        assert_eq!(StoredMessage::decode(m.encode()), Ok(m.clone()));
        let plain = StoredMessage { topic: Bytes::from_static(b"a"), ..Default::default() };
        assert_eq!(StoredMessage::decode(plain.encode()), Ok(plain));
        let session = StoredSession {
            client_id: "sensor-1".into(),
            username: Some("ü".into()),
            protocol: 5,
            expiry_secs: u32::MAX,
            disconnected_at_ms: Some(17),
            subscriptions: vec![StoredSubscription {
                filter: "$share/g/a/+".into(),
                qos: 1,
                no_local: true,
                retain_as_published: false,
                retain_handling: 2,
                id: Some(268_435_455),
            }],
        };
        assert_eq!(StoredSession::decode(session.encode()), Ok(session));
        let will = StoredWill { message: m.clone(), delay_secs: 30 };
        assert_eq!(StoredWill::decode(will.encode()), Ok(will));
        let delivery = StoredDelivery {
            message: m,
            qos: 1,
            retain: false,
            subscription_ids: vec![1, 7],
            state: DeliveryState::Sent(4),
        };
        assert_eq!(StoredDelivery::decode(delivery.encode()), Ok(delivery));
        for state in [DeliveryState::Waiting, DeliveryState::Sent(9), DeliveryState::Released(65535)] {
            assert_eq!(DeliveryState::decode(state.encode()), Ok(state));
        }
    }

    #[test]
    fn damaged_records_are_refused_not_trusted() {
        let record = message().encode();
        for cut in 0..record.len() {
            assert!(StoredMessage::decode(record.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut longer = BytesMut::from(&record[..]);
        longer.put_u8(0);
        assert_eq!(StoredMessage::decode(longer.freeze()), Err(DecodeError::Trailing(1)));
        let mut other = BytesMut::from(&record[..]);
        other[0] = 9;
        assert_eq!(StoredMessage::decode(other.freeze()), Err(DecodeError::Version(9)));
        assert_eq!(DeliveryState::decode(Bytes::from_static(&[VERSION, 7, 0, 0])), Err(DecodeError::State(7)));
        // A length that claims more than there is.
        assert_eq!(
            StoredMessage::decode(Bytes::from_static(&[VERSION, 0xff, 0xff, 0xff, 0xff])),
            Err(DecodeError::Truncated)
        );
    }
}
