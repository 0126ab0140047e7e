//! CTranslate2 Whisper → whisper.cpp ggml.
//!
//! The ggml file is: magic `ggml`, eleven `i32` hyper-parameters, the mel filter bank
//! (`n_mels`, `n_fft/2+1`, then f32 weights), the text tokens (count, then length +
//! bytes each), then every tensor as (`n_dims`, name length, type, dims innermost
//! first, name, data). Matrices keep the model's float type; vectors, convolution
//! biases and positional embeddings are f32.
//!
//! CTranslate2 fuses the self-attention query/key/value projections into one matrix
//! and the cross-attention key/value into another; they are split back by rows here.
//! Whisper's key projections have no bias, so the key rows of a fused bias must be zero.
//!
//! Tensors are written in the order of the original checkpoints, which is the order of
//! the official ggml files, so a conversion is byte-identical to them.

use std::collections::HashSet;
use std::io::{self, BufWriter, Write};
use std::ops::Range;

use crate::ct2::{Ct2Model, Dtype, Variable};
use crate::error::ConvertError;
use crate::mel::{self, N_FFT, SAMPLE_RATE};
use crate::vocab;

const GGML_MAGIC: u32 = 0x6767_6d6c;

/// The hyper-parameters in the ggml header, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    /// 1: matrices are f16; 0: everything is f32.
    pub ftype: i32,
}

impl Hparams {
    fn as_array(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }
}

/// What a conversion wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgmlSummary {
    pub hparams: Hparams,
    pub text_tokens: usize,
    pub tensors: usize,
    pub bytes: u64,
}

/// Converts a CTranslate2 Whisper model (`model.bin` + `vocabulary.txt`) into a ggml
/// file written to `out`.
pub fn convert_whisper(model_bin: &[u8], vocabulary: &str, out: impl Write) -> Result<GgmlSummary, ConvertError> {
    let model = Ct2Model::parse(model_bin)?;
    if model.spec != "WhisperSpec" {
        return Err(ConvertError::NotWhisper { found: model.spec.to_owned() });
    }
    let hparams = hparams(&model)?;
    let tokens = vocab::text_tokens(vocabulary)?;
    let plan = Plan::new(&model, &hparams)?;

    let mut out = Counting { inner: BufWriter::with_capacity(1 << 20, out), bytes: 0 };
    out.write_all(&GGML_MAGIC.to_le_bytes())?;
    for value in hparams.as_array() {
        out.write_all(&value.to_le_bytes())?;
    }
    write_mel(&mut out, hparams.n_mels as usize)?;
    out.write_all(&(tokens.len() as u32).to_le_bytes())?;
    for token in &tokens {
        out.write_all(&(token.len() as u32).to_le_bytes())?;
        out.write_all(token)?;
    }
    for tensor in &plan.tensors {
        tensor.write(&mut out)?;
    }
    out.flush()?;
    Ok(GgmlSummary { hparams, text_tokens: tokens.len(), tensors: plan.tensors.len(), bytes: out.bytes })
}

fn hparams(model: &Ct2Model<'_>) -> Result<Hparams, ConvertError> {
    let dims2 = |name: &str| -> Result<(i32, i32), ConvertError> {
        match model.get(name)?.shape[..] {
            [rows, cols] => Ok((rows as i32, cols as i32)),
            ref other => Err(bad_shape(name, other, "2 dimensions")),
        }
    };
    let heads = |name: &str| -> Result<i32, ConvertError> {
        let var = model.get(name)?;
        var.as_int().map(|n| n as i32).ok_or_else(|| bad_shape(name, &var.shape, "an integer scalar"))
    };
    let (n_vocab, n_text_state) = dims2("decoder/embeddings/weight")?;
    let (n_text_ctx, _) = dims2("decoder/position_encodings/encodings")?;
    let (n_audio_ctx, n_audio_state) = dims2("encoder/position_encodings/encodings")?;
    let conv1 = model.get("encoder/conv1/weight")?;
    let n_mels = match conv1.shape[..] {
        [_, mels, 3] => mels as i32,
        ref other => Err(bad_shape(conv1.name, other, "[state, n_mels, 3]"))?,
    };
    let ftype = match model.get("decoder/embeddings/weight")?.dtype {
        Dtype::F16 => 1,
        Dtype::F32 => 0,
        other => Err(ConvertError::UnsupportedDtype { name: "decoder/embeddings/weight".into(), dtype: other as u8 })?,
    };
    Ok(Hparams {
        n_vocab,
        n_audio_ctx,
        n_audio_state,
        n_audio_head: heads("encoder/num_heads")?,
        n_audio_layer: model.count_layers("encoder") as i32,
        n_text_ctx,
        n_text_state,
        n_text_head: heads("decoder/num_heads")?,
        n_text_layer: model.count_layers("decoder") as i32,
        n_mels,
        ftype,
    })
}

