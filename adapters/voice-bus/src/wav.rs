//! WAV files as the seeds' STT requests and `alicia ask` carry them: 16-bit PCM, 16 kHz,
//! mono. The samples come back as a `Bytes` slice of the file, not a copy.

use bytes::Bytes;

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

/// A 16 kHz mono 16-bit WAV header followed by `pcm`.
pub fn wav_from_pcm16k(pcm: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(44 + pcm.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + pcm.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(pcm.len() as u32).to_le_bytes());
    out.extend_from_slice(pcm);
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
