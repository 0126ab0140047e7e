//! [`PiperConfig`]: where the voice is and how the stage runs; it builds the stage.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::TtsError;
use crate::stage::PiperStage;
use crate::voice::{PiperVoice, VoiceFiles};

/// The voice `make models` fetches, relative to the models directory.
pub const DEFAULT_VOICE_MODEL: &str = "piper/en_US-joe-medium.onnx";
/// The ONNX Runtime library `make models` unpacks, relative to the models directory.
pub const ONNXRUNTIME_LIBRARY: &str = "onnxruntime/libonnxruntime.so.1.32.0";
/// Overrides the library path, as `ort`'s own loader does.
pub const ORT_DYLIB_PATH_ENV: &str = "ORT_DYLIB_PATH";

/// How the TTS stage is set up. The config is the builder: [`PiperConfig::build`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PiperConfig {
    pub voice: VoiceFiles,
    /// ONNX Runtime threads per utterance. Two: the reply's first sentence is
    /// synthesised during the VAD's hangover, after Whisper, and must be ready when
    /// the hangover ends; on the 2-core machine one thread took 130-195 ms for a
    /// short reply and two take 90-130 ms. Idle threads do not spin.
    pub intra_threads: usize,
    /// Playing time of each audio frame pushed downstream.
    pub chunk: Duration,
    /// Sentences kept in the LRU cache; 0 turns it off.
    pub cache_sentences: usize,
    /// Bytes of PCM the cache may hold.
    pub cache_bytes: usize,
    /// Replies queued in front of the stage: one, like every model stage, so
    /// backpressure reaches the producer.
    pub input_capacity: usize,
}

impl PiperConfig {
    /// Defaults around the given voice files.
    pub fn new(voice: VoiceFiles) -> Self {
        Self {
            voice,
            intra_threads: 2,
            chunk: Duration::from_millis(40),
            cache_sentences: 256,
            cache_bytes: 16 << 20,
            input_capacity: 1,
        }
    }

    /// The default voice in `models_dir` as `make models` lays it out; the runtime
    /// library from `ORT_DYLIB_PATH` when that is set, else from `models_dir`.
    pub fn from_models_dir(models_dir: impl AsRef<Path>) -> Self {
        let dir = models_dir.as_ref();
        let onnxruntime = std::env::var_os(ORT_DYLIB_PATH_ENV)
            .filter(|path| !path.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join(ONNXRUNTIME_LIBRARY));
        Self::new(VoiceFiles::new(dir.join(DEFAULT_VOICE_MODEL), onnxruntime))
    }

    /// Loads the voice (~0.5 s) and builds the stage. A missing file is a
    /// [`TtsError::ModelMissing`] that says to run `make models`.
    pub fn build(&self) -> Result<PiperStage, TtsError> {
        let voice = PiperVoice::load(&self.voice, self.intra_threads)?;
        Ok(PiperStage::new(voice, self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_voice_config_sits_beside_the_model() {
        let files = VoiceFiles::new("/m/piper/en_US-joe-medium.onnx", "/m/ort.so");
        assert_eq!(files.config, Path::new("/m/piper/en_US-joe-medium.onnx.json"));
    }

    #[test]
    fn a_missing_model_says_how_to_get_it() {
        let config = PiperConfig::new(VoiceFiles::new("/nonexistent/voice.onnx", "/nonexistent/libonnxruntime.so"));
        let err = config.build().unwrap_err();
        assert_eq!(err.error_type(), "model_missing");
        assert!(!err.is_per_text());
        let message = err.to_string();
        assert!(message.contains("/nonexistent/voice.onnx") && message.contains("run `make models`"), "{message}");
    }
}
