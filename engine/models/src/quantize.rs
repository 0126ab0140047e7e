//! [`quantize_q8_0`]: the f16 ggml file rewritten with its weight matrices in ggml's
//! `Q8_0` (blocks of 32 weights: one f16 scale, 32 signed bytes), as whisper.cpp's
//! own `quantize` tool writes them.
//!
//! Why: on this kind of machine (2 cores, AVX2) Whisper tiny.en decodes a short
//! utterance about a fifth faster from `Q8_0` than from f16 (87 → 66 ms median on the
//! recorded speech corpus), with the same transcripts but for the spelling of a
//! number; the voice's latency under load is Whisper's queue. Biases, norms,
//! positional embeddings and the 3-D convolutions stay as they are, as whisper.cpp
//! expects.

use std::io::Write;

use crate::error::ConvertError;
use crate::ggml::{f16_to_f32, Counting};
use crate::reader::Reader;

/// `GGML_FTYPE_MOSTLY_Q8_0`, written as whisper.cpp's quantizer does: with the
/// quantization version (`GGML_QNT_VERSION` 2) times 1000 added.
const FTYPE_Q8_0: i32 = 2 * 1_000 + 7;
/// `GGML_TYPE_F16` and `GGML_TYPE_Q8_0` in a tensor header.
const TYPE_F16: i32 = 1;
const TYPE_Q8_0: i32 = 8;
/// Weights per `Q8_0` block.
const BLOCK: usize = 32;
const MAGIC: u32 = 0x6767_6d6c;
/// The hparams field that holds the file type (the last of eleven).
const FTYPE_FIELD: usize = 10;

/// What a quantization wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantizeSummary {
    /// Tensors written as `Q8_0`.
    pub quantized: usize,
    /// Tensors copied as they were.
    pub kept: usize,
    pub bytes: u64,
}

/// Reads the f16 ggml Whisper file in `ggml` and writes it to `out` with every 2-D f16
/// tensor whose rows are whole blocks quantized to `Q8_0`.
pub fn quantize_q8_0(ggml: &[u8], out: &mut (impl Write + ?Sized)) -> Result<QuantizeSummary, ConvertError> {
    let mut out = Counting { inner: out, bytes: 0 };
    let mut file = Reader::new(ggml, |offset, what| ConvertError::GgmlTruncated { offset, what });
    if file.u32("magic")? != MAGIC {
        return Err(ConvertError::NotGgml);
    }
    out.write_all(&MAGIC.to_le_bytes())?;
    let mut hparams = [0i32; 11];
    for field in &mut hparams {
        *field = file.i32("hparams")?;
    }
    if hparams[FTYPE_FIELD] != 1 {
        return Err(ConvertError::NotF16 { ftype: hparams[FTYPE_FIELD] });
    }
    hparams[FTYPE_FIELD] = FTYPE_Q8_0;
    for field in hparams {
        out.write_all(&field.to_le_bytes())?;
    }
    // The mel filters and the vocabulary are copied as they are.
    let (n_mel, n_fft) = (file.i32("mel filters")?, file.i32("mel filters")?);
    let filters = file.take(4 * count(n_mel)? * count(n_fft)?, "mel filters")?;
    out.write_all(&n_mel.to_le_bytes())?;
    out.write_all(&n_fft.to_le_bytes())?;
    out.write_all(filters)?;
    let n_vocab = file.i32("vocabulary")?;
    out.write_all(&n_vocab.to_le_bytes())?;
    for _ in 0..n_vocab {
        let len = file.u32("vocabulary")?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(file.take(len as usize, "vocabulary")?)?;
    }
    let (mut quantized, mut kept) = (0, 0);
    while !file.at_end() {
        let (n_dims, name_len, ttype) = (file.i32("tensor")?, file.i32("tensor")?, file.i32("tensor")?);
        let dims: Vec<i32> = (0..n_dims).map(|_| file.i32("tensor dims")).collect::<Result<_, _>>()?;
        let name = file.take(count(name_len)?, "tensor name")?;
        let elements = dims.iter().try_fold(1usize, |n, &d| Ok::<_, ConvertError>(n * count(d)?))?;
        let element_bytes = if ttype == TYPE_F16 { 2 } else { 4 };
        let data = file.take(elements * element_bytes, "tensor data")?;
        let quantize = ttype == TYPE_F16 && n_dims == 2 && count(dims[0])? % BLOCK == 0;
        out.write_all(&n_dims.to_le_bytes())?;
        out.write_all(&name_len.to_le_bytes())?;
        out.write_all(&(if quantize { TYPE_Q8_0 } else { ttype }).to_le_bytes())?;
        for dim in &dims {
            out.write_all(&dim.to_le_bytes())?;
        }
        out.write_all(name)?;
        if quantize {
            for block in data.chunks_exact(2 * BLOCK) {
                out.write_all(&q8_0_block(block))?;
            }
            quantized += 1;
        } else {
            out.write_all(data)?;
            kept += 1;
        }
    }
    out.flush()?;
    Ok(QuantizeSummary { quantized, kept, bytes: out.bytes })
}

