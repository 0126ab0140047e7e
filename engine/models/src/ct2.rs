//! Reads CTranslate2's `model.bin`.
//!
//! The layout (binary version 6, little-endian): `u32` version, the spec name, `u32`
//! spec revision, `u32` variable count, then per variable its name, `u8` rank, `rank`
//! × `u32` dims, `u8` dtype, `u32` byte count and the bytes; then `u32` alias count and
//! (alias, target) name pairs. A name is a `u16` length that counts a trailing NUL,
//! then the bytes with that NUL.

use std::collections::HashMap;

use crate::error::ConvertError;
use crate::reader::Reader;

/// The only layout this reader knows.
pub(crate) const BINARY_VERSION: u32 = 6;

/// CTranslate2's `DataType` ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dtype {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Dtype {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            _ => return None,
        })
    }

    pub(crate) fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }
}

/// One named array; `data` borrows the file's bytes.
#[derive(Debug)]
pub(crate) struct Variable<'a> {
    pub(crate) name: &'a str,
    pub(crate) shape: Vec<u32>,
    pub(crate) dtype: Dtype,
    pub(crate) data: &'a [u8],
}

impl Variable<'_> {
    /// Bytes of one row (everything after the first dimension).
    pub(crate) fn row_bytes(&self) -> usize {
        self.shape.iter().skip(1).map(|&d| d as usize).product::<usize>() * self.dtype.size()
    }

    /// A scalar integer (CTranslate2 stores `num_heads` as an int16 scalar).
    pub(crate) fn as_int(&self) -> Option<i64> {
        if !self.shape.is_empty() {
            return None;
        }
        let bytes = self.data;
        Some(match self.dtype {
            Dtype::I8 => i64::from(bytes[0] as i8),
            Dtype::I16 => i64::from(i16::from_le_bytes([bytes[0], bytes[1]])),
            Dtype::I32 => i64::from(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
            _ => return None,
        })
    }
}

/// A parsed `model.bin`, borrowing its bytes.
#[derive(Debug)]
pub(crate) struct Ct2Model<'a> {
    pub(crate) spec: &'a str,
    pub(crate) variables: HashMap<&'a str, Variable<'a>>,
}

impl<'a> Ct2Model<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, ConvertError> {
        let mut reader = Reader::new(bytes, |offset, what| ConvertError::Truncated { offset, what });
        let version = reader.u32("binary version")?;
        if version != BINARY_VERSION {
            return Err(ConvertError::UnsupportedVersion { found: version, expected: BINARY_VERSION });
        }
        let spec = reader.name("spec name")?;
        let _revision = reader.u32("spec revision")?;
        let count = reader.u32("variable count")?;
        let mut variables = HashMap::with_capacity(count as usize);
        for _ in 0..count {
            let variable = reader.variable()?;
            variables.insert(variable.name, variable);
        }
        // The aliases (Whisper's output projection is the token embedding) follow; the
        // ggml layout has no use for them.
        Ok(Self { spec, variables })
    }

    pub(crate) fn get(&self, name: &str) -> Result<&Variable<'a>, ConvertError> {
        self.variables.get(name).ok_or_else(|| ConvertError::MissingVariable { name: name.to_owned() })
    }

    /// How many `{scope}/layer_N/` blocks the model has.
    pub(crate) fn count_layers(&self, scope: &str) -> usize {
        let prefix = format!("{scope}/layer_");
        self.variables
            .keys()
            .filter_map(|name| name.strip_prefix(&prefix)?.split('/').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |last| last + 1)
    }
}

impl<'a> Reader<'a> {
    fn name(&mut self, what: &'static str) -> Result<&'a str, ConvertError> {
        let len = usize::from(self.u16(what)?);
        let raw = self.take(len, what)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        std::str::from_utf8(raw).map_err(|_| ConvertError::BadName { name: String::from_utf8_lossy(raw).into_owned() })
    }

    fn variable(&mut self) -> Result<Variable<'a>, ConvertError> {
        let name = self.name("variable name")?;
        let rank = self.u8("variable rank")?;
        let shape = (0..rank).map(|_| self.u32("variable shape")).collect::<Result<Vec<_>, _>>()?;
        let dtype_id = self.u8("variable dtype")?;
        let dtype = Dtype::from_id(dtype_id)
            .ok_or_else(|| ConvertError::UnsupportedDtype { name: name.to_owned(), dtype: dtype_id })?;
        let len = self.u32("variable size")? as usize;
        let data = self.take(len, "variable data")?;
        let expected = shape.iter().map(|&d| d as usize).product::<usize>() * dtype.size();
        if len != expected {
            return Err(ConvertError::BadLength { name: name.to_owned(), shape, found: len, expected });
        }
        Ok(Variable { name, shape, dtype, data })
    }
}

