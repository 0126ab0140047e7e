//! What building the stage and asking the chat fallback fail with.

use std::time::Duration;

use alicia_breaker::Verdict;
use alicia_home::HomeError;

/// Why the chat fallback gave no answer. The user still hears "Sorry, I didn't catch
/// that."; the error is reported on the stage's error topic.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The configured URL is unusable (https, no host, bad port).
    #[error("chat fallback url {url:?}: {reason}")]
    Url { url: String, reason: String },
    /// No connection to the server.
    #[error("cannot reach the chat server at {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    /// No whole answer within the timeout.
    #[error("the chat server did not answer within {} ms", after.as_millis())]
    Timeout { after: Duration },
    /// The connection broke mid-request.
    #[error("chat request failed: {0}")]
    Io(#[from] std::io::Error),
    /// Not HTTP/1.x as we know it, or an answer too large.
    #[error("chat server spoke broken HTTP: {0}")]
    Protocol(String),
    /// A non-2xx status, with the server's error message when it sent one.
    #[error("chat server answered {status}: {message}")]
    Status { status: u16, message: String },
    /// 2xx, but not an OpenAI chat completion with text in it.
    #[error("chat server answer is not a chat completion: {0}")]
    Response(String),
    /// The chat server failed too often lately: its circuit breaker is open and no
    /// request was sent.
    #[error("the chat server is failing: not asked again for {} ms (circuit open)", retry_in.as_millis())]
    CircuitOpen { retry_in: Duration },
    /// `[voice.chat.breaker]` settings that cannot work, every problem listed.
    #[error("{}", .0.join("; "))]
    Settings(Vec<String>),
}

impl ChatError {
    /// A short, stable label for metrics and error events.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Url { .. } | Self::Settings(_) => "invalid_config",
            Self::Connect { .. } => "chat_unreachable",
            Self::Timeout { .. } => "chat_timeout",
            Self::Io(_) | Self::Protocol(_) => "chat_protocol",
            Self::Status { .. } => "chat_status",
            Self::Response(_) => "chat_response",
            Self::CircuitOpen { .. } => "chat_circuit_open",
        }
    }

    /// What this failure says about the chat server, for its circuit breaker: a
    /// refused connection, a timeout, a 5xx or 429 may pass (retry); a broken answer
    /// will not (fail); a 4xx is the request's fault, not the server's.
    pub(crate) fn verdict(&self) -> Verdict {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Io(_) => Verdict::Retry,
            Self::Status { status, .. } if *status >= 500 || *status == 429 || *status == 408 => Verdict::Retry,
            Self::Status { .. } | Self::Url { .. } | Self::Settings(_) | Self::CircuitOpen { .. } => {
                Verdict::NotTheTarget
            }
            Self::Protocol(_) | Self::Response(_) => Verdict::Fail,
        }
    }
}

/// Why the intent stage could not be built.
#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error(transparent)]
    Chat(#[from] ChatError),
}
