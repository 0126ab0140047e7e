//! MQTT → frames. One session per site: `start` (an envelope whose `payload.data` has
//! `session_id`, `rate`, `width`, `channels`) opens it, `frame` messages carry raw PCM
//! (their `Bytes` become the frames' audio, uncopied), `stop` (an envelope with the
//! `session_id`) ends it. A new start at a site ends the site's open session where it
//! is, so a site never has two. Envelope-level problems are the gatekeeper's to report;
//! what is wrong for the voice is reported here on `alicia/voice/stt/error`: a site the
//! home does not know (with the list of those it does), a format other than 16 kHz
//! 16-bit mono, a session id over `max_session_id_bytes`, a frame outside
//! `min_frame_bytes..=max_frame_bytes`, an envelope over `max_envelope_bytes`, a frame
//! or stop for a session that is not open.
//!
//! So what the intake holds is bounded by the home: at most one session per known
//! site, each id at most `max_session_id_bytes`, shared by all of its frames.
//!
//! A session whose audio stops coming for `session_timeout` (a satellite that crashed
//! or lost its network mid-sentence) is closed as if it had sent its stop, so what it
//! said is still answered and the stages free its state, and `session_timeout` is
//! reported.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alicia_broker::{LocalClient, LocalMessage};
use alicia_envelope::{decode_within, Envelope, EnvelopeError};
use alicia_home::Home;
use alicia_pipeline::{SessionId, SiteId};
use alicia_speech::{AudioFormat, EdgeSender, Frame, FrameMeta, SpeechFrame};
use bytes::Bytes;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::limits::{Refusal, RefusalCounters, ReportThrottle, VoiceLimits};
use crate::publisher::BusItem;

/// One filter, not three: rumqttd keeps a log per subscribed filter, so only a single
/// filter keeps a site's start, frames and stop in the order they were published.
const FILTER: &str = "alicia/voice/audio/#";

struct Session {
    id: SessionId,
    site: SiteId,
    seq: u64,
    /// When its start or latest frame came.
    heard: Instant,
}

impl Session {
    fn end_of_stream(&self) -> Frame {
        Frame::end_of_stream(FrameMeta::new(self.id.clone(), self.site.clone(), self.seq + 1))
    }
}

/// Where the intake's frames and reports go, and what it allows.
pub(crate) struct Intake {
    pub audio: EdgeSender,
    pub bus: flume::Sender<BusItem>,
    pub session_timeout: Duration,
    pub limits: VoiceLimits,
    pub home: Home,
}

/// The intake's running state: sessions by site, and its refusal bookkeeping.
struct Running {
    intake: Intake,
    sessions: HashMap<String, Session>,
    refused: RefusalCounters,
    throttle: ReportThrottle,
}

/// The intake stopped taking audio: the pipeline is gone.
struct PipelineGone;

pub(crate) async fn run(mut client: LocalClient, intake: Intake, stop: CancellationToken) {
    if let Err(e) = client.subscribe(FILTER).await {
        tracing::error!(error = %e, "voice intake cannot subscribe");
        return;
    }
    let inbox = client.inbox();
    // Idle sessions are looked for a few times per timeout: precise enough, and cheap.
    let mut sweep = tokio::time::interval((intake.session_timeout / 4).max(Duration::from_millis(10)));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut running = Running {
        intake,
        sessions: HashMap::new(),
        refused: RefusalCounters::new(),
        throttle: ReportThrottle::new(ReportThrottle::INTERVAL),
    };
    loop {
        let message: LocalMessage = tokio::select! {
            // Audio already here first: a session is idle when nothing came, not when
            // this task was too busy (a stage behind, a loaded machine) to read it.
            biased;
            m = inbox.recv_async() => match m { Ok(m) => m, Err(_) => return },
            _ = sweep.tick() => {
                if running.close_idle().await.is_err() {
                    return;
                }
                continue;
            }
            _ = stop.cancelled() => return,
        };
        if running.handle(message).await.is_err() {
            return;
        }
    }
}

impl Running {
    async fn handle(&mut self, message: LocalMessage) -> Result<(), PipelineGone> {
        let mut levels = message.topic.split('/').skip(3);
        let (Some(site), Some(kind)) = (levels.next(), levels.next()) else { return Ok(()) };
        if !matches!(kind, "start" | "frame" | "stop") || levels.next().is_some() {
            return Ok(());
        }
        if !self.intake.home.sites.contains_key(site) {
            // A made-up site may be as long as a topic: echo a readable piece of it.
            let shown: String = site.chars().take(64).collect();
            let message = format!("unknown site {shown:?} (sites: {})", self.intake.home.site_list());
            self.refuse(&shown, None, Refusal::UnknownSite, message);
            return Ok(());
        }
        match kind {
            "start" => self.start(site, message.payload).await,
            "frame" => self.frame(site, message.payload).await,
            _ => self.stop(site, message.payload).await,
        }
    }

