//! The engine's speech: the voice pipeline on the MQTT audio topics, and Whisper and
//! Piper served over the Wyoming protocol.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alicia_broker::BusHandle;
use alicia_config::AliciaConfig;
use alicia_stage_stt::WhisperStt;
use alicia_stage_tts::{split_sentences, PiperConfig, PiperStage};
use alicia_voice_router::{Transcriber, VoiceService, VoiceSettings};
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
        let mut stt =
            self.stt.lock().map_err(|_| BackendError::new("stt_poisoned", "speech-to-text failed earlier"))?;
        // Straight from the bytes: the f32 conversion inside is the one copy.
        stt.transcribe_s16le(std::slice::from_ref(&pcm))
            .map(|t| t.text)
            .map_err(|e| BackendError::new(e.error_type(), e.to_string()))
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

/// The voice's two faces: the MQTT voice pipeline and the Wyoming server.
pub struct Voice {
    pub pipeline: VoiceService,
    pub wyoming: WyomingServer,
}

impl Voice {
    pub async fn shutdown(self) {
        self.wyoming.shutdown().await;
        self.pipeline.shutdown().await;
    }
}

/// Loads the models and starts the voice pipeline on the bus and the Wyoming server,
/// when the voice is enabled.
pub async fn start(
    config: &AliciaConfig,
    bus: &BusHandle,
    _supervisor: &alicia_supervisor::Supervisor,
) -> anyhow::Result<Option<Voice>> {
    if !config.voice.enabled {
        return Ok(None);
    }
    let settings = VoiceSettings {
        models: config.voice.models.clone(),
        home: config.voice.home.clone(),
        stt_threads: config.voice.stt_threads,
        hangover_ms: config.voice.hangover_ms,
        unfinished_hangover_ms: config.voice.unfinished_hangover_ms,
        pause_ms: config.voice.pause_ms,
        session_timeout: Duration::from_millis(config.voice.session_timeout_ms),
    };
    let (models, threads) = (config.voice.models.clone(), config.voice.stt_threads);
    let speech = Arc::new(tokio::task::spawn_blocking(move || LocalSpeech::load(&models, threads)).await??);
    let transcriber: Transcriber = {
        let speech = speech.clone();
        Arc::new(move |pcm| speech.transcribe(pcm).map_err(|e| (e.error_type(), e.message().to_string())))
    };
    let pipeline = VoiceService::start(&settings, bus, transcriber).await?;
    let wyoming = match WyomingServer::bind(config.wyoming.listen, speech, WyomingConfig::default()).await {
        Ok(server) => server,
        Err(e) => {
            pipeline.shutdown().await;
            return Err(e.into());
        }
    };
    tracing::info!(addr = %wyoming.addr(), "wyoming listener ready");
    Ok(Some(Voice { pipeline, wyoming }))
}
