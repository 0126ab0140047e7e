//! The stages of the voice topology on models loaded once, and the two small ones it
//! adds: the transcript tap and the bus sink.

use alicia_pipeline::{Stage, StageError, StageHints};
use alicia_speech::{Frame, Outputs, Payload, Speech};
use std::sync::Arc;

use alicia_home::Home;
use alicia_stage_intent::{ChatClient, IntentStage, RunningTimers};
use alicia_stage_stt::{DecodeOptions, EndsAhead, WhisperModel, WhisperStage, WhisperStt};
use alicia_stage_tts::{PiperConfig, PiperStage, PiperVoice};
use alicia_stage_vad::VadStage;
use anyhow::Context;

use crate::fault::{Fault, WithFault};
use crate::publisher::BusItem;
use crate::VoiceSettings;

/// What the voice loads once and every (re)built topology shares: the Whisper weights,
/// the Piper voice and the home. A topology that dies is rebuilt on these in
/// milliseconds, without reading a model file again.
#[derive(Clone)]
pub struct VoiceModels {
    whisper: WhisperModel,
    piper: PiperVoice,
    piper_config: PiperConfig,
    home: Home,
    /// The engine's running timers, for "how much time is left?".
    timers: Option<Arc<dyn RunningTimers>>,
}

impl std::fmt::Debug for VoiceModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceModels").field("whisper", &self.whisper).field("piper", &self.piper).finish()
    }
}

impl VoiceModels {
    /// Loads the home and the models (blocking: about a second); a missing model says
    /// to run `make models`.
    pub fn load(settings: &VoiceSettings) -> anyhow::Result<VoiceModels> {
        let home = Home::load(&settings.home).with_context(|| format!("home {}", settings.home.display()))?;
        let whisper_file = alicia_models::ModelPaths::under(&settings.models).whisper;
        if !whisper_file.is_file() {
            anyhow::bail!("whisper model not found at {}: run `make models`", whisper_file.display());
        }
        let whisper = WhisperModel::load(&whisper_file)?;
        let piper_config = PiperConfig::from_models_dir(&settings.models);
        let piper = PiperVoice::load(&piper_config.voice, piper_config.intra_threads)?;
        Ok(VoiceModels { whisper, piper, piper_config, home, timers: None })
    }

    /// Answers timer questions from `timers` in every topology built on these models.
    pub fn with_timers(mut self, timers: Arc<dyn RunningTimers>) -> Self {
        self.timers = Some(timers);
        self
    }

    /// The intent stage on the home, with the chat client and the timers.
    pub(crate) fn intent_stage(&self, chat: Option<ChatClient>) -> anyhow::Result<IntentStage> {
        let stage = crate::intent_config().build_with(&self.home, chat)?;
        Ok(match &self.timers {
            Some(timers) => stage.with_timers(Arc::clone(timers)),
            None => stage,
        })
    }

    /// The Whisper weights, for other users of the same model (the Wyoming server).
    pub fn whisper(&self) -> &WhisperModel {
        &self.whisper
    }

    /// The Piper voice (one ONNX session, shared by its clones) and its settings, for
    /// other users of the same voice (the Wyoming server).
    pub fn piper(&self) -> (&PiperVoice, &PiperConfig) {
        (&self.piper, &self.piper_config)
    }

    pub fn home(&self) -> &Home {
        &self.home
    }
}

/// The stages of one voice topology, ready to wire (the topology boxes each).
pub(crate) struct Built {
    pub vad: VadStage,
    /// Between the VAD and Whisper: counts the ends of speech on their way.
    pub ends: CountEnds,
    /// Whisper, with the `fault-injection` feature's hook (empty without it).
    pub stt: WithFault<WhisperStage>,
    pub tap: TranscriptTap,
    pub intent: IntentStage,
    pub tts: PiperStage,
    pub bus: BusSink,
}

