//! The engine's speech: Whisper and Piper loaded once, served over the Wyoming protocol
//! (and, next, to the MQTT voice pipeline).

use std::path::Path;
use std::sync::{Arc, Mutex};

use alicia_config::AliciaConfig;
use alicia_stage_stt::WhisperStt;
use alicia_stage_tts::{split_sentences, PiperConfig, PiperStage};
use alicia_wyoming::{BackendError, SpeechBackend, WyomingConfig, WyomingServer};
use anyhow::Context;
use bytes::Bytes;

/// The models behind every speech request. One model run at a time each: both use every
/// core they are given, so queueing beats thrashing on a small machine.
pub struct LocalSpeech {
    stt: Mutex<WhisperStt>,
    tts: Mutex<PiperStage>,
}

impl LocalSpeech {
    /// Loads both models (about a second); a missing model says to run `make models`.
    pub fn load(models: &Path, stt_threads: usize) -> anyhow::Result<LocalSpeech> {
        let paths = alicia_models::verify_all(models).context("voice models")?;
        let stt = WhisperStt::load(&paths.whisper, stt_threads)?;
        let tts = PiperConfig::from_models_dir(models).build()?;
        Ok(LocalSpeech { stt: Mutex::new(stt), tts: Mutex::new(tts) })
    }
}

impl SpeechBackend for LocalSpeech {
    fn transcribe(&self, pcm: Bytes) -> Result<String, BackendError> {
        let samples: Vec<i16> = pcm.chunks_exact(2).map(|s| i16::from_le_bytes([s[0], s[1]])).collect();
        let mut stt =
            self.stt.lock().map_err(|_| BackendError::new("stt_poisoned", "speech-to-text failed earlier"))?;
        stt.transcribe(&samples).map(|t| t.text).map_err(|e| BackendError::new(e.error_type(), e.to_string()))
    }

    fn synthesize(&self, text: &str, emit: &mut dyn FnMut(Bytes)) -> Result<(), BackendError> {
        let mut tts =
            self.tts.lock().map_err(|_| BackendError::new("tts_poisoned", "text-to-speech failed earlier"))?;
        // Sentence by sentence, so the first audio leaves before the rest is synthesised.
        for sentence in split_sentences(text) {
            let audio = tts.synthesize(sentence).map_err(|e| BackendError::new(e.error_type(), e.to_string()))?;
            emit(audio);
        }
        Ok(())
    }
}

/// Loads the models and starts the Wyoming server, when the voice is enabled.
pub async fn start(config: &AliciaConfig) -> anyhow::Result<Option<WyomingServer>> {
    if !config.voice.enabled {
        return Ok(None);
    }
    let (models, threads) = (config.voice.models.clone(), config.voice.stt_threads);
    let speech = tokio::task::spawn_blocking(move || LocalSpeech::load(&models, threads)).await??;
    let server = WyomingServer::bind(config.wyoming.listen, Arc::new(speech), WyomingConfig::default()).await?;
    tracing::info!(addr = %server.addr(), "wyoming listener ready");
    Ok(Some(server))
}
