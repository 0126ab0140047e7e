//! MQTT on the wire. One listener serves 3.1.1 and 5: the CONNECT's protocol level picks
//! the version for the rest of the connection.
//!
//! Framing (fixed header, remaining length, size limit, which packet types a client may
//! send) is checked here before any decoder runs: rumqttd's v5 decoder panics on some
//! server-to-client packet types, so those never reach it. PUBLISH, the hot path, has its
//! own codec ([`publish`]): it keeps topic and payload as slices of the read buffer and
//! exposes the QoS and packet id that rumqttd's `Publish` keeps private. Every other
//! packet goes through rumqttd's v4/v5 codec.

pub(crate) mod password;
pub(crate) mod publish;
mod wire;

use bytes::BytesMut;
use rumqttd::protocol::{self, v4::V4, v5::V5, Packet, Protocol};

pub(crate) use wire::read_varint;

/// MQTT protocol version spoken on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttVersion {
    V311,
    V5,
}

impl MqttVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            MqttVersion::V311 => "3.1.1",
            MqttVersion::V5 => "5",
        }
    }

    pub fn is_v5(self) -> bool {
        self == MqttVersion::V5
    }
}

/// What the first bytes of a connection say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sniff {
    /// Not enough bytes yet.
    NeedMore,
    Version(MqttVersion),
    /// A CONNECT for a protocol level we do not speak (e.g. 3 for MQTT 3.1).
    UnsupportedLevel(u8),
    /// Not a CONNECT packet at all.
    NotConnect,
}

/// Reads the protocol level from a CONNECT without consuming anything.
pub(crate) fn sniff(buf: &[u8]) -> Sniff {
    let Some(&first) = buf.first() else { return Sniff::NeedMore };
    if first != 0x10 {
        return Sniff::NotConnect;
    }
    let header_len = match read_varint(&buf[1..]) {
        Ok(Some((_, len))) => 1 + len,
        Ok(None) => return Sniff::NeedMore,
        Err(_) => return Sniff::NotConnect,
    };
    // Variable header: protocol name (u16 length + bytes), then the level byte.
    let (Some(&hi), Some(&lo)) = (buf.get(header_len), buf.get(header_len + 1)) else {
        return Sniff::NeedMore;
    };
    let name_len = u16::from_be_bytes([hi, lo]) as usize;
    if name_len > 6 {
        return Sniff::NotConnect;
    }
    match buf.get(header_len + 2 + name_len) {
        None => Sniff::NeedMore,
        Some(4) => Sniff::Version(MqttVersion::V311),
        Some(5) => Sniff::Version(MqttVersion::V5),
        Some(&level) => Sniff::UnsupportedLevel(level),
    }
}

/// The packet types a client may send, as their fixed-header type nibble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientPacket {
    Connect,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    Unsubscribe,
    PingReq,
    Disconnect,
    Auth,
}

/// One packet's fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    pub kind: ClientPacket,
    pub byte1: u8,
    /// Fixed header length (1 + remaining-length bytes).
    pub header_len: usize,
    pub remaining: usize,
}

impl Frame {
    pub fn len(&self) -> usize {
        self.header_len + self.remaining
    }
}

/// Why the front of a buffer is not a packet a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A remaining length longer than 4 bytes, or reserved flag bits set.
    Malformed(&'static str),
    /// A packet type only a server sends (or AUTH on 3.1.1).
    NotFromClient(u8),
    /// The whole packet would be this many bytes, past the limit.
    TooLarge(usize),
}

/// Reads the fixed header at the front of `buf`. `Ok(None)` means more bytes are needed
/// to know the header; the packet itself may still be incomplete.
pub(crate) fn frame(buf: &[u8], version: MqttVersion, max_size: usize) -> Result<Option<Frame>, FrameError> {
    let Some(&byte1) = buf.first() else { return Ok(None) };
    let Some((remaining, len_len)) = read_varint(&buf[1..]).map_err(|_| FrameError::Malformed("remaining length"))?
    else {
        return Ok(None);
    };
    let flags = byte1 & 0x0f;
    let kind = match byte1 >> 4 {
        1 => ClientPacket::Connect,
        3 => ClientPacket::Publish,
        4 => ClientPacket::PubAck,
        5 => ClientPacket::PubRec,
        6 => ClientPacket::PubRel,
        7 => ClientPacket::PubComp,
        8 => ClientPacket::Subscribe,
        10 => ClientPacket::Unsubscribe,
        12 => ClientPacket::PingReq,
        14 => ClientPacket::Disconnect,
        15 if version.is_v5() => ClientPacket::Auth,
        other => return Err(FrameError::NotFromClient(other)),
    };
    let expected_flags = match kind {
        ClientPacket::Publish => flags,
        ClientPacket::PubRel | ClientPacket::Subscribe | ClientPacket::Unsubscribe => 0b0010,
        _ => 0,
    };
    if flags != expected_flags {
        return Err(FrameError::Malformed("reserved flags in the fixed header"));
    }
    let frame = Frame { kind, byte1, header_len: 1 + len_len, remaining: remaining as usize };
    if frame.len() > max_size {
        return Err(FrameError::TooLarge(frame.len()));
    }
    Ok(Some(frame))
}

