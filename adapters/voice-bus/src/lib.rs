//! The voice data plane on the bus: a site streams audio over MQTT, the stages turn it
//! into a device command and a spoken reply, and the reply audio goes to the site's
//! speaker.
//!
//! # Layout
//! - `stages`: [`VoiceModels`] (loaded once, shared by every topology built on them) and
//!   the stages of a topology built on them.
//! - `fault`: the `fault-injection` feature's hook (a stage thread made to panic, for
//!   tests of the engine's supervision; off by default).
//! - `intake`: MQTT → frames: `alicia/voice/audio/{site}/{start,frame,stop}`, one
//!   session per known site, format, size and session checks, idle sessions timed out.
//! - `limits`: [`VoiceLimits`], the refusals' names and counter, the report throttle.
//! - `requests`: the subscription and envelope loop the two request services share.
//! - `stt_request`: the seeds' base64-WAV request on `alicia/voice/stt/request`.
//! - `tts_request`: text to a site's speaker, `alicia/voice/tts/request` (`alicia say
//!   --site`), spoken by the topology's TTS stage.
//! - `ai_request`: typed requests, `alicia/voice/ai/request` → `alicia/voice/ai/response`,
//!   answered by a twin of the intent stage that shares its chat client.
//! - `local_speech`: [`LocalSpeech`], Whisper and Piper on the loaded models behind the
//!   Wyoming server (`alicia_wyoming::SpeechBackend`) and the bus's STT requests.
//! - [`offline`]: `alicia ask` and `alicia say`, the stages run directly on a file.
//! - `publisher`: frames → MQTT: transcripts, device commands and results, the reply's
//!   announcement and its PCM chunks, stage errors on their stage's error topic.
//! - this file: [`VoiceService`], which builds the topology, runs both ends, and says
//!   when it has died ([`VoiceService::died`]) so its owner can rebuild it.
//!
//! ```text
//! intake ─► vad ─► stt ─► tap ─► intent ─reply─► tts ─► bus
//!                          └────────bus─┘ └command─│───────┘
//! tts request ─────────────────────────────────────┘
//! ai request ─► intent (twin, same chat client) ─► ai response, command ─► bus
//! ```
//!
//! With `[voice.chat]` on, what the matcher does not understand goes to the chat model
//! (`alicia-stage-intent`'s `ChatClient`, behind the `llm` circuit breaker); its answer
//! streams in and each sentence goes to the TTS as it arrives.
//! Audio frames are the `Bytes` the MQTT payload arrived in, all the way to Whisper.
//!
//! Speculation: at a pause in speech (`pause_ms` of silence) the VAD says so, Whisper
//! transcribes what it has, the intent stage works out the reply and the TTS puts its
//! first sentence in its cache, all while the rest of the hangover runs out. The
//! intent stage also judges, through the pause's [`alicia_speech::PauseSignal`],
//! whether the words sound finished: the VAD ends a finished request after
//! `hangover_ms` and gives words that sound cut short `unfinished_hangover_ms`. When
//! the hangover ends with nothing more said, the final transcript is the one already
//! made and the reply's first audio comes from the cache; if the user went on, the
//! guess is dropped (Whisper gives it up mid-way). Nothing is published or commanded
//! from a guess. Each reply's
//! announcement on `alicia/voice/tts/response` carries where its time went
//! (`timings_ms`, from the [`alicia_speech::Timeline`] the frames carry).

mod ai_request;
mod fault;
mod intake;
mod limits;
mod local_speech;
pub mod offline;
mod publisher;
mod requests;
mod stages;
mod stt_request;
mod tts_request;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alicia_broker::{BusHandle, LocalClient};
use alicia_speech::{RunningTopology, TopologyConfig};
use alicia_stage_intent::{ChatClient, ChatFallback, IntentConfig, OutputLayout};
use alicia_stage_stt::DecodeOptions;
use alicia_stage_vad::VadConfig;
use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use limits::VoiceLimits;
pub use local_speech::{LocalSpeech, SENTENCES_TOTAL};
pub use stages::VoiceModels;
pub use stt_request::Transcriber;

/// Registers units and help texts of the voice metrics (and the stage runtime's) with
/// the installed recorder.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_histogram, Unit};
    alicia_pipeline::describe_metrics();
    describe_histogram!(
        publisher::END_TO_END_SECONDS,
        Unit::Seconds,
        "last speech frame in to first reply audio chunk published, per reply"
    );
    describe_histogram!(
        publisher::STEP_SECONDS,
        Unit::Seconds,
        "a reply's latency by step: vad (hangover), stt, intent, tts, publish"
    );
    describe_counter!(
        publisher::REPLIES,
        Unit::Count,
        "spoken replies, by whether they were prepared during the hangover"
    );
    describe_counter!(
        limits::REFUSED_TOTAL,
        Unit::Count,
        "voice input refused (bad frames, unknown sites or sessions, oversized requests), by reason"
    );
}

