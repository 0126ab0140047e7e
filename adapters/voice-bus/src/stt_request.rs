//! The seeds' one-shot speech-to-text: an envelope on `alicia/voice/stt/request` whose
//! `payload.data.audio_data` (or `audio`) is a base64 WAV, answered on
//! `alicia/voice/stt/response` with a response correlated to the request. What is wrong
//! with the audio (not base64, not a WAV, truncated, wrong format, empty) is answered
//! on `alicia/voice/stt/error`, correlated the same way. A request over
//! `max_stt_request_bytes` is refused unread with `request_too_large`.

use std::sync::Arc;

use alicia_broker::LocalClient;
use alicia_envelope::{topics, Destination, Envelope, MessageType, ENGINE_SOURCE};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::limits::{Refusal, RefusalCounters};
use crate::requests::{self, Request};
use alicia_speech::pcm16k_from_wav;

/// Transcribes 16 kHz mono s16le PCM; an error carries its `error_type` and message.
pub type Transcriber = Arc<dyn Fn(Bytes) -> Result<String, (&'static str, String)> + Send + Sync>;

pub(crate) async fn run(
    mut client: LocalClient,
    transcribe: Transcriber,
    max_bytes: usize,
    refused: RefusalCounters,
    stop: CancellationToken,
) {
    let Some(inbox) = requests::subscribe(&mut client, topics::VOICE_STT_REQUEST).await else { return };
    while let Some(request) = requests::next(&inbox, max_bytes, &stop).await {
        let response = match request {
            Request::Valid(mut request) => {
                let (topic, data) = match answer(&mut request, &transcribe).await {
                    Ok(text) => (topics::VOICE_STT_RESPONSE, json!({"text": text, "language": "en"})),
                    Err((error_type, message)) => {
                        (topics::VOICE_STT_ERROR, json!({"error_type": error_type, "message": message}))
                    }
                };
                let mut response = Envelope::response_to(&request, ENGINE_SOURCE, data);
                if topic == topics::VOICE_STT_ERROR {
                    response.message_type = MessageType::Event;
                }
                (topic, response)
            }
            Request::TooLarge(error) => {
                refused.count(Refusal::RequestTooLarge);
                let data = json!({"error_type": Refusal::RequestTooLarge.as_label(), "message": error.to_string()});
                (
                    topics::VOICE_STT_ERROR,
                    Envelope::new(ENGINE_SOURCE, Destination::Broadcast, MessageType::Event, data),
                )
            }
        };
        if let Err(e) = client.publish(response.0, response.1.encode(), false).await {
            tracing::warn!(error = %e, "cannot answer stt request");
        }
    }
}

/// The transcript of the request's WAV. Decoding the base64 and the WAV (megabytes)
/// runs with the model on the blocking pool, not on the async workers.
async fn answer(request: &mut Envelope, transcribe: &Transcriber) -> Result<String, (&'static str, String)> {
    let data = &mut request.payload.data;
    let audio = ["audio_data", "audio"]
        .iter()
        .find_map(|key| match data.get_mut(*key).map(Value::take) {
            Some(Value::String(audio)) => Some(audio),
            _ => None,
        })
        .ok_or(("missing_audio", "payload.data.audio_data must hold a base64 WAV".to_string()))?;
    let transcribe = transcribe.clone();
    tokio::task::spawn_blocking(move || {
        let wav = base64::engine::general_purpose::STANDARD
            .decode(audio.trim())
            .map_err(|e| ("not_base64", format!("payload.data.audio_data is not base64: {e}")))?;
        let pcm = pcm16k_from_wav(Bytes::from(wav)).map_err(|e| (e.error_type(), e.to_string()))?;
        if pcm.is_empty() {
            return Err(("empty_utterance", "the WAV holds no audio".to_string()));
        }
        transcribe(pcm)
    })
    .await
    .map_err(|_| ("transcription_failed", "speech-to-text panicked".to_string()))?
}
