//! The engine's speech: the voice pipeline on the MQTT audio topics, and Whisper and
//! Piper served over the Wyoming protocol, both supervised (`supervised.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alicia_broker::BusHandle;
use alicia_config::{AliciaConfig, VoiceChatSection, WyomingSection};
use alicia_stage_intent::ChatFallback;
use alicia_stage_stt::WhisperStt;
use alicia_stage_tts::{split_sentences, PiperStage};
use alicia_supervisor::{OnFailure, Supervisor};
use alicia_voice_router::{Transcriber, VoiceLimits, VoiceModels, VoiceService, VoiceSettings};
use alicia_wyoming::{AudioOut, BackendError, SpeechBackend, WyomingConfig, WyomingServer};
use anyhow::Context;
use bytes::Bytes;

use crate::supervised::{ListenerParts, PipelineParts, Supervised, Voice, PIPELINE, WYOMING};

/// Sentences of Wyoming `synthesize` requests, by whether they were synthesised or
/// skipped because the client had gone.
pub const SENTENCES_TOTAL: &str = "alicia_wyoming_sentences_total";

/// The models behind every speech request. One model run at a time each: both use every
/// core they are given, so queueing beats thrashing on a small machine.
pub struct LocalSpeech {
    stt: Mutex<WhisperStt>,
    tts: Mutex<PiperStage>,
    synthesized: metrics::Counter,
    skipped: metrics::Counter,
}

impl LocalSpeech {
    /// Whisper and Piper on the models the pipeline loaded: the same weights and the
    /// same ONNX session (one model run at a time each, which on two cores is what
    /// runs fastest anyway), with a decoder state of its own, warmed up.
    pub fn load(models: &VoiceModels, stt_threads: usize) -> anyhow::Result<LocalSpeech> {
        let mut stt = WhisperStt::new(models.whisper(), stt_threads)?;
        stt.warm_up()?;
        let (voice, config) = models.piper();
        let tts = PiperStage::new(voice.clone(), config);
        metrics::describe_counter!(
            SENTENCES_TOTAL,
            metrics::Unit::Count,
            "sentences of Wyoming synthesize requests: synthesized, or skipped for a client that left"
        );
        Ok(LocalSpeech {
            stt: Mutex::new(stt),
            tts: Mutex::new(tts),
            synthesized: metrics::counter!(SENTENCES_TOTAL, "outcome" => "synthesized"),
            skipped: metrics::counter!(SENTENCES_TOTAL, "outcome" => "skipped"),
        })
    }
}

impl SpeechBackend for LocalSpeech {
    fn transcribe(&self, pcm: Bytes, client_gone: &AtomicBool) -> Result<String, BackendError> {
        let mut stt =
            self.stt.lock().map_err(|_| BackendError::new("stt_poisoned", "speech-to-text failed earlier"))?;
        if client_gone.load(Ordering::Relaxed) {
            // Gone while this waited for the model: not a step of it for nobody.
            return Err(BackendError::new("given_up", "the client has gone"));
        }
        // Straight from the bytes: the f32 conversion inside is the one copy. Whisper
        // polls `client_gone` between steps and stops for a client that has left.
        stt.transcribe_s16le_unless(std::slice::from_ref(&pcm), client_gone)
            .map(|t| t.text)
            .map_err(|e| BackendError::new(e.error_type(), e.to_string()))
    }