/// One block of 32 f16 weights as `Q8_0`: the scale `max |w| / 127` as f16, then each
/// weight divided by it and rounded half away from zero (ggml's reference rule).
fn q8_0_block(halves: &[u8]) -> [u8; 2 + BLOCK] {
    let mut weights = [0f32; BLOCK];
    for (w, half) in weights.iter_mut().zip(halves.chunks_exact(2)) {
        *w = f16_to_f32(u16::from_le_bytes([half[0], half[1]]));
    }
    let max = weights.iter().fold(0f32, |m, w| m.max(w.abs()));
    let scale = max / 127.0;
    let inverse = if scale == 0.0 { 0.0 } else { 1.0 / scale };
    let mut block = [0u8; 2 + BLOCK];
    block[..2].copy_from_slice(&f32_to_f16(scale).to_le_bytes());
    for (q, w) in block[2..].iter_mut().zip(weights) {
        *q = (w * inverse).round() as i8 as u8;
    }
    block
}

/// IEEE half of `value`, rounded to nearest, ties to even (what F16C does).
fn f32_to_f16(value: f32) -> u16 {
    let bits = value.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32;
    let mantissa = bits & 0x7f_ffff;
    if exponent == 0xff {
        return sign | 0x7c00 | if mantissa != 0 { 0x200 } else { 0 };
    }
    let rounded = |kept: u32, rest: u32, halfway: u32| {
        if rest > halfway || (rest == halfway && kept & 1 == 1) {
            kept + 1
        } else {
            kept
        }
    };
    let half_exponent = exponent - 127 + 15;
    if half_exponent >= 0x1f {
        return sign | 0x7c00;
    }
    if half_exponent <= 0 {
        // A subnormal half: the value in units of 2^-24.
        let shift = (14 - half_exponent) as u32;
        if shift > 24 {
            return sign;
        }
        let full = mantissa | 0x80_0000;
        let kept = full >> shift;
        return sign | rounded(kept, full & ((1 << shift) - 1), 1 << (shift - 1)) as u16;
    }
    // A carry out of the mantissa lands in the exponent, as it should.
    let kept = ((half_exponent as u32) << 10) | (mantissa >> 13);
    sign | rounded(kept, mantissa & 0x1fff, 0x1000) as u16
}

fn count(n: i32) -> Result<usize, ConvertError> {
    usize::try_from(n).map_err(|_| ConvertError::GgmlTruncated { offset: 0, what: "a count" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_round_to_nearest_even_and_widen_back_exactly() {
        for half in (0u16..0x7c00).step_by(7).chain([0x3c00, 0x0001, 0x03ff, 0x0400, 0x7bff]) {
            let value = f16_to_f32(half);
            assert_eq!(f32_to_f16(value), half, "{value}");
            assert_eq!(f32_to_f16(-value), half | 0x8000, "{value}");
        }
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00, "a tie goes to the even half");
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02, "a tie goes to the even half");
        assert_eq!(f32_to_f16(65_520.0), 0x7c00, "past the largest half");
        assert_eq!(f32_to_f16(2f32.powi(-26)), 0, "under half the smallest subnormal");
        assert_eq!(f32_to_f16(f32::NAN) & 0x7e00, 0x7e00);
    }

    #[test]
    fn a_block_keeps_each_weight_within_half_a_step() {
        let weights: Vec<f32> = (0..BLOCK).map(|i| (i as f32 - 13.0) / 17.0).collect();
        let halves: Vec<u8> = weights.iter().flat_map(|&w| f32_to_f16(w).to_le_bytes()).collect();
        let block = q8_0_block(&halves);
        let scale = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
        assert!((scale - 18.0 / 17.0 / 127.0).abs() < 1e-5, "{scale}");
        assert_eq!(block[2 + 31] as i8, 127, "the largest weight is the full step");
        // Half a step, and what storing the scale as f16 moves the largest weights.
        for (q, half) in block[2..].iter().zip(halves.chunks_exact(2)) {
            let w = f16_to_f32(u16::from_le_bytes([half[0], half[1]]));
            assert!(((*q as i8) as f32 * scale - w).abs() <= scale * 0.6, "{w}");
        }
        assert_eq!(q8_0_block(&[0u8; 2 * BLOCK]), [0u8; 2 + BLOCK], "all zero: scale 0, no division");
    }

    #[test]
    fn what_is_not_an_f16_ggml_file_is_refused() {
        let mut sink = Vec::new();
        assert!(matches!(quantize_q8_0(b"GGUF", &mut sink), Err(ConvertError::NotGgml)));
        let mut f32_file = MAGIC.to_le_bytes().to_vec();
        f32_file.extend([0u8; 44]);
        assert!(matches!(quantize_q8_0(&f32_file, &mut sink), Err(ConvertError::NotF16 { ftype: 0 })));
        let mut short = MAGIC.to_le_bytes().to_vec();
        short.extend([0u8; 12]);
        assert!(matches!(quantize_q8_0(&short, &mut sink), Err(ConvertError::GgmlTruncated { .. })));
    }
}