/// What the voice service needs to start.
#[derive(Debug, Clone)]
pub struct VoiceSettings {
    pub models: PathBuf,
    pub home: PathBuf,
    pub stt_threads: usize,
    /// The VAD: its silences (hangovers, pause) and how it tells speech from silence.
    pub vad: VadConfig,
    /// The pipeline's Whisper decoding; the home's names are added as its prompt.
    pub decoding: DecodeOptions,
    /// The decoding of whole recordings (Wyoming, the bus's STT requests): the
    /// pipeline's, with a wider window floor.
    pub recording_decoding: DecodeOptions,
    /// Sentences the TTS cache keeps (0: off), and the bytes of audio it may hold.
    pub tts_cache_sentences: usize,
    pub tts_cache_bytes: usize,
    /// A started session without audio for this long is closed.
    pub session_timeout: Duration,
    /// What a site or a requester may send.
    pub limits: VoiceLimits,
    /// The chat model for what the matcher does not understand (`[voice.chat]`, its
    /// API key already read); `None`: off.
    pub chat: Option<ChatFallback>,
}

/// The running voice data plane.
pub struct VoiceService {
    topology: RunningTopology,
    stop: CancellationToken,
    /// The watchers of the intake, request and publisher tasks, which end with them.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Why a task ended while the service was not stopping.
    ended: mpsc::UnboundedReceiver<String>,
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    fault: (fault::Fault, alicia_speech::EdgeSender),
}

/// Longest a dead service's remains get to wind down before a new one starts anyway.
const ABANDON_WAIT: Duration = Duration::from_secs(10);

impl VoiceService {
    /// Builds the topology on the loaded `models` and subscribes to the audio and
    /// request topics. Call inside a multi-threaded tokio runtime.
    pub async fn start(
        settings: &VoiceSettings,
        models: &VoiceModels,
        bus: &BusHandle,
        transcriber: Transcriber,
    ) -> anyhow::Result<VoiceService> {
        let home = models.home().clone();
        let (bus_tx, bus_rx) = flume::unbounded();
        let fault = fault::Fault::default();
        // One client for spoken and typed requests: one breaker, one memory.
        let chat = settings.chat.clone().map(ChatClient::new).transpose().context("[voice.chat]")?;
        let ai_intent = Arc::new(models.intent_stage(chat.clone())?);
        let stages = {
            let (models, bus_tx, settings, fault) = (models.clone(), bus_tx.clone(), settings.clone(), fault.clone());
            tokio::task::spawn_blocking(move || stages::build(&settings, &models, bus_tx, fault, chat)).await??
        };

        let mut config = TopologyConfig::new();
        config.source("audio");
        config.source("say");
        config.stage("vad", stages.vad).input("audio");
        config.stage("ends", stages.ends).input("vad");
        config.stage("stt", stages.stt).input("ends");
        config.stage("tap", stages.tap).input("stt.out");
        config.stage("intent", stages.intent).input("tap.out");
        config.stage("tts", stages.tts).input("intent.reply").input("say");
        config.stage("bus", stages.bus).input("tap.bus").input("intent.command").input("tts");
        let errors = bus_tx.clone();
        config.on_error(move |report| {
            let stage = match &*report.stage {
                "vad" => "vad",
                "stt" => "stt",
                "intent" => "intent",
                "tts" => "tts",
                _ => "voice",
            };
            let _ = errors.send(publisher::BusItem::Error {
                stage,
                error_type: report.error.error_type(),
                message: report.error.to_string(),
                session_id: report.frame.as_ref().map(|m| m.session_id.as_str().to_string()),
                site_id: report.frame.as_ref().map(|m| m.site_id.as_str().to_string()),
            });
        });
        let topology = config.build().map_err(|e| anyhow::anyhow!("voice topology: {e}"))?;
        let topology = topology.run(&tokio::runtime::Handle::current())?;
        let audio = topology.source("audio").context("voice topology has no audio source")?;
        let say = topology.source("say").context("voice topology has no say source")?;

        let stop = CancellationToken::new();
        let intake_client = LocalClient::connect(bus, "voice-intake").await?;
        let publisher_client = LocalClient::connect(bus, "voice-publisher").await?;
        let requests_client = LocalClient::connect(bus, "voice-stt-requests").await?;
        let says_client = LocalClient::connect(bus, "voice-tts-requests").await?;
        let ai_link = ai_request::subscribe(LocalClient::connect(bus, "voice-ai-requests").await?).await?;
        let says = tts_request::PendingSays::default();
        let refused = limits::RefusalCounters::new();
        let limits = settings.limits.clone();
        let fault = (fault, audio.clone());
        let intake = intake::Intake {
            audio,
            bus: bus_tx.clone(),
            session_timeout: settings.session_timeout,
            limits: limits.clone(),
            home: home.clone(),
        };
        let say_service = tts_request::Says {
            say,
            home: home.clone(),
            pending: says.clone(),
            limits: limits.clone(),
            refused: refused.clone(),
        };
        let ai = ai_request::AiRequests {
            intent: ai_intent,
            home: home.clone(),
            bus: bus_tx,
            limits: limits.clone(),
            refused: refused.clone(),
        };
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let watch = |name: &'static str, task| watched(name, task, ended_tx.clone(), stop.clone());
        let requests =
            stt_request::run(requests_client, transcriber, limits.max_stt_request_bytes, refused, stop.clone());
        let tasks = vec![
            watch("voice intake", tokio::spawn(intake::run(intake_client, intake, stop.clone()))),
            watch("voice stt requests", tokio::spawn(requests)),
            watch("voice tts requests", tokio::spawn(tts_request::run(says_client, say_service, stop.clone()))),
            watch("voice ai requests", tokio::spawn(ai_request::run(ai_link, ai, stop.clone()))),
            watch("voice publisher", tokio::spawn(publisher::run(publisher_client, bus_rx, home, says, stop.clone()))),
        ];
        tracing::info!("voice data plane ready");
        Ok(VoiceService { topology, stop, tasks, ended, fault })
    }

