//! [`WhisperStage`]: collects each session's utterance as it streams in and
//! transcribes it at the session's end of stream.

use std::collections::HashMap;
use std::path::Path;

use alicia_pipeline::{
    AudioChunk, AudioFormat, Frame, FrameMeta, Outputs, Payload, SessionId, Stage, StageError, StageHints,
};
use bytes::Bytes;

use crate::whisper::{SttError, WhisperStt, MAX_SAMPLES};

/// Whisper as a pipeline stage.
///
/// Input: [`Payload::Audio`] chunks (s16le, mono, 16 kHz) of one utterance per session,
/// closed by [`Payload::EndOfStream`]. Output: one [`crate::Transcript`] as a text
/// payload, then the end of stream, both with the end-of-stream frame's meta (so
/// latency is measured from the end of speech). Sessions may interleave; each has its
/// own buffer. Other payloads pass through.
pub struct WhisperStage {
    stt: WhisperStt,
    utterances: HashMap<SessionId, Utterance>,
}

/// One session's audio so far: the chunks as they arrived, never copied.
struct Utterance {
    chunks: Vec<Bytes>,
    bytes: usize,
    /// The latest frame's meta, for a transcript emitted at shutdown.
    last: FrameMeta,
}

impl std::fmt::Debug for WhisperStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperStage").field("stt", &self.stt).field("open_sessions", &self.utterances.len()).finish()
    }
}

impl WhisperStage {
    /// A heavy stage: a few audio chunks may wait, the rest is backpressure.
    pub const INPUT_CAPACITY: usize = 4;
    /// The one audio layout the stage takes.
    pub const FORMAT: AudioFormat = AudioFormat::PCM16_MONO_16K;
    const MAX_BYTES: usize = MAX_SAMPLES * 2;

    pub fn new(stt: WhisperStt) -> Self {
        Self { stt, utterances: HashMap::new() }
    }

    /// Loads the model once, here, not per utterance.
    pub fn load(model: impl AsRef<Path>, threads: usize) -> Result<Self, SttError> {
        WhisperStt::load(model, threads).map(Self::new)
    }

    /// The model, for callers that also transcribe outside a pipeline.
    pub fn stt(&mut self) -> &mut WhisperStt {
        &mut self.stt
    }

    fn accept(&mut self, meta: &FrameMeta, chunk: &AudioChunk) -> Result<(), StageError> {
        if chunk.format != Self::FORMAT {
            return Err(StageError::frame(
                "unsupported_audio_format",
                format!(
                    "whisper takes s16le mono 16 kHz audio, got {} Hz, {} channel(s), {}-byte samples",
                    chunk.format.sample_rate, chunk.format.channels, chunk.format.sample_width
                ),
            ));
        }
        if !chunk.pcm.len().is_multiple_of(2) {
            return Err(stt_error(SttError::OddLength { len: chunk.pcm.len() }));
        }
        let utterance = self.utterances.entry(meta.session_id.clone()).or_insert_with(|| Utterance {
            chunks: Vec::new(),
            bytes: 0,
            last: meta.clone(),
        });
        if utterance.bytes + chunk.pcm.len() > Self::MAX_BYTES {
            let seconds = (utterance.bytes + chunk.pcm.len()) as f64 / Self::FORMAT.bytes_per_second() as f64;
            return Err(stt_error(SttError::TooLong { seconds }));
        }
        utterance.bytes += chunk.pcm.len();
        // A reference-counted handle on the frame's buffer: no copy.
        utterance.chunks.push(chunk.pcm.clone());
        utterance.last = meta.clone();
        Ok(())
    }

    /// Transcribes and forgets `session`'s utterance; pushes the transcript and an end
    /// of stream derived from `meta`.
    fn finish(&mut self, meta: &FrameMeta, out: &mut Outputs) -> Result<(), StageError> {
        let Some(utterance) = self.utterances.remove(&meta.session_id) else {
            return Err(stt_error(SttError::NoAudio));
        };
        let transcript = self.stt.transcribe_s16le(&utterance.chunks).map_err(stt_error)?;
        tracing::debug!(
            session = %meta.session_id,
            audio_ms = Self::FORMAT.duration_of(utterance.bytes).as_millis() as u64,
            confidence = transcript.confidence,
            "transcribed"
        );
        out.push(Frame::new(meta.clone(), transcript.to_payload()))?;
        out.push(Frame::end_of_stream(meta.clone()))
    }

    /// The chunks buffered for `session`.
    #[cfg(test)]
    pub(crate) fn buffered(&self, session: &SessionId) -> &[Bytes] {
        self.utterances.get(session).map_or(&[], |u| &u.chunks)
    }
}

fn stt_error(err: SttError) -> StageError {
    StageError::frame(err.error_type(), err)
}

impl Stage for WhisperStage {
    fn name(&self) -> &'static str {
        "whisper"
    }

    fn hints(&self) -> StageHints {
        StageHints::blocking(Self::INPUT_CAPACITY)
    }

    fn process(&mut self, frame: Frame, out: &mut Outputs) -> Result<(), StageError> {
        match &frame.payload {
            Payload::Audio(chunk) => self.accept(&frame.meta, chunk),
            Payload::EndOfStream => self.finish(&frame.meta, out),
            Payload::Text(_) | Payload::Message { .. } => out.push(frame),
        }
    }

    /// At shutdown, utterances that never got their end of stream are transcribed
    /// anyway (oldest session id first); the first failure is returned after all ran.
    fn flush(&mut self, out: &mut Outputs) -> Result<(), StageError> {
        let mut open: Vec<FrameMeta> = self.utterances.values().map(|u| u.last.clone()).collect();
        open.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        let mut first_error = None;
        for meta in open {
            if let Err(err) = self.finish(&meta, out) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod topology_tests;
