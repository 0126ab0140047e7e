//! The server's meters. Handles are made once, when the server binds, so the
//! process's recorder must be installed before that. Labels are closed sets (event
//! type, error reason), never a client.
//!
//! Naming contract: `alicia_<area>_<name>_<unit>`, counters end in `_total`.

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Gauge, Histogram, Unit,
};

use crate::error::{ErrorReason, Limit};

pub const EVENTS_TOTAL: &str = "alicia_wyoming_events_total";
pub const ERRORS_TOTAL: &str = "alicia_wyoming_errors_total";
/// Limits hit, by the config key of the limit (`reason="max_payload_bytes"`).
pub const REFUSED_TOTAL: &str = "alicia_wyoming_refused_total";
/// Requests stopped because the client left before the answer, by request.
pub const ABANDONED_TOTAL: &str = "alicia_wyoming_abandoned_total";
pub const CONNECTIONS_ACTIVE: &str = "alicia_wyoming_connections_active";
/// The meter the broker's `[security]` refusals share: `listener="wyoming"` here,
/// `reason="address_not_allowed"` for a peer outside `[wyoming] allow`.
pub const SECURITY_REFUSALS_TOTAL: &str = "alicia_security_refusals_total";
pub const TRANSCRIBE_SECONDS: &str = "alicia_wyoming_transcribe_seconds";
pub const SYNTHESIZE_SECONDS: &str = "alicia_wyoming_synthesize_seconds";

/// The events this server acts on; anything else is counted as `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Describe,
    Transcribe,
    AudioStart,
    AudioChunk,
    AudioStop,
    Synthesize,
    Ping,
    Other,
}

impl EventKind {
    pub(crate) const ALL: [EventKind; 8] = [
        EventKind::Describe,
        EventKind::Transcribe,
        EventKind::AudioStart,
        EventKind::AudioChunk,
        EventKind::AudioStop,
        EventKind::Synthesize,
        EventKind::Ping,
        EventKind::Other,
    ];

    pub(crate) fn of(kind: &str) -> Self {
        Self::ALL.into_iter().find(|known| known.as_label() == kind).unwrap_or(EventKind::Other)
    }

    /// The Wyoming `type`, which is also the label.
    pub(crate) fn as_label(self) -> &'static str {
        match self {
            EventKind::Describe => "describe",
            EventKind::Transcribe => "transcribe",
            EventKind::AudioStart => "audio-start",
            EventKind::AudioChunk => "audio-chunk",
            EventKind::AudioStop => "audio-stop",
            EventKind::Synthesize => "synthesize",
            EventKind::Ping => "ping",
            EventKind::Other => "other",
        }
    }
}

#[derive(Clone)]
pub(crate) struct WyomingMetrics {
    events: Vec<Counter>,
    errors: Vec<Counter>,
    refused: Vec<Counter>,
    /// Syntheses whose client went away mid-way.
    pub abandoned_syntheses: Counter,
    /// Transcriptions whose client went away before the transcript.
    pub abandoned_transcriptions: Counter,
    pub connections: Gauge,
    /// Peers outside the allow list, closed at accept.
    pub address_not_allowed: Counter,
    /// Backend time of one utterance, conversion included.
    pub transcribe_seconds: Histogram,
    /// From `synthesize` to the last audio sent.
    pub synthesize_seconds: Histogram,
}

