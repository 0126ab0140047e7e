//! The converter on a tiny synthetic Whisper: 4-wide, 2 heads, one layer each side,
//! 2 mel bands, every weight a distinct small integer so splits can be traced.

use std::collections::BTreeMap;

use super::*;
use crate::ct2::writer::{model_bin, Var};

const STATE: u32 = 4;

/// IEEE half bits of a small integer (|n| < 2048), exact.
fn half(n: i32) -> u16 {
    if n == 0 {
        return 0;
    }
    let sign = if n < 0 { 0x8000 } else { 0 };
    let m = n.unsigned_abs();
    let e = 31 - m.leading_zeros();
    let mantissa = (m - (1 << e)) << (10 - e);
    sign | (((e + 15) << 10) as u16) | mantissa as u16
}

struct Synth {
    vars: Vec<Var>,
    next: i32,
    dtype: u8,
}

impl Synth {
    fn new(dtype: u8) -> Self {
        Self { vars: Vec::new(), next: 1, dtype }
    }

    /// A float array of `shape` holding consecutive integers.
    fn float(&mut self, name: &str, shape: &[u32]) {
        let count: u32 = shape.iter().product();
        let values: Vec<i32> = (0..count as i32).map(|i| self.next + i).collect();
        self.next += count as i32;
        self.raw(name, shape, &values);
    }

    fn raw(&mut self, name: &str, shape: &[u32], values: &[i32]) {
        let data = match self.dtype {
            4 => values.iter().flat_map(|&v| half(v).to_le_bytes()).collect(),
            _ => values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
        };
        self.vars.push(Var { name: name.into(), shape: shape.to_vec(), dtype: self.dtype, data });
    }

    fn int16(&mut self, name: &str, value: i16) {
        self.vars.push(Var { name: name.into(), shape: vec![], dtype: 2, data: value.to_le_bytes().to_vec() });
    }

    fn linear(&mut self, scope: &str, rows: u32, cols: u32) {
        self.float(&format!("{scope}/weight"), &[rows, cols]);
        self.float(&format!("{scope}/bias"), &[rows]);
    }

    fn norm(&mut self, scope: &str) {
        self.float(&format!("{scope}/gamma"), &[STATE]);
        self.float(&format!("{scope}/beta"), &[STATE]);
    }

    /// A fused projection of `parts` blocks (query, key, value or key, value) whose key
    /// block has no bias.
    fn fused(&mut self, scope: &str, parts: u32) {
        self.float(&format!("{scope}/weight"), &[parts * STATE, STATE]);
        let key = parts - 2;
        let bias: Vec<i32> = (0..parts * STATE).map(|i| if i / STATE == key { 0 } else { 1000 + i as i32 }).collect();
        self.raw(&format!("{scope}/bias"), &[parts * STATE], &bias);
    }

    fn layer(&mut self, scope: &str, cross: bool) {
        self.norm(&format!("{scope}/self_attention/layer_norm"));
        self.fused(&format!("{scope}/self_attention/linear_0"), 3);
        self.linear(&format!("{scope}/self_attention/linear_1"), STATE, STATE);
        if cross {
            self.norm(&format!("{scope}/attention/layer_norm"));
            self.linear(&format!("{scope}/attention/linear_0"), STATE, STATE);
            self.fused(&format!("{scope}/attention/linear_1"), 2);
            self.linear(&format!("{scope}/attention/linear_2"), STATE, STATE);
        }
        self.norm(&format!("{scope}/ffn/layer_norm"));
        self.linear(&format!("{scope}/ffn/linear_0"), 4 * STATE, STATE);
        self.linear(&format!("{scope}/ffn/linear_1"), STATE, 4 * STATE);
    }

    fn whisper(dtype: u8) -> Self {
        let mut s = Self::new(dtype);
        s.int16("encoder/num_heads", 2);
        s.int16("decoder/num_heads", 2);
        s.float("encoder/conv1/weight", &[STATE, 2, 3]);
        s.float("encoder/conv1/bias", &[STATE]);
        s.float("encoder/conv2/weight", &[STATE, STATE, 3]);
        s.float("encoder/conv2/bias", &[STATE]);
        s.float("encoder/position_encodings/encodings", &[3, STATE]);
        s.layer("encoder/layer_0", false);
        s.norm("encoder/layer_norm");
        s.float("decoder/embeddings/weight", &[6, STATE]);
        s.float("decoder/position_encodings/encodings", &[2, STATE]);
        s.layer("decoder/layer_0", true);
        s.norm("decoder/layer_norm");
        s
    }

    fn bytes(&self) -> Vec<u8> {
        model_bin("WhisperSpec", &self.vars, &[("decoder/projection/weight", "decoder/embeddings/weight")])
    }

    fn values(&self, name: &str) -> Vec<f32> {
        let var = self.vars.iter().find(|v| v.name == name).unwrap();
        match self.dtype {
            4 => var.data.chunks(2).map(|h| f16_to_f32(u16::from_le_bytes([h[0], h[1]]))).collect(),
            _ => var.data.chunks(4).map(|f| f32::from_le_bytes([f[0], f[1], f[2], f[3]])).collect(),
        }
    }
}

