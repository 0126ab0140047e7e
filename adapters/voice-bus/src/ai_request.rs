//! Typed requests: an envelope on `alicia/voice/ai/request` whose `payload.data.text` is
//! what the user asked (`site_id` and `session_id` optional) is answered on
//! `alicia/voice/ai/response` through the same intent path as speech: the local matcher
//! first, its device command published as a spoken one's is (a `command` envelope on
//! `alicia/devices/{id}/command` and `alicia/voice/command/result`, by the voice
//! publisher), then the chat model when `[voice.chat]` is on. The response is
//! correlated to the request and carries `text` (the reply), `intent` (its name),
//! `answered_by` (`matcher` or `chat`), `command`, `session_id` and `site_id`; when the
//! chat failed, `chat_error` says why and `text` is the apology.
//!
//! A session id names a conversation: requests that share one share the chat's memory
//! of it (a request without one is a conversation of its own, its `message_id`).
//! What is wrong with a request (no text, more than `max_ai_text_chars`, an unknown
//! site, a bad session id) is answered on `alicia/voice/ai/error`, correlated the same
//! way; one over `max_envelope_bytes` is refused unread with `envelope_too_large`.
//! Answers run on the blocking pool, a few at a time, so a slow chat answer does not
//! hold up a device command asked after it.

use std::sync::Arc;

use alicia_broker::{LocalClient, LocalMessage};
use alicia_envelope::{topics, Destination, Envelope, MessageType, ENGINE_SOURCE};
use alicia_home::Home;
use alicia_speech::{Frame, FrameMeta, Payload};
use alicia_stage_intent::IntentStage;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::limits::{Refusal, RefusalCounters, VoiceLimits};
use crate::publisher::BusItem;
use crate::requests::{self, Request};

/// Requests answered at once; more wait their turn unread.
const AT_ONCE: usize = 4;

/// What the service needs besides its bus link.
pub(crate) struct AiRequests {
    /// The intent stage's twin: the same home and the same chat client (one breaker,
    /// one memory of conversations) as the pipeline's.
    pub intent: Arc<IntentStage>,
    pub home: Home,
    /// To the voice publisher, which publishes device commands.
    pub bus: flume::Sender<BusItem>,
    pub limits: VoiceLimits,
    pub refused: RefusalCounters,
}

/// A request that can be answered.
struct Question {
    text: String,
    session: String,
    site: Option<String>,
}

/// Subscribes `client` to the requests; done before the service is said to be
/// running, so a request sent once it is cannot be missed.
pub(crate) async fn subscribe(mut client: LocalClient) -> anyhow::Result<(LocalClient, flume::Receiver<LocalMessage>)> {
    let inbox = requests::subscribe(&mut client, topics::VOICE_AI_REQUEST)
        .await
        .ok_or_else(|| anyhow::anyhow!("cannot subscribe to {}", topics::VOICE_AI_REQUEST))?;
    Ok((client, inbox))
}

