//! A lean MQTT 3.1.1 codec: just the packets a load client sends and receives.
//!
//! rumqttc tops out well below what rumqttd can route, so a load tool built on it
//! would measure itself. This codec encodes straight into a caller-owned, reused
//! `BytesMut` (many PUBLISH packets per write) and decodes borrowed views of
//! complete frames from the read buffer, so the hot path neither allocates nor
//! copies payloads. Only client-side needs are covered: CONNECT, SUBSCRIBE,
//! PUBLISH (QoS 0/1), PUBACK, PINGREQ and DISCONNECT out; CONNACK, SUBACK,
//! PUBLISH, PUBACK and PINGRESP in.

use bytes::{BufMut, BytesMut};

/// The largest remaining length the 4-byte variable integer can carry.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Why a frame could not be decoded; the connection cannot continue after any of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// A fifth remaining-length byte, or a length field that overruns its frame.
    Malformed(&'static str),
    /// A PUBLISH with QoS 3.
    InvalidQos(u8),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Malformed(what) => write!(f, "malformed mqtt frame: {what}"),
            WireError::InvalidQos(q) => write!(f, "malformed mqtt frame: qos {q}"),
        }
    }
}

impl std::error::Error for WireError {}

/// A decoded server-to-client packet, borrowing from the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    ConnAck {
        session_present: bool,
        code: u8,
    },
    SubAck {
        pkid: u16,
        codes: &'a [u8],
    },
    Publish(Publish<'a>),
    PubAck {
        pkid: u16,
    },
    PingResp,
    /// Any other control packet type (the caller decides whether it is a protocol error).
    Other {
        kind: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    pub dup: bool,
    pub qos: u8,
    pub retain: bool,
    pub topic: &'a [u8],
    /// 0 for QoS 0.
    pub pkid: u16,
    pub payload: &'a [u8],
}

/// Number of bytes the variable integer for `len` takes.
pub fn remaining_length_len(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn put_remaining_length(buf: &mut BytesMut, mut len: usize) {
    debug_assert!(len <= MAX_REMAINING_LENGTH);
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if len == 0 {
            return;
        }
    }
}

/// Parses the remaining length starting at `buf[1]`: `Ok(None)` if more bytes are needed,
/// else `(length, bytes the field took)`.
fn read_remaining_length(buf: &[u8]) -> Result<Option<(usize, usize)>, WireError> {
    let mut len = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        len += ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((len, i + 1)));
        }
    }
    Err(WireError::Malformed("remaining length longer than 4 bytes"))
}

fn put_str(buf: &mut BytesMut, s: &[u8]) {
    buf.put_u16(s.len() as u16);
    buf.put_slice(s);
}

/// CONNECT with a clean session, no will and no credentials.
/// `keep_alive` must be non-zero for rumqttd, which closes a CONNECT with keep-alive 0.
pub fn encode_connect(buf: &mut BytesMut, client_id: &str, keep_alive: u16) {
    encode_connect_session(buf, client_id, keep_alive, true);
}

/// CONNECT, clean or resuming a persistent session (`clean == false`: the broker keeps
/// the subscriptions and queues QoS 1 deliveries while the client is away).
pub fn encode_connect_session(buf: &mut BytesMut, client_id: &str, keep_alive: u16, clean: bool) {
    let remaining = 10 + 2 + client_id.len();
    buf.put_u8(0x10);
    put_remaining_length(buf, remaining);
    put_str(buf, b"MQTT");
    buf.put_u8(4); // protocol level 3.1.1
    buf.put_u8(if clean { 0x02 } else { 0x00 });
    buf.put_u16(keep_alive);
    put_str(buf, client_id.as_bytes());
}

/// SUBSCRIBE to one filter.
pub fn encode_subscribe(buf: &mut BytesMut, pkid: u16, filter: &str, qos: u8) {
    buf.put_u8(0x82);
    put_remaining_length(buf, 2 + 2 + filter.len() + 1);
    buf.put_u16(pkid);
    put_str(buf, filter.as_bytes());
    buf.put_u8(qos);
}

/// Fixed and variable header of a PUBLISH whose `payload_len` bytes the caller appends
/// next, so a payload can be written in place without an intermediate buffer.
pub fn encode_publish_head(buf: &mut BytesMut, topic: &[u8], qos: u8, pkid: u16, payload_len: usize) {
    debug_assert!(qos <= 1 && (qos == 0 || pkid != 0));
    let id_len = if qos > 0 { 2 } else { 0 };
    buf.put_u8(0x30 | (qos << 1));
    put_remaining_length(buf, 2 + topic.len() + id_len + payload_len);
    put_str(buf, topic);
    if qos > 0 {
        buf.put_u16(pkid);
    }
}

