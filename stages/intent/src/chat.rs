//! The optional fallback for what the matcher does not understand: an
//! OpenAI-compatible chat completion (`POST /v1/chat/completions`, `"stream": true`)
//! with a short per-session history, over the plain-HTTP client in `http.rs`; the
//! answer's sentences are handed on as they stream in (`stream.rs`).

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alicia_breaker::{Breaker, BreakerSettings, CallError, Verdict};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ChatError;
use crate::http::{post_json, HttpUrl};
use crate::stream::{Finished, StreamedAnswer};

/// Where the chat model is and how it should sound. Off unless set; the engine fills
/// it from `[voice.chat]` in `alicia.toml` (the key from `api_key_env` or
/// `api_key_file` there, never written in the file), with these fields:
///
/// ```toml
/// [voice.chat]
/// url = "http://127.0.0.1:8081"   # plain http: a local server or a proxy
/// model = "llama-3.2-3b-instruct"
/// api_key_env = "LLM_API_KEY"     # optional (or api_key_file): sent as a bearer token
/// timeout_ms = 8000               # the whole answer, retries included
///
/// [voice.chat.breaker]            # see alicia_breaker::BreakerSettings
/// failure_threshold = 5
/// open_ms = 30000
/// max_attempts = 3
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatFallback {
    /// `http://host:port`, optionally with a path prefix; `/v1/chat/completions` is
    /// appended unless the path already ends with it (`.../v1` gets
    /// `/chat/completions`). https is refused: see the crate docs.
    pub url: String,
    /// Sent as `Authorization: Bearer ...` when set.
    #[serde(default)]
    pub api_key: Option<String>,
    pub model: String,
    /// The system prompt: who Alicia is and how she answers.
    #[serde(default = "default_personality")]
    pub personality: String,
    /// The whole answer, connect to last byte, retries included.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Exchanges (question and answer) remembered per session.
    #[serde(default = "default_max_history")]
    pub max_history: usize,
    /// Sessions remembered; past it the least recently used is forgotten.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Answers are spoken: keep them short.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// The circuit breaker and retries in front of the server (target `llm`).
    #[serde(default)]
    pub breaker: BreakerSettings,
}

/// The breaker's target label (`alicia_breaker_state{target="llm"}`).
pub const CHAT_BREAKER_TARGET: &str = "llm";

fn default_personality() -> String {
    "You are Alicia, the voice assistant of this home. Your answers are spoken aloud: \
     answer in one or two short sentences of plain text, without lists, markdown or emoji."
        .to_string()
}

fn default_timeout_ms() -> u64 {
    8_000
}

fn default_max_history() -> usize {
    6
}

fn default_max_sessions() -> usize {
    64
}

fn default_max_tokens() -> u32 {
    150
}

impl ChatFallback {
    /// A fallback to `url` with every other field at its default.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            api_key: None,
            model: model.into(),
            personality: default_personality(),
            timeout_ms: default_timeout_ms(),
            max_history: default_max_history(),
            max_sessions: default_max_sessions(),
            max_tokens: default_max_tokens(),
            breaker: BreakerSettings::default(),
        }
    }

    /// The endpoint the client posts to.
    fn endpoint(&self) -> Result<HttpUrl, ChatError> {
        let mut url = HttpUrl::parse(&self.url)?;
        let base = url.path.trim_end_matches('/');
        url.path = if base.ends_with("/chat/completions") {
            base.to_string()
        } else if base.ends_with("/v1") {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        };
        Ok(url)
    }
}

