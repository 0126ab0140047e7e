//! What building the stage and asking the chat fallback fail with.

use std::time::Duration;

use crate::home::HomeError;

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
}

impl ChatError {
    /// A short, stable label for metrics and error events.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Url { .. } => "invalid_config",
            Self::Connect { .. } => "chat_unreachable",
            Self::Timeout { .. } => "chat_timeout",
            Self::Io(_) | Self::Protocol(_) => "chat_protocol",
            Self::Status { .. } => "chat_status",
            Self::Response(_) => "chat_response",
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
