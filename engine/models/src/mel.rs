//! The mel filter bank whisper.cpp reads from the ggml header.
//!
//! Whisper was trained on Slaney-style mel filters (`librosa.filters.mel(sr=16000,
//! n_fft=400, n_mels=80)`, area-normalised triangles on the Slaney mel scale), stored as
//! float32. The arithmetic below follows that definition step by step in f64 and rounds
//! to f32 where the reference rounds, so the bytes equal the ones in the official ggml
//! files (the converter's SHA-256 pin checks that).

/// Whisper's input rate, Hz.
pub const SAMPLE_RATE: f64 = 16_000.0;
/// Whisper's FFT size (25 ms at 16 kHz).
pub const N_FFT: usize = 400;

// The Slaney scale: linear below 1 kHz, logarithmic above.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;

fn min_log_mel() -> f64 {
    MIN_LOG_HZ / F_SP
}

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        min_log_mel() + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= min_log_mel() {
        MIN_LOG_HZ * (log_step() * (mel - min_log_mel())).exp()
    } else {
        F_SP * mel
    }
}

/// `n` evenly spaced points from `start` to `stop` inclusive, computed as
/// `start + i * step` with the last point pinned to `stop`.
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    let step = (stop - start) / (n - 1) as f64;
    let mut points: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    points[n - 1] = stop;
    points
}

/// `n_mels` rows of `n_fft / 2 + 1` weights, row-major.
pub fn slaney_mel_filters(n_mels: usize, n_fft: usize, sample_rate: f64) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let fft_hz = linspace(0.0, sample_rate / 2.0, n_bins);
    let mel_points = linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), n_mels + 2);
    let band_hz: Vec<f64> = mel_points.into_iter().map(mel_to_hz).collect();

    let mut weights = Vec::with_capacity(n_mels * n_bins);
    for band in 0..n_mels {
        let (left, centre, right) = (band_hz[band], band_hz[band + 1], band_hz[band + 2]);
        // Slaney normalisation: each triangle has the same area.
        let norm = 2.0 / (right - left);
        for &hz in &fft_hz {
            let rising = -(left - hz) / (centre - left);
            let falling = (right - hz) / (right - centre);
            let triangle = rising.min(falling);
            // Clamp to +0.0: a tie (the first bin of the first band) is positive zero in
            // the reference, not the -0.0 the division gives.
            let triangle = if triangle > 0.0 { triangle } else { 0.0 };
            let unnormalised = triangle as f32;
            weights.push((f64::from(unnormalised) * norm) as f32);
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eighty_bands_of_two_hundred_one_bins() {
        let filters = slaney_mel_filters(80, N_FFT, SAMPLE_RATE);
        assert_eq!(filters.len(), 80 * 201);
        // The first band peaks in bin 1 (40 Hz); values known from the reference bank.
        assert_eq!(filters[0].to_bits(), 0.0f32.to_bits());
        assert_eq!(filters[1], 0.024_862_595);
        // Every band is a triangle: non-negative, with a single run of non-zero bins.
        for band in filters.chunks(201) {
            assert!(band.iter().all(|&w| w >= 0.0 && w.is_sign_positive()));
            let nonzero: Vec<usize> = (0..201).filter(|&k| band[k] > 0.0).collect();
            assert!(!nonzero.is_empty());
            assert_eq!(nonzero.last().unwrap() - nonzero[0] + 1, nonzero.len());
        }
    }

    /// The bank in the official ggml files (librosa's, with +0.0 in its first cell).
    #[test]
    fn the_bank_is_bit_identical_to_the_reference() {
        use sha2::{Digest, Sha256};
        let bytes: Vec<u8> = slaney_mel_filters(80, N_FFT, SAMPLE_RATE).iter().flat_map(|w| w.to_le_bytes()).collect();
        let digest = crate::digest::hex(&Sha256::digest(&bytes));
        assert_eq!(digest, "85818f156f7e189453901a515e4726d270d307f976e161cf9403e8caab405498");
    }

    #[test]
    fn the_scale_is_linear_below_one_kilohertz_and_continuous_above() {
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-12);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        for hz in [100.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9, "{hz}");
        }
    }
}