/// rumqttd's codec for the connection's version, for every packet but PUBLISH.
#[derive(Debug, Clone)]
pub(crate) enum Codec {
    V4(V4),
    V5(V5),
}

impl Codec {
    pub(crate) fn new(version: MqttVersion) -> Codec {
        match version {
            MqttVersion::V311 => Codec::V4(V4),
            MqttVersion::V5 => Codec::V5(V5),
        }
    }

    pub(crate) fn version(&self) -> MqttVersion {
        match self {
            Codec::V4(_) => MqttVersion::V311,
            Codec::V5(_) => MqttVersion::V5,
        }
    }

    /// Decodes the packet at the front of `buf`, which [`frame`] has checked and which
    /// is complete.
    pub(crate) fn read(&mut self, buf: &mut BytesMut, max_size: usize) -> Result<Packet, protocol::Error> {
        match self {
            Codec::V4(p) => p.read_mut(buf, max_size),
            Codec::V5(p) => p.read_mut(buf, max_size),
        }
    }

    /// Encodes any packet but PUBLISH (see [`publish::encode`]).
    pub(crate) fn write(&self, packet: Packet, out: &mut BytesMut) -> Result<usize, protocol::Error> {
        debug_assert!(!matches!(packet, Packet::Publish(..)), "PUBLISH has its own encoder");
        match self {
            Codec::V4(p) => p.write(packet, out),
            Codec::V5(p) => p.write(packet, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(level: u8) -> Vec<u8> {
        let mut v = vec![0x10, 10, 0, 4, b'M', b'Q', b'T', b'T', level, 2, 0, 60];
        v.extend_from_slice(&[0, 0]);
        v
    }

    #[test]
    fn sniffs_levels() {
        assert_eq!(sniff(&connect(4)), Sniff::Version(MqttVersion::V311));
        assert_eq!(sniff(&connect(5)), Sniff::Version(MqttVersion::V5));
        assert_eq!(sniff(&connect(3)), Sniff::UnsupportedLevel(3));
        assert_eq!(sniff(&[0x30, 0]), Sniff::NotConnect);
        assert_eq!(sniff(b"GET / HTTP/1.1\r\n"), Sniff::NotConnect);
    }

    #[test]
    fn needs_more_until_the_level_byte() {
        let full = connect(4);
        for n in 0..9 {
            assert_eq!(sniff(&full[..n]), Sniff::NeedMore, "prefix {n}");
        }
    }

    #[test]
    fn mqtt31_name_is_read_to_its_level() {
        let v = [0x10, 12, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 2, 0, 60];
        assert_eq!(sniff(&v), Sniff::UnsupportedLevel(3));
    }

    #[test]
    fn frames_screen_types_flags_and_size() {
        let v5 = MqttVersion::V5;
        assert_eq!(frame(&[0x30], v5, 100), Ok(None));
        assert_eq!(frame(&[0x30, 0x80], v5, 100), Ok(None));
        let f = frame(&[0x32, 5, 0, 1, b'a', 0, 1], v5, 100).unwrap().unwrap();
        assert_eq!((f.kind, f.header_len, f.remaining), (ClientPacket::Publish, 2, 5));
        // CONNACK and SUBACK only come from a server.
        assert_eq!(frame(&[0x20, 2, 0, 0], v5, 100), Err(FrameError::NotFromClient(2)));
        assert_eq!(frame(&[0x90, 3, 0, 1, 0], v5, 100), Err(FrameError::NotFromClient(9)));
        // AUTH exists only in MQTT 5.
        assert_eq!(frame(&[0xf0, 0], MqttVersion::V311, 100), Err(FrameError::NotFromClient(15)));
        assert!(frame(&[0xf0, 0], v5, 100).unwrap().is_some());
        // SUBSCRIBE must carry flags 0010; PINGREQ none.
        assert!(matches!(frame(&[0x80, 0], v5, 100), Err(FrameError::Malformed(_))));
        assert!(matches!(frame(&[0xc1, 0], v5, 100), Err(FrameError::Malformed(_))));
        assert!(matches!(frame(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], v5, 100), Err(FrameError::Malformed(_))));
        assert_eq!(frame(&[0x30, 0x80, 0x01], v5, 100), Err(FrameError::TooLarge(131)));
    }
}
