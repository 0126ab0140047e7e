//! The watcher: one MQTT connection receiving what the engine does for every site
//! (transcripts, reply announcements, device commands, stage errors, the speakers' audio),
//! time-stamped on arrival and routed to the inbox of the site it belongs to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alicia_envelope::Envelope;
use anyhow::Result;
use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{CONNECT_TIMEOUT, KEEP_ALIVE};
use crate::connection::{self, Conn};
use crate::wire::{self, Packet};

/// The engine's own account of one reply, in engine time (ms): `payload.data.timings_ms`
/// of the `alicia/voice/tts/response` announcement. Engines before it was added send none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EngineTimings {
    /// Last speech frame in → the VAD's end-of-speech decision (its hangover).
    pub vad: f64,
    /// → final transcript.
    pub stt: f64,
    /// → reply text.
    pub intent: f64,
    /// → first reply audio chunk.
    pub tts: f64,
    /// → that chunk published.
    pub publish: f64,
    /// Last speech frame in → first reply chunk out: the sum of the above.
    pub end_to_end: f64,
    /// The transcript (and usually the reply audio) was prepared during the hangover.
    #[serde(default)]
    pub speculative: bool,
}

impl EngineTimings {
    /// From a reply announcement's `payload.data`; `None` when absent or malformed, which
    /// the report shows as "-" rather than failing a run against an older engine.
    pub fn from_data(data: &Value) -> Option<Self> {
        data.get("timings_ms").and_then(|t| Self::deserialize(t).ok())
    }
}

#[derive(Debug)]
pub enum Event {
    Transcript { session: String, text: String },
    Reply { session: String, timings: Option<EngineTimings> },
    Command { session: String, device: String, action: String, value: Option<i64> },
    Audio { empty: bool },
    Error { session: Option<String>, text: String },
}

pub type Inbox = mpsc::UnboundedReceiver<(Instant, Event)>;
pub type Route = mpsc::UnboundedSender<(Instant, Event)>;

