//! [`IntentStage`]: transcripts in; device commands and spoken replies out.

use std::time::Instant;

use alicia_home::Home;
use alicia_pipeline::{Stage, StageError, StageHints, DEFAULT_OUTPUT};
use alicia_speech::{Frame, Outputs, PauseSignal, Payload, Speech, Transcript};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::chat::{ChatClient, ChatFallback};
use crate::error::IntentError;
use crate::intent::Understanding;
use crate::matcher::IntentMatcher;

/// The command port of [`OutputLayout::Split`].
pub const COMMAND_OUTPUT: &str = "command";
/// The reply port of [`OutputLayout::Split`].
pub const REPLY_OUTPUT: &str = "reply";

/// How the stage is set up; it builds the stage with [`IntentConfig::build`]. Every
/// field has a default; the chat fallback is off unless `chat` is set (the engine sets
/// it from `[voice.chat]`).
///
/// ```toml
/// [intent]
/// outputs = "split"        # "single" (default) | "split"
/// input_capacity = 16
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntentConfig {
    pub outputs: OutputLayout,
    /// Transcripts queued in front of the stage.
    pub input_capacity: usize,
    pub chat: Option<ChatFallback>,
}

/// Where the stage's frames go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputLayout {
    /// One port, `out`: each command message, then the reply text, then (when one
    /// comes in) the end of stream.
    #[default]
    Single,
    /// Two ports: `command` gets the command messages (for the MQTT publisher),
    /// `reply` the reply texts and ends of stream (for the TTS).
    Split,
}

impl Default for IntentConfig {
    fn default() -> Self {
        Self { outputs: OutputLayout::Single, input_capacity: 16, chat: None }
    }
}

impl IntentConfig {
    /// Validates `home` and builds the stage around it.
    pub fn build(&self, home: &Home) -> Result<IntentStage, IntentError> {
        let chat = self.chat.clone().map(ChatClient::new).transpose()?;
        self.build_with(home, chat)
    }

    /// [`build`](Self::build) around a chat client made already (`chat` is then
    /// ignored), so that another user of the same server shares its breaker and its
    /// conversations: the engine's typed requests (`alicia/voice/ai/request`) and its
    /// spoken ones.
    pub fn build_with(&self, home: &Home, chat: Option<ChatClient>) -> Result<IntentStage, IntentError> {
        home.validate()?;
        let capacity = self.input_capacity.max(1);
        // A chat request takes up to its timeout: far over an async stage's 500 µs.
        let hints = if chat.is_some() { StageHints::blocking(capacity) } else { StageHints::asynchronous(capacity) };
        let hints = match self.outputs {
            OutputLayout::Single => hints,
            OutputLayout::Split => hints.with_outputs(&[COMMAND_OUTPUT, REPLY_OUTPUT]),
        };
        Ok(IntentStage { matcher: IntentMatcher::new(home), chat, layout: self.outputs, hints, clock: local_time })
    }
}

fn local_time() -> NaiveDateTime {
    chrono::Local::now().naive_local()
}

/// The intent stage.
///
/// Input: [`Payload::Transcript`] from the stt stage, or [`Payload::Text`] (typed
/// words); the site is `meta.site_id`. For each final transcript, in this order, with
/// its meta stamped `understood`:
///
/// 1. when the intent has one, a [`Payload::Message`] with topic
///    `alicia/devices/{id}/command` and body the command's JSON
///    (`{"action":"turn_on","device_id":"kitchen_lights"}`), for the engine to wrap in
///    an envelope and publish;
/// 2. a [`Payload::Text`] with the reply to speak ("Turning on the kitchen lights.").
///
/// An [`Payload::EndOfStream`] is passed on after them (to the reply port when
/// split). A provisional transcript gets only a [`Payload::Prepare`] with the reply it
/// would have (on the reply port), so the TTS can synthesise it before the end of
/// speech. Other payloads pass through on the first port.
///
/// The chat model's answer is streamed: each sentence goes to the reply port as soon
/// as it has arrived, as a [`Payload::Text`] whose meta says `reply_continues`, and
/// the rest (maybe empty) follows without it, so the TTS speaks the first sentence
/// while the model is still writing the next.
///
/// Async, unless the chat fallback is on: then blocking, because a chat request may
/// take seconds (and a blocking stage's pushes leave at once). When the fallback fails the user hears "Sorry, I didn't catch that."
/// and the stage reports the failure as a per-frame error (`chat_timeout`,
/// `chat_unreachable`, `chat_status`, `chat_response`, `chat_protocol`, and
/// `chat_circuit_open` when the server failed so often lately that its breaker
/// answers at once).
pub struct IntentStage {
    matcher: IntentMatcher,
    chat: Option<ChatClient>,
    layout: OutputLayout,
    hints: StageHints,
    clock: fn() -> NaiveDateTime,
}

impl std::fmt::Debug for IntentStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntentStage").field("layout", &self.layout).field("chat", &self.chat.is_some()).finish()
    }
}

impl IntentStage {
    /// Reads the time for "what time is it" from `clock` instead of the local clock.
    pub fn with_clock(mut self, clock: fn() -> NaiveDateTime) -> Self {
        self.clock = clock;
        self
    }

    /// Answers timer questions from `timers` (the engine's timers).
    pub fn with_timers(mut self, timers: std::sync::Arc<dyn crate::timers::RunningTimers>) -> Self {
        self.matcher = self.matcher.with_timers(timers);
        self
    }