    fn synthesize(&self, text: &str, out: &mut AudioOut) -> Result<(), BackendError> {
        let sentences = split_sentences(text);
        let mut tts =
            self.tts.lock().map_err(|_| BackendError::new("tts_poisoned", "text-to-speech failed earlier"))?;
        // Sentence by sentence, so the first audio leaves before the rest is synthesised,
        // and the model stops for a client that has gone (waiting for the lock included).
        for (done, sentence) in sentences.iter().enumerate() {
            if !out.wanted() {
                self.skipped.increment((sentences.len() - done) as u64);
                return Ok(());
            }
            let audio = tts.synthesize(sentence).map_err(|e| BackendError::new(e.error_type(), e.to_string()))?;
            self.synthesized.increment(1);
            if out.send(audio).is_err() {
                self.skipped.increment((sentences.len() - done - 1) as u64);
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Loads the models once and starts the voice pipeline on the bus and the Wyoming
/// server, when the voice is enabled; both are registered with `supervisor` as
/// [`OnFailure::Restart`] components and rebuilt when they die.
///
/// `settings` carries `[voice]`'s settings as they change: a new value rebuilds the
/// pipeline with it (`supervised.rs`).
pub async fn start(
    config: &AliciaConfig,
    bus: &BusHandle,
    supervisor: &Supervisor,
    settings: tokio::sync::watch::Receiver<VoiceSettings>,
    timers: alicia_timers::TimerBook,
) -> anyhow::Result<Option<Voice>> {
    if !config.voice.enabled {
        return Ok(None);
    }
    let mut settings_rx = settings;
    let settings = settings_rx.borrow_and_update().clone();
    let (models, speech) = {
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<(VoiceModels, LocalSpeech)> {
            // Checked first: a missing or damaged file says to run `make models`.
            alicia_models::verify_all(&settings.models).context("voice models")?;
            let models = VoiceModels::load(&settings)?.with_timers(Arc::new(timers));
            let speech = LocalSpeech::load(&models, settings.stt_threads)?;
            Ok((models, speech))
        })
        .await??
    };
    let speech = Arc::new(speech);
    let transcriber: Transcriber = {
        let speech = speech.clone();
        // A bus request has no client to lose: it is never given up.
        let stays = AtomicBool::new(false);
        Arc::new(move |pcm| speech.transcribe(pcm, &stays).map_err(|e| (e.error_type(), e.message().to_string())))
    };
    let pipeline = VoiceService::start(&settings, &models, bus, transcriber.clone()).await?;
    metrics::describe_gauge!(
        crate::supervised::VAD_SILENCE_SECONDS,
        metrics::Unit::Seconds,
        "the running voice pipeline's VAD silences, by kind: hangover, unfinished (hangover), pause"
    );
    crate::supervised::record_settings(&settings);
    let wyoming_config = wyoming_config(&config.wyoming);
    let backend: Arc<dyn SpeechBackend> = speech;
    let wyoming = match WyomingServer::bind(config.wyoming.listen, Arc::clone(&backend), wyoming_config.clone()).await {
        Ok(server) => server,
        Err(e) => {
            pipeline.shutdown().await;
            return Err(e.into());
        }
    };
    tracing::info!(addr = %wyoming.addr(), "wyoming listener ready");
    let pipeline = Supervised { running: pipeline, component: supervisor.register(PIPELINE, OnFailure::Restart) };
    let wyoming = Supervised { running: wyoming, component: supervisor.register(WYOMING, OnFailure::Restart) };
    let rebuild = PipelineParts { settings: settings_rx, models, bus: bus.clone(), transcriber };
    let rebind = ListenerParts { backend, config: wyoming_config };
    Ok(Some(Voice::new(pipeline, wyoming, rebuild, rebind)))
}

/// The pipeline's settings from `[voice]`.
pub fn voice_settings(config: &AliciaConfig) -> VoiceSettings {
    let voice = &config.voice;
    VoiceSettings {
        models: voice.models.clone(),
        home: voice.home.clone(),
        stt_threads: voice.stt_threads,
        hangover_ms: voice.hangover_ms,
        unfinished_hangover_ms: voice.unfinished_hangover_ms,
        pause_ms: voice.pause_ms,
        session_timeout: Duration::from_millis(voice.session_timeout_ms),
        limits: VoiceLimits {
            min_frame_bytes: voice.min_frame_bytes,
            max_frame_bytes: voice.max_frame_bytes,
            max_session_id_bytes: voice.max_session_id_bytes,
            max_envelope_bytes: voice.max_envelope_bytes,
            max_stt_request_bytes: voice.max_stt_request_bytes,
            max_tts_text_chars: voice.max_tts_text_chars,
            max_ai_text_chars: voice.max_ai_text_chars,
        },
        chat: voice.chat.as_ref().and_then(chat_fallback),
    }
}

/// The chat client's settings from `[voice.chat]`, its API key read now from the
/// variable or file named there. The config check read it too, so a key that went
/// missing since is the one case left: the chat stays off and the log says why.
fn chat_fallback(section: &VoiceChatSection) -> Option<ChatFallback> {
    let api_key = match section.api_key() {
        Ok(key) => key,
        Err(e) => {
            tracing::error!(error = %e, "voice.chat: no API key; the chat fallback stays off");
            return None;
        }
    };
    let defaults = ChatFallback::new(section.url.clone(), section.model.clone());
    Some(ChatFallback {
        api_key,
        personality: if section.personality.trim().is_empty() {
            defaults.personality.clone()
        } else {
            section.personality.clone()
        },
        timeout_ms: section.timeout_ms,
        max_history: section.max_history,
        max_sessions: section.max_sessions,
        max_tokens: section.max_tokens,
        breaker: section.breaker,
        ..defaults
    })
}

/// The server's limits from `[wyoming]`; the model and voice names are the ones the
/// engine loads.
pub fn wyoming_config(section: &WyomingSection) -> WyomingConfig {
    WyomingConfig {
        allow: section.allow.clone(),
        max_header_bytes: section.max_header_bytes,
        max_data_bytes: section.max_data_bytes,
        max_payload_bytes: section.max_payload_bytes,
        max_utterance_seconds: section.max_utterance_seconds,
        max_utterance_bytes: section.max_utterance_bytes,
        max_text_chars: section.max_text_chars,
        max_connections: section.max_connections,
        max_connections_per_source: section.max_connections_per_source,
        idle_timeout: Duration::from_millis(section.idle_timeout_ms),
        event_timeout: Duration::from_millis(section.event_timeout_ms),
        ..WyomingConfig::default()
    }
}
