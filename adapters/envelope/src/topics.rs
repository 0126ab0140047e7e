//! The canonical `alicia/...` topic map (DESIGN.md, "The envelope and the
//! topics"), where refusals are reported, which topics carry envelopes, MQTT
//! filter matching ([`topic_matches`]) and legacy spellings ([`TopicAliases`]).
//!
//! Functions that build a topic from a name (`health`, `device_command`, ...)
//! expect one topic level: no `/`, `+`, `#` or NUL. Names come from outside
//! (registrations), so callers check them once with [`is_topic_level`] when
//! they are first seen; the builders only `debug_assert!` it.

mod aliases;
mod matching;

pub use aliases::{AliasError, TopicAliases};
pub use matching::{is_valid_filter, is_valid_topic, topic_matches};

/// Every canonical topic starts with this.
pub const PREFIX: &str = "alicia/";

// alicia/system/discovery/...
pub const SYSTEM_DISCOVERY_REGISTER: &str = "alicia/system/discovery/register";
pub const SYSTEM_DISCOVERY_UNREGISTER: &str = "alicia/system/discovery/unregister";
pub const SYSTEM_DISCOVERY_HEARTBEAT: &str = "alicia/system/discovery/heartbeat";
pub const SYSTEM_DISCOVERY_CAPABILITIES: &str = "alicia/system/discovery/capabilities";
pub const SYSTEM_DISCOVERY_UPDATE: &str = "alicia/system/discovery/update";

// alicia/system/health/...
/// Ask every service to report its health now.
pub const SYSTEM_HEALTH_CHECK: &str = "alicia/system/health/check";
/// Filter for every service's health report. It also matches
/// [`SYSTEM_HEALTH_CHECK`], so a service must not be called `check`.
pub const SYSTEM_HEALTH_ALL: &str = "alicia/system/health/+";

// alicia/system/config, registry, security
pub const SYSTEM_CONFIG_UPDATE: &str = "alicia/system/config/update";
pub const SYSTEM_CONFIG_REQUEST: &str = "alicia/system/config/request";
/// The engine's config service answers requests and updates here (correlated).
pub const SYSTEM_CONFIG_RESPONSE: &str = "alicia/system/config/response";
/// ... and says here why a message on request or update was not an envelope at all.
pub const SYSTEM_CONFIG_ERROR: &str = "alicia/system/config/error";
pub const SYSTEM_REGISTRY_REGISTER: &str = "alicia/system/registry/register";
pub const SYSTEM_REGISTRY_ADD: &str = "alicia/system/registry/add";
pub const SYSTEM_REGISTRY_REMOVE: &str = "alicia/system/registry/remove";
pub const SYSTEM_REGISTRY_UPDATE: &str = "alicia/system/registry/update";
pub const SYSTEM_SECURITY_AUTH: &str = "alicia/system/security/auth";

// alicia/voice/... stages
pub const VOICE_STT_REQUEST: &str = "alicia/voice/stt/request";
pub const VOICE_STT_RESPONSE: &str = "alicia/voice/stt/response";
pub const VOICE_STT_ERROR: &str = "alicia/voice/stt/error";
pub const VOICE_AI_REQUEST: &str = "alicia/voice/ai/request";
pub const VOICE_AI_RESPONSE: &str = "alicia/voice/ai/response";
pub const VOICE_AI_CONTEXT: &str = "alicia/voice/ai/context";
pub const VOICE_AI_ERROR: &str = "alicia/voice/ai/error";
pub const VOICE_TTS_REQUEST: &str = "alicia/voice/tts/request";
pub const VOICE_TTS_RESPONSE: &str = "alicia/voice/tts/response";
pub const VOICE_TTS_AUDIO: &str = "alicia/voice/tts/audio";
pub const VOICE_TTS_ERROR: &str = "alicia/voice/tts/error";
pub const VOICE_COMMAND_ROUTE: &str = "alicia/voice/command/route";
pub const VOICE_COMMAND_EXECUTE: &str = "alicia/voice/command/execute";
pub const VOICE_COMMAND_RESULT: &str = "alicia/voice/command/result";
pub const VOICE_COMMAND_ERROR: &str = "alicia/voice/command/error";