    pub fn matcher(&self) -> &IntentMatcher {
        &self.matcher
    }

    /// The chat fallback's circuit breaker, when the fallback is on.
    pub fn chat_breaker(&self) -> Option<&std::sync::Arc<alicia_breaker::Breaker>> {
        self.chat.as_ref().map(ChatClient::breaker)
    }

    /// What the stage answers to `text` heard in `session` at `site`, the chat
    /// fallback included; the error is the fallback's, with the apology as reply.
    /// `&self`: one stage may answer several typed requests at once.
    pub fn answer(&self, text: &str, session: &str, site: &str) -> (Understanding, Option<StageError>) {
        self.answer_streaming(text, session, site, None)
    }

    /// [`answer`](Self::answer); with `sentence`, the chat model's sentences go to it
    /// as they arrive and the reply is what was not handed on (empty when every
    /// sentence was, and after a failure once some were).
    fn answer_streaming(
        &self,
        text: &str,
        session: &str,
        site: &str,
        mut sentence: Option<&mut dyn FnMut(&str)>,
    ) -> (Understanding, Option<StageError>) {
        let mut understanding = self.matcher.understand(text, site, (self.clock)());
        let not_understood = understanding.intent.is_not_understood();
        let mut failure = None;
        if let (true, Some(chat)) = (not_understood && !text.trim().is_empty(), self.chat.as_ref()) {
            let streaming = sentence.is_some();
            let mut handed_on = false;
            let mut on_sentence = |piece: &str| {
                handed_on = true;
                if let Some(sentence) = sentence.as_mut() {
                    sentence(piece);
                }
            };
            match chat.ask_streaming(session, text.trim(), &mut on_sentence) {
                Ok((answer, rest)) => understanding.reply = if streaming { rest } else { answer },
                Err(err) => {
                    tracing::warn!(session, error = %err, "chat fallback failed");
                    failure = Some(StageError::frame(err.error_type(), err));
                    if handed_on && streaming {
                        understanding.reply.clear();
                    }
                }
            }
        }
        (understanding, failure)
    }

    fn port(&self, command: bool) -> &'static str {
        match (self.layout, command) {
            (OutputLayout::Single, _) => DEFAULT_OUTPUT,
            (OutputLayout::Split, true) => COMMAND_OUTPUT,
            (OutputLayout::Split, false) => REPLY_OUTPUT,
        }
    }
}

impl Stage<Speech> for IntentStage {
    fn name(&self) -> &'static str {
        "intent"
    }

    fn hints(&self) -> StageHints {
        self.hints
    }

    fn process(&mut self, mut frame: Frame, out: &mut Outputs) -> Result<(), StageError> {
        let text = match &frame.payload {
            Payload::Transcript(Transcript { text, pause: Some(pause), .. }) => {
                return self.prepare(text, pause, &frame, out);
            }
            Payload::Transcript(transcript) => transcript.text.clone(),
            Payload::Text(text) => text.clone(),
            Payload::EndOfStream => return out.push_to(self.port(false), frame),
            Payload::Audio(_) | Payload::Prepare { .. } | Payload::Pause(_) | Payload::Message { .. } => {
                return out.push(frame)
            }
        };
        let reply_port = self.port(false);
        let mut streamed = frame.clone();
        streamed.meta.domain.reply_continues = true;
        let mut pushed = Ok(());
        let mut sentence = |piece: &str| {
            if pushed.is_ok() {
                // The first sentence of a chat answer is when the request was understood.
                streamed.meta.domain.stamp(|t| {
                    t.understood.get_or_insert_with(Instant::now);
                });
                pushed = out.push_to(reply_port, streamed.derive(Payload::Text(piece.to_string())));
            }
        };
        let session = frame.meta.session_id.as_str();
        let (understanding, failure) =
            self.answer_streaming(&text, session, frame.meta.site_id.as_str(), Some(&mut sentence));
        pushed?;
        tracing::debug!(session, site = %frame.meta.site_id, intent = ?understanding.intent, "intent");
        frame.meta.domain.stamp(|t| t.understood = Some(Instant::now()));
        for command in &understanding.commands {
            let message = Payload::Message { topic: command.topic(), body: command.to_bytes() };
            out.push_to(self.port(true), frame.derive(message))?;
        }
        out.push_to(reply_port, frame.derive(Payload::Text(understanding.reply)))?;
        failure.map_or(Ok(()), Err)
    }
}

impl IntentStage {
    /// A provisional transcript: tells the VAD, through the pause, whether the words so
    /// far sound like a finished request (so it ends the utterance at once, or gives
    /// the user longer to go on), and works out the reply the final transcript would
    /// get, for the TTS to synthesise ahead. No command: the user may not be done.
    /// Chat answers are not guessed; they cost a request and keep a conversation.
    fn prepare(&mut self, text: &str, pause: &PauseSignal, frame: &Frame, out: &mut Outputs) -> Result<(), StageError> {
        let understanding = self.matcher.understand(text, frame.meta.site_id.as_str(), (self.clock)());
        pause.judge(self.matcher.sounds_finished(&understanding.intent));
        let not_understood = understanding.intent.is_not_understood();
        if not_understood && self.chat.is_some() {
            return Ok(());
        }
        let prepare = Payload::Prepare { text: understanding.reply, pause: pause.clone() };
        out.push_to(self.port(false), frame.derive(prepare))
    }
}

#[cfg(test)]
mod tests;
