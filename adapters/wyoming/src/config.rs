//! [`WyomingConfig`]: the server's limits and what it tells clients it serves.

use std::time::Duration;

use alicia_auth::Cidr;

use crate::error::WyomingError;

/// The port Home Assistant's Wyoming integration is usually pointed at.
pub const DEFAULT_PORT: u16 = 10300;

/// How the Wyoming server runs. [`Default`] suits Home Assistant: every limit is far
/// above what it sends, and together they bound a connection's memory (about
/// `max_utterance_bytes + max_payload_bytes + max_data_bytes + max_header_bytes`) and
/// the server's (that, times `max_connections`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WyomingConfig {
    /// Peers allowed to connect; any other is closed at accept. Loopback by default.
    pub allow: Vec<Cidr>,
    /// Longest header line. 64 KiB is also what the reference client's line reader
    /// accepts, so nothing valid is refused.
    pub max_header_bytes: usize,
    /// Largest `data_length` (the extra JSON after the header). It is parsed on the
    /// connection's task, so it stays small; a `synthesize` text fits many times over.
    pub max_data_bytes: usize,
    /// Largest `payload_length` of one event; Home Assistant's audio chunks are a few
    /// KiB.
    pub max_payload_bytes: usize,
    /// Longest utterance one `transcribe` may send, in seconds of audio in the format
    /// it states (Whisper hears at most 30 s at once).
    pub max_utterance_seconds: u32,
    /// Most audio bytes one utterance may send, whatever its format: the seconds
    /// bound in bytes for the largest formats is more than memory should hold.
    pub max_utterance_bytes: usize,
    /// Longest `synthesize` text, in characters (about a minute of speech).
    pub max_text_chars: usize,
    /// Samples per synthesised `audio-chunk` (64 ms at 16 kHz), as Wyoming's own
    /// servers send.
    pub samples_per_chunk: usize,
    /// Connections served at once; one more is refused with `too_many_connections`.
    pub max_connections: usize,
    /// Connections served at once from one IP address; one more is refused with
    /// `too_many_connections_from_source`. Home Assistant opens one per request.
    pub max_connections_per_source: usize,
    /// A connection that sends nothing between events (and takes nothing) for this
    /// long is closed.
    pub idle_timeout: Duration,
    /// Once an event's first byte has come, the whole event must come within this;
    /// a client trickling bytes is refused with `event_timeout` and closed.
    pub event_timeout: Duration,
    /// The speech-to-text model named in `info`.
    pub asr_model: String,
    /// The voice named in `info` and accepted in `synthesize`.
    pub tts_voice: String,
}

impl Default for WyomingConfig {
    fn default() -> Self {
        Self {
            allow: Cidr::loopback(),
            max_header_bytes: 64 << 10,
            max_data_bytes: 64 << 10,
            max_payload_bytes: 1 << 20,
            max_utterance_seconds: 30,
            // 30 s of 48 kHz stereo 16-bit audio.
            max_utterance_bytes: 6 << 20,
            max_text_chars: 1_000,
            samples_per_chunk: 1024,
            max_connections: 32,
            max_connections_per_source: 8,
            idle_timeout: Duration::from_secs(60),
            event_timeout: Duration::from_secs(10),
            asr_model: "tiny.en".into(),
            tts_voice: "en_US-joe-medium".into(),
        }
    }
}

impl WyomingConfig {
    /// Every problem at once, each naming its field.
    pub fn validate(&self) -> Result<(), WyomingError> {
        let mut problems = Vec::new();
        let positive = [
            ("max_header_bytes", self.max_header_bytes),
            ("max_data_bytes", self.max_data_bytes),
            ("max_payload_bytes", self.max_payload_bytes),
            ("max_utterance_seconds", self.max_utterance_seconds as usize),
            ("max_utterance_bytes", self.max_utterance_bytes),
            ("max_text_chars", self.max_text_chars),
            ("samples_per_chunk", self.samples_per_chunk),
            ("max_connections", self.max_connections),
            ("max_connections_per_source", self.max_connections_per_source),
        ];
        for (field, value) in positive {
            if value == 0 {
                problems.push(format!("{field} must be positive"));
            }
        }
        if self.max_connections_per_source > self.max_connections {
            problems.push("max_connections_per_source must not exceed max_connections".into());
        }
        for (field, value) in [("idle_timeout", self.idle_timeout), ("event_timeout", self.event_timeout)] {
            if value.is_zero() {
                problems.push(format!("{field} must be positive"));
            }
        }
        if self.allow.is_empty() {
            problems.push("allow must list at least one address block".into());
        }
        for (field, value) in [("asr_model", &self.asr_model), ("tts_voice", &self.tts_voice)] {
            if value.trim().is_empty() {
                problems.push(format!("{field} must not be empty"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(WyomingError::Config(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        WyomingConfig::default().validate().unwrap();
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let config = WyomingConfig {
            samples_per_chunk: 0,
            max_connections: 0,
            idle_timeout: Duration::ZERO,
            tts_voice: " ".into(),
            allow: Vec::new(),
            ..WyomingConfig::default()
        };
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "invalid wyoming config: samples_per_chunk must be positive; max_connections must be positive; \
             max_connections_per_source must not exceed max_connections; idle_timeout must be positive; \
             allow must list at least one address block; tts_voice must not be empty"
        );
    }
}