impl WyomingMetrics {
    pub(crate) fn new() -> Self {
        describe_counter!(EVENTS_TOTAL, Unit::Count, "Wyoming events received, by type");
        describe_counter!(ERRORS_TOTAL, Unit::Count, "Wyoming error events sent, by reason");
        describe_histogram!(TRANSCRIBE_SECONDS, Unit::Seconds, "Time to transcribe one Wyoming utterance");
        describe_histogram!(SYNTHESIZE_SECONDS, Unit::Seconds, "Time to synthesise and send one Wyoming reply");
        describe_counter!(REFUSED_TOTAL, Unit::Count, "Wyoming requests and connections refused, by the limit hit");
        describe_counter!(ABANDONED_TOTAL, Unit::Count, "Wyoming requests stopped because the client left, by request");
        describe_gauge!(CONNECTIONS_ACTIVE, Unit::Count, "Wyoming connections being served");
        describe_counter!(
            SECURITY_REFUSALS_TOTAL,
            Unit::Count,
            "clients refused by [security]: credentials, ACL, by reason"
        );
        Self {
            address_not_allowed: counter!(SECURITY_REFUSALS_TOTAL, "listener" => "wyoming", "reason" => "address_not_allowed"),
            refused: Limit::ALL.iter().map(|limit| counter!(REFUSED_TOTAL, "reason" => limit.as_label())).collect(),
            abandoned_syntheses: counter!(ABANDONED_TOTAL, "request" => "synthesize"),
            abandoned_transcriptions: counter!(ABANDONED_TOTAL, "request" => "transcribe"),
            connections: gauge!(CONNECTIONS_ACTIVE),
            events: EventKind::ALL.iter().map(|kind| counter!(EVENTS_TOTAL, "type" => kind.as_label())).collect(),
            errors: ErrorReason::ALL
                .iter()
                .map(|reason| counter!(ERRORS_TOTAL, "reason" => reason.as_label()))
                .collect(),
            transcribe_seconds: histogram!(TRANSCRIBE_SECONDS),
            synthesize_seconds: histogram!(SYNTHESIZE_SECONDS),
        }
    }

    pub(crate) fn event(&self, kind: EventKind) {
        self.events[kind as usize].increment(1);
    }

    pub(crate) fn error(&self, reason: ErrorReason) {
        self.errors[reason.index()].increment(1);
    }

    pub(crate) fn refused(&self, limit: Limit) {
        self.refused[limit as usize].increment(1);
    }
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;

    use super::*;

    type Labels = Vec<(String, String)>;

    #[test]
    fn names_follow_the_contract() {
        let names =
            [EVENTS_TOTAL, ERRORS_TOTAL, REFUSED_TOTAL, ABANDONED_TOTAL, TRANSCRIBE_SECONDS, SYNTHESIZE_SECONDS];
        for name in names {
            assert!(name.starts_with("alicia_wyoming_"), "{name}");
            let unit_ok = name.ends_with("_total") || name.ends_with("_seconds");
            assert!(unit_ok && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{name}");
        }
        for (i, kind) in EventKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i);
            assert_eq!(EventKind::of(kind.as_label()), *kind);
        }
        assert_eq!(EventKind::of("detect"), EventKind::Other);
    }

    #[test]
    fn counters_carry_their_label() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let meters = metrics::with_local_recorder(&recorder, WyomingMetrics::new);
        meters.event(EventKind::AudioChunk);
        meters.event(EventKind::AudioChunk);
        meters.event(EventKind::of("satellite-connected"));
        meters.error(ErrorReason::PayloadTooLarge);
        meters.refused(Limit::PayloadBytes);
        meters.transcribe_seconds.record(0.25);
        meters.address_not_allowed.increment(1);

        let mut counts: Vec<(String, Labels, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| match (key.kind(), value) {
                (MetricKind::Counter, DebugValue::Counter(n)) if n > 0 => {
                    let labels = key.key().labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
                    Some((key.key().name().to_owned(), labels, n))
                }
                _ => None,
            })
            .collect();
        let label = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        let mut expected = vec![
            (EVENTS_TOTAL.to_owned(), label("type", "audio-chunk"), 2),
            (EVENTS_TOTAL.to_owned(), label("type", "other"), 1),
            (ERRORS_TOTAL.to_owned(), label("reason", "payload_too_large"), 1),
            (REFUSED_TOTAL.to_owned(), label("reason", "max_payload_bytes"), 1),
            (
                SECURITY_REFUSALS_TOTAL.to_owned(),
                vec![("listener".into(), "wyoming".into()), ("reason".into(), "address_not_allowed".into())],
                1,
            ),
        ];
        counts.sort();
        expected.sort();
        assert_eq!(counts, expected);
    }
}