fn write_mel(out: &mut impl Write, n_mels: usize) -> io::Result<()> {
    let n_bins = N_FFT / 2 + 1;
    out.write_all(&(n_mels as u32).to_le_bytes())?;
    out.write_all(&(n_bins as u32).to_le_bytes())?;
    for weight in mel::slaney_mel_filters(n_mels, N_FFT, SAMPLE_RATE) {
        out.write_all(&weight.to_le_bytes())?;
    }
    Ok(())
}

fn bad_shape(name: &str, found: &[u32], expected: &str) -> ConvertError {
    ConvertError::BadShape { name: name.to_owned(), found: found.to_vec(), expected: expected.to_owned() }
}

/// One ggml tensor and where its data comes from.
struct Tensor<'m> {
    name: String,
    source: &'m Variable<'m>,
    rows: Option<Range<usize>>,
    /// Outermost dimension first, as in the checkpoint.
    shape: Vec<u32>,
    f32_out: bool,
}

impl Tensor<'_> {
    fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let data = match &self.rows {
            Some(rows) => &self.source.data[rows.start * self.source.row_bytes()..rows.end * self.source.row_bytes()],
            None => self.source.data,
        };
        let widen = self.f32_out && self.source.dtype == Dtype::F16;
        let ttype: u32 = if self.f32_out || self.source.dtype == Dtype::F32 { 0 } else { 1 };
        out.write_all(&(self.shape.len() as u32).to_le_bytes())?;
        out.write_all(&(self.name.len() as u32).to_le_bytes())?;
        out.write_all(&ttype.to_le_bytes())?;
        for dim in self.shape.iter().rev() {
            out.write_all(&dim.to_le_bytes())?;
        }
        out.write_all(self.name.as_bytes())?;
        if !widen {
            return out.write_all(data);
        }
        for half in data.chunks_exact(2) {
            out.write_all(&f16_to_f32(u16::from_le_bytes([half[0], half[1]])).to_le_bytes())?;
        }
        Ok(())
    }
}

/// Exact widening of an IEEE half.
pub(crate) fn f16_to_f32(half: u16) -> f32 {
    let negative = half & 0x8000 != 0;
    let exponent = u32::from((half >> 10) & 0x1f);
    let mantissa = u32::from(half & 0x3ff);
    let magnitude = match exponent {
        // Zero and subnormals: mantissa × 2^-24, exact in f32.
        0 => mantissa as f32 * f32::from_bits(0x3380_0000),
        0x1f => f32::from_bits(0x7f80_0000 | (mantissa << 13)),
        _ => f32::from_bits(((exponent + 127 - 15) << 23) | (mantissa << 13)),
    };
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// The ggml tensors in file order, checked against the model.
struct Plan<'m> {
    model: &'m Ct2Model<'m>,
    float: Dtype,
    tensors: Vec<Tensor<'m>>,
    used: HashSet<&'m str>,
}

impl<'m> Plan<'m> {
    fn new(model: &'m Ct2Model<'m>, hparams: &Hparams) -> Result<Self, ConvertError> {
        let float = if hparams.ftype == 1 { Dtype::F16 } else { Dtype::F32 };
        let mut plan = Plan { model, float, tensors: Vec::new(), used: HashSet::new() };
        plan.whole("decoder.positional_embedding", "decoder/position_encodings/encodings", true)?;
        plan.whole("encoder.positional_embedding", "encoder/position_encodings/encodings", true)?;
        plan.whole("decoder.token_embedding.weight", "decoder/embeddings/weight", false)?;
        for layer in 0..hparams.n_text_layer {
            plan.block(&format!("decoder.blocks.{layer}"), &format!("decoder/layer_{layer}"), true)?;
        }
        plan.norm("decoder.ln", "decoder/layer_norm")?;
        for conv in ["conv1", "conv2"] {
            plan.whole(&format!("encoder.{conv}.weight"), &format!("encoder/{conv}/weight"), false)?;
            plan.whole(&format!("encoder.{conv}.bias"), &format!("encoder/{conv}/bias"), true)?;
            // ggml adds the bias to a [time, channels] tensor: it wants [channels, 1].
            let bias = plan.tensors.last_mut().expect("just pushed");
            bias.shape.push(1);
        }
        for layer in 0..hparams.n_audio_layer {
            plan.block(&format!("encoder.blocks.{layer}"), &format!("encoder/layer_{layer}"), false)?;
        }
        plan.norm("encoder.ln_post", "encoder/layer_norm")?;
        plan.check_all_weights_used()?;
        Ok(plan)
    }

    fn source(&mut self, name: &str) -> Result<&'m Variable<'m>, ConvertError> {
        let var = self.model.get(name)?;
        if var.dtype != self.float {
            return Err(match var.dtype {
                Dtype::F16 | Dtype::F32 => ConvertError::MixedPrecision { name: name.to_owned() },
                other => ConvertError::UnsupportedDtype { name: name.to_owned(), dtype: other as u8 },
            });
        }
        self.used.insert(var.name);
        Ok(var)
    }

