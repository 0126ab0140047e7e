//! The `info` event: the answer to `describe`, which is how Home Assistant learns
//! what this server offers. It follows Wyoming's schema (every artifact with
//! `name`, `attribution`, `installed`, `description`, `version`) so the reference
//! client's parser accepts it.

use serde_json::{json, Value};

use crate::codec::Event;
use crate::config::WyomingConfig;

/// The speech-to-text program named in `info`.
pub const ASR_PROGRAM: &str = "alicia-whisper";
/// The text-to-speech program named in `info`.
pub const TTS_PROGRAM: &str = "alicia-piper";
/// The one language both models speak, as a BCP 47 primary tag.
pub const LANGUAGE: &str = "en";

/// Whether a client's language tag (`en`, `en-US`, `en_GB`, `EN`) is [`LANGUAGE`].
pub(crate) fn is_supported_language(tag: &str) -> bool {
    let primary = tag.split(['-', '_']).next().unwrap_or_default();
    primary.eq_ignore_ascii_case(LANGUAGE)
}

/// The `info` event for `config`, built once per server.
pub(crate) fn info_event(config: &WyomingConfig) -> Event {
    let version = env!("CARGO_PKG_VERSION");
    let asr = json!({
        "name": ASR_PROGRAM,
        "description": "Whisper speech-to-text in the Alicia bus",
        "attribution": {"name": "whisper.cpp", "url": "https://github.com/ggml-org/whisper.cpp"},
        "installed": true,
        "version": version,
        "models": [{
            "name": config.asr_model,
            "description": format!("Whisper {} (English)", config.asr_model),
            "attribution": {"name": "OpenAI", "url": "https://github.com/openai/whisper"},
            "installed": true,
            "version": Value::Null,
            "languages": [LANGUAGE],
        }],
        "supports_transcript_streaming": false,
        // End of speech is the client's to find: the server transcribes what it gets.
        "requires_external_vad": true,
    });
    let tts = json!({
        "name": TTS_PROGRAM,
        "description": "Piper text-to-speech in the Alicia bus",
        "attribution": {"name": "Piper", "url": "https://github.com/rhasspy/piper"},
        "installed": true,
        "version": version,
        "voices": [{
            "name": config.tts_voice,
            "description": format!("Piper voice {}", config.tts_voice),
            "attribution": {"name": "rhasspy", "url": "https://huggingface.co/rhasspy/piper-voices"},
            "installed": true,
            "version": Value::Null,
            "languages": [LANGUAGE],
            "speakers": Value::Null,
        }],
        "supports_synthesize_streaming": false,
    });
    Event::new("info").with_data(json!({
        "asr": [asr],
        "tts": [tts],
        "handle": [],
        "intent": [],
        "wake": [],
        "mic": [],
        "snd": [],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_artifact_has_the_fields_the_schema_requires() {
        let info = info_event(&WyomingConfig::default());
        assert_eq!(info.kind, "info");
        let asr = &info.data["asr"][0];
        let tts = &info.data["tts"][0];
        let model = &asr["models"][0];
        let voice = &tts["voices"][0];
        for artifact in [asr, tts, model, voice] {
            for field in ["name", "attribution", "installed", "description", "version"] {
                assert!(artifact.get(field).is_some(), "{field} missing in {artifact}");
            }
            assert!(artifact["attribution"]["name"].is_string() && artifact["attribution"]["url"].is_string());
            assert_eq!(artifact["installed"], true);
        }
        assert_eq!((asr["name"].as_str(), model["name"].as_str()), (Some("alicia-whisper"), Some("tiny.en")));
        assert_eq!((tts["name"].as_str(), voice["name"].as_str()), (Some("alicia-piper"), Some("en_US-joe-medium")));
        assert_eq!(model["languages"], json!(["en"]));
        assert_eq!(voice["languages"], json!(["en"]));
    }

    #[test]
    fn english_in_any_spelling_is_supported() {
        for tag in ["en", "EN", "en-US", "en_GB", "en-gb"] {
            assert!(is_supported_language(tag), "{tag}");
        }
        for tag in ["de", "", "eng", "fr-CA"] {
            assert!(!is_supported_language(tag), "{tag}");
        }
    }
}
