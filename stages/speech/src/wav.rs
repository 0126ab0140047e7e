//! WAV files: read as the seeds' STT requests and `alicia ask` carry them (16-bit PCM,
//! 16 kHz, mono; the samples come back as a `Bytes` slice of the file, not a copy), and
//! written in any PCM format.

use std::io::{self, Write};

use bytes::Bytes;

use crate::audio::AudioFormat;

/// Why a WAV was refused; `error_type` is the label on the error event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    #[error("truncated WAV file: {0}")]
    Truncated(&'static str),
    #[error("audio is {rate} Hz, {channels} channel(s), {bits}-bit (format {tag}); need 16000 Hz mono 16-bit PCM")]
    Unsupported { tag: u16, rate: u32, channels: u16, bits: u16 },
}

impl WavError {
    pub fn error_type(&self) -> &'static str {
        match self {
            WavError::NotWav => "not_wav",
            WavError::Truncated(_) => "truncated_wav",
            WavError::Unsupported { .. } => "unsupported_audio_format",
        }
    }
}

/// The 16 kHz mono s16le samples of a WAV file.
pub fn pcm16k_from_wav(file: Bytes) -> Result<Bytes, WavError> {
    if file.len() < 12 || &file[0..4] != b"RIFF" || &file[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let (mut at, mut format, mut data) = (12usize, None, None);
    while at + 8 <= file.len() {
        let len = u32::from_le_bytes([file[at + 4], file[at + 5], file[at + 6], file[at + 7]]) as usize;
        let body = at + 8;
        let end = body.saturating_add(len);
        match &file[at..at + 4] {
            b"fmt " if len >= 16 && end <= file.len() => format = Some(body),
            b"fmt " => return Err(WavError::Truncated("format chunk")),
            // A data chunk cut short is refused: a partial utterance would be misheard.
            b"data" if end > file.len() => return Err(WavError::Truncated("data chunk shorter than its header says")),
            b"data" => data = Some(file.slice(body..end)),
            _ => {}
        }
        at = end.saturating_add(len & 1);
    }
    let fmt = format.ok_or(WavError::Truncated("no format chunk"))?;
    let data = data.ok_or(WavError::Truncated("no data chunk"))?;
    let u16_at = |i: usize| u16::from_le_bytes([file[fmt + i], file[fmt + i + 1]]);
    let (tag, channels, bits) = (u16_at(0), u16_at(2), u16_at(14));
    let rate = u32::from_le_bytes([file[fmt + 4], file[fmt + 5], file[fmt + 6], file[fmt + 7]]);
    if (tag, channels, rate, bits) != (1, 1, 16_000, 16) {
        return Err(WavError::Unsupported { tag, rate, channels, bits });
    }
    Ok(data)
}

/// Writes `pcm` (in `format`) as a RIFF/WAVE file: the one WAV writer (`alicia say`,
/// `alicia ask`, the seeds' STT requests in tests).
pub fn write_wav(mut out: impl Write, pcm: &[u8], format: AudioFormat) -> io::Result<()> {
    let data_len = u32::try_from(pcm.len()).map_err(|_| io::Error::other("audio too long for a wav file"))?;
    let byte_rate = format.sample_rate * u32::from(format.channels) * u32::from(format.sample_width);
    let block_align = format.channels * format.sample_width;
    let mut header = Vec::with_capacity(44);
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&(36 + data_len).to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes()); // integer PCM
    header.extend_from_slice(&format.channels.to_le_bytes());
    header.extend_from_slice(&format.sample_rate.to_le_bytes());
    header.extend_from_slice(&byte_rate.to_le_bytes());
    header.extend_from_slice(&block_align.to_le_bytes());
    header.extend_from_slice(&(format.sample_width * 8).to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&data_len.to_le_bytes());
    out.write_all(&header)?;
    out.write_all(pcm)
}

/// A 16 kHz mono 16-bit WAV file of `pcm`, in memory.
pub fn wav_from_pcm16k(pcm: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(44 + pcm.len());
    // Writing to a Vec fails only past 4 GiB of audio, which no caller holds.
    write_wav(&mut out, pcm, AudioFormat::PCM16_MONO_16K).expect("audio under 4 GiB");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_a_slice_of_the_file() {
        let file = Bytes::from(wav_from_pcm16k(&[1, 0, 2, 0, 3, 0]));
        let pcm = pcm16k_from_wav(file.clone()).unwrap();
        assert_eq!(&pcm[..], &[1, 0, 2, 0, 3, 0]);
        assert_eq!(pcm.as_ptr(), file[44..].as_ptr(), "no copy");
    }

    #[test]
    fn the_header_describes_the_data() {
        let mut file = Vec::new();
        write_wav(&mut file, &[1, 0, 2, 0], AudioFormat::PCM16_MONO_16K).unwrap();
        assert_eq!(file, wav_from_pcm16k(&[1, 0, 2, 0]));
        assert_eq!(file.len(), 48);
        assert_eq!(&file[..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(file[4..8].try_into().unwrap()), 40);
        assert_eq!(u32::from_le_bytes(file[24..28].try_into().unwrap()), 16_000);
        assert_eq!(u32::from_le_bytes(file[28..32].try_into().unwrap()), 32_000);
        assert_eq!(u32::from_le_bytes(file[40..44].try_into().unwrap()), 4);
    }

    #[test]
    fn refusals() {
        assert_eq!(pcm16k_from_wav(Bytes::from_static(b"hello")), Err(WavError::NotWav));
        let mut cut = wav_from_pcm16k(&[0; 100]);
        cut.truncate(90);
        assert_eq!(pcm16k_from_wav(cut.into()).unwrap_err().error_type(), "truncated_wav");
        let mut stereo = wav_from_pcm16k(&[0; 8]);
        stereo[22] = 2;
        let e = pcm16k_from_wav(stereo.into()).unwrap_err();
        assert_eq!(e.error_type(), "unsupported_audio_format");
        assert!(e.to_string().contains("2 channel(s)"));
    }
}