    async fn start(&mut self, site: &str, payload: Bytes) -> Result<(), PipelineGone> {
        let Some(envelope) = self.envelope(site, payload).await else { return Ok(()) };
        let data = &envelope.payload.data;
        let Some(id) = data.get("session_id").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
            self.refuse(site, None, Refusal::MissingSessionId, "start needs payload.data.session_id".into());
            return Ok(());
        };
        let limit = self.intake.limits.max_session_id_bytes;
        if id.len() > limit {
            let message = format!("session_id of {} bytes; at most {limit}", id.len());
            self.refuse(site, None, Refusal::SessionIdTooLong, message);
            return Ok(());
        }
        let field = |name: &str, default: u64| data.get(name).and_then(Value::as_u64).unwrap_or(default);
        let (rate, width, channels) = (field("rate", 16_000), field("width", 2), field("channels", 1));
        if (rate, width, channels) != (16_000, 2, 1) {
            let message = format!(
                "audio must be 16000 Hz, 2-byte samples, 1 channel; got rate {rate}, width {width}, channels {channels}"
            );
            self.refuse(site, Some(id), Refusal::UnsupportedAudioFormat, message);
            return Ok(());
        }
        if let Some(old) = self.sessions.remove(site) {
            // A new start ends the site's previous utterance where it is.
            self.send(old.end_of_stream()).await?;
        }
        let session = Session { id: id.into(), site: site.into(), seq: 0, heard: Instant::now() };
        self.sessions.insert(site.to_owned(), session);
        Ok(())
    }

    async fn frame(&mut self, site: &str, pcm: Bytes) -> Result<(), PipelineGone> {
        let limits = &self.intake.limits;
        let (min, max) = (limits.min_frame_bytes, limits.max_frame_bytes);
        let size = pcm.len();
        let too = match size {
            n if n < min => Some(Refusal::FrameTooSmall),
            n if n > max => Some(Refusal::FrameTooLarge),
            _ => None,
        };
        let session_id = self.sessions.get(site).map(|s| s.id.as_str().to_owned());
        if let Some(refusal) = too {
            let message = format!("audio frame of {size} bytes; frames carry {min} to {max} bytes");
            self.refuse(site, session_id.as_deref(), refusal, message);
            return Ok(());
        }
        let Some(session) = self.sessions.get_mut(site) else {
            let message = format!("audio frame for site {site:?} without a started session");
            self.refuse(site, None, Refusal::UnknownSession, message);
            return Ok(());
        };
        if !size.is_multiple_of(2) {
            let message = "frame has an odd number of bytes for 16-bit audio".into();
            self.refuse(site, session_id.as_deref(), Refusal::BadAudio, message);
            return Ok(());
        }
        session.seq += 1;
        session.heard = Instant::now();
        let meta = FrameMeta::new(session.id.clone(), session.site.clone(), session.seq);
        self.send(Frame::audio(meta, pcm, AudioFormat::PCM16_MONO_16K)).await
    }

    async fn stop(&mut self, site: &str, payload: Bytes) -> Result<(), PipelineGone> {
        let Some(envelope) = self.envelope(site, payload).await else { return Ok(()) };
        let id = envelope.payload.data.get("session_id").and_then(Value::as_str).unwrap_or_default();
        match self.sessions.get(site) {
            Some(session) if session.id.as_str() == id => {
                let session = self.sessions.remove(site).expect("checked above");
                self.send(session.end_of_stream()).await
            }
            _ => {
                // The id is echoed only when it is one a start could have opened.
                let shown = (id.len() <= self.intake.limits.max_session_id_bytes).then_some(id);
                let message = format!("stop for session {:?}, not the one open at {site:?}", shown.unwrap_or("…"));
                self.refuse(site, shown, Refusal::UnknownSession, message);
                Ok(())
            }
        }
    }

    /// A start's or stop's envelope; `None` if it is refused here (too large) or is the
    /// gatekeeper's to report (invalid).
    async fn envelope(&mut self, site: &str, payload: Bytes) -> Option<Envelope> {
        match decode_within(payload, self.intake.limits.max_envelope_bytes).await {
            Ok(envelope) => Some(envelope),
            Err(error @ EnvelopeError::TooLarge { .. }) => {
                self.refuse(site, None, Refusal::EnvelopeTooLarge, error.to_string());
                None
            }
            Err(_) => None,
        }
    }

    /// Closes the sessions that have been silent for the timeout.
    async fn close_idle(&mut self) -> Result<(), PipelineGone> {
        let timeout = self.intake.session_timeout;
        let idle: Vec<String> =
            self.sessions.iter().filter(|(_, s)| s.heard.elapsed() >= timeout).map(|(site, _)| site.clone()).collect();
        for site in idle {
            let session = self.sessions.remove(&site).expect("listed above");
            let message = format!(
                "no audio from session {:?} at {site:?} for {} ms: closed as if stopped",
                session.id.as_str(),
                timeout.as_millis()
            );
            self.report(&site, Some(session.id.as_str()), "session_timeout", message);
            self.send(session.end_of_stream()).await?;
        }
        Ok(())
    }

    /// Counts a refusal, and reports it unless the same was reported at the site within
    /// the throttle's interval.
    fn refuse(&mut self, site: &str, session: Option<&str>, refusal: Refusal, message: String) {
        self.refused.count(refusal);
        let known = self.intake.home.sites.contains_key(site).then_some(site);
        if self.throttle.allow(known, refusal) {
            self.report(site, session, refusal.as_label(), message);
        }
    }

    fn report(&self, site: &str, session: Option<&str>, error_type: &'static str, message: String) {
        let _ = self.intake.bus.send(BusItem::Error {
            stage: "intake",
            error_type,
            message,
            session_id: session.map(str::to_owned),
            site_id: Some(site.to_owned()),
        });
    }

    async fn send(&self, frame: Frame) -> Result<(), PipelineGone> {
        self.intake.audio.send_async(frame).await.map(drop).map_err(|_| PipelineGone)
    }
}