const VOCABULARY: &str = "a\nĠb\n<|endoftext|>\n<|startoftranscript|>\n<|en|>\n<|notimestamps|>\n";

/// A ggml file read back: header, mel size, tokens and tensors (dims innermost first,
/// type, values as f32).
#[derive(Debug)]
struct Parsed {
    hparams: Vec<i32>,
    mel: (u32, u32),
    tokens: Vec<Vec<u8>>,
    order: Vec<String>,
    tensors: BTreeMap<String, (Vec<u32>, u32, Vec<f32>)>,
}

fn parse(bytes: &[u8]) -> Parsed {
    let mut at = 0;
    let u32_at = |at: &mut usize| {
        let v = u32::from_le_bytes(bytes[*at..*at + 4].try_into().unwrap());
        *at += 4;
        v
    };
    assert_eq!(u32_at(&mut at), GGML_MAGIC);
    let hparams = (0..11).map(|_| u32_at(&mut at) as i32).collect();
    let mel = (u32_at(&mut at), u32_at(&mut at));
    at += (mel.0 * mel.1) as usize * 4;
    let n_tokens = u32_at(&mut at);
    let mut tokens = Vec::new();
    for _ in 0..n_tokens {
        let len = u32_at(&mut at) as usize;
        tokens.push(bytes[at..at + len].to_vec());
        at += len;
    }
    let (mut order, mut tensors) = (Vec::new(), BTreeMap::new());
    while at < bytes.len() {
        let (n_dims, name_len, ttype) = (u32_at(&mut at), u32_at(&mut at) as usize, u32_at(&mut at));
        let dims: Vec<u32> = (0..n_dims).map(|_| u32_at(&mut at)).collect();
        let name = String::from_utf8(bytes[at..at + name_len].to_vec()).unwrap();
        at += name_len;
        let count: u32 = dims.iter().product();
        let width = if ttype == 0 { 4 } else { 2 };
        let data = &bytes[at..at + (count * width) as usize];
        at += data.len();
        let values = match ttype {
            0 => data.chunks(4).map(|f| f32::from_le_bytes(f.try_into().unwrap())).collect(),
            _ => data.chunks(2).map(|h| f16_to_f32(u16::from_le_bytes([h[0], h[1]]))).collect(),
        };
        order.push(name.clone());
        tensors.insert(name, (dims, ttype, values));
    }
    Parsed { hparams, mel, tokens, order, tensors }
}

fn convert(synth: &Synth) -> (GgmlSummary, Parsed) {
    let mut out = Vec::new();
    let summary = convert_whisper(&synth.bytes(), VOCABULARY, &mut out).unwrap();
    assert_eq!(summary.bytes, out.len() as u64);
    (summary, parse(&out))
}

#[test]
fn header_mel_and_tokens() {
    let (summary, parsed) = convert(&Synth::whisper(4));
    assert_eq!(parsed.hparams, [6, 3, 4, 2, 1, 2, 4, 2, 1, 2, 1]);
    assert_eq!(summary.hparams.n_mels, 2);
    assert_eq!(parsed.mel, (2, 201));
    let expected: [&[u8]; 3] = [b"a", b" b", b"<|endoftext|>"];
    assert_eq!(parsed.tokens, expected);
    assert_eq!(summary.text_tokens, 3);
}

#[test]
fn tensors_follow_the_checkpoint_order_with_whisper_cpp_names() {
    let (summary, parsed) = convert(&Synth::whisper(4));
    let block = |p: &str, cross: bool| {
        let mut names = vec![
            format!("{p}.mlp_ln.weight"),
            format!("{p}.mlp_ln.bias"),
            format!("{p}.mlp.0.weight"),
            format!("{p}.mlp.0.bias"),
            format!("{p}.mlp.2.weight"),
            format!("{p}.mlp.2.bias"),
            format!("{p}.attn_ln.weight"),
            format!("{p}.attn_ln.bias"),
        ];
        let attn = |a: &str| {
            ["query.weight", "query.bias", "key.weight", "value.weight", "value.bias", "out.weight", "out.bias"]
                .map(|t| format!("{p}.{a}.{t}"))
        };
        names.extend(attn("attn"));
        if cross {
            names.extend([format!("{p}.cross_attn_ln.weight"), format!("{p}.cross_attn_ln.bias")]);
            names.extend(attn("cross_attn"));
        }
        names
    };
    let mut expected: Vec<String> =
        ["decoder.positional_embedding", "encoder.positional_embedding", "decoder.token_embedding.weight"]
            .map(String::from)
            .into();
    expected.extend(block("decoder.blocks.0", true));
    expected.extend(["decoder.ln.weight", "decoder.ln.bias"].map(String::from));
    expected.extend(
        ["encoder.conv1.weight", "encoder.conv1.bias", "encoder.conv2.weight", "encoder.conv2.bias"].map(String::from),
    );
    expected.extend(block("encoder.blocks.0", false));
    expected.extend(["encoder.ln_post.weight", "encoder.ln_post.bias"].map(String::from));
    assert_eq!(parsed.order, expected);
    assert_eq!(summary.tensors, expected.len());
}

