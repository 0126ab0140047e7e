//! [`WyomingConfig`]: the server's limits and what it tells clients it serves.

use std::time::Duration;

use crate::error::WyomingError;

/// The port Home Assistant's Wyoming integration is usually pointed at.
pub const DEFAULT_PORT: u16 = 10300;

/// How the Wyoming server runs. [`Default`] suits Home Assistant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WyomingConfig {
    /// Largest `data_length + payload_length` of one event; a larger event is
    /// refused and skipped. Home Assistant's chunks are a few KiB.
    pub max_event_bytes: usize,
    /// Longest header line. 64 KiB is also what the reference client's line reader
    /// accepts, so nothing valid is refused.
    pub max_header_bytes: usize,
    /// Audio kept for one utterance, in the client's format; past it the utterance
    /// is refused. 32 MiB is 17 minutes of 16 kHz mono speech.
    pub max_utterance_bytes: usize,
    /// Samples per synthesised `audio-chunk` (64 ms at 16 kHz), as Wyoming's own
    /// servers send.
    pub samples_per_chunk: usize,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// A connection that neither sends nor takes data for this long is closed.
    pub idle_timeout: Duration,
    /// The speech-to-text model named in `info`.
    pub asr_model: String,
    /// The voice named in `info` and accepted in `synthesize`.
    pub tts_voice: String,
}

impl Default for WyomingConfig {
    fn default() -> Self {
        Self {
            max_event_bytes: 16 << 20,
            max_header_bytes: 64 << 10,
            max_utterance_bytes: 32 << 20,
            samples_per_chunk: 1024,
            max_connections: 64,
            idle_timeout: Duration::from_secs(300),
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
            ("max_event_bytes", self.max_event_bytes),
            ("max_header_bytes", self.max_header_bytes),
            ("max_utterance_bytes", self.max_utterance_bytes),
            ("samples_per_chunk", self.samples_per_chunk),
            ("max_connections", self.max_connections),
        ];
        for (field, value) in positive {
            if value == 0 {
                problems.push(format!("{field} must be positive"));
            }
        }
        if self.idle_timeout.is_zero() {
            problems.push("idle_timeout must be positive".into());
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
            ..WyomingConfig::default()
        };
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "invalid wyoming config: samples_per_chunk must be positive; max_connections must be positive; \
             idle_timeout must be positive; tts_voice must not be empty"
        );
    }
}
