//! One listener serves MQTT 3.1.1 and 5: the CONNECT's protocol level picks rumqttd's
//! v4 or v5 codec for the rest of the connection.

use bytes::BytesMut;
use rumqttd::protocol::{self, v4::V4, v5::V5, Packet, Protocol};

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
    // Remaining length: 1–4 bytes, 7 bits each.
    let mut header_len = 1;
    loop {
        let Some(&b) = buf.get(header_len) else { return Sniff::NeedMore };
        header_len += 1;
        if b & 0x80 == 0 {
            break;
        }
        if header_len > 4 {
            return Sniff::NotConnect;
        }
    }
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

/// rumqttd's codec for the connection's version.
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

    /// Decodes one packet off the front of `buf`. Payloads are sliced out of `buf`
    /// (`Bytes`), not copied.
    pub(crate) fn read(&mut self, buf: &mut BytesMut, max_size: usize) -> Result<Packet, protocol::Error> {
        match self {
            Codec::V4(p) => p.read_mut(buf, max_size),
            Codec::V5(p) => p.read_mut(buf, max_size),
        }
    }

    pub(crate) fn write(&self, packet: Packet, out: &mut BytesMut) -> Result<usize, protocol::Error> {
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
}
