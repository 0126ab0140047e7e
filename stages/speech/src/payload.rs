//! The voice's frames: what they carry ([`Payload`]) and what each keeps of its
//! session's way through the stages ([`VoiceMeta`]: the [`Timeline`], whether a reply
//! goes on). [`Speech`] names them for the runtime, and the aliases below spare every
//! stage the type parameter.

use std::sync::Arc;

use alicia_pipeline::Domain;
use bytes::Bytes;

use crate::audio::{AudioChunk, AudioFormat};
use crate::speech::{PauseSignal, Timeline, Transcript};

/// The voice, as the runtime's [`Domain`]: voice stages implement
/// `alicia_pipeline::Stage<Speech>`.
#[derive(Clone, Copy, Debug)]
pub struct Speech;

impl Domain for Speech {
    type Payload = Payload;
    type Meta = VoiceMeta;
}

pub type Frame = alicia_pipeline::Frame<Speech>;
pub type FrameMeta = alicia_pipeline::FrameMeta<VoiceMeta>;
pub type Outputs = alicia_pipeline::Outputs<Speech>;
pub type EdgeSender = alicia_pipeline::EdgeSender<Speech>;
pub type TopologyConfig = alicia_pipeline::TopologyConfig<Speech>;
pub type RunningTopology = alicia_pipeline::RunningTopology<Speech>;

/// What every voice frame keeps of its session, in `frame.meta.domain`.
#[derive(Clone, Debug, Default)]
pub struct VoiceMeta {
    /// On a reply's text: more of the same reply follows (a chat answer spoken sentence
    /// by sentence as it streams in), so the TTS keeps the reply's audio stream open;
    /// the piece without it ends the reply.
    pub reply_continues: bool,
    /// The session's way through the voice stages so far: shared, and `None` until a
    /// stage stamps it, so the audio frames that make up most traffic stay small.
    timeline: Option<Arc<Timeline>>,
}

impl VoiceMeta {
    /// The session's timeline so far (all empty until a stage stamps it).
    pub fn timeline(&self) -> Timeline {
        self.timeline.as_deref().copied().unwrap_or_default()
    }

    /// Records a step in the timeline: `meta.domain.stamp(|t| t.transcribed = Some(now))`.
    /// Frames cloned before keep what they had.
    pub fn stamp(&mut self, step: impl FnOnce(&mut Timeline)) {
        step(Arc::make_mut(self.timeline.get_or_insert_with(Default::default)));
    }
}

/// What a frame carries. A closed set: adding a variant means adding it here and to
/// [`Payload::kind`]; the compiler then points at every stage that must decide.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    Audio(AudioChunk),
    Text(String),
    /// What was heard in an utterance (stt → intent).
    Transcript(Transcript),
    /// Text a stage may get ready for (synthesise into its cache) without emitting
    /// anything: the reply to a provisional transcript, made at `pause`, which says
    /// whether it is still worth it.
    Prepare {
        text: String,
        pause: PauseSignal,
    },
    /// Speech paused: the utterance may end here, or the audio that follows may go on.
    /// Stages may start on an answer; only the end of stream makes it final. The signal
    /// says, live, whether the user has gone on since.
    Pause(PauseSignal),
    /// An MQTT message moving through message stages; `body` is the raw payload.
    Message {
        topic: String,
        body: Bytes,
    },
    /// The session has no more frames on this path: stages flush per-session state
    /// (vad closes the utterance, tts finishes its sentence).
    EndOfStream,
}

impl Payload {
    /// A stable label for logs and metrics (bounded: one per variant).
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Audio(_) => "audio",
            Payload::Text(_) => "text",
            Payload::Transcript(_) => "transcript",
            Payload::Prepare { .. } => "prepare",
            Payload::Pause(_) => "pause",
            Payload::Message { .. } => "message",
            Payload::EndOfStream => "end_of_stream",
        }
    }
}

/// The voice's ways to make and read a [`Frame`].
pub trait SpeechFrame {
    fn audio(meta: FrameMeta, pcm: Bytes, format: AudioFormat) -> Self;
    fn text(meta: FrameMeta, text: impl Into<String>) -> Self;
    fn end_of_stream(meta: FrameMeta) -> Self;
    /// The audio chunk, if this is an audio frame.
    fn as_audio(&self) -> Option<&AudioChunk>;
    /// A reference-counted handle on the PCM bytes; no copy.
    fn pcm(&self) -> Option<Bytes>;
    fn is_end_of_stream(&self) -> bool;
}

impl SpeechFrame for Frame {
    fn audio(meta: FrameMeta, pcm: Bytes, format: AudioFormat) -> Self {
        Self::new(meta, Payload::Audio(AudioChunk::new(pcm, format)))
    }

    fn text(meta: FrameMeta, text: impl Into<String>) -> Self {
        Self::new(meta, Payload::Text(text.into()))
    }

    fn end_of_stream(meta: FrameMeta) -> Self {
        Self::new(meta, Payload::EndOfStream)
    }

    fn as_audio(&self) -> Option<&AudioChunk> {
        match &self.payload {
            Payload::Audio(chunk) => Some(chunk),
            _ => None,
        }
    }

    fn pcm(&self) -> Option<Bytes> {
        self.as_audio().map(|chunk| chunk.pcm.clone())
    }

    fn is_end_of_stream(&self) -> bool {
        matches!(self.payload, Payload::EndOfStream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> FrameMeta {
        FrameMeta::new("s1", "kitchen", 7)
    }

    #[test]
    fn cloning_a_frame_shares_its_audio() {
        let pcm = Bytes::from(vec![0u8; 640]);
        let frame = Frame::audio(meta(), pcm.clone(), AudioFormat::PCM16_MONO_16K);
        let copy = frame.clone();
        assert_eq!(copy.pcm().unwrap().as_ptr(), pcm.as_ptr());
        assert_eq!(frame.derive(frame.payload.clone()).pcm().unwrap().as_ptr(), pcm.as_ptr());
    }

    #[test]
    fn a_stamped_timeline_follows_derived_frames_and_spares_earlier_clones() {
        let mut frame = Frame::text(meta(), "hi");
        let before = frame.clone();
        frame.meta.domain.stamp(|t| t.speech_end = Some(std::time::Instant::now()));
        assert!(frame.derive(Payload::EndOfStream).meta.domain.timeline().speech_end.is_some());
        assert!(before.meta.domain.timeline().speech_end.is_none());
        assert!(Frame::end_of_stream(meta()).is_end_of_stream());
        assert_eq!(Payload::Text("hi".into()).kind(), "text");
    }
}