#[test]
fn fused_projections_split_by_rows_and_types_follow_ggml() {
    let synth = Synth::whisper(4);
    let (_, parsed) = convert(&synth);
    let t = |name: &str| parsed.tensors.get(name).unwrap_or_else(|| panic!("{name}"));
    let n = STATE as usize * STATE as usize;

    let qkv = synth.values("encoder/layer_0/self_attention/linear_0/weight");
    for (i, part) in ["query", "key", "value"].iter().enumerate() {
        let (dims, ttype, values) = t(&format!("encoder.blocks.0.attn.{part}.weight"));
        assert_eq!((dims.as_slice(), *ttype), (&[STATE, STATE][..], 1), "{part}");
        assert_eq!(values[..], qkv[i * n..(i + 1) * n], "{part}");
    }
    let qkv_bias = synth.values("decoder/layer_0/self_attention/linear_0/bias");
    let (dims, ttype, values) = t("decoder.blocks.0.attn.value.bias");
    assert_eq!((dims.as_slice(), *ttype), (&[STATE][..], 0));
    assert_eq!(values[..], qkv_bias[8..12]);
    assert!(!parsed.tensors.contains_key("decoder.blocks.0.attn.key.bias"));

    let kv = synth.values("decoder/layer_0/attention/linear_1/weight");
    assert_eq!(t("decoder.blocks.0.cross_attn.key.weight").2[..], kv[..n]);
    assert_eq!(t("decoder.blocks.0.cross_attn.value.weight").2[..], kv[n..]);

    // Convolution biases become [1, channels] f32; positional embeddings are f32.
    assert_eq!((t("encoder.conv1.bias").0.as_slice(), t("encoder.conv1.bias").1), (&[1, STATE][..], 0));
    assert_eq!(t("encoder.conv1.bias").2, synth.values("encoder/conv1/bias"));
    assert_eq!((t("encoder.conv1.weight").0.as_slice(), t("encoder.conv1.weight").1), (&[3, 2, STATE][..], 1));
    assert_eq!(t("encoder.positional_embedding").1, 0);
    assert_eq!(t("decoder.positional_embedding").2, synth.values("decoder/position_encodings/encodings"));
    assert_eq!(t("decoder.token_embedding.weight").0, [STATE, 6]);
}

#[test]
fn a_float32_model_converts_to_an_all_f32_file() {
    let (summary, parsed) = convert(&Synth::whisper(0));
    assert_eq!(summary.hparams.ftype, 0);
    assert!(parsed.tensors.values().all(|(_, ttype, _)| *ttype == 0));
}

#[test]
fn a_key_bias_an_unknown_weight_or_mixed_floats_are_refused() {
    let mut synth = Synth::whisper(4);
    let bias = synth.vars.iter_mut().find(|v| v.name == "encoder/layer_0/self_attention/linear_0/bias").unwrap();
    bias.data[STATE as usize * 2] = 1;
    let err = convert_whisper(&synth.bytes(), VOCABULARY, Vec::new()).unwrap_err();
    assert!(matches!(err, ConvertError::KeyBias { .. }), "{err}");

    let mut synth = Synth::whisper(4);
    synth.float("encoder/layer_0/adapter/weight", &[2, 2]);
    let err = convert_whisper(&synth.bytes(), VOCABULARY, Vec::new()).unwrap_err();
    assert!(err.to_string().contains("encoder/layer_0/adapter/weight"), "{err}");

    let mut synth = Synth::whisper(4);
    synth.vars.retain(|v| v.name != "decoder/layer_norm/beta");
    synth.dtype = 0;
    synth.float("decoder/layer_norm/beta", &[STATE]);
    let err = convert_whisper(&synth.bytes(), VOCABULARY, Vec::new()).unwrap_err();
    assert!(matches!(err, ConvertError::MixedPrecision { .. }), "{err}");

    let err = convert_whisper(&model_bin("TransformerSpec", &[], &[]), VOCABULARY, Vec::new()).unwrap_err();
    assert!(matches!(err, ConvertError::NotWhisper { .. }), "{err}");
}

#[test]
fn halves_widen_exactly() {
    assert_eq!(f16_to_f32(0x3c00), 1.0);
    assert_eq!(f16_to_f32(0xc000), -2.0);
    assert_eq!(f16_to_f32(0x7bff), 65504.0);
    assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
    assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
    assert!(f16_to_f32(0x7e00).is_nan());
    for n in [-2047, -3, 1, 2, 3, 1000, 2047] {
        assert_eq!(f16_to_f32(half(n)), n as f32, "{n}");
    }
}
