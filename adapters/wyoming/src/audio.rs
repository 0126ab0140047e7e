//! Audio formats as Wyoming states them (`rate`, `width`, `channels`) and the
//! conversion of an utterance to what the backend takes: 16 kHz s16le mono.
//!
//! Home Assistant already sends that format, so conversion is for other clients and
//! covers the formats microphones and WAV files actually have, and no more:
//!
//! - rates 8, 16, 32 and 48 kHz ([`SUPPORTED_RATES`]): whole multiples of 16 kHz are
//!   averaged down, 8 kHz is interpolated up;
//! - sample widths of 1 (unsigned, as in WAV), 2, 3 and 4 bytes (signed little-endian);
//! - 1 to 8 channels, averaged to mono.
//!
//! Anything else is refused with a message saying what to send. The list is closed on
//! purpose: the conversion's output is at most twice its input, so no number a client
//! writes in `audio-start` can make it allocate more than the utterance limit allows.
//! A proper resampler belongs in front of the model, not in an adapter.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::error::RequestError;

/// What the backend takes and what synthesis produces.
pub(crate) const BACKEND_FORMAT: AudioFormat = AudioFormat { rate: 16_000, width: 2, channels: 1 };

/// The rates the server converts to 16 kHz.
pub const SUPPORTED_RATES: [u32; 4] = [8_000, 16_000, 32_000, 48_000];
/// Microphone arrays have up to 8; more is not audio any client means to send.
pub const MAX_CHANNELS: u16 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AudioFormat {
    /// Hz.
    pub rate: u32,
    /// Bytes per sample.
    pub width: u16,
    pub channels: u16,
}

impl std::fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz, {}-byte samples, {} channel(s)", self.rate, self.width, self.channels)
    }
}

impl AudioFormat {
    /// The format fields of an `audio-start` or `audio-chunk`: `None` when all three
    /// are absent (a lenient client may state the format only once).
    pub(crate) fn from_data(event: &'static str, data: &Map<String, Value>) -> Result<Option<Self>, RequestError> {
        let fields = ["rate", "width", "channels"].map(|name| data.get(name).filter(|v| !v.is_null()));
        if fields.iter().all(Option::is_none) {
            return Ok(None);
        }
        let bad = || RequestError::invalid(event, "`rate`, `width` and `channels` must be positive integers");
        let [rate, width, channels] = fields.map(|value| value.and_then(Value::as_u64).filter(|&n| n > 0));
        let (Some(rate), Some(width), Some(channels)) = (rate, width, channels) else {
            return Err(bad());
        };
        let rate = u32::try_from(rate).map_err(|_| bad())?;
        let width = u16::try_from(width).map_err(|_| bad())?;
        let channels = u16::try_from(channels).map_err(|_| bad())?;
        Ok(Some(Self { rate, width, channels }))
    }

    pub(crate) fn to_data(self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("rate".into(), self.rate.into());
        data.insert("width".into(), self.width.into());
        data.insert("channels".into(), self.channels.into());
        data
    }

    /// Bytes of one sample across all channels.
    pub(crate) fn frame_bytes(self) -> usize {
        usize::from(self.width) * usize::from(self.channels)
    }

    /// Bytes of `seconds` of audio in this format.
    pub(crate) fn bytes_for_seconds(self, seconds: u32) -> usize {
        self.frame_bytes() * self.rate as usize * seconds as usize
    }

    /// `Ok` when [`to_backend_format`] can convert this format; otherwise what to send.
    pub(crate) fn check_convertible(self) -> Result<(), RequestError> {
        let target = BACKEND_FORMAT.rate;
        if !(1..=4).contains(&self.width) {
            return Err(RequestError::UnsupportedAudio(format!(
                "{}-byte samples (send 2-byte signed little-endian PCM)",
                self.width
            )));
        }
        if self.channels > MAX_CHANNELS {
            return Err(RequestError::UnsupportedAudio(format!(
                "{} channels (at most {MAX_CHANNELS}; mono is best)",
                self.channels
            )));
        }
        if !SUPPORTED_RATES.contains(&self.rate) {
            return Err(RequestError::UnsupportedAudio(format!(
                "{} Hz (send {target} Hz; 8000, 32000 and 48000 Hz are converted)",
                self.rate
            )));
        }
        Ok(())
    }
}

