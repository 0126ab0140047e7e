//! The unit of work that moves between stages.
//!
//! A [`Frame`] is cheap to clone: ids are `Arc<str>`, audio and message bodies are
//! `Bytes`. Cloning a frame for fan-out never copies audio.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::speech::{PauseSignal, Timeline, Transcript};

/// Declares a cheap-clone string id; sessions and sites are copied into every frame,
/// so they are shared rather than reallocated.
macro_rules! shared_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(Arc::from(value))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(Arc::from(value))
            }
        }
    };
}

shared_id!(
    /// One voice interaction (wake → reply), or one message exchange.
    SessionId
);
shared_id!(
    /// The room or device a session comes from (`alicia/voice/audio/{SITE}/...`).
    SiteId
);

/// Where a frame belongs and when it entered the engine.
#[derive(Clone, Debug)]
pub struct FrameMeta {
    pub session_id: SessionId,
    pub site_id: SiteId,
    /// Position within the session; stages keep it so the speaker can spot gaps.
    pub seq: u64,
    /// When the first byte of this frame reached the engine; end-to-end latency is
    /// measured from here.
    pub ingress: Instant,
    /// On a reply's text: more of the same reply follows (a chat answer spoken sentence
    /// by sentence as it streams in), so the TTS keeps the reply's audio stream open;
    /// the piece without it ends the reply.
    pub reply_continues: bool,
    /// The session's way through the voice stages so far: shared, and `None` until a
    /// stage stamps it, so the audio frames that make up most traffic stay small.
    timeline: Option<Arc<Timeline>>,
}

impl FrameMeta {
    /// Meta for a frame that enters the engine now.
    pub fn new(session_id: impl Into<SessionId>, site_id: impl Into<SiteId>, seq: u64) -> Self {
        Self {
            session_id: session_id.into(),
            site_id: site_id.into(),
            seq,
            ingress: Instant::now(),
            reply_continues: false,
            timeline: None,
        }
    }

    /// The session's timeline so far (all empty until a stage stamps it).
    pub fn timeline(&self) -> Timeline {
        self.timeline.as_deref().copied().unwrap_or_default()
    }

    /// Records a step in the timeline: `meta.stamp(|t| t.transcribed = Some(now))`.
    /// Frames cloned before keep what they had.
    pub fn stamp(&mut self, step: impl FnOnce(&mut Timeline)) {
        step(Arc::make_mut(self.timeline.get_or_insert_with(Default::default)));
    }
}

/// Raw PCM layout. Little-endian signed integers, interleaved channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AudioFormat {
    /// Hz.
    pub sample_rate: u32,
    pub channels: u16,
    /// Bytes per sample (2 for s16le), as in Wyoming's `width`.
    pub sample_width: u16,
}

impl AudioFormat {
    /// What whisper and most satellites speak: 16 kHz, mono, s16le.
    pub const PCM16_MONO_16K: Self = Self { sample_rate: 16_000, channels: 1, sample_width: 2 };

    /// Bytes of one sample across all channels.
    pub fn bytes_per_frame(&self) -> usize {
        usize::from(self.channels) * usize::from(self.sample_width)
    }

    pub fn bytes_per_second(&self) -> usize {
        self.bytes_per_frame() * self.sample_rate as usize
    }

    /// Playing time of `len` bytes in this format (zero for a degenerate format).
    pub fn duration_of(&self, len: usize) -> Duration {
        let per_second = self.bytes_per_second();
        if per_second == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(len as f64 / per_second as f64)
    }

    /// Bytes that hold `duration` of audio, rounded down to whole sample frames.
    pub fn bytes_for(&self, duration: Duration) -> usize {
        let frames = (duration.as_secs_f64() * f64::from(self.sample_rate)) as usize;
        frames * self.bytes_per_frame()
    }
}

/// A piece of PCM audio. `pcm` is shared, never copied, between stages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioChunk {
    pub pcm: Bytes,
    pub format: AudioFormat,
}

impl AudioChunk {
    pub fn new(pcm: Bytes, format: AudioFormat) -> Self {
        Self { pcm, format }
    }