impl fmt::Debug for ChatFallback {
    /// The key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatFallback")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("model", &self.model)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_history", &self.max_history)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

/// Asks the chat model, remembering each session's last exchanges. Blocking: a stage
/// that owns one runs on its own thread. A clone is the same client (one breaker, one
/// memory of conversations), for the spoken and the typed requests to share.
#[derive(Debug, Clone)]
pub struct ChatClient {
    config: Arc<ChatFallback>,
    endpoint: HttpUrl,
    breaker: Arc<Breaker>,
    memory: Arc<Mutex<Memory>>,
}

/// The conversations, least recently used forgotten first.
#[derive(Debug, Default)]
struct Memory {
    conversations: HashMap<String, Conversation>,
    clock: u64,
}

#[derive(Debug, Default)]
struct Conversation {
    /// (question, answer), oldest first.
    exchanges: VecDeque<(String, String)>,
    used: u64,
}

impl ChatClient {
    pub fn new(config: ChatFallback) -> Result<Self, ChatError> {
        let endpoint = config.endpoint()?;
        let problems = config.breaker.problems("voice.chat.breaker");
        if !problems.is_empty() {
            return Err(ChatError::Settings(problems));
        }
        let breaker = Arc::new(Breaker::new(CHAT_BREAKER_TARGET, config.breaker));
        Ok(Self { config: Arc::new(config), endpoint, breaker, memory: Arc::default() })
    }

    /// The circuit breaker in front of the chat server.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }

    /// The answer to `question` in `session`'s conversation, trimmed and on one line
    /// for the TTS. The exchange is remembered only when it succeeds. Within
    /// `timeout_ms` in all: a failure the server may get over is retried, and while
    /// the breaker is open the answer is [`ChatError::CircuitOpen`] at once.
    pub fn ask(&self, session: &str, question: &str) -> Result<String, ChatError> {
        self.ask_streaming(session, question, &mut |_| {}).map(|finished| finished.0)
    }

    /// [`ask`](Self::ask), handing each sentence of the answer to `sentence` as soon
    /// as the stream has finished it. Returns the whole answer and the part of it not
    /// handed on (the last sentence; all of it from a server that answered with one
    /// JSON body). Once a sentence has been handed on, a failure is not retried: the
    /// user has heard the start of this answer, not of another.
    pub fn ask_streaming(
        &self,
        session: &str,
        question: &str,
        sentence: &mut dyn FnMut(&str),
    ) -> Result<(String, String), ChatError> {
        let mut messages = vec![json!({"role": "system", "content": self.config.personality})];
        for (asked, answered) in self.history(session) {
            messages.push(json!({"role": "user", "content": asked}));
            messages.push(json!({"role": "assistant", "content": answered}));
        }
        messages.push(json!({"role": "user", "content": question}));
        let body = json!({
            "model": self.config.model,
            "messages": messages,
            "max_tokens": self.config.max_tokens,
            "stream": true,
        });
        let bearer = self.config.api_key.as_ref().map(|key| format!("Bearer {key}"));
        let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
        let body = serde_json::to_vec(&body).expect("a json value serialises");
        let timeout = Duration::from_millis(self.config.timeout_ms.max(1));
        let endpoint = &self.endpoint;
        let handed_on = Cell::new(false);
        let attempt = |deadline: Instant| -> Result<Finished, ChatError> {
            let mut answer = StreamedAnswer::default();
            let mut on_sentence = |text: &str| {
                handed_on.set(true);
                sentence(text);
            };
            let head = post_json(endpoint, &headers, &body, deadline, timeout, &mut |head, bytes| {
                answer.feed(head, bytes, &mut on_sentence)
            })?;
            answer.finish(head)
        };
        let judge = |err: &ChatError| match err.verdict() {
            Verdict::Retry if handed_on.get() => Verdict::Fail,
            verdict => verdict,
        };
        let finished = match self.breaker.call(Instant::now() + timeout, judge, attempt) {
            Ok(finished) => finished,
            Err(CallError::Failed(err)) => return Err(err),
            Err(CallError::Open { retry_in, .. }) => return Err(ChatError::CircuitOpen { retry_in }),
        };
        self.remember(session, question, &finished.answer);
        Ok((finished.answer, finished.rest))
    }