    /// Resolves when the service has died on its own, with why: a stage panicked or
    /// failed (the pipeline's kill switch tripped) or one of its tasks ended. Pending
    /// while it is healthy; safe in `select!` and to call again.
    pub async fn died(&mut self) -> String {
        let kill = self.topology.kill_switch();
        tokio::select! {
            // The pipeline's own cause first: a task ends only because the pipeline did.
            biased;
            () = kill.tripped() => kill.cause().unwrap_or_else(|| "the voice pipeline was aborted".to_owned()),
            Some(cause) = self.ended.recv() => cause,
        }
    }

    /// Makes the Whisper stage's thread panic on its next frame, as a bug would, and
    /// sends it one: for tests of the supervision. No client input reaches this.
    #[cfg(feature = "fault-injection")]
    pub async fn inject_fault(&self) {
        use alicia_speech::SpeechFrame;
        let (fault, audio) = &self.fault;
        fault.arm();
        // Text passes the VAD untouched and reaches the Whisper stage.
        let probe = alicia_speech::Frame::text(alicia_speech::FrameMeta::new("fault", "fault", 0), "");
        let _ = audio.send_async(probe).await;
    }

    /// Stops taking audio, lets the stages drain what they hold, then stops publishing.
    pub async fn shutdown(self) {
        let VoiceService { topology, stop, tasks, fault, .. } = self;
        // The fault hook's sender into the audio source would keep the pipeline open.
        drop(fault);
        stop.cancel();
        let mut tasks = tasks.into_iter();
        for front in tasks.by_ref().take(4) {
            let _ = front.await;
        }
        if let Err(e) = topology.shutdown().await {
            tracing::warn!(error = %e, "voice pipeline stopped with an error");
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    /// What is left of a service that died: stops every stage where it is and waits
    /// (for at most a few seconds) for its threads and tasks to end, so a new one can
    /// take its place on the bus.
    pub async fn abandon(self) {
        self.topology.abort();
        if tokio::time::timeout(ABANDON_WAIT, self.shutdown()).await.is_err() {
            tracing::warn!("the dead voice pipeline is still winding down; starting a new one anyway");
        }
    }
}

/// Watches `task` and, if it ends while the service is not stopping, says so on
/// `ended`. The watcher ends with the task, so awaiting it awaits both.
fn watched(
    name: &'static str,
    task: tokio::task::JoinHandle<()>,
    ended: mpsc::UnboundedSender<String>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let outcome = task.await;
        if stop.is_cancelled() {
            return;
        }
        let cause = match outcome {
            Ok(()) => format!("{name} stopped"),
            Err(err) if err.is_panic() => {
                let payload = err.into_panic();
                match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
                    (Some(text), _) => format!("{name} panicked: {text}"),
                    (_, Some(text)) => format!("{name} panicked: {text}"),
                    _ => format!("{name} panicked"),
                }
            }
            Err(_) => format!("{name} was cancelled"),
        };
        let _ = ended.send(cause);
    })
}

/// The intent stage's layout here: commands and replies on separate ports.
pub(crate) fn intent_config() -> IntentConfig {
    IntentConfig { outputs: OutputLayout::Split, ..IntentConfig::default() }
}
