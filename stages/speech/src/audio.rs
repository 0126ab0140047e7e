//! Audio as the voice moves it: PCM in a known [`AudioFormat`], shared as `Bytes` and
//! sliced, never copied, between stages.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
