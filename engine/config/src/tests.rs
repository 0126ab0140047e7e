use super::*;

/// Every error `text` gets, as `path: message` lines; none when it is valid.
pub(crate) fn error_lines(text: &str) -> Vec<String> {
    match AliciaConfig::from_toml_str(text) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn empty_file_gives_defaults() {
    let c = AliciaConfig::from_toml_str("").unwrap();
    assert_eq!(c, AliciaConfig::default());
    assert_eq!(c.limits.max_connections, 1000);
    assert_eq!(c.limits.message_size_limit, 268_435_456);
    assert_eq!(c.mqtt.listen.port(), 1883);
}

#[test]
fn values_override_defaults() {
    let c = AliciaConfig::from_toml_str(
        "[mqtt]\nlisten = \"127.0.0.1:0\"\nio = \"epoll\"\n[limits]\nmax_connections = 5\n",
    )
    .unwrap();
    assert_eq!(c.mqtt.io, IoBackend::Epoll);
    assert_eq!(c.limits.max_connections, 5);
    assert_eq!(c.limits.max_inflight_messages, 100);
}

#[test]
fn every_error_is_reported_with_its_path() {
    let text = r#"
[mqtt]
listen = "not an address"
io = "kqueue"
colour = "blue"

[limits]
max_connections = "many"
max_inflight_messages = 0

[nonsense]
x = 1
"#;
    let errors = AliciaConfig::from_toml_str(text).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["limits.max_connections", "mqtt.colour", "mqtt.io", "mqtt.listen", "nonsense", "limits.max_inflight_messages"],
        "{errors}"
    );
    let text = errors.to_string();
    assert!(text.contains("mqtt.colour: unknown key (expected one of:"), "{text}");
    assert!(text.contains("nonsense: unknown section"), "{text}");
    assert!(text.contains("kqueue"), "{text}");
}

#[test]
fn semantic_rules_are_all_reported() {
    let text = r#"
[limits]
max_inflight_messages = 0
message_size_limit = 300000000
[router]
segment_size_bytes = 10
[topics.aliases]
"a/#/b" = "c"
"#;
    let errors = AliciaConfig::from_toml_str(text).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "limits.max_inflight_messages",
            "limits.message_size_limit",
            "router.segment_size_bytes",
            "topics.aliases.\"a/#/b\""
        ],
        "{errors}"
    );
}

#[test]
fn voice_timing_rules_are_reported_with_their_paths() {
    let text = r#"
[voice]
hangover_ms = 250
unfinished_hangover_ms = 200
pause_ms = 300
session_timeout_ms = 10
"#;
    let errors = AliciaConfig::from_toml_str(text).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["voice.unfinished_hangover_ms", "voice.pause_ms", "voice.session_timeout_ms"], "{errors}");
    let defaults = AliciaConfig::from_toml_str("").unwrap().voice;
    assert_eq!(
        (defaults.hangover_ms, defaults.unfinished_hangover_ms, defaults.pause_ms, defaults.session_timeout_ms),
        (250, 700, 40, 5_000)
    );
    assert!(AliciaConfig::from_toml_str("[voice]\npause_ms = 0").is_ok(), "0 turns the pause off");
}

#[test]
fn syntax_error_names_the_line() {
    let errors = AliciaConfig::from_toml_str("[mqtt\nlisten=").unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(errors.to_string().contains("line 1"), "{errors}");
}

