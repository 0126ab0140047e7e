//! Sample-rate conversion from the voice's rate (22,050 Hz) to the bus's (16 kHz).
//!
//! A polyphase windowed-sinc filter over the exact rational ratio (320/441 for
//! 22,050 → 16,000). Linear interpolation would be cheaper to write but folds the
//! voice's 8–11 kHz energy (every "s" and "t") back into the band as hiss, and whisper
//! hears that. A sinc low-pass with a Kaiser window removes it: 64 taps per output
//! sample, about 1 M multiply-adds per second of audio (~1 ms), computed once per
//! sentence on the whole buffer, so no state crosses calls.

use std::f64::consts::PI;

/// Input samples each side of the output instant that the filter reads.
const HALF_TAPS: usize = 32;
/// Pass band edge relative to the output Nyquist frequency: the Kaiser transition band
/// (~1.7 kHz wide at 64 taps) then ends just at 8 kHz, so almost nothing aliases.
const CUTOFF: f64 = 0.9;
/// ≈ 80 dB stop-band attenuation (Kaiser's formula, β = 0.1102 · (A − 8.7)).
const KAISER_BETA: f64 = 7.857;

/// Converts whole buffers of mono `f32` samples between two fixed rates.
#[derive(Clone, Debug)]
pub(crate) struct Resampler {
    up: usize,
    down: usize,
    /// `up` phases × `2 * HALF_TAPS` coefficients, each phase summing to 1.
    table: Vec<f32>,
}

impl Resampler {
    pub(crate) fn new(from_hz: u32, to_hz: u32) -> Self {
        assert!(from_hz > 0 && to_hz > 0, "sample rates must be positive");
        let divisor = gcd(from_hz, to_hz);
        let up = (to_hz / divisor) as usize;
        let down = (from_hz / divisor) as usize;
        if up == down {
            return Self { up, down, table: Vec::new() };
        }
        // Cut-off in cycles per input sample: below both Nyquist frequencies.
        let cutoff = CUTOFF * 0.5 * f64::from(from_hz.min(to_hz)) / f64::from(from_hz);
        let taps = 2 * HALF_TAPS;
        let mut table = Vec::with_capacity(up * taps);
        for phase in 0..up {
            let fraction = phase as f64 / up as f64;
            let start = table.len();
            for tap in 0..taps {
                // Distance from the output instant to input sample `base + tap - HALF_TAPS + 1`.
                let t = tap as f64 - (HALF_TAPS as f64 - 1.0) - fraction;
                table.push((2.0 * cutoff * sinc(2.0 * cutoff * t) * kaiser(t / HALF_TAPS as f64)) as f32);
            }
            // Unity gain at DC for every phase, so silence stays silent and level does
            // not ripple with the phase.
            let sum: f32 = table[start..].iter().sum();
            table[start..].iter_mut().for_each(|c| *c /= sum);
        }
        Self { up, down, table }
    }

    /// Resamples one whole buffer; samples outside it are taken as silence.
    pub(crate) fn process(&self, input: &[f32]) -> Vec<f32> {
        if self.up == self.down {
            return input.to_vec();
        }
        let taps = 2 * HALF_TAPS;
        let outputs = (input.len() * self.up).div_ceil(self.down);
        let mut output = Vec::with_capacity(outputs);
        for n in 0..outputs {
            let position = n * self.down;
            let base = position / self.up;
            let phase = position % self.up;
            let coefficients = &self.table[phase * taps..(phase + 1) * taps];
            // Input index of coefficient 0; may fall before the buffer.
            let first = base as isize - (HALF_TAPS as isize - 1);
            let lo = (-first).max(0) as usize;
            let hi = taps.min((input.len() as isize - first).max(0) as usize);
            let window = if lo < hi {
                let start = (first + lo as isize) as usize;
                dot(&coefficients[lo..hi], &input[start..start + (hi - lo)])
            } else {
                0.0
            };
            output.push(window);
        }
        output
    }
}

/// Eight independent sums so the compiler can vectorise (a single float accumulator
/// forces strict left-to-right order); the order changes only rounding.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    }
}

/// Kaiser window over `x` in [-1, 1].
fn kaiser(x: f64) -> f64 {
    if x.abs() > 1.0 {
        return 0.0;
    }
    bessel_i0(KAISER_BETA * (1.0 - x * x).sqrt()) / bessel_i0(KAISER_BETA)
}

/// Modified Bessel function of the first kind, order 0, by its power series (converges
/// fast for the β used here).
fn bessel_i0(x: f64) -> f64 {
    let quarter_square = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..64 {
        term *= quarter_square / (k * k) as f64;
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
    }
    sum
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, rate: u32, seconds: f64) -> Vec<f32> {
        let len = (seconds * f64::from(rate)) as usize;
        (0..len).map(|i| (2.0 * PI * hz * i as f64 / f64::from(rate)).sin() as f32 * 0.5).collect()
    }

    /// RMS of the middle half, away from the edges where the filter sees silence.
    fn middle_rms(samples: &[f32]) -> f64 {
        let middle = &samples[samples.len() / 4..samples.len() * 3 / 4];
        (middle.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / middle.len() as f64).sqrt()
    }

    #[test]
    fn output_length_follows_the_ratio() {
        let resampler = Resampler::new(22_050, 16_000);
        assert_eq!((resampler.up, resampler.down), (320, 441));
        assert_eq!(resampler.process(&vec![0.0; 22_050]).len(), 16_000);
        assert_eq!(resampler.process(&vec![0.0; 441]).len(), 320);
        assert!(resampler.process(&[]).is_empty());
    }

    #[test]
    fn a_tone_in_the_pass_band_keeps_its_level_phase_and_frequency() {
        let input = tone(1_000.0, 22_050, 1.0);
        let output = Resampler::new(22_050, 16_000).process(&input);
        let expected = tone(1_000.0, 16_000, 1.0);
        let worst = output[4_000..12_000]
            .iter()
            .zip(&expected[4_000..12_000])
            .map(|(got, want)| (got - want).abs())
            .fold(0.0f32, f32::max);
        // 0.5 amplitude: an error under 2e-4 is better than -68 dB.
        assert!(worst < 2e-4, "worst sample error {worst}");
    }

    #[test]
    fn tones_above_the_output_nyquist_are_removed_not_folded_back() {
        for hz in [8_500.0, 10_000.0, 11_000.0] {
            let output = Resampler::new(22_050, 16_000).process(&tone(hz, 22_050, 0.5));
            let attenuation_db = 20.0 * (middle_rms(&output) / (0.5 / 2f64.sqrt())).log10();
            assert!(attenuation_db < -70.0, "{hz} Hz only attenuated by {attenuation_db:.1} dB");
        }
    }

    #[test]
    fn dc_and_silence_pass_unchanged() {
        let output = Resampler::new(22_050, 16_000).process(&[0.25; 2_000]);
        assert!(output[100..1_300].iter().all(|&s| (s - 0.25).abs() < 1e-4));
        assert!(Resampler::new(22_050, 16_000).process(&[0.0; 500]).iter().all(|&s| s == 0.0));
    }

    #[test]
    fn equal_rates_copy() {
        assert_eq!(Resampler::new(16_000, 16_000).process(&[0.1, -0.2]), [0.1, -0.2]);
    }
}
