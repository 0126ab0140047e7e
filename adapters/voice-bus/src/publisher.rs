//! Frames → MQTT. JSON is made here, at the edge: transcripts on
//! `alicia/voice/stt/response`, device commands as `command` envelopes on
//! `alicia/devices/{id}/command` with their outcome on `alicia/voice/command/result`,
//! the reply announced on `alicia/voice/tts/response` and its PCM chunks on
//! `alicia/devices/{speaker}/audio` (an empty message ends the reply), and errors on
//! their stage's error topic.

use std::collections::HashSet;
use std::time::Instant;

use alicia_broker::LocalClient;
use alicia_envelope::{topics, Destination, Envelope, MessageType, ENGINE_SOURCE};
use alicia_home::Home;
use alicia_speech::{Frame, FrameMeta, Payload, StageTimings};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::tts_request::PendingSays;

/// What the topology and the intake hand the publisher.
pub(crate) enum BusItem {
    Frame(Frame),
    Error {
        stage: &'static str,
        error_type: &'static str,
        message: String,
        session_id: Option<String>,
        site_id: Option<String>,
    },
}

pub(crate) async fn run(
    mut client: LocalClient,
    items: flume::Receiver<BusItem>,
    home: Home,
    says: PendingSays,
    _stop: CancellationToken,
) {
    let end_to_end = metrics::histogram!(END_TO_END_SECONDS);
    let mut announced: HashSet<String> = HashSet::new();
    // Runs until every sender (intake, stages, error sink) is gone, so what the
    // pipeline drains at shutdown is still published.
    while let Ok(item) = items.recv_async().await {
        let (topic, payload) = match item {
            BusItem::Error { stage, error_type, message, session_id, site_id } => {
                let request = session_id.as_deref().and_then(|s| says.take(s));
                let data = json!({
                    "stage": stage, "error_type": error_type, "message": message,
                    "session_id": session_id, "site_id": site_id,
                });
                let payload = match request {
                    Some(request) => {
                        let mut refusal = Envelope::response_to(&request, ENGINE_SOURCE, data);
                        refusal.message_type = MessageType::Event;
                        refusal.encode()
                    }
                    None => event(MessageType::Event, Destination::Broadcast, data),
                };
                (error_topic(stage).to_string(), payload)
            }
            BusItem::Frame(frame) => match frame.payload {
                Payload::Transcript(transcript) => {
                    let mut data = json!({
                        "text": transcript.text,
                        "confidence": transcript.confidence,
                        "language": transcript.language,
                    });
                    add_session(&mut data, &frame.meta);
                    (topics::VOICE_STT_RESPONSE.to_string(), event(MessageType::Event, Destination::Broadcast, data))
                }
                Payload::Message { topic, body } => {
                    let command: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let device = command["device_id"].as_str().unwrap_or_default().to_string();
                    let mut envelope = Envelope::new(
                        ENGINE_SOURCE,
                        Destination::Device(device),
                        MessageType::Command,
                        command.clone(),
                    );
                    envelope.payload.metadata.insert("session_id".into(), json!(frame.meta.session_id.as_str()));
                    envelope.payload.metadata.insert("site_id".into(), json!(frame.meta.site_id.as_str()));
                    publish(&mut client, &topic, envelope.encode()).await;
                    let mut result = json!({"command": command, "topic": topic, "status": "sent"});
                    add_session(&mut result, &frame.meta);
                    (
                        topics::VOICE_COMMAND_RESULT.to_string(),
                        event(MessageType::Event, Destination::Broadcast, result),
                    )
                }
                Payload::Audio(chunk) => {
                    let session = frame.meta.session_id.as_str().to_string();
                    let site = frame.meta.site_id.as_str();
                    let Some(speaker) = home.sites.get(site).and_then(|s| s.speaker.clone()) else {
                        continue;
                    };
                    let audio_topic = topics::device_audio(&speaker);
                    if announced.insert(session.clone()) {
                        let mut data = json!({
                            "speaker": speaker, "audio_topic": audio_topic,
                            "format": {"rate": chunk.format.sample_rate, "width": chunk.format.sample_width, "channels": chunk.format.channels},
                        });
                        add_session(&mut data, &frame.meta);
                        if let Some(timings) = frame.meta.domain.timeline().timings(Instant::now()) {
                            end_to_end.record(timings.end_to_end().as_secs_f64());
                            record_steps(&timings);
                            data["timings_ms"] = timings_json(&timings);
                        }
                        // A spoken reply is news for the speaker; a `tts/request` gets its answer.
                        let announce = match says.take(&session) {
                            Some(request) => Envelope::response_to(&request, ENGINE_SOURCE, data).encode(),
                            None => event(MessageType::Event, Destination::Device(speaker.clone()), data),
                        };
                        publish(&mut client, topics::VOICE_TTS_RESPONSE, announce).await;
                    }
                    (audio_topic, chunk.pcm)
                }
                Payload::EndOfStream => {
                    if !announced.remove(frame.meta.session_id.as_str()) {
                        continue;
                    }
                    let Some(speaker) = home.sites.get(frame.meta.site_id.as_str()).and_then(|s| s.speaker.clone())
                    else {
                        continue;
                    };
                    (topics::device_audio(&speaker), Bytes::new())
                }
                Payload::Text(_) | Payload::Prepare { .. } | Payload::Pause(_) => continue,
            },
        };
        publish(&mut client, &topic, payload).await;
    }
}

fn event(kind: MessageType, to: Destination, data: Value) -> Bytes {
    Envelope::new(ENGINE_SOURCE, to, kind, data).encode()
}

/// The reply latency split by step, and whether the reply was prepared ahead.
pub(crate) const STEP_SECONDS: &str = "alicia_voice_step_seconds";
pub(crate) const REPLIES: &str = "alicia_voice_replies_total";
pub(crate) const END_TO_END_SECONDS: &str = "alicia_voice_end_to_end_seconds";

fn record_steps(t: &StageTimings) {
    for (step, took) in t.steps() {
        metrics::histogram!(STEP_SECONDS, "step" => step).record(took.as_secs_f64());
    }
    metrics::counter!(REPLIES, "prepared" => if t.speculative { "true" } else { "false" }).increment(1);
}

/// Where the time between the end of speech and the first reply audio went.
fn timings_json(t: &StageTimings) -> Value {
    let ms = |d: std::time::Duration| json!((d.as_secs_f64() * 1e6).round() / 1e3);
    let mut fields: serde_json::Map<String, Value> =
        t.steps().iter().map(|(step, took)| (step.to_string(), ms(*took))).collect();
    fields.insert("end_to_end".into(), ms(t.end_to_end()));
    fields.insert("speculative".into(), json!(t.speculative));
    Value::Object(fields)
}

fn add_session(data: &mut Value, meta: &FrameMeta) {
    if let Value::Object(fields) = data {
        fields.insert("session_id".into(), json!(meta.session_id.as_str()));
        fields.insert("site_id".into(), json!(meta.site_id.as_str()));
    }
}

fn error_topic(stage: &str) -> &'static str {
    match stage {
        "intake" | "vad" | "stt" | "tap" => topics::VOICE_STT_ERROR,
        "intent" => topics::VOICE_COMMAND_ERROR,
        "tts" => topics::VOICE_TTS_ERROR,
        _ => topics::MONITORING_ALERTS,
    }
}

async fn publish(client: &mut LocalClient, topic: &str, payload: Bytes) {
    if let Err(e) = client.publish(topic, payload, false).await {
        tracing::warn!(error = %e, topic, "voice publisher cannot publish");
    }
}