/// Joins an utterance's chunks (whole frames of `format`) into one buffer and converts
/// it to [`BACKEND_FORMAT`]. `format` must have passed
/// [`AudioFormat::check_convertible`].
///
/// In the backend's own format this is the utterance's only copy (none for a single
/// chunk); other formats are joined first and converted in a second pass, a cost
/// only the clients that need conversion pay.
pub(crate) fn to_backend_format(chunks: &[Bytes], format: AudioFormat) -> Bytes {
    let joined = match chunks {
        [] => Bytes::new(),
        [only] => only.clone(),
        _ => {
            let mut joined = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            chunks.iter().for_each(|chunk| joined.extend_from_slice(chunk));
            joined.freeze()
        }
    };
    if format == BACKEND_FORMAT {
        return joined;
    }
    debug_assert!(format.check_convertible().is_ok(), "{format} was not checked");
    let mono = downmix(&joined, format);
    let target = BACKEND_FORMAT.rate;
    let samples = if format.rate >= target {
        decimate(&mono, (format.rate / target) as usize)
    } else {
        interpolate(&mono, (target / format.rate) as usize)
    };
    let mut pcm = BytesMut::with_capacity(samples.len() * 2);
    samples.iter().for_each(|&s| pcm.put_i16_le(s));
    pcm.freeze()
}

/// Mono 16-bit samples: each frame's channels averaged.
fn downmix(pcm: &[u8], format: AudioFormat) -> Vec<i16> {
    let width = usize::from(format.width);
    let channels = i32::from(format.channels);
    pcm.chunks_exact(format.frame_bytes())
        .map(|frame| {
            let sum: i32 = frame.chunks_exact(width).map(sample_16).sum();
            (sum / channels) as i16
        })
        .collect()
}

/// One little-endian sample of 1–4 bytes as a 16-bit value. One-byte samples are
/// unsigned with a 128 offset, as in WAV files, which is where such audio comes from.
fn sample_16(bytes: &[u8]) -> i32 {
    match *bytes {
        [b] => (i32::from(b) - 128) << 8,
        [lo, hi] => i32::from(i16::from_le_bytes([lo, hi])),
        [_, mid, hi] => i32::from(i16::from_le_bytes([mid, hi])),
        [_, _, b2, b3] => i32::from(i16::from_le_bytes([b2, b3])),
        _ => unreachable!("widths are checked to be 1 to 4 bytes"),
    }
}

/// Every `factor` samples averaged into one: a box low-pass before dropping samples,
/// crude but enough to keep most of the energy above 8 kHz from folding into speech.
fn decimate(samples: &[i16], factor: usize) -> Vec<i16> {
    if factor <= 1 {
        return samples.to_vec();
    }
    samples
        .chunks(factor)
        .map(|group| (group.iter().map(|&s| i32::from(s)).sum::<i32>() / group.len() as i32) as i16)
        .collect()
}