#[test]
fn overlay_replaces_values_and_unknown_environment_lists_the_known_ones() {
    let dir = std::env::temp_dir().join(format!("alicia-config-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("environments")).unwrap();
    let base = dir.join("alicia.toml");
    std::fs::write(&base, "[limits]\nmax_connections = 10\nmax_queued_messages = 7\n").unwrap();
    std::fs::write(dir.join("environments/production.toml"), "[limits]\nmax_connections = 20\n").unwrap();

    let c = AliciaConfig::load(&base, Some("production")).unwrap();
    assert_eq!(c.limits.max_connections, 20);
    assert_eq!(c.limits.max_queued_messages, 7);

    let err = AliciaConfig::load(&base, Some("moon")).unwrap_err().to_string();
    assert!(err.contains("unknown environment \"moon\"") && err.contains("available: production"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_file_names_the_path() {
    let err = AliciaConfig::load(Path::new("/nonexistent/alicia.toml"), None).unwrap_err();
    assert!(err.to_string().starts_with("cannot read /nonexistent/alicia.toml"), "{err}");
}

#[test]
fn shipped_configs_are_valid() {
    let dir = crate::package_dir().join("../../bus-config");
    let base = dir.join("alicia.toml");
    AliciaConfig::load(&base, None).unwrap();
    for env in ["development", "staging", "production"] {
        AliciaConfig::load(&base, Some(env)).unwrap_or_else(|e| panic!("{env}: {e}"));
    }
}

#[test]
fn tls_and_websocket_listeners_are_optional_sections() {
    let c = AliciaConfig::from_toml_str("").unwrap();
    assert_eq!((c.mqtt.tls.is_none(), c.mqtt.websocket.is_none()), (true, true));
    let text = r#"
[mqtt.tls]
listen = "127.0.0.1:8883"
cert = "certs/dev/server.crt"
key = "certs/dev/server.key"
ca = "certs/dev/ca.crt"
require_certificate = true
use_identity_as_username = true
crl = "certs/dev/crl.pem"
[mqtt.websocket]
listen = "127.0.0.1:9001"
tls = true
"#;
    let c = AliciaConfig::from_toml_str(text).unwrap();
    let tls = c.mqtt.tls.unwrap();
    assert_eq!(tls.listen.port(), 8883);
    assert!(tls.require_certificate && tls.use_identity_as_username);
    assert_eq!(tls.crl.as_deref(), Some(std::path::Path::new("certs/dev/crl.pem")));
    let ws = c.mqtt.websocket.unwrap();
    assert_eq!((ws.listen.port(), ws.tls), (9001, true));
}

#[test]
fn listener_rules_are_reported_with_their_paths() {
    let text = r#"
[mqtt]
listen = "127.0.0.1:1883"
[mqtt.tls]
listen = "127.0.0.1:1883"
cert = "s.crt"
key = "s.key"
require_certificate = true
use_identity_as_username = false
crl = "crl.pem"
[mqtt.websocket]
listen = "127.0.0.1:9001"
[security]
allow_anonymous = false
"#;
    let errors = AliciaConfig::from_toml_str(text).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["mqtt.tls.require_certificate", "mqtt.tls.crl", "security.allow_anonymous", "mqtt.tls.listen"],
        "{errors}"
    );
    let text = "[mqtt.websocket]\nlisten = \"127.0.0.1:9001\"\ntls = true\n";
    let errors = AliciaConfig::from_toml_str(text).unwrap_err();
    assert!(errors.to_string().contains("mqtt.websocket.tls: true needs a [mqtt.tls] section"), "{errors}");
    let text = "[mqtt.tls]\nlisten = \"127.0.0.1:8883\"\ncert = \"a\"\nkey = \"b\"\ncolour = 1\n";
    let errors = AliciaConfig::from_toml_str(text).unwrap_err();
    assert!(errors.to_string().contains("mqtt.tls: unknown field `colour`"), "{errors}");
}

#[test]
fn monitor_settings_are_checked_with_their_paths() {
    let text = "[services]\nheartbeat_interval_secs = 30\n[monitor]\nheartbeat_timeout_secs = 30\nmax_components = 0\nmetrics_interval_secs = 0\n";
    let errors = AliciaConfig::from_toml_str(text).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["monitor.heartbeat_timeout_secs", "monitor.max_components", "monitor.metrics_interval_secs"],
        "{errors}"
    );
    let shipped = AliciaConfig::from_toml_str(include_str!("../../../bus-config/alicia.toml")).unwrap();
    assert_eq!(shipped.monitor.heartbeat_timeout_secs, 300);
}

#[test]
fn voice_tuning_sections_default_to_the_tuned_values_and_report_bad_ones_by_path() {
    let voice = AliciaConfig::from_toml_str("").unwrap().voice;
    assert_eq!((voice.vad.threshold_db, voice.vad.min_speech_ms, voice.vad.max_utterance_ms), (10.0, 100, 15_000));
    assert_eq!((voice.stt.beam_size, voice.stt.fallback_budget_ms), (5, 3_000));
    assert_eq!((voice.tts.cache_sentences, voice.tts.cache_bytes), (256, 16 << 20));
    let text = r#"
[voice.vad]
threshold_db = -3.0
max_utterance_ms = 250

[voice.stt]
beam_size = 0
temperature_step = 1.5
no_speech_threshold = 2.0

[voice.tts]
cache_bytes = 4294967296
"#;
    let errors = AliciaConfig::from_toml_str(text).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "voice.vad.threshold_db",
            "voice.vad.max_utterance_ms",
            "voice.stt.beam_size",
            "voice.stt.temperature_step",
            "voice.stt.no_speech_threshold",
            "voice.tts.cache_bytes",
        ],
        "{errors}"
    );
    let errors = AliciaConfig::from_toml_str("[voice.stt]\nbeams = 3").unwrap_err();
    assert!(errors.to_string().contains("unknown field `beams`"), "{errors}");
    let tuned = "[voice.vad]\nthreshold_db = 14.5\n[voice.stt]\nbeam_size = 1\n[voice.tts]\ncache_sentences = 0";
    let voice = AliciaConfig::from_toml_str(tuned).unwrap().voice;
    assert_eq!((voice.vad.threshold_db, voice.stt.beam_size, voice.tts.cache_sentences), (14.5, 1, 0));
}