/// [`encode_publish_head`] with the retain flag set.
pub fn encode_retained_publish_head(buf: &mut BytesMut, topic: &[u8], qos: u8, pkid: u16, payload_len: usize) {
    let start = buf.len();
    encode_publish_head(buf, topic, qos, pkid, payload_len);
    buf[start] |= 0x01;
}

/// Encoded size of a PUBLISH, to size write batches before encoding.
pub fn publish_len(topic_len: usize, qos: u8, payload_len: usize) -> usize {
    let remaining = 2 + topic_len + if qos > 0 { 2 } else { 0 } + payload_len;
    1 + remaining_length_len(remaining) + remaining
}

pub fn encode_puback(buf: &mut BytesMut, pkid: u16) {
    buf.put_slice(&[0x40, 0x02]);
    buf.put_u16(pkid);
}

pub fn encode_pingreq(buf: &mut BytesMut) {
    buf.put_slice(&[0xc0, 0x00]);
}

pub fn encode_disconnect(buf: &mut BytesMut) {
    buf.put_slice(&[0xe0, 0x00]);
}

fn read_u16(body: &[u8], at: usize) -> Result<u16, WireError> {
    body.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or(WireError::Malformed("field overruns frame"))
}

/// Decodes one frame from the front of `buf`. `Ok(None)` means the frame is not complete
/// yet; otherwise returns the packet and how many bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, WireError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some((remaining, len_len)) = read_remaining_length(buf)? else {
        return Ok(None);
    };
    let total = 1 + len_len + remaining;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[1 + len_len..total];
    let packet = match first >> 4 {
        2 => {
            if body.len() != 2 {
                return Err(WireError::Malformed("connack length"));
            }
            Packet::ConnAck { session_present: body[0] & 1 == 1, code: body[1] }
        }
        3 => {
            let qos = (first >> 1) & 0x03;
            if qos == 3 {
                return Err(WireError::InvalidQos(qos));
            }
            let topic_len = read_u16(body, 0)? as usize;
            let topic = body.get(2..2 + topic_len).ok_or(WireError::Malformed("topic overruns frame"))?;
            let mut at = 2 + topic_len;
            let mut pkid = 0;
            if qos > 0 {
                pkid = read_u16(body, at)?;
                at += 2;
            }
            Packet::Publish(Publish {
                dup: first & 0x08 != 0,
                qos,
                retain: first & 0x01 != 0,
                topic,
                pkid,
                payload: &body[at..],
            })
        }
        4 => Packet::PubAck { pkid: read_u16(body, 0)? },
        9 => Packet::SubAck { pkid: read_u16(body, 0)?, codes: &body[2..] },
        13 => Packet::PingResp,
        kind => Packet::Other { kind },
    };
    Ok(Some((packet, total)))
}

