//! What an update changes, and which of it the running engine can put in force.
//!
//! Live (applied at once, no connection dropped): `[security]`'s `allow_anonymous`,
//! `password_file`, `acl_file` and `token_key_file` (the gateway's rules swap whole and
//! every session's compiled rules follow); every `[limits]` key but
//! `max_queued_bytes_total`, and `mqtt.connect_timeout_ms` / `write_timeout_ms` (the
//! broker's limits swap whole and apply to what happens next; a lowered limit drops
//! nothing already held); `[voice]`'s VAD silences, session timeout and input limits,
//! and `[voice.chat]` whole (the pipeline is rebuilt with them on the models already
//! loaded; the chat's API key is read again then); and
//! `engine.log_level` (the log filter is reloaded). Everything else is read when a part
//! starts (listen addresses, io threads, the byte budget's size, the router's log, the
//! store, the voice models, `[wyoming]`...): such a change is accepted and written, and
//! reported as `restart_required` until the engine restarts.

use alicia_config::AliciaConfig;
use serde_json::Value;

/// Keys put in force without a restart, as dotted paths (a prefix covers what is below),
/// but for [`RESTART_PATHS`].
pub const LIVE_PATHS: [&str; 23] = [
    "security.allow_anonymous",
    "security.password_file",
    "security.acl_file",
    "security.token_key_file",
    "limits",
    "mqtt.connect_timeout_ms",
    "mqtt.write_timeout_ms",
    "voice.hangover_ms",
    "voice.unfinished_hangover_ms",
    "voice.pause_ms",
    "voice.session_timeout_ms",
    "voice.min_frame_bytes",
    "voice.max_frame_bytes",
    "voice.max_session_id_bytes",
    "voice.max_envelope_bytes",
    "voice.max_stt_request_bytes",
    "voice.max_tts_text_chars",
    "voice.max_ai_text_chars",
    "voice.chat",
    "voice.vad",
    "voice.stt",
    "voice.tts",
    "engine.log_level",
];

/// Keys under a [`LIVE_PATHS`] prefix that still wait for a restart: the byte budget
/// is sized once, at start, and so is the Whisper behind Wyoming and `stt/request`.
pub const RESTART_PATHS: [&str; 2] = ["limits.max_queued_bytes_total", "voice.stt.recording_min_window_ms"];

/// Whether the change at `path` can be applied live.
pub fn is_live(path: &str) -> bool {
    let covers = |prefix: &&str| path == *prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.'));
    LIVE_PATHS.iter().any(covers) && !RESTART_PATHS.iter().any(covers)
}

/// The dotted paths whose values differ between `a` and `b`, in order.
pub fn changed_paths(a: &AliciaConfig, b: &AliciaConfig) -> Vec<String> {
    let (a, b) = (to_json(a), to_json(b));
    let mut out = Vec::new();
    diff(&a, &b, "", &mut out);
    out
}

fn to_json(config: &AliciaConfig) -> Value {
    // Plain data with string keys: serialising cannot fail.
    serde_json::to_value(config).unwrap_or(Value::Null)
}

fn diff(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff(x, y, &path, out),
                    _ => out.push(path),
                }
            }
        }
        (a, b) if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

/// `in_force` with the live keys of `wanted`: what runs after the update is applied.
pub fn with_live_parts(in_force: &AliciaConfig, wanted: &AliciaConfig) -> AliciaConfig {
    let mut next = in_force.clone();
    next.security.allow_anonymous = wanted.security.allow_anonymous;
    next.security.password_file = wanted.security.password_file.clone();
    next.security.acl_file = wanted.security.acl_file.clone();
    next.security.token_key_file = wanted.security.token_key_file.clone();
    next.limits = alicia_config::LimitsSection {
        max_queued_bytes_total: in_force.limits.max_queued_bytes_total,
        ..wanted.limits.clone()
    };
    next.mqtt.connect_timeout_ms = wanted.mqtt.connect_timeout_ms;
    next.mqtt.write_timeout_ms = wanted.mqtt.write_timeout_ms;
    next.voice = alicia_config::VoiceSection {
        enabled: in_force.voice.enabled,
        models: in_force.voice.models.clone(),
        home: in_force.voice.home.clone(),
        stt_threads: in_force.voice.stt_threads,
        stt: alicia_config::VoiceSttSection {
            recording_min_window_ms: in_force.voice.stt.recording_min_window_ms,
            ..wanted.voice.stt.clone()
        },
        ..wanted.voice.clone()
    };
    next.engine.log_level = wanted.engine.log_level.clone();
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_split_into_live_and_restart() {
        let old = AliciaConfig::default();
        let mut new = old.clone();
        new.limits.max_connections = 5;
        new.limits.max_queued_bytes_total = 1 << 20;
        new.router.segment_count = 3;
        new.security.acl_file = Some("/etc/acl".into());
        new.engine.log_level = "debug".into();
        let changed = changed_paths(&old, &new);
        assert_eq!(
            changed,
            [
                "engine.log_level",
                "limits.max_connections",
                "limits.max_queued_bytes_total",
                "router.segment_count",
                "security.acl_file"
            ]
        );
        let live: Vec<_> = changed.iter().filter(|p| is_live(p)).collect();
        assert_eq!(live, ["engine.log_level", "limits.max_connections", "security.acl_file"]);
        let next = with_live_parts(&old, &new);
        assert_eq!(
            changed_paths(&next, &new),
            ["limits.max_queued_bytes_total", "router.segment_count"],
            "only the restart part is pending"
        );
        assert!(is_live("voice.chat") && is_live("voice.chat.breaker.open_ms") && !is_live("voice.chatter"));
        assert!(
            is_live("voice.vad.threshold_db") && is_live("voice.stt.beam_size") && is_live("voice.tts.cache_bytes")
        );
        let mut chatty = old.clone();
        chatty.voice.chat = Some(alicia_config::VoiceChatSection::new("http://127.0.0.1:8081", "m"));
        assert_eq!(changed_paths(&old, &chatty), ["voice.chat"]);
        assert_eq!(with_live_parts(&old, &chatty), chatty);
        assert!(!is_live("security.acl_file_x") && !is_live("security.audit_file") && !is_live("limitsx"));
    }

    /// Every path `is_live` calls live is put in force by `with_live_parts`, and no other.
    #[test]
    fn every_live_path_is_carried_over() {
        let old = AliciaConfig::default();
        let mut json = serde_json::to_value(&old).unwrap();
        // Each number under `[limits]`, `[mqtt]`, `[voice]` and `[voice.stt]` changed, to
        // see them all.
        for section in ["/limits", "/mqtt", "/voice", "/voice/stt"] {
            for (_, value) in json.pointer_mut(section).unwrap().as_object_mut().unwrap() {
                if let Some(n) = value.as_u64() {
                    *value = if n > 0 { n - 1 } else { 1 }.into();
                } else if let Some(b) = value.as_bool() {
                    *value = (!b).into();
                }
            }
        }
        let new: AliciaConfig = serde_json::from_value(json).unwrap();
        let next = with_live_parts(&old, &new);
        let pending = changed_paths(&next, &new);
        for path in changed_paths(&old, &new) {
            assert_eq!(is_live(&path), !pending.contains(&path), "{path}");
        }
        for restart in [
            "limits.max_queued_bytes_total",
            "mqtt.io_threads",
            "voice.enabled",
            "voice.stt_threads",
            "voice.stt.recording_min_window_ms",
        ] {
            assert!(pending.contains(&restart.to_string()), "{restart}");
        }
    }
}