/// The stages of a topology on the loaded `models` (blocking: Whisper's decoder state
/// is allocated here, some tens of milliseconds); the intent stage asks `chat` what it
/// does not understand.
pub(crate) fn build(
    settings: &VoiceSettings,
    models: &VoiceModels,
    bus: flume::Sender<BusItem>,
    fault: Fault,
    chat: Option<ChatClient>,
) -> anyhow::Result<Built> {
    let ends = EndsAhead::new();
    Ok(Built {
        vad: settings.vad.build()?,
        ends: CountEnds { ends: ends.clone() },
        stt: WithFault::new("stt", WhisperStage::new(home_whisper(models, settings)?).with_ends_ahead(ends), fault),
        tap: TranscriptTap,
        intent: models.intent_stage(chat)?,
        tts: warm_piper(models, settings)?,
        bus: BusSink { bus },
    })
}

/// Whisper for the home's requests: biased to its rooms and devices by the initial
/// prompt (measured on espeak-ng voices: "whole light" becomes "hall light", "light
/// sound" "lights on", "bedroom 1" "bedroom lamp").
fn home_whisper(models: &VoiceModels, settings: &VoiceSettings) -> anyhow::Result<WhisperStt> {
    let prompt = models.home.vocabulary_prompt();
    let options = DecodeOptions { initial_prompt: (!prompt.is_empty()).then_some(prompt), ..settings.decoding.clone() };
    let mut stt = WhisperStt::new(&models.whisper, settings.stt_threads)?.with_options(options);
    stt.warm_up()?;
    Ok(stt)
}

/// The TTS stage, its first synthesis done: ONNX Runtime's first run of a session
/// costs several times a later one, and should not be a user's.
fn warm_piper(models: &VoiceModels, settings: &VoiceSettings) -> anyhow::Result<PiperStage> {
    let config = PiperConfig {
        cache_sentences: settings.tts_cache_sentences,
        cache_bytes: settings.tts_cache_bytes,
        ..models.piper_config.clone()
    };
    let mut tts = PiperStage::new(models.piper.clone(), &config);
    tts.synthesize("Ready.").context("piper warm-up")?;
    Ok(tts)
}

/// Passes everything on, counting each end of speech as it goes to Whisper: a guess
/// Whisper is making at another session's pause gives way to it ([`EndsAhead`]), so a
/// user who has stopped talking does not wait for another user's guess.
pub struct CountEnds {
    ends: EndsAhead,
}

impl Stage<Speech> for CountEnds {
    fn name(&self) -> &'static str {
        "count-ends"
    }

    fn process(&mut self, frame: Frame, out: &mut Outputs) -> Result<(), StageError> {
        if matches!(frame.payload, Payload::EndOfStream) {
            self.ends.sent();
        }
        out.push(frame)
    }

    fn hints(&self) -> StageHints {
        // As deep as Whisper's queue: the VAD never waits on this hop.
        StageHints::asynchronous(WhisperStage::INPUT_CAPACITY)
    }
}

/// Passes everything on, and sends a copy of each final transcript to the bus so it is
/// published on `alicia/voice/stt/response` while the intent stage works on it.
/// Provisional ones (made at a pause) are not published: the user may not be done.
pub struct TranscriptTap;

const TAP_PORTS: &[&str] = &["out", "bus"];

impl Stage<Speech> for TranscriptTap {
    fn name(&self) -> &'static str {
        "transcript-tap"
    }

    fn process(&mut self, frame: Frame, out: &mut Outputs) -> Result<(), StageError> {
        if matches!(&frame.payload, Payload::Transcript(t) if !t.is_provisional()) {
            out.push_to("bus", frame.clone())?;
        }
        out.push_to("out", frame)
    }

    fn hints(&self) -> StageHints {
        StageHints::asynchronous(16).with_outputs(TAP_PORTS)
    }
}

/// The end of the topology: hands frames to the publisher task.
pub struct BusSink {
    bus: flume::Sender<BusItem>,
}

impl Stage<Speech> for BusSink {
    fn name(&self) -> &'static str {
        "bus"
    }

    fn process(&mut self, frame: Frame, _out: &mut Outputs) -> Result<(), StageError> {
        // Unbounded: what reaches here is bounded upstream (a reply's audio, a command).
        self.bus.send(BusItem::Frame(frame)).map_err(|_| StageError::fatal("publisher_gone", "voice publisher stopped"))
    }

    fn hints(&self) -> StageHints {
        StageHints::asynchronous(256).sink()
    }
}
