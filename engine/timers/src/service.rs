//! [`TimerService`]: timer commands from the bus into the book, and the book's due
//! timers out as spoken rings on their site's speaker.

use std::time::{Duration, SystemTime};

use alicia_broker::LocalClient;
use alicia_envelope::{topics, Destination, Envelope, MessageType, ENGINE_SOURCE};
use alicia_stage_intent::TIMER_COMMAND_TOPIC;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::book::{SetError, Timer, TimerBook, MAX_TIMERS, MAX_TIMER_SECONDS};

/// `started`, `cancelled`, `paused`, `resumed` and `finished`, each with its timer.
pub const TIMER_EVENT_TOPIC: &str = "alicia/voice/timer/event";
/// A command that could not be carried out, correlated to it.
pub const TIMER_ERROR_TOPIC: &str = "alicia/voice/timer/error";
/// Longest the ringer sleeps before looking again (a clock stepped forward is noticed).
const LONGEST_NAP: Duration = Duration::from_secs(30);

/// Runs the timers on the bus.
pub struct TimerService {
    pub book: TimerBook,
    /// Largest command envelope read.
    pub max_envelope_bytes: usize,
}

impl TimerService {
    /// Serves commands and rings due timers until `stop`. Timers that came due while
    /// the engine was down ring at once.
    pub async fn run(self, mut client: LocalClient, stop: CancellationToken) {
        if let Err(e) = client.subscribe(TIMER_COMMAND_TOPIC).await {
            tracing::error!(error = %e, "timers: cannot subscribe to {TIMER_COMMAND_TOPIC}; timers are off");
            return;
        }
        metrics::describe_gauge!("alicia_timers_running", "timers running, all sites together");
        metrics::describe_counter!(
            "alicia_timers_total",
            "timers by what became of them: started, cancelled, paused, resumed, finished"
        );
        let inbox = client.inbox();
        loop {
            for timer in self.book.take_due(SystemTime::now()) {
                ring(&mut client, &timer).await;
            }
            metrics::gauge!("alicia_timers_running").set(self.book.len() as f64);
            let nap = self
                .book
                .next_due()
                .map_or(LONGEST_NAP, |due| due.duration_since(SystemTime::now()).unwrap_or_default().min(LONGEST_NAP));
            tokio::select! {
                message = inbox.recv_async() => match message {
                    Ok(message) => self.command(&mut client, &message.payload).await,
                    Err(_) => return,
                },
                () = self.book.changed() => {}
                () = tokio::time::sleep(nap) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    async fn command(&self, client: &mut LocalClient, payload: &Bytes) {
        if payload.len() > self.max_envelope_bytes {
            let message = format!("a timer command of {} bytes is over {}", payload.len(), self.max_envelope_bytes);
            return publish(client, TIMER_ERROR_TOPIC, error_event(None, "too_large", &message)).await;
        }
        let request = match Envelope::decode(payload) {
            Ok(request) => request,
            Err(e) => {
                return publish(client, TIMER_ERROR_TOPIC, error_event(None, "invalid_envelope", &e.to_string())).await
            }
        };
        match self.carry_out(&request) {
            Ok(events) => {
                for (event, timer) in events {
                    metrics::counter!("alicia_timers_total", "event" => event).increment(1);
                    let data = json!({"event": event, "timer": timer_json(&timer)});
                    let envelope = Envelope::response_to(&request, ENGINE_SOURCE, data);
                    publish(client, TIMER_EVENT_TOPIC, envelope.encode()).await;
                }
            }
            Err((error_type, message)) => {
                publish(client, TIMER_ERROR_TOPIC, error_event(Some(&request), error_type, &message)).await;
            }
        }
    }

    /// What `request` asks, done: the events it makes, or why it cannot be done.
    fn carry_out(&self, request: &Envelope) -> Result<Vec<(&'static str, Timer)>, (&'static str, String)> {
        let data = &request.payload.data;
        let text = |v: &Value| v.as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let site = text(&data["site_id"])
            .or_else(|| request.payload.metadata.get("site_id").and_then(text))
            .ok_or(("missing_site", "a timer command needs site_id (in data or metadata)".to_string()))?;
        check_id("site_id", &site)?;
        let name = text(&data["name"]);
        if let Some(name) = &name {
            check_name(name)?;
        }
        match data["action"].as_str() {
            Some("set_timer") => {
                let speaker = text(&data["device_id"])
                    .ok_or(("missing_speaker", "set_timer needs device_id: the speaker it rings on".to_string()))?;
                check_id("device_id", &speaker)?;
                let seconds = match data["value"].as_u64() {
                    Some(v) => u32::try_from(v).unwrap_or(u32::MAX),
                    None => {
                        let message =
                            format!("set_timer needs value: its length in whole seconds, not {}", data["value"]);
                        return Err(("missing_value", message));
                    }
                };
                match self.book.set(&site, &speaker, name, seconds, SystemTime::now()) {
                    Ok((timer, replaced)) => {
                        let mut events: Vec<(&'static str, Timer)> =
                            replaced.into_iter().map(|t| ("cancelled", t)).collect();
                        events.push(("started", timer));
                        Ok(events)
                    }
                    Err(SetError::OutOfRange) => Err((
                        "out_of_range",
                        format!("a timer runs from 1 to {MAX_TIMER_SECONDS} seconds, not {}", data["value"]),
                    )),
                    Err(SetError::TooMany) => {
                        Err(("too_many_timers", format!("{MAX_TIMERS} timers are running already")))
                    }
                }
            }
            Some(action @ ("cancel_timer" | "pause_timer" | "resume_timer")) => {
                let (event, changed, state) = match action {
                    "cancel_timer" => ("cancelled", self.book.cancel(&site, name.as_deref()), "is running"),
                    "pause_timer" => {
                        ("paused", self.book.pause(&site, name.as_deref(), SystemTime::now()), "is running")
                    }
                    _ => ("resumed", self.book.resume(&site, name.as_deref(), SystemTime::now()), "is paused"),
                };
                if changed.is_empty() {
                    let what = name.map_or("no timer".to_string(), |n| format!("no {n} timer"));
                    return Err(("no_such_timer", format!("{what} {state} at site {site}")));
                }
                Ok(changed.into_iter().map(|t| (event, t)).collect())
            }
            other => Err((
                "unknown_action",
                format!(
                    "action {other:?}: expected \"set_timer\", \"cancel_timer\", \"pause_timer\" or \"resume_timer\""
                ),
            )),
        }
    }
}

/// Says on the timer's site that it is done, and tells the bus.
async fn ring(client: &mut LocalClient, timer: &Timer) {
    tracing::info!(site = %timer.site, name = ?timer.name, seconds = timer.seconds, "timer done");
    metrics::counter!("alicia_timers_total", "event" => "finished").increment(1);
    let say = json!({"text": timer.done_sentence(), "site_id": timer.site});
    let request = Envelope::new(ENGINE_SOURCE, Destination::Service("tts_service".into()), MessageType::Request, say);
    publish(client, topics::VOICE_TTS_REQUEST, request.encode()).await;
    let event = json!({"event": "finished", "timer": timer_json(timer)});
    let event = Envelope::new(ENGINE_SOURCE, Destination::Device(timer.speaker.clone()), MessageType::Event, event);
    publish(client, TIMER_EVENT_TOPIC, event.encode()).await;
}

/// Longest site id, speaker id and timer name: each is said aloud, kept in the store
/// and sent in every event.
pub const MAX_ID_CHARS: usize = 64;

/// A site or device id as the home writes them ([`alicia_home::is_id`]), not too long.
fn check_id(field: &str, id: &str) -> Result<(), (&'static str, String)> {
    if id.len() > MAX_ID_CHARS || !alicia_home::is_id(id) {
        let shown: String = id.chars().take(MAX_ID_CHARS).collect();
        let message =
            format!("{field} {shown:?} is not an id: at most {MAX_ID_CHARS} lowercase letters, digits, `_` and `-`");
        return Err(("invalid_id", message));
    }
    Ok(())
}

/// A timer's name is spoken when it rings: words, not control characters or pages.
fn check_name(name: &str) -> Result<(), (&'static str, String)> {
    if name.chars().count() > MAX_ID_CHARS || name.chars().any(char::is_control) {
        let shown: String = name.chars().take(MAX_ID_CHARS).collect();
        let message = format!("name {shown:?}: at most {MAX_ID_CHARS} characters, none of them control characters");
        return Err(("invalid_name", message));
    }
    Ok(())
}

fn timer_json(timer: &Timer) -> Value {
    let left = timer.left(SystemTime::now());
    json!({
        "id": timer.id, "site_id": timer.site, "speaker": timer.speaker, "name": timer.name,
        "seconds": timer.seconds, "due_unix_ms": timer.due_unix_ms, "remaining_ms": left.as_millis() as u64,
        "paused": timer.is_paused(),
    })
}

fn error_event(request: Option<&Envelope>, error_type: &str, message: &str) -> Bytes {
    let data = json!({"error_type": error_type, "message": message});
    match request {
        Some(request) => {
            let mut refusal = Envelope::response_to(request, ENGINE_SOURCE, data);
            refusal.message_type = MessageType::Event;
            refusal.encode()
        }
        None => Envelope::new(ENGINE_SOURCE, Destination::Broadcast, MessageType::Event, data).encode(),
    }
}

async fn publish(client: &mut LocalClient, topic: &str, payload: Bytes) {
    if let Err(e) = client.publish(topic, payload, false).await {
        tracing::warn!(topic, error = %e, "timers: publish failed");
    }
}
