//! Loudness: fixed analysis windows over a stream of frames, and the noise floor.

use std::collections::VecDeque;

/// What an all-zero window reads (a true -inf would poison the percentile).
pub(crate) const SILENT_DBFS: f32 = -100.0;

/// Which share of the recent windows lies below the floor: low enough to sit in the
/// gaps between words, high enough that a few dropouts do not drag it down.
const FLOOR_PERCENTILE: f32 = 0.1;

/// Cuts a stream of s16le samples into windows of a fixed length, whatever the frame
/// sizes, and reports each window's level. A window may span two frames; only its
/// running sum is kept, never the samples.
#[derive(Debug)]
pub(crate) struct WindowMeter {
    window: u64,
    sum_squares: u64,
    filled: u64,
}

impl WindowMeter {
    pub(crate) fn new(window: u64) -> Self {
        debug_assert!(window > 0 && window <= 1 << 20, "window of {window} samples");
        Self { window, sum_squares: 0, filled: 0 }
    }

    /// Appends the levels of the windows completed by `pcm` to `levels`.
    pub(crate) fn measure(&mut self, pcm: &[u8], levels: &mut Vec<f32>) {
        debug_assert!(pcm.len().is_multiple_of(2), "odd pcm length");
        for sample in pcm.chunks_exact(2) {
            let value = i64::from(i16::from_le_bytes([sample[0], sample[1]]));
            // At most 2^30 per sample and 2^20 samples per window: no overflow.
            self.sum_squares += (value * value) as u64;
            self.filled += 1;
            if self.filled == self.window {
                levels.push(dbfs(self.sum_squares as f64 / self.window as f64));
                self.sum_squares = 0;
                self.filled = 0;
            }
        }
    }
}

/// The level of a window with this mean square, relative to full scale (a full-scale
/// square wave reads 0 dBFS, a full-scale sine -3 dBFS).
pub(crate) fn dbfs(mean_square: f64) -> f32 {
    const FULL_SCALE_SQUARED: f64 = 32_768.0 * 32_768.0;
    if mean_square <= 0.0 {
        return SILENT_DBFS;
    }
    ((10.0 * (mean_square / FULL_SCALE_SQUARED).log10()) as f32).max(SILENT_DBFS)
}

/// The noise floor: a low percentile of the recent window levels.
#[derive(Debug)]
pub(crate) struct NoiseFloor {
    levels: VecDeque<f32>,
    capacity: usize,
    initial: f32,
    minimum: f32,
    scratch: Vec<f32>,
}

impl NoiseFloor {
    pub(crate) fn new(capacity: usize, initial: f32, minimum: f32) -> Self {
        Self {
            levels: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
            initial,
            minimum,
            scratch: Vec::new(),
        }
    }

    /// The floor now. Until the history is full it is never above the initial floor:
    /// a user who speaks at once would otherwise make their own voice the floor.
    pub(crate) fn estimate(&mut self) -> f32 {
        if self.levels.is_empty() {
            return self.initial.max(self.minimum);
        }
        self.scratch.clear();
        self.scratch.extend(self.levels.iter().copied());
        let rank = ((self.scratch.len() - 1) as f32 * FLOOR_PERCENTILE) as usize;
        let (_, low, _) = self.scratch.select_nth_unstable_by(rank, f32::total_cmp);
        let mut floor = *low;
        if self.levels.len() < self.capacity {
            floor = floor.min(self.initial);
        }
        floor.max(self.minimum)
    }

    pub(crate) fn record(&mut self, level: f32) {
        if self.levels.len() == self.capacity {
            self.levels.pop_front();
        }
        self.levels.push_back(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(samples: impl IntoIterator<Item = i16>) -> Vec<u8> {
        samples.into_iter().flat_map(i16::to_le_bytes).collect()
    }

    #[test]
    fn levels_are_relative_to_full_scale() {
        assert_eq!(dbfs(0.0), SILENT_DBFS);
        assert!(dbfs(32_768.0 * 32_768.0).abs() < 1e-4);
        let sine: Vec<i16> = (0..1_600).map(|n| (32_767.0 * (n as f64 * 0.1).sin()) as i16).collect();
        let mut levels = Vec::new();
        WindowMeter::new(1_600).measure(&pcm(sine), &mut levels);
        assert!((levels[0] + 3.01).abs() < 0.1, "{levels:?}");
    }

    #[test]
    fn windows_span_frame_boundaries() {
        let mut meter = WindowMeter::new(4);
        let mut levels = Vec::new();
        meter.measure(&pcm([100, 100, 100]), &mut levels);
        assert!(levels.is_empty());
        meter.measure(&pcm([100, 0, 0, 0, 0, 7]), &mut levels);
        assert_eq!(levels.len(), 2);
        assert!((levels[0] - dbfs(10_000.0)).abs() < 1e-4);
        assert_eq!(levels[1], SILENT_DBFS);
    }

    #[test]
    fn the_floor_follows_the_quiet_windows_and_ignores_a_dropout() {
        let mut floor = NoiseFloor::new(20, -50.0, -70.0);
        assert_eq!(floor.estimate(), -50.0);
        for level in [-20.0, -20.0, -20.0] {
            floor.record(level);
        }
        assert_eq!(floor.estimate(), -50.0, "warm-up: speech does not become the floor");
        for _ in 0..20 {
            floor.record(-40.0);
        }
        assert_eq!(floor.estimate(), -40.0, "a full history may rise above the initial floor");
        floor.record(SILENT_DBFS);
        assert_eq!(floor.estimate(), -40.0);
        for _ in 0..20 {
            floor.record(SILENT_DBFS);
        }
        assert_eq!(floor.estimate(), -70.0);
    }
}
