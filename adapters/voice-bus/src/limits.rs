//! What a site or a requester may send the voice, what a refusal is called, and how
//! often one is reported.
//!
//! Every refusal is counted in `alicia_voice_refused_total{reason}` and reported on the
//! stage's error topic; the reports are throttled (one per site and reason per second)
//! so a satellite flooding bad frames costs the bus a trickle of error events, and the
//! publisher's queue stays small.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use metrics::Counter;

/// `alicia_voice_refused_total{reason}`.
pub(crate) const REFUSED_TOTAL: &str = "alicia_voice_refused_total";

/// The voice's limits, from `[voice]` in `alicia.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceLimits {
    /// Smallest audio frame; an empty one carries nothing but cost.
    pub min_frame_bytes: usize,
    pub max_frame_bytes: usize,
    pub max_session_id_bytes: usize,
    /// Largest start, stop, `tts/request` and `ai/request` envelope.
    pub max_envelope_bytes: usize,
    /// Largest seeds-style `stt/request` envelope, its base64 WAV included.
    pub max_stt_request_bytes: usize,
    pub max_tts_text_chars: usize,
    /// Longest question of an `ai/request`.
    pub max_ai_text_chars: usize,
}

impl Default for VoiceLimits {
    fn default() -> Self {
        Self {
            min_frame_bytes: 2,
            max_frame_bytes: 64 << 10,
            max_session_id_bytes: 128,
            max_envelope_bytes: 64 << 10,
            max_stt_request_bytes: 2 << 20,
            max_tts_text_chars: 1_000,
            max_ai_text_chars: 1_000,
        }
    }
}

/// Why the voice refused something a client sent: the `error_type` of the error event
/// and the `reason` label of the metric. A closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Refusal {
    UnknownSite,
    MissingSessionId,
    SessionIdTooLong,
    UnsupportedAudioFormat,
    UnknownSession,
    FrameTooSmall,
    FrameTooLarge,
    BadAudio,
    EnvelopeTooLarge,
    RequestTooLarge,
    TextTooLong,
}

impl Refusal {
    pub(crate) const ALL: [Refusal; 11] = [
        Refusal::UnknownSite,
        Refusal::MissingSessionId,
        Refusal::SessionIdTooLong,
        Refusal::UnsupportedAudioFormat,
        Refusal::UnknownSession,
        Refusal::FrameTooSmall,
        Refusal::FrameTooLarge,
        Refusal::BadAudio,
        Refusal::EnvelopeTooLarge,
        Refusal::RequestTooLarge,
        Refusal::TextTooLong,
    ];

    pub(crate) fn as_label(self) -> &'static str {
        match self {
            Refusal::UnknownSite => "unknown_site",
            Refusal::MissingSessionId => "missing_session_id",
            Refusal::SessionIdTooLong => "session_id_too_long",
            Refusal::UnsupportedAudioFormat => "unsupported_audio_format",
            Refusal::UnknownSession => "unknown_session",
            Refusal::FrameTooSmall => "frame_too_small",
            Refusal::FrameTooLarge => "frame_too_large",
            Refusal::BadAudio => "bad_audio",
            Refusal::EnvelopeTooLarge => "envelope_too_large",
            Refusal::RequestTooLarge => "request_too_large",
            Refusal::TextTooLong => "text_too_long",
        }
    }
}

/// One counter per [`Refusal`], made once.
#[derive(Clone)]
pub(crate) struct RefusalCounters(Vec<Counter>);

impl RefusalCounters {
    pub(crate) fn new() -> Self {
        Self(Refusal::ALL.iter().map(|r| metrics::counter!(REFUSED_TOTAL, "reason" => r.as_label())).collect())
    }

    pub(crate) fn count(&self, refusal: Refusal) {
        self.0[refusal as usize].increment(1);
    }
}

/// Lets through one report per key and interval. Keys are (site, reason); sites a
/// client makes up are reported under one key, so the map holds at most the home's
/// sites times the reasons, plus one per reason.
pub(crate) struct ReportThrottle {
    interval: Duration,
    last: HashMap<(Option<String>, Refusal), Instant>,
}

impl ReportThrottle {
    pub(crate) const INTERVAL: Duration = Duration::from_secs(1);

    pub(crate) fn new(interval: Duration) -> Self {
        Self { interval, last: HashMap::new() }
    }

    /// Whether a report of `refusal` at `site` (`None`: a site the home does not know)
    /// goes out now.
    pub(crate) fn allow(&mut self, site: Option<&str>, refusal: Refusal) -> bool {
        let now = Instant::now();
        let key = (site.map(str::to_owned), refusal);
        match self.last.get(&key) {
            Some(last) if now.duration_since(*last) < self.interval => false,
            _ => {
                self.last.insert(key, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_listed_once_in_declaration_order() {
        for (i, refusal) in Refusal::ALL.iter().enumerate() {
            assert_eq!(*refusal as usize, i);
            assert!(refusal.as_label().chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }

    #[test]
    fn one_report_per_site_and_reason_per_interval() {
        let mut throttle = ReportThrottle::new(Duration::from_secs(3600));
        assert!(throttle.allow(Some("kitchen"), Refusal::FrameTooSmall));
        assert!(!throttle.allow(Some("kitchen"), Refusal::FrameTooSmall));
        assert!(throttle.allow(Some("kitchen"), Refusal::FrameTooLarge));
        assert!(throttle.allow(Some("bedroom"), Refusal::FrameTooSmall));
        assert!(throttle.allow(None, Refusal::UnknownSite));
        assert!(!throttle.allow(None, Refusal::UnknownSite), "made-up sites share one key");
        let mut eager = ReportThrottle::new(Duration::ZERO);
        assert!(eager.allow(Some("kitchen"), Refusal::BadAudio) && eager.allow(Some("kitchen"), Refusal::BadAudio));
    }
}
