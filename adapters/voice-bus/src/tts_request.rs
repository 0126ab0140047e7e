//! Text to a site's speaker: an envelope on `alicia/voice/tts/request` whose
//! `payload.data` has `text` and `site_id` is spoken by the Piper stage of the running
//! topology and played on the site's speaker like any reply: announced on
//! `alicia/voice/tts/response` (a response correlated to the request), then PCM chunks
//! on `alicia/devices/{speaker}/audio` and an empty message. What is wrong with the
//! request (no text, more than `max_tts_text_chars`, an unknown site) is answered on
//! `alicia/voice/tts/error`, correlated the same way; one over `max_envelope_bytes` is
//! refused unread with `envelope_too_large`. `alicia say --site` sends these.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alicia_broker::LocalClient;
use alicia_envelope::{topics, Destination, Envelope, MessageType, ENGINE_SOURCE};
use alicia_home::Home;
use alicia_speech::{EdgeSender, Frame, FrameMeta, SpeechFrame};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::limits::{Refusal, RefusalCounters, VoiceLimits};
use crate::requests::{self, Request};

/// Requests being spoken, by the session id their frames carry (the request's
/// `message_id`), so the publisher can correlate the announcement or the error.
#[derive(Clone, Default)]
pub(crate) struct PendingSays(Arc<Mutex<HashMap<String, Envelope>>>);

impl PendingSays {
    fn insert(&self, session: String, request: Envelope) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(session, request);
    }

    /// The request behind `session`, forgotten.
    pub(crate) fn take(&self, session: &str) -> Option<Envelope> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(session)
    }
}

/// What the service needs besides its bus link.
pub(crate) struct Says {
    pub say: EdgeSender,
    pub home: Home,
    pub pending: PendingSays,
    pub limits: VoiceLimits,
    pub refused: RefusalCounters,
}

pub(crate) async fn run(mut client: LocalClient, says: Says, stop: CancellationToken) {
    let Says { say, home, pending, limits, refused } = says;
    let Some(inbox) = requests::subscribe(&mut client, topics::VOICE_TTS_REQUEST).await else { return };
    while let Some(request) = requests::next(&inbox, limits.max_envelope_bytes, &stop).await {
        let request = match request {
            Request::Valid(request) => *request,
            Request::TooLarge(error) => {
                refused.count(Refusal::EnvelopeTooLarge);
                let data = json!({"error_type": Refusal::EnvelopeTooLarge.as_label(), "message": error.to_string()});
                let refusal = Envelope::new(ENGINE_SOURCE, Destination::Broadcast, MessageType::Event, data);
                if let Err(e) = client.publish(topics::VOICE_TTS_ERROR, refusal.encode(), false).await {
                    tracing::warn!(error = %e, "cannot refuse tts request");
                }
                continue;
            }
        };
        match check(&request, &home, limits.max_tts_text_chars) {
            Ok((text, site)) => {
                let session = request.message_id.to_string();
                pending.insert(session.clone(), request);
                if say.send_async(Frame::text(FrameMeta::new(session, site, 0), text)).await.is_err() {
                    return;
                }
            }
            Err((error_type, message)) => {
                if error_type == Refusal::TextTooLong.as_label() {
                    refused.count(Refusal::TextTooLong);
                } else if error_type == Refusal::UnknownSite.as_label() {
                    refused.count(Refusal::UnknownSite);
                }
                let mut refusal = Envelope::response_to(
                    &request,
                    ENGINE_SOURCE,
                    json!({"error_type": error_type, "message": message}),
                );
                refusal.message_type = MessageType::Event;
                if let Err(e) = client.publish(topics::VOICE_TTS_ERROR, refusal.encode(), false).await {
                    tracing::warn!(error = %e, "cannot refuse tts request");
                }
            }
        }
    }
}

/// The text and the site of a request, or why it cannot be spoken.
fn check(request: &Envelope, home: &Home, max_chars: usize) -> Result<(String, String), (&'static str, String)> {
    let data = &request.payload.data;
    let text = data.get("text").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Err(("missing_text", "payload.data.text must hold the words to speak".into()));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(("text_too_long", format!("payload.data.text has {chars} characters; at most {max_chars}")));
    }
    let Some(site) = data.get("site_id").and_then(Value::as_str) else {
        return Err(("missing_site", "payload.data.site_id must name the site whose speaker plays it".into()));
    };
    match home.sites.get(site) {
        Some(s) if s.speaker.is_some() => Ok((text.to_string(), site.to_string())),
        Some(_) => Err(("no_speaker", format!("site {site:?} has no speaker"))),
        None => Err(("unknown_site", format!("unknown site {site:?} (sites: {})", home.site_list()))),
    }
}
