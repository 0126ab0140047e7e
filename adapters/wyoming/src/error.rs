//! What the server fails with: at start ([`WyomingError`]), in a backend
//! ([`BackendError`]), and on one request (`RequestError`, sent to the client as a
//! Wyoming `error` event whose `code` is an [`ErrorReason`]).

use std::net::SocketAddr;

use crate::codec::DecodeError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum WyomingError {
    #[error("cannot bind wyoming listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Every problem with the config at once, each naming its field.
    #[error("invalid wyoming config: {}", .0.join("; "))]
    Config(Vec<String>),
}

/// A speech backend's failure. The message reaches the client inside the `error`
/// event's text, so it should say what went wrong in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    error_type: &'static str,
    message: String,
}

impl BackendError {
    /// `error_type` is a short, stable label for logs (e.g. the stage error's own
    /// `error_type()`); `message` is what the client is told.
    pub fn new(error_type: &'static str, message: impl Into<String>) -> Self {
        Self { error_type, message: message.into() }
    }

    pub fn error_type(&self) -> &'static str {
        self.error_type
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Why a request was refused or failed. A closed set: each is the `code` of the
/// Wyoming `error` event and the `reason` label of `alicia_wyoming_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorReason {
    MalformedHeader,
    HeaderTooLong,
    MalformedData,
    DataTooLarge,
    PayloadTooLarge,
    TruncatedEvent,
    EventTimeout,
    InvalidEvent,
    UnsupportedAudio,
    AudioTooLong,
    NoAudio,
    UnsupportedLanguage,
    UnknownVoice,
    EmptyText,
    TextTooLong,
    TranscribeFailed,
    SynthesizeFailed,
    TooManyConnections,
    TooManyConnectionsFromSource,
}

impl ErrorReason {
    pub const ALL: [ErrorReason; 19] = [
        ErrorReason::MalformedHeader,
        ErrorReason::HeaderTooLong,
        ErrorReason::MalformedData,
        ErrorReason::DataTooLarge,
        ErrorReason::PayloadTooLarge,
        ErrorReason::TruncatedEvent,
        ErrorReason::EventTimeout,
        ErrorReason::InvalidEvent,
        ErrorReason::UnsupportedAudio,
        ErrorReason::AudioTooLong,
        ErrorReason::NoAudio,
        ErrorReason::UnsupportedLanguage,
        ErrorReason::UnknownVoice,
        ErrorReason::EmptyText,
        ErrorReason::TextTooLong,
        ErrorReason::TranscribeFailed,
        ErrorReason::SynthesizeFailed,
        ErrorReason::TooManyConnections,
        ErrorReason::TooManyConnectionsFromSource,
    ];

    pub fn as_label(self) -> &'static str {
        match self {
            ErrorReason::MalformedHeader => "malformed_header",
            ErrorReason::HeaderTooLong => "header_too_long",
            ErrorReason::MalformedData => "malformed_data",
            ErrorReason::DataTooLarge => "data_too_large",
            ErrorReason::PayloadTooLarge => "payload_too_large",
            ErrorReason::TruncatedEvent => "truncated_event",
            ErrorReason::EventTimeout => "event_timeout",
            ErrorReason::InvalidEvent => "invalid_event",
            ErrorReason::UnsupportedAudio => "unsupported_audio",
            ErrorReason::AudioTooLong => "audio_too_long",
            ErrorReason::NoAudio => "no_audio",
            ErrorReason::UnsupportedLanguage => "unsupported_language",
            ErrorReason::UnknownVoice => "unknown_voice",
            ErrorReason::EmptyText => "empty_text",
            ErrorReason::TextTooLong => "text_too_long",
            ErrorReason::TranscribeFailed => "transcribe_failed",
            ErrorReason::SynthesizeFailed => "synthesize_failed",
            ErrorReason::TooManyConnections => "too_many_connections",
            ErrorReason::TooManyConnectionsFromSource => "too_many_connections_from_source",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A limit of [`crate::WyomingConfig`] a client ran into: the `reason` label of
/// `alicia_wyoming_refused_total`, spelled as the config key (in `[wyoming]` of
/// `alicia.toml`) an operator would raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    HeaderBytes,
    DataBytes,
    PayloadBytes,
    /// Not a number: the formats the server converts (see the crate docs).
    AudioFormat,
    UtteranceSeconds,
    UtteranceBytes,
    TextChars,
    EventTimeout,
    IdleTimeout,
    Connections,
    ConnectionsPerSource,
}

impl Limit {
    pub const ALL: [Limit; 11] = [
        Limit::HeaderBytes,
        Limit::DataBytes,
        Limit::PayloadBytes,
        Limit::AudioFormat,
        Limit::UtteranceSeconds,
        Limit::UtteranceBytes,
        Limit::TextChars,
        Limit::EventTimeout,
        Limit::IdleTimeout,
        Limit::Connections,
        Limit::ConnectionsPerSource,
    ];