/// Subscribes, then reads in a task until the connection closes; `routes` by site id,
/// `speakers` maps a speaker's device id to its site.
pub async fn watch(
    mqtt: SocketAddr,
    routes: HashMap<String, Route>,
    speakers: HashMap<String, String>,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut conn = connection::connect(
        mqtt,
        &format!("loadgen-voice-watcher-{}", std::process::id()),
        KEEP_ALIVE,
        CONNECT_TIMEOUT,
    )
    .await?;
    for filter in [
        "alicia/voice/stt/response",
        "alicia/voice/tts/response",
        "alicia/voice/+/error",
        "alicia/devices/+/command",
        // Timers go to the engine's timers, not to the speaker.
        "alicia/voice/timer/command",
        "alicia/devices/+/audio",
    ] {
        connection::subscribe(&mut conn, filter, 0, CONNECT_TIMEOUT).await?;
    }
    Ok(tokio::spawn(async move {
        let Conn { stream, mut rbuf } = conn;
        let (mut read, mut write) = stream.into_split();
        let pinger = tokio::spawn(async move {
            let mut out = BytesMut::new();
            loop {
                tokio::time::sleep(Duration::from_secs(u64::from(KEEP_ALIVE) / 2)).await;
                out.clear();
                wire::encode_pingreq(&mut out);
                if write.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
        loop {
            loop {
                let (event, site, used) = match wire::decode(&rbuf) {
                    Ok(Some((Packet::Publish(p), used))) => {
                        let topic = String::from_utf8_lossy(p.topic).into_owned();
                        let (event, site) = classify(&topic, p.payload, &speakers);
                        (event, site, used)
                    }
                    Ok(Some((_, used))) => (None, None, used),
                    Ok(None) => break,
                    Err(_) => {
                        pinger.abort();
                        return;
                    }
                };
                let at = Instant::now();
                bytes::Buf::advance(&mut rbuf, used);
                if let (Some(event), Some(tx)) = (event, site.and_then(|s| routes.get(&s))) {
                    let _ = tx.send((at, event));
                }
            }
            if !connection::fill(&mut read, &mut rbuf).await.is_ok_and(|n| n > 0) {
                pinger.abort();
                return;
            }
        }
    }))
}

/// The event a message carries and the site it belongs to.
fn classify(topic: &str, payload: &[u8], speakers: &HashMap<String, String>) -> (Option<Event>, Option<String>) {
    let levels: Vec<&str> = topic.split('/').collect();
    if let ["alicia", "devices", id, "audio"] = levels[..] {
        return (Some(Event::Audio { empty: payload.is_empty() }), speakers.get(id).cloned());
    }
    let Ok(e) = Envelope::decode(payload) else { return (None, None) };
    let data = &e.payload.data;
    let str_of = |v: &Value| v.as_str().map(str::to_string);
    let session = || str_of(&data["session_id"]).unwrap_or_default();
    match levels[..] {
        ["alicia", "voice", "stt", "response"] => (
            Some(Event::Transcript { session: session(), text: str_of(&data["text"]).unwrap_or_default() }),
            str_of(&data["site_id"]),
        ),
        ["alicia", "voice", "tts", "response"] => (
            Some(Event::Reply { session: session(), timings: EngineTimings::from_data(data) }),
            str_of(&data["site_id"]),
        ),
        ["alicia", "devices", _, "command"] | ["alicia", "voice", "timer", "command"] => {
            let meta = &e.payload.metadata;
            (
                Some(Event::Command {
                    session: meta.get("session_id").and_then(str_of).unwrap_or_default(),
                    device: str_of(&data["device_id"]).unwrap_or_default(),
                    action: str_of(&data["action"]).unwrap_or_default(),
                    value: data["value"].as_i64(),
                }),
                meta.get("site_id").and_then(str_of),
            )
        }
        ["alicia", "voice", _, "error"] => (
            Some(Event::Error {
                session: str_of(&data["session_id"]),
                text: format!(
                    "{}: {}",
                    data["error_type"].as_str().unwrap_or("error"),
                    data["message"].as_str().unwrap_or_default()
                ),
            }),
            str_of(&data["site_id"]),
        ),
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use alicia_envelope::{Destination, MessageType};
    use serde_json::json;

    use super::*;

    fn announcement(data: Value) -> Vec<u8> {
        Envelope::new("alicia", Destination::Device("kitchen_speaker".into()), MessageType::Event, data)
            .encode()
            .to_vec()
    }

    #[test]
    fn reads_the_timings_of_a_reply_announcement() {
        let data = json!({
            "session_id": "s1", "site_id": "kitchen", "speaker": "kitchen_speaker",
            "timings_ms": {"vad": 300.5, "stt": 120, "intent": 0.4, "tts": 80.25, "publish": 0.1,
                           "end_to_end": 501.25, "speculative": true},
        });
        let (event, site) = classify("alicia/voice/tts/response", &announcement(data), &HashMap::new());
        assert_eq!(site.as_deref(), Some("kitchen"));
        let Some(Event::Reply { session, timings: Some(t) }) = event else { panic!("{event:?}") };
        assert_eq!(session, "s1");
        assert_eq!((t.vad, t.stt, t.intent, t.tts, t.publish, t.end_to_end), (300.5, 120.0, 0.4, 80.25, 0.1, 501.25));
        assert!(t.speculative);
    }

    #[test]
    fn a_reply_without_timings_still_counts_as_a_reply() {
        let data = json!({"session_id": "s1", "site_id": "hallway", "speaker": "hallway_speaker"});
        let (event, site) = classify("alicia/voice/tts/response", &announcement(data), &HashMap::new());
        assert_eq!(site.as_deref(), Some("hallway"));
        assert!(matches!(event, Some(Event::Reply { timings: None, .. })), "{event:?}");

        let partial = json!({"timings_ms": {"vad": 1.0, "stt": 2.0, "intent": 3.0, "tts": 4.0, "publish": 5.0,
                                            "end_to_end": 15.0}});
        assert!(!EngineTimings::from_data(&partial).unwrap().speculative);
        assert_eq!(EngineTimings::from_data(&json!({"timings_ms": {"vad": "fast"}})), None);
        assert_eq!(EngineTimings::from_data(&json!({"timings_ms": null})), None);
    }

    #[test]
    fn speaker_audio_goes_to_the_speakers_site() {
        let speakers = HashMap::from([("kitchen_2_speaker".to_string(), "kitchen_2".to_string())]);
        let (event, site) = classify("alicia/devices/kitchen_2_speaker/audio", &[1, 2], &speakers);
        assert!(matches!(event, Some(Event::Audio { empty: false })));
        assert_eq!(site.as_deref(), Some("kitchen_2"));
        assert_eq!(classify("alicia/devices/other/audio", &[], &speakers).1, None);
    }
}
