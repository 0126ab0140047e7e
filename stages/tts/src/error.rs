//! What text-to-speech fails with, and which failures end the stage.

use std::path::{Path, PathBuf};

use alicia_pipeline::StageError;

/// Why a voice could not be loaded or a text could not be spoken.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    /// A model file the setup step fetches is not on disk.
    #[error("{what} not found at {}: run `make models`", path.display())]
    ModelMissing { what: &'static str, path: PathBuf },
    /// The voice's `.onnx.json` is unreadable or lacks what synthesis needs.
    #[error("voice config {}: {reason}", path.display())]
    VoiceConfig { path: PathBuf, reason: String },
    /// The ONNX Runtime shared library did not load or has the wrong version.
    #[error("onnx runtime {}: {reason}", path.display())]
    OnnxRuntime { path: PathBuf, reason: String },
    /// ONNX Runtime refused the voice model.
    #[error("loading voice model {}: {source}", path.display())]
    ModelLoad {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },
    /// libespeak-ng failed (not installed, no such voice).
    #[error("phonemizer: {0}")]
    Phonemizer(String),
    /// Empty text, or text with nothing to pronounce (only punctuation or spaces).
    #[error("nothing to say: the text has no pronounceable words")]
    NothingToSay,
    /// The model failed on this input or returned something that is not audio.
    #[error("synthesis: {0}")]
    Inference(String),
}

impl TtsError {
    /// A short, stable label for metrics and error events.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::ModelMissing { .. } => "model_missing",
            Self::VoiceConfig { .. } => "voice_config",
            Self::OnnxRuntime { .. } => "onnx_runtime",
            Self::ModelLoad { .. } => "model_load",
            Self::Phonemizer(_) => "phonemizer",
            Self::NothingToSay => "empty_text",
            Self::Inference(_) => "synthesis",
        }
    }

    /// Whether only the text at hand is affected; otherwise the voice is unusable.
    pub fn is_per_text(&self) -> bool {
        matches!(self, Self::NothingToSay | Self::Inference(_))
    }

    pub(crate) fn phonemizer(reason: impl Into<String>) -> Self {
        Self::Phonemizer(reason.into())
    }

    pub(crate) fn inference(err: impl std::fmt::Display) -> Self {
        Self::Inference(err.to_string())
    }

    pub(crate) fn voice_config(path: &Path, reason: impl std::fmt::Display) -> Self {
        Self::VoiceConfig { path: path.to_path_buf(), reason: reason.to_string() }
    }

    /// `Ok` when `path` is a file; otherwise the error that names the setup step.
    pub(crate) fn require_file(what: &'static str, path: &Path) -> Result<(), Self> {
        if path.is_file() {
            Ok(())
        } else {
            Err(Self::ModelMissing { what, path: path.to_path_buf() })
        }
    }
}

impl From<TtsError> for StageError {
    /// A text that cannot be spoken drops that reply; a voice that cannot speak
    /// stops the pipeline, because every later reply would fail the same way.
    fn from(err: TtsError) -> Self {
        let error_type = err.error_type();
        if err.is_per_text() {
            StageError::frame(error_type, err)
        } else {
            StageError::fatal(error_type, err)
        }
    }
}