/// Builds `model.bin` bytes, for tests of the reader and the converter.
#[cfg(test)]
pub(crate) mod writer {
    /// A variable to write: name, shape, dtype id, raw little-endian bytes.
    pub(crate) struct Var {
        pub(crate) name: String,
        pub(crate) shape: Vec<u32>,
        pub(crate) dtype: u8,
        pub(crate) data: Vec<u8>,
    }

    fn name(out: &mut Vec<u8>, name: &str) {
        out.extend_from_slice(&(name.len() as u16 + 1).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
    }

    pub(crate) fn model_bin(spec: &str, vars: &[Var], aliases: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&super::BINARY_VERSION.to_le_bytes());
        name(&mut out, spec);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for var in vars {
            name(&mut out, &var.name);
            out.push(var.shape.len() as u8);
            for dim in &var.shape {
                out.extend_from_slice(&dim.to_le_bytes());
            }
            out.push(var.dtype);
            out.extend_from_slice(&(var.data.len() as u32).to_le_bytes());
            out.extend_from_slice(&var.data);
        }
        out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
        for (alias, target) in aliases {
            name(&mut out, alias);
            name(&mut out, target);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::writer::{model_bin, Var};
    use super::*;

    fn var(name: &str, shape: &[u32], dtype: u8, data: Vec<u8>) -> Var {
        Var { name: name.into(), shape: shape.to_vec(), dtype, data }
    }

    #[test]
    fn reads_records_scalars_and_layer_counts() {
        let bytes = model_bin(
            "WhisperSpec",
            &[
                var("encoder/num_heads", &[], 2, 6i16.to_le_bytes().to_vec()),
                var("encoder/layer_0/w", &[2, 3], 0, vec![0; 24]),
                var("encoder/layer_1/w", &[2], 4, vec![0; 4]),
                var("decoder/pre_norm", &[], 1, vec![1]),
            ],
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        );
        let model = Ct2Model::parse(&bytes).unwrap();
        assert_eq!(model.spec, "WhisperSpec");
        assert_eq!(model.get("encoder/num_heads").unwrap().as_int(), Some(6));
        assert_eq!(model.get("decoder/pre_norm").unwrap().as_int(), Some(1));
        let w = model.get("encoder/layer_0/w").unwrap();
        assert_eq!((w.shape.as_slice(), w.dtype, w.row_bytes()), (&[2, 3][..], Dtype::F32, 12));
        assert_eq!(model.count_layers("encoder"), 2);
        assert_eq!(model.count_layers("decoder"), 0);
        assert!(matches!(model.get("nope"), Err(ConvertError::MissingVariable { .. })));
    }

    #[test]
    fn rejects_other_versions_short_files_and_wrong_sizes() {
        let mut bytes = model_bin("WhisperSpec", &[], &[]);
        bytes[0] = 5;
        assert!(matches!(Ct2Model::parse(&bytes), Err(ConvertError::UnsupportedVersion { found: 5, .. })));

        let bytes = model_bin("WhisperSpec", &[var("a", &[4], 4, vec![0; 8])], &[]);
        let err = Ct2Model::parse(&bytes[..bytes.len() - 10]).unwrap_err();
        assert!(matches!(err, ConvertError::Truncated { what: "variable data", .. }), "{err}");

        let bytes = model_bin("WhisperSpec", &[var("a", &[4], 4, vec![0; 6])], &[]);
        assert!(matches!(Ct2Model::parse(&bytes), Err(ConvertError::BadLength { expected: 8, found: 6, .. })));

        let bytes = model_bin("WhisperSpec", &[var("a", &[1], 9, vec![0; 1])], &[]);
        assert!(matches!(Ct2Model::parse(&bytes), Err(ConvertError::UnsupportedDtype { dtype: 9, .. })));
    }
}
