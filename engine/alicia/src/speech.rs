//! Wiring the engine's speech: the voice pipeline on the MQTT audio topics and the
//! Wyoming server on the same models (`alicia_voice_bus::LocalSpeech`), both supervised
//! (`supervised.rs`), with their settings read from `alicia.toml`.

use std::sync::Arc;
use std::time::Duration;

use alicia_broker::BusHandle;
use alicia_config::{AliciaConfig, VoiceChatSection, VoiceSttSection, WyomingSection};
use alicia_stage_intent::ChatFallback;
use alicia_stage_stt::DecodeOptions;
use alicia_stage_vad::VadConfig;
use alicia_supervisor::{OnFailure, Supervisor};
use alicia_voice_bus::{LocalSpeech, VoiceLimits, VoiceModels, VoiceService, VoiceSettings};
use alicia_wyoming::{SpeechBackend, WyomingConfig, WyomingServer};
use anyhow::Context;

use crate::supervised::{ListenerParts, PipelineParts, Supervised, Voice, PIPELINE, WYOMING};

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
            let speech = LocalSpeech::load(&models, settings.stt_threads, settings.recording_decoding.clone())?;
            Ok((models, speech))
        })
        .await??
    };
    let speech = Arc::new(speech);
    let transcriber = speech.transcriber();
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
    let decoding = decode_options(&voice.stt);
    VoiceSettings {
        models: voice.models.clone(),
        home: voice.home.clone(),
        stt_threads: voice.stt_threads,
        vad: VadConfig {
            hangover_ms: voice.hangover_ms,
            unfinished_hangover_ms: voice.unfinished_hangover_ms,
            pause_ms: voice.pause_ms,
            threshold_db: voice.vad.threshold_db as f32,
            min_speech_ms: voice.vad.min_speech_ms,
            pre_roll_ms: voice.vad.pre_roll_ms,
            max_wait_ms: voice.vad.max_wait_ms,
            max_utterance_ms: voice.vad.max_utterance_ms,
            ..VadConfig::default()
        },
        recording_decoding: DecodeOptions {
            min_window: Duration::from_millis(u64::from(voice.stt.recording_min_window_ms)),
            ..decoding.clone()
        },
        decoding,
        tts_cache_sentences: voice.tts.cache_sentences,
        tts_cache_bytes: voice.tts.cache_bytes,
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

/// Whisper's decoding from `[voice.stt]` (the home's prompt is added by the pipeline).
fn decode_options(section: &VoiceSttSection) -> DecodeOptions {
    DecodeOptions {
        beam_size: section.beam_size,
        best_of: section.best_of,
        temperature_step: section.temperature_step as f32,
        compression_ratio_threshold: section.compression_ratio_threshold as f32,
        logprob_threshold: section.logprob_threshold as f32,
        no_speech_threshold: section.no_speech_threshold as f32,
        fallback_budget: Duration::from_millis(u64::from(section.fallback_budget_ms)),
        initial_prompt: None,
        min_window: Duration::from_millis(u64::from(section.min_window_ms)),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file without `[voice.vad]`, `[voice.stt]` or `[voice.tts]` runs the stages as
    /// they were tuned: the config's defaults are the stages' own.
    #[test]
    fn the_voice_sections_default_to_the_stages_defaults() {
        let settings = voice_settings(&AliciaConfig::default());
        assert_eq!(settings.vad, VadConfig::default());
        assert_eq!(settings.decoding, DecodeOptions::default());
        let recordings =
            DecodeOptions { min_window: alicia_stage_stt::RECORDING_MIN_WINDOW, ..DecodeOptions::default() };
        assert_eq!(settings.recording_decoding, recordings);
        let piper = alicia_stage_tts::PiperConfig::from_models_dir("models");
        assert_eq!(
            (settings.tts_cache_sentences, settings.tts_cache_bytes),
            (piper.cache_sentences, piper.cache_bytes)
        );
    }

    #[test]
    fn the_voice_sections_reach_the_stages() {
        let text = "[voice]\nhangover_ms = 300\n[voice.vad]\nthreshold_db = 14.0\n[voice.stt]\nbeam_size = 2\n\
                    fallback_budget_ms = 1500\nrecording_min_window_ms = 10000\n[voice.tts]\ncache_sentences = 8";
        let settings = voice_settings(&AliciaConfig::from_toml_str(text).unwrap());
        assert_eq!((settings.vad.hangover_ms, settings.vad.threshold_db), (300, 14.0));
        assert_eq!((settings.decoding.beam_size, settings.decoding.fallback_budget), (2, Duration::from_millis(1500)));
        assert_eq!(settings.decoding.min_window, alicia_stage_stt::LIVE_MIN_WINDOW);
        assert_eq!(settings.recording_decoding.min_window, Duration::from_secs(10));
        assert_eq!(settings.recording_decoding.beam_size, 2);
        assert_eq!(settings.tts_cache_sentences, 8);
        settings.vad.build().expect("a config the check accepts builds the VAD");
    }
}
