//! MQTT's primitive encodings: variable byte integers, two-byte-length strings and
//! binary data, with the checks the specifications ask of a receiver.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A malformed primitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub &'static str);

/// Reads a variable byte integer: `Ok(None)` when `buf` ends before it does; otherwise
/// the value and how many bytes it took. More than four bytes is malformed.
pub(crate) fn read_varint(buf: &[u8]) -> Result<Option<(u32, usize)>, Malformed> {
    let mut value: u32 = 0;
    for (i, &byte) in buf.iter().enumerate().take(4) {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(Malformed("variable byte integer longer than 4 bytes"))
    } else {
        Ok(None)
    }
}

/// How many bytes `value` takes as a variable byte integer.
pub(crate) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

pub(crate) fn write_varint(out: &mut BytesMut, mut value: usize) {
    debug_assert!(value <= 268_435_455, "variable byte integers stop at 268,435,455");
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if value == 0 {
            return;
        }
    }
}

/// A reader over one packet's bytes that never reads past them.
pub(crate) struct Reader {
    bytes: Bytes,
}

impl Reader {
    pub(crate) fn new(bytes: Bytes) -> Reader {
        Reader { bytes }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Malformed> {
        if self.bytes.is_empty() {
            return Err(Malformed("packet ends early"));
        }
        Ok(self.bytes.get_u8())
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Malformed> {
        if self.bytes.len() < 2 {
            return Err(Malformed("packet ends early"));
        }
        Ok(self.bytes.get_u16())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Malformed> {
        if self.bytes.len() < 4 {
            return Err(Malformed("packet ends early"));
        }
        Ok(self.bytes.get_u32())
    }

    pub(crate) fn varint(&mut self) -> Result<u32, Malformed> {
        match read_varint(&self.bytes)? {
            Some((value, len)) => {
                self.bytes.advance(len);
                Ok(value)
            }
            None => Err(Malformed("packet ends early")),
        }
    }

    /// Two-byte length, then that many bytes (zero-copy).
    pub(crate) fn binary(&mut self) -> Result<Bytes, Malformed> {
        let len = self.u16()? as usize;
        self.take(len)
    }

    /// A UTF-8 string: valid UTF-8 and no U+0000 (3.1.1 §1.5.3, 5 §1.5.4).
    pub(crate) fn string(&mut self) -> Result<String, Malformed> {
        let bytes = self.binary()?;
        check_utf8(&bytes).map(str::to_owned)
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<Bytes, Malformed> {
        if self.bytes.len() < len {
            return Err(Malformed("length past the end of the packet"));
        }
        Ok(self.bytes.split_to(len))
    }

    pub(crate) fn rest(self) -> Bytes {
        self.bytes
    }
}

/// An MQTT UTF-8 string's rules.
pub(crate) fn check_utf8(bytes: &[u8]) -> Result<&str, Malformed> {
    let s = std::str::from_utf8(bytes).map_err(|_| Malformed("string is not valid UTF-8"))?;
    if s.contains('\0') {
        return Err(Malformed("string contains U+0000"));
    }
    Ok(s)
}

pub(crate) fn write_binary(out: &mut BytesMut, bytes: &[u8]) {
    debug_assert!(bytes.len() <= usize::from(u16::MAX));
    out.put_u16(bytes.len() as u16);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_boundary() {
        for value in [0usize, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455] {
            let mut out = BytesMut::new();
            write_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
            assert_eq!(read_varint(&out), Ok(Some((value as u32, out.len()))));
            assert_eq!(read_varint(&out[..out.len() - 1]), Ok(None));
        }
        assert!(read_varint(&[0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn strings_refuse_nul_and_bad_utf8() {
        assert!(check_utf8("温度".as_bytes()).is_ok());
        assert!(check_utf8(b"a\0").is_err());
        assert!(check_utf8(&[0xc3]).is_err());
        let mut r = Reader::new(Bytes::from_static(&[0, 5, b'a']));
        assert!(r.binary().is_err());
    }
}
