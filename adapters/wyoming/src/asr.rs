//! One connection's speech-to-text state: `transcribe`, then `audio-start`,
//! `audio-chunk`s and `audio-stop`, which hands the utterance to the backend.
//!
//! Every utterance gets exactly one answer: a transcript after `audio-stop`, or one
//! error as soon as something is wrong. After an error the rest of that utterance is
//! dropped up to its `audio-stop`, so the next request starts clean. The order is
//! lenient: audio without `transcribe` is transcribed too, and a chunk may state the
//! format when `audio-start` did not.

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::audio::{to_backend_format, AudioFormat};
use crate::error::RequestError;
use crate::info::{is_supported_language, LANGUAGE};

#[derive(Debug, Default)]
enum State {
    #[default]
    Idle,
    Receiving(Utterance),
    /// The utterance was refused; its remaining audio is dropped.
    Discarding,
}

/// Chunks smaller than this count as small (Home Assistant's are 2 KiB).
const SMALL_CHUNK: usize = 256;
/// Small chunks kept as slices before the rest are copied together.
const SMALL_SLICES: usize = 16;
/// Small chunks copied together are kept in pieces of about this size.
const COPIED_PIECE: usize = 4096;

/// The audio of one utterance as received.
///
/// Chunks are slices of the read buffers, joined once at `audio-stop`. A slice costs
/// 32 bytes and keeps its whole read buffer alive, so a client sending two-byte chunks
/// would make the server hold many times the audio it counts; past `SMALL_SLICES` small
/// chunks are copied together instead, and memory stays about the audio's size.
#[derive(Debug, Default)]
pub(crate) struct Utterance {
    /// Known from `audio-start` or, failing that, the first chunk.
    format: Option<AudioFormat>,
    chunks: Vec<Bytes>,
    small_slices: usize,
    /// Small chunks copied together, not yet a chunk.
    tail: BytesMut,
    /// All of it, chunks and tail.
    bytes: usize,
}

impl Utterance {
    fn keep(&mut self, payload: Bytes) {
        self.bytes += payload.len();
        let small = payload.len() < SMALL_CHUNK;
        if !small || self.small_slices < SMALL_SLICES {
            self.small_slices += usize::from(small);
            self.close_tail();
            self.chunks.push(payload);
        } else {
            self.tail.extend_from_slice(&payload);
            if self.tail.len() >= COPIED_PIECE {
                self.close_tail();
            }
        }
    }

    fn close_tail(&mut self) {
        if !self.tail.is_empty() {
            self.chunks.push(self.tail.split().freeze());
        }
    }

    /// The audio in the backend's format. Joining and converting take time in
    /// proportion to the audio, so this runs on the blocking pool with the model.
    pub(crate) fn into_backend_pcm(mut self) -> Bytes {
        let format = self.format.expect("an utterance with audio has a format");
        self.close_tail();
        to_backend_format(&self.chunks, format)
    }
}

/// How much audio one utterance may bring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UtteranceLimits {
    /// In seconds of the utterance's own format.
    pub seconds: u32,
    /// In bytes as received, whatever the format.
    pub bytes: usize,
}

#[derive(Debug)]
pub(crate) struct Transcription {
    state: State,
    limits: UtteranceLimits,
}

impl Transcription {
    pub(crate) fn new(limits: UtteranceLimits) -> Self {
        Self { state: State::Idle, limits }
    }

