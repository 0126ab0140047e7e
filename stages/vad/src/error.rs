//! What end-of-speech detection fails with.

use std::time::Duration;

use alicia_pipeline::StageError;
use alicia_speech::AudioFormat;

/// Why a session's audio was refused or gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    /// The stage only speaks s16le mono 16 kHz.
    #[error(
        "vad takes s16le mono 16 kHz audio, got {} Hz, {} channel(s), {}-byte samples",
        format.sample_rate, format.channels, format.sample_width
    )]
    UnsupportedFormat { format: AudioFormat },
    /// A frame that cuts a sample in half.
    #[error("audio frame of {len} bytes is not whole 16-bit samples")]
    OddLength { len: usize },
    /// The session ended, or waited its longest, without anything that sounded like
    /// speech.
    #[error("no speech in {:.1} s of audio", heard.as_secs_f64())]
    NoSpeech { heard: Duration },
    /// The config is unusable; one line per problem.
    #[error("invalid vad config: {}", problems.join("; "))]
    Config { problems: Vec<String> },
}

impl VadError {
    /// A short, stable label for metrics and error events.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::UnsupportedFormat { .. } => "unsupported_audio_format",
            Self::OddLength { .. } => "bad_audio",
            Self::NoSpeech { .. } => "no_speech",
            Self::Config { .. } => "invalid_config",
        }
    }
}

impl From<VadError> for StageError {
    /// Every runtime failure concerns one session; the stage itself never breaks.
    fn from(err: VadError) -> Self {
        StageError::frame(err.error_type(), err)
    }
}
