//! The seeded generator every case draws from.
//!
//! Case `i` of seed `s` gets its own ChaCha stream (proptest's `TestRng`, which
//! promises the same sequence for the same seed on every system and proptest version),
//! so a case is reproduced from `(seed, index)` alone, whatever ran before it or
//! beside it. Text that should be odd in ways nobody thought of comes from proptest's
//! `any::<String>()` strategy, driven by the same stream.

use proptest::prelude::{any, Rng as _, Strategy};
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// One case's source of randomness.
pub(crate) struct Gen {
    runner: TestRunner,
}

/// SplitMix64: spreads `(seed, index)` over the 32 bytes of a ChaCha seed.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Gen {
    pub(crate) fn for_case(seed: u64, index: u64) -> Gen {
        let mut state = seed ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03);
        let mut bytes = [0u8; 32];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&splitmix(&mut state).to_le_bytes());
        }
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
        Gen { runner: TestRunner::new_with_rng(Config::default(), rng) }
    }

    pub(crate) fn u64(&mut self) -> u64 {
        self.runner.rng().next_u64()
    }

    pub(crate) fn u16(&mut self) -> u16 {
        self.u64() as u16
    }

    pub(crate) fn u8(&mut self) -> u8 {
        self.u64() as u8
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.u64() % n as u64) as usize
        }
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub(crate) fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Index by weight: `weights[i]` / sum.
    pub(crate) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut roll = self.below(total as usize) as u32;
        for (i, &w) in weights.iter().enumerate() {
            if roll < w {
                return i;
            }
            roll -= w;
        }
        weights.len() - 1
    }

    /// A length up to `max`, log-uniform: mostly small, now and then near `max`, so
    /// both the common path and the limits are hit.
    pub(crate) fn len_up_to(&mut self, max: usize) -> usize {
        let bits = usize::BITS - max.leading_zeros();
        let scale = self.below(bits as usize + 1) as u32;
        let cap = if scale >= usize::BITS { max } else { ((1usize << scale) - 1).min(max) };
        self.below(cap + 1)
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.runner.rng().fill_bytes(&mut out);
        out
    }

    /// Any Unicode text, from proptest's string strategy (control characters,
    /// surrogates' neighbours, combining marks, right-to-left text, ...).
    pub(crate) fn unicode(&mut self) -> String {
        any::<String>().new_tree(&mut self.runner).map(|tree| tree.current()).unwrap_or_default()
    }

    /// A short lowercase word, for names that should look ordinary.
    pub(crate) fn word(&mut self, max_len: usize) -> String {
        let len = self.range(1, max_len.max(1));
        (0..len).map(|_| (b'a' + self.below(26) as u8) as char).collect()
    }

    /// Bytes for an MQTT string field: usually plain, else one of the encodings the
    /// specifications forbid or that trip naive code.
    pub(crate) fn odd_text(&mut self) -> Vec<u8> {
        match self.below(14) {
            0 => Vec::new(),
            1 => b"nul\0inside".to_vec(),
            2 => vec![0xff, 0xfe, b'x'],                // not UTF-8 at all
            3 => vec![0xc3, 0x28],                      // a broken two-byte sequence
            4 => vec![0xed, 0xa0, 0x80],                // an encoded UTF-16 surrogate
            5 => vec![0xf4, 0x90, 0x80, 0x80],          // past U+10FFFF
            6 => vec![0xc0, 0xaf],                      // an overlong '/'
            7 => "\u{feff}bom".as_bytes().to_vec(),     // byte order mark first
            8 => "ünïcödé/首页/🏠".as_bytes().to_vec(), // non-ASCII first character
            9 => self.unicode().into_bytes(),
            10 => {
                let len = self.len_up_to(70_000);
                vec![b'a'; len]
            }
            11 => b"\x01\x02\x7f control".to_vec(),
            12 => {
                let len = self.len_up_to(64);
                self.bytes(len)
            }
            _ => self.word(12).into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_reproduced_from_seed_and_index() {
        let draw = |seed, index| {
            let mut g = Gen::for_case(seed, index);
            (g.u64(), g.bytes(16), g.unicode(), g.odd_text())
        };
        assert_eq!(draw(7, 42), draw(7, 42));
        assert_ne!(draw(7, 42).0, draw(7, 43).0);
        assert_ne!(draw(7, 42).0, draw(8, 42).0);
    }

    #[test]
    fn lengths_and_picks_stay_in_bounds() {
        let mut g = Gen::for_case(1, 1);
        let mut saw_large = false;
        for _ in 0..2_000 {
            let n = g.len_up_to(1_000_000);
            assert!(n <= 1_000_000);
            saw_large |= n > 100_000;
            assert!(g.range(3, 5) >= 3 && g.range(3, 5) <= 5);
            assert!(g.weighted(&[0, 5, 0]) == 1);
        }
        assert!(saw_large, "log-uniform lengths reach near the top");
        assert_eq!(g.below(0), 0);
        assert_eq!(g.len_up_to(0), 0);
    }
}