    /// A `transcribe` request: anything in progress is abandoned.
    pub(crate) fn on_transcribe(&mut self, data: &Map<String, Value>) -> Result<(), RequestError> {
        self.state = State::Idle;
        let language = match data.get("language") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::String(language)) => language,
            Some(_) => return self.refuse(RequestError::invalid("transcribe", "`language` must be a string")),
        };
        if !is_supported_language(language) {
            return self.refuse(RequestError::UnsupportedLanguage { language: language.clone(), supported: LANGUAGE });
        }
        Ok(())
    }

    pub(crate) fn on_audio_start(&mut self, data: &Map<String, Value>) -> Result<(), RequestError> {
        if matches!(self.state, State::Discarding) {
            return Ok(());
        }
        let format = match AudioFormat::from_data("audio-start", data) {
            Ok(Some(format)) => format,
            Ok(None) => {
                return self.refuse(RequestError::invalid("audio-start", "`rate`, `width` and `channels` are required"))
            }
            Err(err) => return self.refuse(err),
        };
        if let Err(err) = format.check_convertible() {
            return self.refuse(err);
        }
        if let State::Receiving(previous) = &self.state {
            tracing::debug!(dropped_bytes = previous.bytes, "audio-start before audio-stop; starting over");
        }
        self.state = State::Receiving(Utterance { format: Some(format), ..Utterance::default() });
        Ok(())
    }

    pub(crate) fn on_audio_chunk(&mut self, data: &Map<String, Value>, payload: Bytes) -> Result<(), RequestError> {
        let stated = match AudioFormat::from_data("audio-chunk", data) {
            Ok(stated) => stated,
            Err(err) if !matches!(self.state, State::Discarding) => return self.refuse(err),
            Err(_) => None,
        };
        let utterance = match &mut self.state {
            State::Discarding => return Ok(()),
            State::Idle => {
                self.state = State::Receiving(Utterance::default());
                let State::Receiving(utterance) = &mut self.state else { unreachable!("just set") };
                utterance
            }
            State::Receiving(utterance) => utterance,
        };
        let format = match (utterance.format, stated) {
            (Some(expected), Some(stated)) if expected != stated => {
                return self.refuse(RequestError::UnsupportedAudio(format!(
                    "an audio-chunk of {stated} in a stream that started as {expected}"
                )));
            }
            (Some(format), _) => format,
            (None, Some(stated)) => {
                if let Err(err) = stated.check_convertible() {
                    return self.refuse(err);
                }
                utterance.format = Some(stated);
                stated
            }
            (None, None) => {
                return self.refuse(RequestError::invalid(
                    "audio-chunk",
                    "`rate`, `width` and `channels` are required when no audio-start gave them",
                ));
            }
        };
        if !payload.len().is_multiple_of(format.frame_bytes()) {
            return self.refuse(RequestError::UnsupportedAudio(format!(
                "an audio-chunk of {} bytes is not a whole number of {}-byte frames",
                payload.len(),
                format.frame_bytes()
            )));
        }
        let total = utterance.bytes + payload.len();
        if total > format.bytes_for_seconds(self.limits.seconds) {
            return self.refuse(RequestError::AudioTooLong { seconds: self.limits.seconds });
        }
        if total > self.limits.bytes {
            return self.refuse(RequestError::AudioTooLarge { limit: self.limits.bytes });
        }
        if !payload.is_empty() {
            utterance.keep(payload);
        }
        Ok(())
    }

    /// `Ok(Some(utterance))`: audio to transcribe. `Ok(None)`: the utterance was
    /// already refused and answered.
    pub(crate) fn on_audio_stop(&mut self) -> Result<Option<Utterance>, RequestError> {
        match std::mem::take(&mut self.state) {
            State::Discarding => Ok(None),
            State::Receiving(utterance) if utterance.bytes > 0 => Ok(Some(utterance)),
            State::Idle | State::Receiving(_) => Err(RequestError::NoAudio),
        }
    }

    fn refuse<T>(&mut self, err: RequestError) -> Result<T, RequestError> {
        self.state = State::Discarding;
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn limits(bytes: usize) -> UtteranceLimits {
        UtteranceLimits { seconds: 30, bytes }
    }

    fn mono_16k() -> Map<String, Value> {
        data(json!({"rate": 16000, "width": 2, "channels": 1}))
    }

    #[test]
    fn chunks_are_joined_at_audio_stop() {
        let mut asr = Transcription::new(limits(1024));
        asr.on_transcribe(&data(json!({"language": "en-US"}))).unwrap();
        asr.on_audio_start(&mono_16k()).unwrap();
        asr.on_audio_chunk(&mono_16k(), Bytes::from_static(&[1, 0, 2, 0])).unwrap();
        asr.on_audio_chunk(&Map::new(), Bytes::from_static(&[3, 0])).unwrap();
        assert_eq!(asr.on_audio_stop().unwrap().unwrap().into_backend_pcm(), Bytes::from_static(&[1, 0, 2, 0, 3, 0]));
        assert_eq!(asr.on_audio_stop().unwrap_err(), RequestError::NoAudio);
    }

    #[test]
    fn audio_alone_is_enough_and_a_chunk_may_carry_the_format() {
        let mut asr = Transcription::new(limits(1024));
        let stereo = data(json!({"rate": 16000, "width": 2, "channels": 2}));
        asr.on_audio_chunk(&stereo, Bytes::from_static(&[2, 0, 4, 0])).unwrap();
        assert_eq!(asr.on_audio_stop().unwrap().unwrap().into_backend_pcm(), Bytes::from_static(&[3, 0]));
    }

    #[test]
    fn a_refused_utterance_is_dropped_up_to_its_stop() {
        let mut asr = Transcription::new(limits(1024));
        let err = asr.on_transcribe(&data(json!({"language": "de"}))).unwrap_err();
        assert_eq!(err.to_string(), "unsupported language \"de\": this server understands en");
        asr.on_audio_start(&mono_16k()).unwrap();
        asr.on_audio_chunk(&data(json!({"rate": 1})), Bytes::from_static(&[1])).unwrap();
        assert!(matches!(asr.on_audio_stop(), Ok(None)));
        asr.on_audio_chunk(&mono_16k(), Bytes::from_static(&[1, 0])).unwrap();
        assert_eq!(asr.on_audio_stop().unwrap().unwrap().into_backend_pcm().len(), 2);
    }

    #[test]
    fn every_refusal_names_the_problem() {
        let cases: [(&[(&str, Value)], &str); 6] = [
            (&[("audio-start", json!({"rate": 44100, "width": 2, "channels": 1}))], "unsupported audio format: 44100 Hz (send 16000 Hz; 8000, 32000 and 48000 Hz are converted)"),
            (&[("audio-start", json!({}))], "invalid `audio-start` event: `rate`, `width` and `channels` are required"),
            (&[("audio-chunk", json!({}))], "invalid `audio-chunk` event: `rate`, `width` and `channels` are required when no audio-start gave them"),
            (&[("audio-start", json!({"rate": 16000, "width": 2, "channels": 1})), ("audio-chunk", json!({"rate": 48000, "width": 2, "channels": 1}))], "unsupported audio format: an audio-chunk of 48000 Hz, 2-byte samples, 1 channel(s) in a stream that started as 16000 Hz, 2-byte samples, 1 channel(s)"),
            (&[("audio-chunk", json!({"rate": 16000, "width": 2, "channels": 2}))], "unsupported audio format: an audio-chunk of 6 bytes is not a whole number of 4-byte frames"),
            (&[("audio-chunk", json!({"rate": 16000, "width": 2, "channels": 1})), ("audio-chunk", json!({"rate": 16000, "width": 2, "channels": 1}))], "audio exceeds the 10-byte limit of one utterance"),
        ];
        for (events, message) in cases {
            let mut asr = Transcription::new(limits(10));
            let mut outcome = Ok(());
            for (kind, fields) in events {
                let fields = data(fields.clone());
                let payload = Bytes::from_static(&[0; 6]);
                outcome = match *kind {
                    "audio-start" => asr.on_audio_start(&fields),
                    _ => asr.on_audio_chunk(&fields, payload),
                };
            }
            assert_eq!(outcome.unwrap_err().to_string(), message);
            assert!(matches!(asr.on_audio_stop(), Ok(None)), "{message}");
        }
    }

    #[test]
    fn the_seconds_limit_is_counted_in_the_stream_s_own_format() {
        let mut asr = Transcription::new(UtteranceLimits { seconds: 1, bytes: 1 << 20 });
        let stereo_8k = data(json!({"rate": 8000, "width": 2, "channels": 2}));
        asr.on_audio_start(&stereo_8k).unwrap();
        // One second at 8 kHz stereo is 32,000 bytes: 8,000 frames of 4.
        asr.on_audio_chunk(&stereo_8k, Bytes::from(vec![0; 32_000])).unwrap();
        let err = asr.on_audio_chunk(&stereo_8k, Bytes::from_static(&[0; 4])).unwrap_err();
        assert_eq!(err.to_string(), "audio exceeds 1 s, the longest utterance this server transcribes");
        assert_eq!(err.reason(), crate::ErrorReason::AudioTooLong);
    }

    #[test]
    fn tiny_chunks_are_copied_together() {
        let mut asr = Transcription::new(limits(1 << 20));
        let mut sent = Vec::new();
        for i in 0..30_000i16 {
            sent.extend_from_slice(&i.to_le_bytes());
            asr.on_audio_chunk(&mono_16k(), Bytes::copy_from_slice(&i.to_le_bytes())).unwrap();
        }
        let State::Receiving(utterance) = &asr.state else { panic!("receiving") };
        assert!(utterance.chunks.len() <= SMALL_SLICES + 60_000 / COPIED_PIECE + 1, "{}", utterance.chunks.len());
        assert_eq!(asr.on_audio_stop().unwrap().unwrap().into_backend_pcm(), Bytes::from(sent));
    }

    #[test]
    fn a_stop_without_audio_is_an_error() {
        let mut asr = Transcription::new(limits(10));
        assert_eq!(asr.on_audio_stop().unwrap_err().to_string(), "audio-stop without any audio");
        asr.on_audio_start(&mono_16k()).unwrap();
        assert_eq!(asr.on_audio_stop().unwrap_err(), RequestError::NoAudio);
        let err = asr.on_transcribe(&data(json!({"language": 5}))).unwrap_err();
        assert_eq!(err.to_string(), "invalid `transcribe` event: `language` must be a string");
    }
}