// alicia/voice/audio/{site}/...
/// Filter for streamed PCM frames of every site: raw bytes, not envelopes.
pub const VOICE_AUDIO_FRAME_ALL: &str = "alicia/voice/audio/+/frame";

// alicia/devices/...
/// Filter for audio sent to every device: raw bytes, not envelopes.
pub const DEVICES_AUDIO_ALL: &str = "alicia/devices/+/audio";
pub const DEVICES_SPEAKERS_ANNOUNCE: &str = "alicia/devices/speakers/announce";
pub const DEVICES_SENSORS_TELEMETRY: &str = "alicia/devices/sensors/telemetry";

// alicia/integration/...
pub const INTEGRATION_HA_STATE: &str = "alicia/integration/ha/state";
pub const INTEGRATION_HA_COMMAND: &str = "alicia/integration/ha/command";
pub const INTEGRATION_API_REQUEST: &str = "alicia/integration/api/request";
pub const INTEGRATION_API_RESPONSE: &str = "alicia/integration/api/response";

// alicia/monitoring/...
pub const MONITORING_METRICS: &str = "alicia/monitoring/metrics";
pub const MONITORING_ALERTS: &str = "alicia/monitoring/alerts";
pub const MONITORING_LOGS: &str = "alicia/monitoring/logs";

/// Topics whose payload is raw bytes (PCM), never an envelope.
pub const BINARY_TOPIC_FILTERS: [&str; 2] = [VOICE_AUDIO_FRAME_ALL, DEVICES_AUDIO_ALL];

/// `alicia/system/health/{service}`: one service's health report.
pub fn health(service: &str) -> String {
    level_topic("alicia/system/health/", service, "")
}

/// `alicia/voice/audio/{site}/start`: a site begins streaming an utterance.
pub fn audio_start(site: &str) -> String {
    level_topic("alicia/voice/audio/", site, "/start")
}

/// `alicia/voice/audio/{site}/frame`: one binary PCM frame.
pub fn audio_frame(site: &str) -> String {
    level_topic("alicia/voice/audio/", site, "/frame")
}

/// `alicia/voice/audio/{site}/stop`: the site stopped streaming.
pub fn audio_stop(site: &str) -> String {
    level_topic("alicia/voice/audio/", site, "/stop")
}

/// `alicia/devices/{device}/status`.
pub fn device_status(device: &str) -> String {
    level_topic("alicia/devices/", device, "/status")
}

/// `alicia/devices/{device}/command`.
pub fn device_command(device: &str) -> String {
    level_topic("alicia/devices/", device, "/command")
}

/// `alicia/devices/{device}/data`.
pub fn device_data(device: &str) -> String {
    level_topic("alicia/devices/", device, "/data")
}

/// `alicia/devices/{device}/config`.
pub fn device_config(device: &str) -> String {
    level_topic("alicia/devices/", device, "/config")
}

/// `alicia/devices/{device}/audio`: binary audio for a speaker.
pub fn device_audio(device: &str) -> String {
    level_topic("alicia/devices/", device, "/audio")
}

/// Whether `name` can stand as one topic level in the builders above:
/// non-empty, and free of `/`, `+`, `#` and NUL.
pub fn is_topic_level(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '+', '#', '\0'])
}

fn level_topic(head: &str, level: &str, tail: &str) -> String {
    debug_assert!(is_topic_level(level), "`{level}` is not a single topic level");
    let mut topic = String::with_capacity(head.len() + level.len() + tail.len());
    topic.push_str(head);
    topic.push_str(level);
    topic.push_str(tail);
    topic
}

/// Where to report a refused message that arrived on `topic` (canonical, so
/// resolve aliases first).
///
/// The voice stages with an error topic get theirs: anything under
/// `alicia/voice/{stt,ai,tts,command}/` goes to that stage's `.../error`.
/// Everything else, and a message that was itself on an error topic (so a
/// faulty reporter cannot keep a stage's error stream busy), goes to
/// `alicia/monitoring/alerts`.
pub fn error_topic_for(topic: &str) -> &'static str {
    let Some(rest) = topic.strip_prefix("alicia/voice/") else {
        return MONITORING_ALERTS;
    };
    let Some((stage, action)) = rest.split_once('/') else {
        return MONITORING_ALERTS;
    };
    if action == "error" {
        return MONITORING_ALERTS;
    }
    match stage {
        "stt" => VOICE_STT_ERROR,
        "ai" => VOICE_AI_ERROR,
        "tts" => VOICE_TTS_ERROR,
        "command" => VOICE_COMMAND_ERROR,
        _ => MONITORING_ALERTS,
    }
}

