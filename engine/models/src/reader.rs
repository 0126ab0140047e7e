//! [`Reader`]: little-endian fields read in order from a model file held in memory,
//! each read that runs past the end reported with its offset and what it was for.
//! Shared by the CTranslate2 reader and the quantizer's reading of the ggml file.

use crate::error::ConvertError;

pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) offset: usize,
    /// The error for a read past the end, naming the file being read.
    truncated: fn(usize, &'static str) -> ConvertError,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], truncated: fn(usize, &'static str) -> ConvertError) -> Self {
        Self { bytes, offset: 0, truncated }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.offset >= self.bytes.len()
    }

    pub(crate) fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], ConvertError> {
        let end = self.offset.checked_add(len).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err((self.truncated)(self.offset, what));
        };
        let taken = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(taken)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, ConvertError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, ConvertError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, ConvertError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, ConvertError> {
        Ok(self.u32(what)? as i32)
    }
}
