//! The `synthesize` request: which text, which voice, and how the backend's PCM is
//! cut into `audio-chunk` payloads.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::RequestError;
use crate::info::{is_supported_language, LANGUAGE, TTS_PROGRAM};

/// The text of a `synthesize` event, once its voice is known to be ours.
///
/// A voice is chosen by `name` (ours, or the program's name) or by `language`;
/// `speaker` is ignored because the voice has one speaker. Text longer than
/// `max_chars` characters is refused before any of it reaches the model.
pub(crate) fn synthesize_text(
    data: &Map<String, Value>,
    voice_name: &str,
    max_chars: usize,
) -> Result<String, RequestError> {
    let text = match data.get("text") {
        Some(Value::String(text)) => text,
        _ => return Err(RequestError::invalid("synthesize", "`text` must be a string")),
    };
    match data.get("voice") {
        None | Some(Value::Null) => {}
        Some(Value::Object(voice)) => check_voice(voice, voice_name)?,
        Some(_) => return Err(RequestError::invalid("synthesize", "`voice` must be an object")),
    }
    if text.trim().is_empty() {
        return Err(RequestError::EmptyText);
    }
    // Counting stops just past the limit: the refusal needs no more.
    let chars = text.chars().take(max_chars + 1).count();
    if chars > max_chars {
        return Err(RequestError::TextTooLong { chars: text.chars().count(), limit: max_chars });
    }
    Ok(text.clone())
}

fn check_voice(voice: &Map<String, Value>, voice_name: &str) -> Result<(), RequestError> {
    let field = |name: &str| match voice.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.as_str())),
        Some(_) => Err(RequestError::invalid("synthesize", format!("`voice.{name}` must be a string"))),
    };
    if let Some(name) = field("name")? {
        if name != voice_name && name != TTS_PROGRAM {
            return Err(RequestError::UnknownVoice { voice: name.to_owned(), available: voice_name.to_owned() });
        }
    } else if let Some(language) = field("language")? {
        if !is_supported_language(language) {
            return Err(RequestError::UnsupportedLanguage { language: language.to_owned(), supported: LANGUAGE });
        }
    }
    Ok(())
}

/// `pcm` cut into payloads of at most `chunk_bytes`, each a slice of `pcm` (no copy).
/// A sentence's last piece may be short: topping it up from the next sentence would
/// delay it and cost a copy.
pub(crate) fn chunks(pcm: &Bytes, chunk_bytes: usize) -> impl Iterator<Item = Bytes> + '_ {
    debug_assert!(chunk_bytes > 0);
    (0..pcm.len()).step_by(chunk_bytes).map(move |start| pcm.slice(start..pcm.len().min(start + chunk_bytes)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(value: Value) -> Result<String, String> {
        synthesize_text(value.as_object().unwrap(), "en_US-joe-medium", 12).map_err(|e| e.to_string())
    }

    #[test]
    fn text_with_our_voice_or_none() {
        assert_eq!(text(json!({"text": "Hello."})), Ok("Hello.".into()));
        assert_eq!(text(json!({"text": "Twelve chärs"})), Ok("Twelve chärs".into()), "characters, not bytes");
        assert_eq!(text(json!({"text": "Hi", "voice": {"name": "en_US-joe-medium", "speaker": "x"}})), Ok("Hi".into()));
        assert_eq!(text(json!({"text": "Hi", "voice": {"name": "alicia-piper"}})), Ok("Hi".into()));
        assert_eq!(text(json!({"text": "Hi", "voice": {"language": "en_US"}})), Ok("Hi".into()));
        assert_eq!(text(json!({"text": "Hi", "voice": {}})), Ok("Hi".into()));
    }

    #[test]
    fn refusals_say_why() {
        let cases = [
            (json!({}), "invalid `synthesize` event: `text` must be a string"),
            (json!({"text": 3}), "invalid `synthesize` event: `text` must be a string"),
            (json!({"text": " \n"}), "nothing to synthesize: the text is empty"),
            (
                json!({"text": "Thirteen chrs"}),
                "text of 13 characters exceeds the 12-character limit of one synthesize",
            ),
            (json!({"text": "Hi", "voice": "joe"}), "invalid `synthesize` event: `voice` must be an object"),
            (json!({"text": "Hi", "voice": {"name": 1}}), "invalid `synthesize` event: `voice.name` must be a string"),
            (
                json!({"text": "Hi", "voice": {"name": "de_DE-thorsten-medium"}}),
                "unknown voice \"de_DE-thorsten-medium\": this server speaks en_US-joe-medium",
            ),
            (
                json!({"text": "Hi", "voice": {"language": "fr"}}),
                "unsupported language \"fr\": this server understands en",
            ),
        ];
        for (data, message) in cases {
            assert_eq!(text(data.clone()), Err(message.to_owned()), "{data}");
        }
    }

    #[test]
    fn pcm_is_cut_into_slices() {
        let pcm = Bytes::from(vec![7u8; 10]);
        let pieces: Vec<Bytes> = chunks(&pcm, 4).collect();
        assert_eq!(pieces.iter().map(Bytes::len).collect::<Vec<_>>(), [4, 4, 2]);
        assert_eq!(pieces[1].as_ptr(), pcm[4..].as_ptr());
        assert_eq!(chunks(&Bytes::new(), 4).count(), 0);
    }
}
