//! MQTT's encodings, written the way a fuzzer needs them: any byte in any field, and
//! a remaining length that may lie.
//!
//! `crate::wire` is the load client's codec and only writes well-formed packets; this
//! one writes whatever it is told, so a body longer than a field allows is cut, never
//! refused.

use super::gen::Gen;

/// The largest value a variable byte integer carries.
pub(crate) const VARINT_MAX: u32 = 268_435_455;

pub(crate) fn put_varint(out: &mut Vec<u8>, value: u32) {
    let mut value = value.min(VARINT_MAX);
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            return;
        }
    }
}

pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A two-byte length and the bytes (cut at 65,535, the most the length can say).
pub(crate) fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    let s = &s[..s.len().min(usize::from(u16::MAX))];
    put_u16(out, s.len() as u16);
    out.extend_from_slice(s);
}

/// What the fixed header says the body's length is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Length {
    True,
    /// Fewer bytes than follow: the rest is read as the next packet.
    Short(usize),
    /// More bytes than follow: the engine waits for bytes that never come.
    Long(usize),
    /// 268,435,455, the 4-byte maximum.
    Max,
    /// A fifth length byte: malformed in both versions.
    FiveBytes,
    /// The true value with needless continuation bytes (0x85 0x00 for 5).
    Overlong,
}

impl Length {
    /// Usually the truth; a lie in one of its forms now and then.
    pub(crate) fn draw(gen: &mut Gen) -> Length {
        match gen.weighted(&[88, 4, 3, 2, 1, 2]) {
            0 => Length::True,
            1 => Length::Short(gen.range(1, 8)),
            2 => Length::Long(gen.len_up_to(2_000_000).max(1)),
            3 => Length::Max,
            4 => Length::FiveBytes,
            _ => Length::Overlong,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Length::True => "",
            Length::Short(_) => " (length short)",
            Length::Long(_) => " (length long)",
            Length::Max => " (length 268435455)",
            Length::FiveBytes => " (5-byte length)",
            Length::Overlong => " (overlong length)",
        }
    }
}

/// A whole packet: `byte1`, the remaining length as `length` says, the body.
pub(crate) fn packet(byte1: u8, body: &[u8], length: Length) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(byte1);
    let true_len = body.len().min(VARINT_MAX as usize) as u32;
    match length {
        Length::True => put_varint(&mut out, true_len),
        Length::Short(by) => put_varint(&mut out, true_len.saturating_sub(by as u32)),
        Length::Long(by) => put_varint(&mut out, true_len.saturating_add(by as u32)),
        Length::Max => put_varint(&mut out, VARINT_MAX),
        Length::FiveBytes => out.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x01]),
        Length::Overlong => {
            let mut v = Vec::new();
            put_varint(&mut v, true_len);
            if v.len() < 4 {
                let last = v.len() - 1;
                v[last] |= 0x80;
                v.push(0x00);
            }
            out.extend_from_slice(&v);
        }
    }
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_the_spec_boundaries() {
        for (value, bytes) in [
            (0u32, &[0x00][..]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (VARINT_MAX, &[0xff, 0xff, 0xff, 0x7f]),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out, bytes, "{value}");
        }
    }

    #[test]
    fn lengths_lie_as_asked() {
        let body = [1u8, 2, 3, 4, 5];
        assert_eq!(packet(0x30, &body, Length::True)[..2], [0x30, 5]);
        assert_eq!(packet(0x30, &body, Length::Short(2))[1], 3);
        assert_eq!(packet(0x30, &body, Length::Long(200))[1..3], [0xcd, 0x01]);
        assert_eq!(packet(0x30, &body, Length::Max)[1..5], [0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(packet(0x30, &body, Length::FiveBytes).len(), 1 + 5 + 5);
        assert_eq!(packet(0x30, &body, Length::Overlong)[1..3], [0x85, 0x00]);
        let mut s = Vec::new();
        put_str(&mut s, &vec![b'x'; 70_000]);
        assert_eq!((s[0], s[1], s.len()), (0xff, 0xff, 65_537));
    }
}
