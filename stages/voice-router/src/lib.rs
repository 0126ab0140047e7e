//! The voice data plane on the bus: a site streams audio over MQTT, the stages turn it
//! into a device command and a spoken reply, and the reply audio goes to the site's
//! speaker.
//!
//! # Layout
//! - `stages`: [`VoiceStage`], the closed set of stages this topology runs.
//! - `intake`: MQTT → frames: `alicia/voice/audio/{site}/{start,frame,stop}`, one
//!   session per known site, format, size and session checks, idle sessions timed out.
//! - `limits`: [`VoiceLimits`], the refusals' names and counter, the report throttle.
//! - `requests`: the subscription and envelope loop the two request services share.
//! - `stt_request`: the seeds' base64-WAV request on `alicia/voice/stt/request`.
//! - `tts_request`: text to a site's speaker, `alicia/voice/tts/request` (`alicia say
//!   --site`), spoken by the topology's TTS stage.
//! - [`wav`]: 16 kHz mono WAV in and out, zero copy.
//! - `publisher`: frames → MQTT: transcripts, device commands and results, the reply's
//!   announcement and its PCM chunks, stage errors on their stage's error topic.
//! - this file: [`VoiceService`], which builds the topology and runs both ends.
//!
//! ```text
//! intake ─► vad ─► stt ─► tap ─► intent ─reply─► tts ─► bus
//!                          └────────bus─┘ └command─│───────┘
//! tts request ─────────────────────────────────────┘
//! ```
//! Audio frames are the `Bytes` the MQTT payload arrived in, all the way to Whisper.
//!
//! Speculation: at a pause in speech (`pause_ms` of silence) the VAD says so, Whisper
//! transcribes what it has, the intent stage works out the reply and the TTS puts its
//! first sentence in its cache, all while the rest of the hangover runs out. The
//! intent stage also judges, through the pause's [`alicia_pipeline::PauseSignal`],
//! whether the words sound finished: the VAD ends a finished request after
//! `hangover_ms` and gives words that sound cut short `unfinished_hangover_ms`. When
//! the hangover ends with nothing more said, the final transcript is the one already
//! made and the reply's first audio comes from the cache; if the user went on, the
//! guess is dropped (Whisper gives it up mid-way). Nothing is published or commanded
//! from a guess. Each reply's
//! announcement on `alicia/voice/tts/response` carries where its time went
//! (`timings_ms`, from the [`alicia_pipeline::Timeline`] the frames carry).

mod intake;
mod limits;
mod publisher;
mod requests;
mod stages;
mod stt_request;
mod tts_request;
pub mod wav;

use std::path::PathBuf;
use std::time::Duration;

use alicia_broker::{LocalClient, RouterHandle};
use alicia_pipeline::{RunningTopology, TopologyConfig};
use alicia_stage_intent::{Home, IntentConfig, OutputLayout};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

pub use limits::VoiceLimits;
pub use stages::VoiceStage;
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
    /// The VAD's hangover: silence that ends a finished request.
    pub hangover_ms: u32,
    /// The VAD's hangover for words that sound cut short, or are not judged yet.
    pub unfinished_hangover_ms: u32,
    /// The VAD's pause: silence at which the answer is prepared ahead (0: off).
    pub pause_ms: u32,
    /// A started session without audio for this long is closed.
    pub session_timeout: Duration,
    /// What a site or a requester may send.
    pub limits: VoiceLimits,
}

/// The running voice data plane.
pub struct VoiceService {
    topology: RunningTopology,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl VoiceService {
    /// Loads the models and the home, builds the topology and subscribes to the audio
    /// topics. Call inside a multi-threaded tokio runtime.
    pub async fn start(
        settings: &VoiceSettings,
        router: &RouterHandle,
        transcriber: Transcriber,
    ) -> anyhow::Result<VoiceService> {
        let home = Home::load(&settings.home).with_context(|| format!("home {}", settings.home.display()))?;
        let paths = alicia_models_paths(settings)?;
        let (bus_tx, bus_rx) = flume::unbounded();
        let stages = {
            let (home, bus_tx, settings) = (home.clone(), bus_tx.clone(), settings.clone());
            tokio::task::spawn_blocking(move || stages::build(&settings, &paths, &home, bus_tx)).await??
        };

        let mut config = TopologyConfig::new();
        config.source("audio");
        config.source("say");
        config.stage("vad", stages.vad).input("audio");
        config.stage("stt", stages.stt).input("vad");
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
        let intake_client = LocalClient::connect(router, "voice-intake").await?;
        let publisher_client = LocalClient::connect(router, "voice-publisher").await?;
        let requests_client = LocalClient::connect(router, "voice-stt-requests").await?;
        let says_client = LocalClient::connect(router, "voice-tts-requests").await?;
        let says = tts_request::PendingSays::default();
        let refused = limits::RefusalCounters::new();
        let limits = settings.limits.clone();
        let intake = intake::Intake {
            audio,
            bus: bus_tx,
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
        let tasks = vec![
            tokio::spawn(intake::run(intake_client, intake, stop.clone())),
            tokio::spawn(stt_request::run(
                requests_client,
                transcriber,
                limits.max_stt_request_bytes,
                refused,
                stop.clone(),
            )),
            tokio::spawn(tts_request::run(says_client, say_service, stop.clone())),
            tokio::spawn(publisher::run(publisher_client, bus_rx, home, says, stop.clone())),
        ];
        tracing::info!("voice data plane ready");
        Ok(VoiceService { topology, stop, tasks })
    }

    /// Stops taking audio, lets the stages drain what they hold, then stops publishing.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let mut tasks = self.tasks.into_iter();
        for front in tasks.by_ref().take(3) {
            let _ = front.await;
        }
        if let Err(e) = self.topology.shutdown().await {
            tracing::warn!(error = %e, "voice pipeline stopped with an error");
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

fn alicia_models_paths(settings: &VoiceSettings) -> anyhow::Result<stages::ModelFiles> {
    let whisper = settings.models.join("whisper/ggml-tiny.en.bin");
    if !whisper.is_file() {
        anyhow::bail!("whisper model not found at {}: run `make models`", whisper.display());
    }
    Ok(stages::ModelFiles { whisper, models_dir: settings.models.clone() })
}

/// The intent stage's layout here: commands and replies on separate ports.
pub(crate) fn intent_config() -> IntentConfig {
    IntentConfig { outputs: OutputLayout::Split, ..IntentConfig::default() }
}