    /// Drops `session`'s history.
    pub fn forget(&self, session: &str) {
        self.memory().conversations.remove(session);
    }

    /// Exchanges remembered for `session`.
    pub fn history_len(&self, session: &str) -> usize {
        self.memory().conversations.get(session).map_or(0, |c| c.exchanges.len())
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        // The memory is plain data, whole after every change: a panic elsewhere
        // cannot leave it half-written.
        self.memory.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn history(&self, session: &str) -> Vec<(String, String)> {
        self.memory().conversations.get(session).map(|c| c.exchanges.iter().cloned().collect()).unwrap_or_default()
    }

    fn remember(&self, session: &str, question: &str, answer: &str) {
        if self.config.max_history == 0 {
            return;
        }
        let max_sessions = self.config.max_sessions.max(1);
        let mut memory = self.memory();
        memory.clock += 1;
        let now = memory.clock;
        if !memory.conversations.contains_key(session) && memory.conversations.len() >= max_sessions {
            let oldest = memory.conversations.iter().min_by_key(|(_, c)| c.used).map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                memory.conversations.remove(&oldest);
            }
        }
        let conversation = memory.conversations.entry(session.to_string()).or_default();
        conversation.used = now;
        conversation.exchanges.push_back((question.to_string(), answer.to_string()));
        while conversation.exchanges.len() > self.config.max_history {
            conversation.exchanges.pop_front();
        }
    }
}

/// `choices[0].message.content` of a 2xx answer, or the server's `error.message`.
pub(crate) fn parse_answer(status: u16, body: &[u8]) -> Result<String, ChatError> {
    let json: Result<Value, _> = serde_json::from_slice(body);
    if !(200..300).contains(&status) {
        let message = json
            .ok()
            .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        return Err(ChatError::Status { status, message });
    }
    let json = json.map_err(|err| ChatError::Response(format!("not json: {err}")))?;
    let content = json
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| ChatError::Response("no choices[0].message.content".into()))?;
    let spoken = content.split_whitespace().collect::<Vec<_>>().join(" ");
    if spoken.is_empty() {
        return Err(ChatError::Response("the answer is empty".into()));
    }
    Ok(spoken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_ends_in_chat_completions() {
        let path = |url: &str| ChatFallback::new(url, "m").endpoint().unwrap().path;
        assert_eq!(path("http://127.0.0.1:8081"), "/v1/chat/completions");
        assert_eq!(path("http://127.0.0.1:8081/"), "/v1/chat/completions");
        assert_eq!(path("http://proxy/openai/v1/"), "/openai/v1/chat/completions");
        assert_eq!(path("http://proxy/v1/chat/completions"), "/v1/chat/completions");
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let config = ChatFallback { api_key: Some("sk-secret".into()), ..ChatFallback::new("http://h", "m") };
        let debug = format!("{config:?}");
        assert!(!debug.contains("sk-secret") && debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn a_config_table_needs_only_url_and_model() {
        let config: ChatFallback = toml::from_str("url = \"http://h:1\"\nmodel = \"m\"").unwrap();
        assert_eq!(config, ChatFallback::new("http://h:1", "m"));
        assert!(toml::from_str::<ChatFallback>("url = \"http://h\"\nmodel = \"m\"\ntemperature = 1").is_err());
    }

    #[test]
    fn answers_and_errors() {
        let ok = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":" Hello\nthere. "}}]}"#;
        assert_eq!(parse_answer(200, ok).unwrap(), "Hello there.");
        let err = parse_answer(401, br#"{"error":{"message":"bad key","type":"auth"}}"#).unwrap_err();
        assert_eq!((err.to_string().as_str(), err.error_type()), ("chat server answered 401: bad key", "chat_status"));
        assert_eq!(parse_answer(200, b"{}").unwrap_err().error_type(), "chat_response");
        assert_eq!(parse_answer(502, b"Bad Gateway").unwrap_err().to_string(), "chat server answered 502: Bad Gateway");
    }
}