    pub fn as_label(self) -> &'static str {
        match self {
            Limit::HeaderBytes => "max_header_bytes",
            Limit::DataBytes => "max_data_bytes",
            Limit::PayloadBytes => "max_payload_bytes",
            Limit::AudioFormat => "audio_format",
            Limit::UtteranceSeconds => "max_utterance_seconds",
            Limit::UtteranceBytes => "max_utterance_bytes",
            Limit::TextChars => "max_text_chars",
            Limit::EventTimeout => "event_timeout_ms",
            Limit::IdleTimeout => "idle_timeout_ms",
            Limit::Connections => "max_connections",
            Limit::ConnectionsPerSource => "max_connections_per_source",
        }
    }
}

/// A request the server cannot serve, as the client hears it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("event not complete {} s after its first byte; closing", .after.as_secs_f64())]
    EventTimeout { after: std::time::Duration },
    #[error("invalid `{event}` event: {reason}")]
    InvalidEvent { event: &'static str, reason: String },
    #[error("unsupported audio format: {0}")]
    UnsupportedAudio(String),
    #[error("audio exceeds {seconds} s, the longest utterance this server transcribes")]
    AudioTooLong { seconds: u32 },
    #[error("audio exceeds the {limit}-byte limit of one utterance")]
    AudioTooLarge { limit: usize },
    #[error("audio-stop without any audio")]
    NoAudio,
    #[error("unsupported language \"{language}\": this server understands {supported}")]
    UnsupportedLanguage { language: String, supported: &'static str },
    #[error("unknown voice \"{voice}\": this server speaks {available}")]
    UnknownVoice { voice: String, available: String },
    #[error("nothing to synthesize: the text is empty")]
    EmptyText,
    #[error("text of {chars} characters exceeds the {limit}-character limit of one synthesize")]
    TextTooLong { chars: usize, limit: usize },
    #[error("transcription failed: {0}")]
    TranscribeFailed(String),
    #[error("synthesis failed: {0}")]
    SynthesizeFailed(String),
    #[error("too many connections: this server serves {limit} at once; try again later")]
    TooManyConnections { limit: usize },
    #[error("too many connections from {address}: at most {limit} at once")]
    TooManyConnectionsFromSource { address: std::net::IpAddr, limit: usize },
}

impl RequestError {
    pub(crate) fn reason(&self) -> ErrorReason {
        match self {
            Self::Decode(err) => err.reason(),
            Self::EventTimeout { .. } => ErrorReason::EventTimeout,
            Self::InvalidEvent { .. } => ErrorReason::InvalidEvent,
            Self::UnsupportedAudio(_) => ErrorReason::UnsupportedAudio,
            Self::AudioTooLong { .. } | Self::AudioTooLarge { .. } => ErrorReason::AudioTooLong,
            Self::NoAudio => ErrorReason::NoAudio,
            Self::UnsupportedLanguage { .. } => ErrorReason::UnsupportedLanguage,
            Self::UnknownVoice { .. } => ErrorReason::UnknownVoice,
            Self::EmptyText => ErrorReason::EmptyText,
            Self::TextTooLong { .. } => ErrorReason::TextTooLong,
            Self::TranscribeFailed(_) => ErrorReason::TranscribeFailed,
            Self::SynthesizeFailed(_) => ErrorReason::SynthesizeFailed,
            Self::TooManyConnections { .. } => ErrorReason::TooManyConnections,
            Self::TooManyConnectionsFromSource { .. } => ErrorReason::TooManyConnectionsFromSource,
        }
    }

    /// The configured limit this refusal enforces, if it is one.
    pub(crate) fn limit(&self) -> Option<Limit> {
        Some(match self {
            Self::Decode(DecodeError::HeaderTooLong { .. }) => Limit::HeaderBytes,
            Self::Decode(DecodeError::DataTooLarge { .. }) => Limit::DataBytes,
            Self::Decode(DecodeError::PayloadTooLarge { .. }) => Limit::PayloadBytes,
            Self::EventTimeout { .. } => Limit::EventTimeout,
            Self::UnsupportedAudio(_) => Limit::AudioFormat,
            Self::AudioTooLong { .. } => Limit::UtteranceSeconds,
            Self::AudioTooLarge { .. } => Limit::UtteranceBytes,
            Self::TextTooLong { .. } => Limit::TextChars,
            Self::TooManyConnections { .. } => Limit::Connections,
            Self::TooManyConnectionsFromSource { .. } => Limit::ConnectionsPerSource,
            _ => return None,
        })
    }

    pub(crate) fn invalid(event: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidEvent { event, reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_limits_are_listed_once_in_declaration_order() {
        for (i, reason) in ErrorReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i, "{reason:?}");
        }
        for (i, limit) in Limit::ALL.iter().enumerate() {
            assert_eq!(*limit as usize, i, "{limit:?}");
        }
    }

    #[test]
    fn a_bind_failure_names_the_address() {
        let addr: SocketAddr = "127.0.0.1:10300".parse().unwrap();
        let err = WyomingError::Bind { addr, source: std::io::ErrorKind::AddrInUse.into() };
        assert!(err.to_string().starts_with("cannot bind wyoming listener on 127.0.0.1:10300: "), "{err}");
    }
}