    fn push(&mut self, name: String, source: &'m Variable<'m>, rows: Option<Range<usize>>, force_f32: bool) {
        let mut shape = source.shape.clone();
        if let Some(rows) = &rows {
            shape[0] = rows.len() as u32;
        }
        let f32_out = force_f32 || shape.len() < 2;
        self.tensors.push(Tensor { name, source, rows, shape, f32_out });
    }

    fn whole(&mut self, ggml: &str, ct2: &str, force_f32: bool) -> Result<(), ConvertError> {
        let source = self.source(ct2)?;
        self.push(ggml.to_owned(), source, None, force_f32);
        Ok(())
    }

    fn linear(&mut self, ggml: &str, ct2: &str) -> Result<(), ConvertError> {
        self.whole(&format!("{ggml}.weight"), &format!("{ct2}/weight"), false)?;
        self.whole(&format!("{ggml}.bias"), &format!("{ct2}/bias"), false)
    }

    fn norm(&mut self, ggml: &str, ct2: &str) -> Result<(), ConvertError> {
        self.whole(&format!("{ggml}.weight"), &format!("{ct2}/gamma"), false)?;
        self.whole(&format!("{ggml}.bias"), &format!("{ct2}/beta"), false)
    }

    fn block(&mut self, ggml: &str, ct2: &str, cross: bool) -> Result<(), ConvertError> {
        self.norm(&format!("{ggml}.mlp_ln"), &format!("{ct2}/ffn/layer_norm"))?;
        self.linear(&format!("{ggml}.mlp.0"), &format!("{ct2}/ffn/linear_0"))?;
        self.linear(&format!("{ggml}.mlp.2"), &format!("{ct2}/ffn/linear_1"))?;
        self.norm(&format!("{ggml}.attn_ln"), &format!("{ct2}/self_attention/layer_norm"))?;
        let qkv = format!("{ct2}/self_attention/linear_0");
        self.fused(&format!("{ggml}.attn"), &qkv, &["query", "key", "value"])?;
        self.linear(&format!("{ggml}.attn.out"), &format!("{ct2}/self_attention/linear_1"))?;
        if cross {
            self.norm(&format!("{ggml}.cross_attn_ln"), &format!("{ct2}/attention/layer_norm"))?;
            self.linear(&format!("{ggml}.cross_attn.query"), &format!("{ct2}/attention/linear_0"))?;
            self.fused(&format!("{ggml}.cross_attn"), &format!("{ct2}/attention/linear_1"), &["key", "value"])?;
            self.linear(&format!("{ggml}.cross_attn.out"), &format!("{ct2}/attention/linear_2"))?;
        }
        Ok(())
    }

    /// Splits a fused projection into equal row blocks named `parts`; the key part has
    /// no bias.
    fn fused(&mut self, ggml: &str, ct2: &str, parts: &[&str]) -> Result<(), ConvertError> {
        let weight = self.source(&format!("{ct2}/weight"))?;
        let bias = self.source(&format!("{ct2}/bias"))?;
        let n = parts.len() as u32;
        let state = match weight.shape[..] {
            [rows, cols] if rows == n * cols => cols as usize,
            ref other => return Err(bad_shape(weight.name, other, &format!("[{n} × state, state]"))),
        };
        if bias.shape[..] != [n * state as u32] {
            return Err(bad_shape(bias.name, &bias.shape, &format!("[{n} × {state}]")));
        }
        for (index, part) in parts.iter().enumerate() {
            let rows = index * state..(index + 1) * state;
            self.push(format!("{ggml}.{part}.weight"), weight, Some(rows.clone()), false);
            if *part == "key" {
                let key_bias = &bias.data[rows.start * bias.dtype.size()..rows.end * bias.dtype.size()];
                if !is_zero(key_bias, bias.dtype) {
                    return Err(ConvertError::KeyBias { name: bias.name.to_owned() });
                }
            } else {
                self.push(format!("{ggml}.{part}.bias"), bias, Some(rows), false);
            }
        }
        Ok(())
    }

    /// Every float array of the model must land somewhere: a weight the layout does not
    /// know means a model this converter does not understand.
    fn check_all_weights_used(&self) -> Result<(), ConvertError> {
        let mut unused: Vec<&str> = (self.model.variables.values())
            .filter(|var| !var.shape.is_empty() && matches!(var.dtype, Dtype::F16 | Dtype::F32))
            .map(|var| var.name)
            .filter(|name| !self.used.contains(name))
            .collect();
        unused.sort_unstable();
        match unused.first() {
            None => Ok(()),
            Some(name) => Err(bad_shape(name, &self.model.variables[name].shape, "no such weight in Whisper")),
        }
    }
}

fn is_zero(data: &[u8], dtype: Dtype) -> bool {
    match dtype {
        Dtype::F16 => data.chunks_exact(2).all(|h| u16::from_le_bytes([h[0], h[1]]) & 0x7fff == 0),
        _ => data.chunks_exact(4).all(|f| f32::from_le_bytes([f[0], f[1], f[2], f[3]]) == 0.0),
    }
}

/// Counts what goes through, so the summary knows the file size without a stat.
pub(crate) struct Counting<W> {
    pub(crate) inner: W,
    pub(crate) bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests;
