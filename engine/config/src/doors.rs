//! Semantic rules for the limits of the engine's non-MQTT doors and of the voice:
//! `[http]`, `[wyoming]`, `[voice]` and `[services]`. Each limit must be positive and
//! below a bound past which it no longer protects anything.

use crate::check::{in_range, ConfigErrors};
use crate::model::AliciaConfig;

const MIB: usize = 1 << 20;

pub(crate) fn check(c: &AliciaConfig, errors: &mut ConfigErrors) {
    let ms = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);

    let h = &c.http;
    in_range(errors, "http.header_timeout_ms", ms(h.header_timeout_ms), 100, 600_000);
    if h.request_timeout_ms < h.header_timeout_ms || h.request_timeout_ms > 600_000 {
        let message = format!("{} must be from header_timeout_ms to 600000", h.request_timeout_ms);
        errors.push("http.request_timeout_ms", message);
    }
    in_range(errors, "http.max_connections", h.max_connections, 1, 100_000);
    per_source(errors, "http", h.max_connections_per_source, h.max_connections);

    let w = &c.wyoming;
    in_range(errors, "wyoming.max_header_bytes", w.max_header_bytes, 1024, MIB);
    in_range(errors, "wyoming.max_data_bytes", w.max_data_bytes, 1024, 16 * MIB);
    in_range(errors, "wyoming.max_payload_bytes", w.max_payload_bytes, 1024, 64 * MIB);
    // Whisper hears at most 30 s at once: a longer utterance could never be answered.
    in_range(errors, "wyoming.max_utterance_seconds", w.max_utterance_seconds as usize, 1, 30);
    in_range(errors, "wyoming.max_utterance_bytes", w.max_utterance_bytes, 32_000, 256 * MIB);
    in_range(errors, "wyoming.max_text_chars", w.max_text_chars, 1, 100_000);
    in_range(errors, "wyoming.max_connections", w.max_connections, 1, 10_000);
    per_source(errors, "wyoming", w.max_connections_per_source, w.max_connections);
    in_range(errors, "wyoming.idle_timeout_ms", ms(w.idle_timeout_ms), 100, 3_600_000);
    in_range(errors, "wyoming.event_timeout_ms", ms(w.event_timeout_ms), 100, 600_000);

    let v = &c.voice;
    // Frames are whole 16-bit samples.
    if v.max_frame_bytes < 2 || v.max_frame_bytes > 16 * MIB || !v.max_frame_bytes.is_multiple_of(2) {
        errors.push("voice.max_frame_bytes", format!("{} must be even, from 2 to {}", v.max_frame_bytes, 16 * MIB));
    }
    if v.min_frame_bytes < 2 || v.min_frame_bytes > v.max_frame_bytes {
        errors.push("voice.min_frame_bytes", format!("{} must be from 2 to max_frame_bytes", v.min_frame_bytes));
    }
    in_range(errors, "voice.max_session_id_bytes", v.max_session_id_bytes, 1, 1024);
    in_range(errors, "voice.max_envelope_bytes", v.max_envelope_bytes, 1024, 16 * MIB);
    in_range(errors, "voice.max_stt_request_bytes", v.max_stt_request_bytes, 1024, 256 * MIB);
    in_range(errors, "voice.max_tts_text_chars", v.max_tts_text_chars, 1, 100_000);
    in_range(errors, "voice.max_ai_text_chars", v.max_ai_text_chars, 1, 100_000);

    in_range(errors, "services.max_envelope_bytes", c.services.max_envelope_bytes, 1024, 256 * MIB);
}

fn per_source(errors: &mut ConfigErrors, section: &str, per_source: usize, total: usize) {
    if per_source == 0 || per_source > total {
        let path = format!("{section}.max_connections_per_source");
        errors.push(path, format!("{per_source} must be from 1 to max_connections"));
    }
}

#[cfg(test)]
mod tests {
    use crate::AliciaConfig;

    #[test]
    fn every_door_limit_rule_is_reported_with_its_path() {
        let text = r#"
[http]
header_timeout_ms = 50
request_timeout_ms = 40
max_connections = 4
max_connections_per_source = 5
[wyoming]
max_payload_bytes = 0
max_utterance_seconds = 31
max_connections_per_source = 0
event_timeout_ms = 99
[voice]
min_frame_bytes = 0
max_frame_bytes = 641
max_session_id_bytes = 0
max_stt_request_bytes = 10
max_tts_text_chars = 0
[services]
max_envelope_bytes = 1
"#;
        let errors = AliciaConfig::from_toml_str(text).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "http.header_timeout_ms",
                "http.request_timeout_ms",
                "http.max_connections_per_source",
                "wyoming.max_payload_bytes",
                "wyoming.max_utterance_seconds",
                "wyoming.max_connections_per_source",
                "wyoming.event_timeout_ms",
                "voice.max_frame_bytes",
                "voice.min_frame_bytes",
                "voice.max_session_id_bytes",
                "voice.max_stt_request_bytes",
                "voice.max_tts_text_chars",
                "services.max_envelope_bytes",
            ],
            "{errors}"
        );
        let text = errors.to_string();
        assert!(text.contains("wyoming.max_utterance_seconds: 31 is out of range: must be between 1 and 30"), "{text}");
        assert!(text.contains("voice.max_frame_bytes: 641 must be even"), "{text}");
    }

    /// `bus-config/alicia.toml` documents every key of these sections, at its default.
    #[test]
    fn the_shipped_config_lists_every_door_limit_at_its_default() {
        let dir = crate::package_dir().join("../../bus-config/alicia.toml");
        let text = std::fs::read_to_string(&dir).unwrap();
        let shipped: toml::Table = text.parse().unwrap();
        let defaults = match toml::Value::try_from(AliciaConfig::default()).unwrap() {
            toml::Value::Table(table) => table,
            other => panic!("{other:?}"),
        };
        for section in ["http", "wyoming", "voice", "services"] {
            let (Some(toml::Value::Table(written)), Some(toml::Value::Table(default))) =
                (shipped.get(section), defaults.get(section))
            else {
                panic!("[{section}] missing")
            };
            for (key, value) in default {
                let shipped_value = written.get(key).unwrap_or_else(|| panic!("{section}.{key} is not documented"));
                // The listen addresses and the voice switch are the deployment's to choose.
                if !["listen", "enabled"].contains(&key.as_str()) {
                    assert_eq!(shipped_value, value, "{section}.{key} is not at its default");
                }
            }
        }
    }
}