pub(crate) async fn run(
    (client, inbox): (LocalClient, flume::Receiver<LocalMessage>),
    ai: AiRequests,
    stop: CancellationToken,
) {
    // The answers leave through one task that owns the link; the inbox stays here.
    let (answers, outgoing) = mpsc::channel::<(&'static str, Bytes)>(AT_ONCE * 2);
    let publisher = tokio::spawn(publish_all(client, outgoing));
    let slots = Arc::new(Semaphore::new(AT_ONCE));
    while let Some(request) = requests::next(&inbox, ai.limits.max_envelope_bytes, &stop).await {
        let request = match request {
            Request::Valid(request) => *request,
            Request::TooLarge(error) => {
                ai.refused.count(Refusal::EnvelopeTooLarge);
                let data = json!({"error_type": Refusal::EnvelopeTooLarge.as_label(), "message": error.to_string()});
                let refusal = Envelope::new(ENGINE_SOURCE, Destination::Broadcast, MessageType::Event, data);
                let _ = answers.send((topics::VOICE_AI_ERROR, refusal.encode())).await;
                continue;
            }
        };
        let question = match check(&request, &ai.home, &ai.limits) {
            Ok(question) => question,
            Err((refusal, error_type, message)) => {
                if let Some(refusal) = refusal {
                    ai.refused.count(refusal);
                }
                let mut refusal = Envelope::response_to(
                    &request,
                    ENGINE_SOURCE,
                    json!({"error_type": error_type, "message": message}),
                );
                refusal.message_type = MessageType::Event;
                let _ = answers.send((topics::VOICE_AI_ERROR, refusal.encode())).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else { break };
        let (intent, bus, answers) = (Arc::clone(&ai.intent), ai.bus.clone(), answers.clone());
        tokio::spawn(async move {
            let response = answer(intent, bus, &request, question).await;
            let _ = answers.send((topics::VOICE_AI_RESPONSE, response.encode())).await;
            drop(slot);
        });
    }
    // Answers still being worked out are sent before the link goes.
    drop(answers);
    let _ = publisher.await;
}

async fn publish_all(mut client: LocalClient, mut outgoing: mpsc::Receiver<(&'static str, Bytes)>) {
    while let Some((topic, payload)) = outgoing.recv().await {
        if let Err(e) = client.publish(topic, payload, false).await {
            tracing::warn!(error = %e, topic, "cannot answer ai request");
        }
    }
}

/// The request's question, or why it cannot be answered: the refusal to count (if
/// it is one of the voice's limits), the `error_type` and the message.
fn check(
    request: &Envelope,
    home: &Home,
    limits: &VoiceLimits,
) -> Result<Question, (Option<Refusal>, &'static str, String)> {
    let data = &request.payload.data;
    let text = data.get("text").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Err((None, "missing_text", "payload.data.text must hold the request, as words".into()));
    }
    let chars = text.chars().count();
    if chars > limits.max_ai_text_chars {
        let message = format!("payload.data.text has {chars} characters; at most {}", limits.max_ai_text_chars);
        return Err((Some(Refusal::TextTooLong), Refusal::TextTooLong.as_label(), message));
    }
    let session = match data.get("session_id") {
        None | Some(Value::Null) => request.message_id.to_string(),
        Some(Value::String(id)) if id.is_empty() => {
            return Err((None, "bad_session_id", "payload.data.session_id is empty".into()));
        }
        Some(Value::String(id)) if id.len() > limits.max_session_id_bytes => {
            let message = format!("session_id of {} bytes; at most {}", id.len(), limits.max_session_id_bytes);
            return Err((Some(Refusal::SessionIdTooLong), Refusal::SessionIdTooLong.as_label(), message));
        }
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err((None, "bad_session_id", "payload.data.session_id must be a string".into())),
    };
    let site = match data.get("site_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(site)) if home.sites.contains_key(site) => Some(site.clone()),
        Some(Value::String(site)) => {
            let message = format!("unknown site {site:?} (sites: {})", home.site_list());
            return Err((Some(Refusal::UnknownSite), Refusal::UnknownSite.as_label(), message));
        }
        Some(_) => return Err((None, "bad_site_id", "payload.data.site_id must be a string".into())),
    };
    Ok(Question { text: text.to_string(), session, site })
}

/// Works the answer out on the blocking pool (a chat request takes up to its
/// timeout), hands a device command to the publisher, and makes the response.
async fn answer(intent: Arc<IntentStage>, bus: flume::Sender<BusItem>, request: &Envelope, q: Question) -> Envelope {
    let site = q.site.clone().unwrap_or_default();
    let (text, session) = (q.text.clone(), q.session.clone());
    let chat_on = intent.chat_breaker().is_some();
    let asked = tokio::task::spawn_blocking(move || intent.answer(&text, &session, &site)).await;
    let mut data = match asked {
        Ok((understanding, failure)) => {
            // The question is never empty here, so words the matcher did not know went
            // to the chat model when it is on.
            let by_chat = chat_on && understanding.intent.is_not_understood() && failure.is_none();
            // `command` is the one command of most requests; `commands` lists every one
            // (a group of lights sends one per light).
            let command = match understanding.commands.as_slice() {
                [one] => Some(one.to_json()),
                _ => None,
            };
            let commands: Vec<Value> = understanding.commands.iter().map(|c| c.to_json()).collect();
            for command in &understanding.commands {
                let meta = FrameMeta::new(q.session.as_str(), q.site.as_deref().unwrap_or_default(), 0);
                let message = Payload::Message { topic: command.topic(), body: command.to_bytes() };
                let _ = bus.send(BusItem::Frame(Frame::new(meta, message)));
            }
            let mut data = json!({
                "text": understanding.reply,
                "intent": if by_chat { "chat" } else { understanding.intent.name() },
                "answered_by": if by_chat { "chat" } else { "matcher" },
                "command": command,
                "commands": commands,
            });
            if let Some(failure) = failure {
                data["chat_error"] = json!({"error_type": failure.error_type(), "message": failure.to_string()});
            }
            data
        }
        Err(_) => json!({
            "text": alicia_stage_intent::DIDNT_CATCH_THAT,
            "intent": "not_understood",
            "answered_by": "matcher",
            "command": null,
            "error": {"error_type": "intent_panicked", "message": "working out the answer failed"},
        }),
    };
    data["session_id"] = json!(q.session);
    data["site_id"] = json!(q.site);
    Envelope::response_to(request, ENGINE_SOURCE, data)
}