    pub fn duration(&self) -> Duration {
        self.format.duration_of(self.pcm.len())
    }

    /// A zero-copy view of `range` (in bytes). The range should fall on sample-frame
    /// boundaries, otherwise the samples after it are garbage.
    pub fn slice(&self, range: Range<usize>) -> AudioChunk {
        debug_assert!(
            self.format.bytes_per_frame() == 0
                || (range.start.is_multiple_of(self.format.bytes_per_frame())
                    && range.end.is_multiple_of(self.format.bytes_per_frame())),
            "audio slice {range:?} splits a sample frame"
        );
        AudioChunk { pcm: self.pcm.slice(range), format: self.format }
    }

    /// Zero-copy pieces of at most `duration` each (the last may be shorter), e.g. to
    /// re-chunk a TTS sentence into 20 ms frames for a speaker.
    pub fn chunks(&self, duration: Duration) -> impl Iterator<Item = AudioChunk> + '_ {
        let step = self.format.bytes_for(duration).max(self.format.bytes_per_frame()).max(1);
        (0..self.pcm.len()).step_by(step).map(move |start| self.slice(start..(start + step).min(self.pcm.len())))
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

/// The unit that moves over edges.
#[derive(Clone, Debug)]
pub struct Frame {
    pub meta: FrameMeta,
    pub payload: Payload,
}

impl Frame {
    pub fn new(meta: FrameMeta, payload: Payload) -> Self {
        Self { meta, payload }
    }

    pub fn audio(meta: FrameMeta, pcm: Bytes, format: AudioFormat) -> Self {
        Self::new(meta, Payload::Audio(AudioChunk::new(pcm, format)))
    }

    pub fn text(meta: FrameMeta, text: impl Into<String>) -> Self {
        Self::new(meta, Payload::Text(text.into()))
    }

    pub fn end_of_stream(meta: FrameMeta) -> Self {
        Self::new(meta, Payload::EndOfStream)
    }

    /// A new frame of the same session, site, seq and ingress: what a stage emits when
    /// it turns one payload into another (audio → text), so latency stays measurable.
    pub fn derive(&self, payload: Payload) -> Frame {
        Frame { meta: self.meta.clone(), payload }
    }

    /// The audio chunk, if this is an audio frame.
    pub fn as_audio(&self) -> Option<&AudioChunk> {
        match &self.payload {
            Payload::Audio(chunk) => Some(chunk),
            _ => None,
        }
    }

    /// A reference-counted handle on the PCM bytes; no copy.
    pub fn pcm(&self) -> Option<Bytes> {
        self.as_audio().map(|chunk| chunk.pcm.clone())
    }

    pub fn is_end_of_stream(&self) -> bool {
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
    fn twenty_ms_of_pcm16_mono_16k_is_640_bytes() {
        let format = AudioFormat::PCM16_MONO_16K;
        assert_eq!(format.bytes_for(Duration::from_millis(20)), 640);
        assert_eq!(format.duration_of(640), Duration::from_millis(20));
    }

    #[test]
    fn chunks_are_zero_copy_views_covering_the_whole_buffer() {
        let pcm = Bytes::from((0..=255u8).cycle().take(1_600).collect::<Vec<_>>());
        let chunk = AudioChunk::new(pcm.clone(), AudioFormat::PCM16_MONO_16K);
        let pieces: Vec<_> = chunk.chunks(Duration::from_millis(20)).collect();
        assert_eq!(pieces.iter().map(|p| p.pcm.len()).collect::<Vec<_>>(), [640, 640, 320]);
        assert_eq!(pieces[1].pcm.as_ptr(), pcm[640..].as_ptr());
        let joined: Vec<u8> = pieces.iter().flat_map(|p| p.pcm.iter().copied()).collect();
        assert_eq!(joined, pcm);
    }

    #[test]
    fn ids_compare_by_value() {
        assert_eq!(SessionId::from("a"), SessionId::from(String::from("a")));
        assert_eq!(SiteId::from("kitchen").to_string(), "kitchen");
        assert!(Frame::end_of_stream(meta()).is_end_of_stream());
        assert_eq!(Payload::Text("hi".into()).kind(), "text");
    }
}