/// Whether messages on `topic` (canonical, so resolve aliases first) are JSON
/// envelopes the engine must validate: every `alicia/` topic except the binary
/// audio ones in [`BINARY_TOPIC_FILTERS`]. Topics outside `alicia/` (`$SYS`,
/// a device vendor's own) are not the bus's to police.
pub fn is_request_topic(topic: &str) -> bool {
    topic.starts_with(PREFIX) && !BINARY_TOPIC_FILTERS.iter().any(|filter| topic_matches(filter, topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_spell_the_design_topics() {
        assert_eq!(health("stt_service"), "alicia/system/health/stt_service");
        assert_eq!(audio_start("kitchen"), "alicia/voice/audio/kitchen/start");
        assert_eq!(audio_frame("kitchen"), "alicia/voice/audio/kitchen/frame");
        assert_eq!(audio_stop("kitchen"), "alicia/voice/audio/kitchen/stop");
        assert_eq!(device_status("lamp_1"), "alicia/devices/lamp_1/status");
        assert_eq!(device_command("lamp_1"), "alicia/devices/lamp_1/command");
        assert_eq!(device_data("lamp_1"), "alicia/devices/lamp_1/data");
        assert_eq!(device_config("lamp_1"), "alicia/devices/lamp_1/config");
        assert_eq!(device_audio("lamp_1"), "alicia/devices/lamp_1/audio");
        assert!(topic_matches(SYSTEM_HEALTH_ALL, &health("tts_service")));
    }

    #[test]
    fn topic_levels_exclude_separators_and_wildcards() {
        assert!(is_topic_level("sonos_kitchen_001"));
        for bad in ["", "a/b", "+", "a#", "nul\0"] {
            assert!(!is_topic_level(bad), "{bad:?}");
        }
    }

    #[test]
    fn stage_topics_report_on_their_error_topic() {
        assert_eq!(error_topic_for(VOICE_STT_REQUEST), VOICE_STT_ERROR);
        assert_eq!(error_topic_for(VOICE_STT_RESPONSE), VOICE_STT_ERROR);
        assert_eq!(error_topic_for(VOICE_AI_CONTEXT), VOICE_AI_ERROR);
        assert_eq!(error_topic_for(VOICE_TTS_REQUEST), VOICE_TTS_ERROR);
        assert_eq!(error_topic_for(VOICE_COMMAND_EXECUTE), VOICE_COMMAND_ERROR);
        assert_eq!(error_topic_for("alicia/voice/stt/request/extra"), VOICE_STT_ERROR);
    }

    #[test]
    fn other_topics_report_on_alerts() {
        for topic in [
            VOICE_STT_ERROR,
            "alicia/voice/stt",
            "alicia/voice/audio/kitchen/start",
            SYSTEM_HEALTH_CHECK,
            &device_command("lamp_1"),
            "alicia/voice/sttx/request",
            "elsewhere/voice/stt/request",
        ] {
            assert_eq!(error_topic_for(topic), MONITORING_ALERTS, "{topic}");
        }
    }

    #[test]
    fn binary_audio_topics_carry_no_envelopes() {
        assert!(!is_request_topic(&audio_frame("kitchen")));
        assert!(!is_request_topic(&device_audio("sonos_kitchen_001")));
        assert!(is_request_topic(&audio_start("kitchen")));
        assert!(is_request_topic(&audio_stop("kitchen")));
        assert!(is_request_topic(VOICE_TTS_AUDIO));
        assert!(is_request_topic(VOICE_STT_REQUEST));
        assert!(is_request_topic(&device_command("sonos_kitchen_001")));
        assert!(is_request_topic("alicia/voice/audio/kitchen/frame/extra"), "not the frame topic itself");
        assert!(!is_request_topic("$SYS/broker/uptime"));
        assert!(!is_request_topic("zigbee2mqtt/lamp"));
        assert!(!is_request_topic("alicia"));
    }
}