/// How many more bytes the frame at the front of `buf` needs (0 if complete or unknown),
/// so a reader can reserve room for a large message in one step.
pub fn missing_bytes(buf: &[u8]) -> usize {
    match read_remaining_length(buf) {
        Ok(Some((remaining, len_len))) => (1 + len_len + remaining).saturating_sub(buf.len()),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn publish_bytes(topic: &str, qos: u8, pkid: u16, payload: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_publish_head(&mut buf, topic.as_bytes(), qos, pkid, payload.len());
        buf.put_slice(payload);
        buf
    }

    #[test]
    fn connect_matches_the_spec_layout() {
        let mut buf = BytesMut::new();
        encode_connect(&mut buf, "lg", 60);
        let expected = [0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 2, b'l', b'g'];
        assert_eq!(&buf[..], &expected);
        buf.clear();
        encode_connect_session(&mut buf, "lg", 60, false);
        assert_eq!(buf[9], 0x00, "a persistent session clears the clean-session flag");
    }

    #[test]
    fn a_retained_publish_sets_only_the_retain_flag() {
        let mut buf = BytesMut::new();
        encode_retained_publish_head(&mut buf, b"t", 1, 5, 1);
        buf.put_u8(b'x');
        let (packet, _) = decode(&buf).unwrap().unwrap();
        let Packet::Publish(p) = packet else { panic!("not a publish: {packet:?}") };
        assert!(p.retain && !p.dup);
        assert_eq!((p.qos, p.pkid, p.topic, p.payload), (1, 5, &b"t"[..], &b"x"[..]));
    }

    #[test]
    fn subscribe_and_small_packets_match_the_spec_layout() {
        let mut buf = BytesMut::new();
        encode_subscribe(&mut buf, 1, "a/+", 1);
        assert_eq!(&buf[..], &[0x82, 8, 0, 1, 0, 3, b'a', b'/', b'+', 1]);
        buf.clear();
        encode_puback(&mut buf, 0x1234);
        encode_pingreq(&mut buf);
        encode_disconnect(&mut buf);
        assert_eq!(&buf[..], &[0x40, 2, 0x12, 0x34, 0xc0, 0, 0xe0, 0]);
    }

    #[test]
    fn decodes_server_packets() {
        let frames: &[u8] = &[0x20, 2, 1, 0, 0x90, 3, 0, 7, 1, 0x40, 2, 0, 9, 0xd0, 0];
        let (p, n) = decode(frames).unwrap().unwrap();
        assert_eq!(p, Packet::ConnAck { session_present: true, code: 0 });
        let (p, m) = decode(&frames[n..]).unwrap().unwrap();
        assert_eq!(p, Packet::SubAck { pkid: 7, codes: &[1] });
        let (p, k) = decode(&frames[n + m..]).unwrap().unwrap();
        assert_eq!(p, Packet::PubAck { pkid: 9 });
        let (p, _) = decode(&frames[n + m + k..]).unwrap().unwrap();
        assert_eq!(p, Packet::PingResp);
    }

    #[test]
    fn remaining_length_boundaries_round_trip() {
        // topic "t" (2 + 1 bytes) and a QoS 1 id (2 bytes) leave remaining - 5 for payload.
        for remaining in [127usize, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
            let payload = vec![0xab; remaining - 5];
            let buf = publish_bytes("t", 1, 42, &payload);
            let header = 1 + remaining_length_len(remaining);
            assert_eq!(buf.len(), header + remaining, "remaining {remaining}");
            assert_eq!(buf.len(), publish_len(1, 1, payload.len()));
            let (packet, used) = decode(&buf).unwrap().unwrap();
            assert_eq!(used, buf.len());
            let Packet::Publish(p) = packet else { panic!("not a publish") };
            assert_eq!((p.topic, p.qos, p.pkid, p.payload.len()), (&b"t"[..], 1, 42, payload.len()));
        }
        assert_eq!(remaining_length_len(127), 1);
        assert_eq!(remaining_length_len(128), 2);
        assert_eq!(remaining_length_len(16_383), 2);
        assert_eq!(remaining_length_len(16_384), 3);
        assert_eq!(remaining_length_len(MAX_REMAINING_LENGTH), 4);
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut stream = publish_bytes("bench/x/0", 0, 0, &[7; 300]);
        encode_puback(&mut stream, 3);
        let first_len = decode(&stream).unwrap().unwrap().1;
        for cut in 0..first_len {
            assert_eq!(decode(&stream[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(missing_bytes(&stream[..10]), first_len - 10);
        let (p, n) = decode(&stream[first_len..]).unwrap().unwrap();
        assert_eq!((p, n), (Packet::PubAck { pkid: 3 }, 4));
    }

    #[test]
    fn rejects_bad_frames() {
        assert!(decode(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
        assert_eq!(decode(&[0x36, 2, 0, 0]), Err(WireError::InvalidQos(3)));
        assert!(decode(&[0x30, 2, 0, 5]).is_err());
    }

    proptest! {
        #[test]
        fn publish_round_trips_at_any_split(
            topic in "[a-z/+]{0,40}",
            qos in 0u8..=1,
            pkid in 1u16..,
            payload in proptest::collection::vec(any::<u8>(), 0..600),
            cut in 0usize..700,
        ) {
            let pkid = if qos == 0 { 0 } else { pkid };
            let buf = publish_bytes(&topic, qos, pkid, &payload);
            let cut = cut.min(buf.len());
            if cut < buf.len() {
                prop_assert_eq!(decode(&buf[..cut]).unwrap(), None);
            }
            let (packet, used) = decode(&buf).unwrap().unwrap();
            prop_assert_eq!(used, buf.len());
            let expected = Publish { dup: false, qos, retain: false, topic: topic.as_bytes(), pkid, payload: &payload };
            prop_assert_eq!(packet, Packet::Publish(expected));
        }
    }
}