/// `factor` samples for each input sample, on straight lines between neighbours.
fn interpolate(samples: &[i16], factor: usize) -> Vec<i16> {
    let mut out = Vec::with_capacity(samples.len() * factor);
    for (i, &sample) in samples.iter().enumerate() {
        let next = i32::from(*samples.get(i + 1).unwrap_or(&sample));
        let here = i32::from(sample);
        for step in 0..factor as i32 {
            out.push((here + (next - here) * step / factor as i32) as i16);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pcm16(samples: &[i16]) -> Bytes {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect::<Vec<u8>>().into()
    }

    fn samples(pcm: &[u8]) -> Vec<i16> {
        pcm.chunks_exact(2).map(|pair| i16::from_le_bytes([pair[0], pair[1]])).collect()
    }

    fn format(rate: u32, width: u16, channels: u16) -> AudioFormat {
        AudioFormat { rate, width, channels }
    }

    #[test]
    fn the_backend_format_passes_through_without_a_copy() {
        let chunk = pcm16(&[1, 2, 3]);
        let out = to_backend_format(std::slice::from_ref(&chunk), BACKEND_FORMAT);
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        let joined = to_backend_format(&[pcm16(&[1]), pcm16(&[2, 3])], BACKEND_FORMAT);
        assert_eq!(samples(&joined), [1, 2, 3]);
        assert!(to_backend_format(&[], BACKEND_FORMAT).is_empty());
    }

    #[test]
    fn stereo_is_averaged_to_mono() {
        let out = to_backend_format(&[pcm16(&[100, 300, -50, -150])], format(16_000, 2, 2));
        assert_eq!(samples(&out), [200, -100]);
    }

    #[test]
    fn other_sample_widths_become_16_bit() {
        let u8_pcm = Bytes::from_static(&[128, 255, 0]);
        assert_eq!(samples(&to_backend_format(&[u8_pcm], format(16_000, 1, 1))), [0, 127 << 8, -128 << 8]);
        let s24 = Bytes::from_static(&[0xAA, 0x34, 0x12, 0x00, 0x00, 0x80]);
        assert_eq!(samples(&to_backend_format(&[s24], format(16_000, 3, 1))), [0x1234, i16::MIN]);
        let s32 = Bytes::from_static(&[0, 0, 0x34, 0x12, 0xFF, 0xFF, 0xFF, 0x7F]);
        assert_eq!(samples(&to_backend_format(&[s32], format(16_000, 4, 1))), [0x1234, i16::MAX]);
    }

    #[test]
    fn multiples_of_16_khz_are_averaged_down() {
        let out = to_backend_format(&[pcm16(&[3, 6, 9, 30, 60, 90, 7])], format(48_000, 2, 1));
        assert_eq!(samples(&out), [6, 60, 7]);
        let stereo_32k = pcm16(&[10, 20, 30, 40, -8, -8, 0, 0]);
        assert_eq!(samples(&to_backend_format(&[stereo_32k], format(32_000, 2, 2))), [25, -4]);
    }

    #[test]
    fn fractions_of_16_khz_are_interpolated_up() {
        let out = to_backend_format(&[pcm16(&[0, 100, -100])], format(8_000, 2, 1));
        assert_eq!(samples(&out), [0, 50, 100, 0, -100, -100]);
    }

    #[test]
    fn unconvertible_formats_say_what_to_send() {
        let cases = [
            (
                format(44_100, 2, 1),
                "unsupported audio format: 44100 Hz (send 16000 Hz; 8000, 32000 and 48000 Hz are converted)",
            ),
            (format(16_000, 8, 1), "unsupported audio format: 8-byte samples (send 2-byte signed little-endian PCM)"),
            (format(16_000, 2, 9), "unsupported audio format: 9 channels (at most 8; mono is best)"),
            // Rate 1 once made the interpolation ask for 16,000 output samples per input one.
            (format(1, 2, 1), "unsupported audio format: 1 Hz (send 16000 Hz; 8000, 32000 and 48000 Hz are converted)"),
            (
                format(4_000, 2, 1),
                "unsupported audio format: 4000 Hz (send 16000 Hz; 8000, 32000 and 48000 Hz are converted)",
            ),
            (
                format(96_000, 2, 1),
                "unsupported audio format: 96000 Hz (send 16000 Hz; 8000, 32000 and 48000 Hz are converted)",
            ),
        ];
        for (format, message) in cases {
            assert_eq!(format.check_convertible().unwrap_err().to_string(), message);
        }
        for ok in [BACKEND_FORMAT, format(8_000, 1, 1), format(48_000, 4, 2), format(32_000, 3, 8)] {
            assert_eq!(ok.check_convertible(), Ok(()), "{ok}");
        }
    }

    #[test]
    fn every_supported_format_converts_a_second_into_a_second() {
        for rate in SUPPORTED_RATES {
            for width in 1..=4 {
                for channels in 1..=MAX_CHANNELS {
                    let format = format(rate, width, channels);
                    let second = Bytes::from(vec![0u8; format.bytes_for_seconds(1)]);
                    let out = to_backend_format(&[second], format);
                    assert_eq!(out.len(), BACKEND_FORMAT.bytes_for_seconds(1), "{format}");
                }
            }
        }
    }

    #[test]
    fn formats_are_read_from_event_data() {
        let data = |v: Value| v.as_object().unwrap().clone();
        let read = |v: Value| AudioFormat::from_data("audio-start", &data(v));
        assert_eq!(read(json!({"rate": 16000, "width": 2, "channels": 1, "timestamp": 0})), Ok(Some(BACKEND_FORMAT)));
        assert_eq!(read(json!({"timestamp": 5})), Ok(None));
        let invalid = "invalid `audio-start` event: `rate`, `width` and `channels` must be positive integers";
        for bad in [
            json!({"rate": 16000}),
            json!({"rate": 0, "width": 2, "channels": 1}),
            json!({"rate": "16000", "width": 2, "channels": 1}),
            json!({"rate": 16000, "width": 2, "channels": 1.5}),
        ] {
            assert_eq!(read(bad.clone()).unwrap_err().to_string(), invalid, "{bad}");
        }
        assert_eq!(Value::Object(BACKEND_FORMAT.to_data()), json!({"rate": 16000, "width": 2, "channels": 1}));
    }
}
