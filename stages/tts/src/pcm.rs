//! Float samples → s16le PCM.

use bytes::{BufMut, Bytes, BytesMut};

/// Peak level after normalisation: -1 dBFS, headroom for a speaker's own mixing.
const PEAK: f32 = 0.891;
/// Below this peak the audio is taken as silence and not amplified into noise.
const SILENCE_PEAK: f32 = 0.01;

/// Peak-normalised s16le. VITS output level varies from utterance to utterance (and
/// can exceed ±1), so, like Piper, each utterance is scaled to a fixed peak.
pub(crate) fn to_pcm16(samples: &[f32]) -> Bytes {
    let peak = samples.iter().fold(0.0f32, |peak, s| peak.max(s.abs()));
    let gain = PEAK / peak.max(SILENCE_PEAK);
    let mut pcm = BytesMut::with_capacity(samples.len() * 2);
    for &sample in samples {
        let scaled = (sample * gain * f32::from(i16::MAX)).round().clamp(f32::from(i16::MIN), f32::from(i16::MAX));
        pcm.put_i16_le(scaled as i16);
    }
    pcm.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(pcm: &[u8]) -> Vec<i16> {
        pcm.chunks_exact(2).map(|pair| i16::from_le_bytes([pair[0], pair[1]])).collect()
    }

    #[test]
    fn speech_is_scaled_to_the_target_peak() {
        let pcm = to_pcm16(&[0.0, 0.25, -0.5, 0.1]);
        let peak = f32::from(i16::MAX) * PEAK;
        assert_eq!(
            samples(&pcm),
            [0, (peak / 2.0).round() as i16, -(peak.round() as i16), (peak / 5.0).round() as i16]
        );
    }

    #[test]
    fn near_silence_is_not_amplified_and_overshoot_does_not_wrap() {
        let quiet = samples(&to_pcm16(&[0.001, -0.001]));
        assert!(quiet.iter().all(|s| s.abs() < 3_000), "{quiet:?}");
        let loud = samples(&to_pcm16(&[3.0, -3.0, 1.5]));
        assert_eq!(loud[0], -loud[1]);
        assert!(loud[2] > 0);
    }
}
