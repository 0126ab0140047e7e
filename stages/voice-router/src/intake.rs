//! MQTT → frames. One session per site: `start` (an envelope whose `payload.data` has
//! `session_id`, `rate`, `width`, `channels`) opens it, `frame` messages carry raw PCM
//! (their `Bytes` become the frames' audio, uncopied), `stop` (an envelope with the
//! `session_id`) ends it. Envelope-level problems are the gatekeeper's to report; what
//! is wrong for the voice (format, unknown session) is reported here on
//! `alicia/voice/stt/error`.
//!
//! A session whose audio stops coming for `session_timeout` (a satellite that crashed
//! or lost its network mid-sentence) is closed as if it had sent its stop, so what it
//! said is still answered and the stages free its state, and `session_timeout` is
//! reported.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alicia_broker::{LocalClient, LocalMessage};
use alicia_envelope::Envelope;
use alicia_pipeline::{AudioFormat, EdgeSender, Frame, FrameMeta};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::publisher::BusItem;

/// One filter, not three: rumqttd keeps a log per subscribed filter, so only a single
/// filter keeps a site's start, frames and stop in the order they were published.
const FILTER: &str = "alicia/voice/audio/#";

struct Session {
    id: String,
    seq: u64,
    /// When its start or latest frame came.
    heard: Instant,
}

impl Session {
    fn end_of_stream(&self, site: &str) -> Frame {
        Frame::end_of_stream(FrameMeta::new(self.id.clone(), site, self.seq + 1))
    }
}

pub(crate) async fn run(
    mut client: LocalClient,
    audio: EdgeSender,
    bus: flume::Sender<BusItem>,
    session_timeout: Duration,
    stop: CancellationToken,
) {
    if let Err(e) = client.subscribe(FILTER).await {
        tracing::error!(error = %e, "voice intake cannot subscribe");
        return;
    }
    let mut sessions: HashMap<String, Session> = HashMap::new();
    let inbox = client.inbox();
    let report = |site: &str, session: Option<&str>, error_type: &'static str, message: String| {
        let _ = bus.send(BusItem::Error {
            stage: "intake",
            error_type,
            message,
            session_id: session.map(str::to_string),
            site_id: Some(site.to_string()),
        });
    };
    // Idle sessions are looked for a few times per timeout: precise enough, and cheap.
    let mut sweep = tokio::time::interval((session_timeout / 4).max(Duration::from_millis(10)));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let message: LocalMessage = tokio::select! {
            m = inbox.recv_async() => match m { Ok(m) => m, Err(_) => return },
            _ = sweep.tick() => {
                let idle: Vec<String> = sessions
                    .iter()
                    .filter(|(_, s)| s.heard.elapsed() >= session_timeout)
                    .map(|(site, _)| site.clone())
                    .collect();
                for site in idle {
                    let session = sessions.remove(&site).expect("listed above");
                    let message = format!(
                        "no audio from session {:?} at {site:?} for {} ms: closed as if stopped",
                        session.id,
                        session_timeout.as_millis()
                    );
                    report(&site, Some(&session.id), "session_timeout", message);
                    if audio.send_async(session.end_of_stream(&site)).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            _ = stop.cancelled() => return,
        };
        let mut levels = message.topic.split('/').skip(3);
        let (Some(site), Some(kind)) = (levels.next(), levels.next()) else { continue };
        match kind {
            "start" => {
                let Ok(envelope) = Envelope::decode(&message.payload) else { continue };
                let data = &envelope.payload.data;
                let Some(id) = data.get("session_id").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
                    report(site, None, "missing_session_id", "start needs payload.data.session_id".into());
                    continue;
                };
                let field = |name: &str, default: u64| data.get(name).and_then(Value::as_u64).unwrap_or(default);
                let (rate, width, channels) = (field("rate", 16_000), field("width", 2), field("channels", 1));
                if (rate, width, channels) != (16_000, 2, 1) {
                    let message = format!(
                        "audio must be 16000 Hz, 2-byte samples, 1 channel; got rate {rate}, width {width}, channels {channels}"
                    );
                    report(site, Some(id), "unsupported_audio_format", message);
                    continue;
                }
                if let Some(old) = sessions.remove(site) {
                    // A new start ends the site's previous utterance where it is.
                    let _ = audio.send_async(old.end_of_stream(site)).await;
                }
                sessions.insert(site.to_string(), Session { id: id.to_string(), seq: 0, heard: Instant::now() });
            }
            "frame" => {
                let Some(session) = sessions.get_mut(site) else {
                    report(
                        site,
                        None,
                        "unknown_session",
                        format!("audio frame for site {site:?} without a started session"),
                    );
                    continue;
                };
                if !message.payload.len().is_multiple_of(2) {
                    report(
                        site,
                        Some(&session.id),
                        "bad_audio",
                        "frame has an odd number of bytes for 16-bit audio".into(),
                    );
                    continue;
                }
                session.seq += 1;
                session.heard = Instant::now();
                let meta = FrameMeta::new(session.id.clone(), site, session.seq);
                let frame = Frame::audio(meta, message.payload, AudioFormat::PCM16_MONO_16K);
                if audio.send_async(frame).await.is_err() {
                    return;
                }
            }
            "stop" => {
                let Ok(envelope) = Envelope::decode(&message.payload) else { continue };
                let id = envelope.payload.data.get("session_id").and_then(Value::as_str).unwrap_or_default();
                match sessions.get(site) {
                    Some(session) if session.id == id => {
                        let session = sessions.remove(site).expect("checked above");
                        if audio.send_async(session.end_of_stream(site)).await.is_err() {
                            return;
                        }
                    }
                    _ => report(
                        site,
                        Some(id),
                        "unknown_session",
                        format!("stop for session {id:?}, not the one open at {site:?}"),
                    ),
                }
            }
            _ => {}
        }
    }
}
