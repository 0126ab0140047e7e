//! What the stage emits for an utterance.

use alicia_pipeline::Payload;
use serde::{Deserialize, Serialize};

/// The text of one utterance, how sure the model was, and its language.
///
/// Until the pipeline has a transcript payload, it travels as a [`Payload::Text`]
/// holding this struct as JSON (`{"text":..,"confidence":..,"language":..}`, the
/// shape of the `alicia/voice/stt/response` payload), via [`Transcript::to_payload`]
/// and [`Transcript::from_payload`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// Trimmed; empty when the model heard no words.
    pub text: String,
    /// Mean probability of the text tokens, 0..=1 (0 when there are none).
    pub confidence: f32,
    /// ISO 639-1 code (`"en"`).
    pub language: String,
}

impl Transcript {
    pub fn to_payload(&self) -> Payload {
        // A struct of a string, a float and a string always serialises.
        Payload::Text(serde_json::to_string(self).expect("a transcript serialises"))
    }

    /// The transcript in a payload made by [`Transcript::to_payload`].
    pub fn from_payload(payload: &Payload) -> Option<Self> {
        match payload {
            Payload::Text(json) => serde_json::from_str(json).ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_text_payload() {
        let transcript = Transcript { text: "lights \"on\"".into(), confidence: 0.875, language: "en".into() };
        let payload = transcript.to_payload();
        let Payload::Text(json) = &payload else { panic!("{payload:?}") };
        assert_eq!(json, r#"{"text":"lights \"on\"","confidence":0.875,"language":"en"}"#);
        assert_eq!(Transcript::from_payload(&payload), Some(transcript));
        assert_eq!(Transcript::from_payload(&Payload::Text("plain".into())), None);
        assert_eq!(Transcript::from_payload(&Payload::EndOfStream), None);
    }
}
