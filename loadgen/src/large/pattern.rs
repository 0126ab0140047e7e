//! The large message's payload: a pattern any receiver can regenerate at any offset, so
//! a 256 MiB message is checked byte for byte as it streams in, without either side
//! holding it whole, plus a digest of what was actually sent and received.

/// Byte `i` of a payload is byte `i % 8` (little endian) of `splitmix64(seed + i / 8)`.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    seed: u64,
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Pattern {
    pub fn new(seed: u64) -> Self {
        Pattern { seed }
    }

    fn word(&self, index: u64) -> [u8; 8] {
        splitmix64(self.seed.wrapping_add(index)).to_le_bytes()
    }

    /// Writes the payload bytes `[offset, offset + out.len())` into `out`.
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        let mut at = 0usize;
        let mut pos = offset;
        // Unaligned head, whole words, unaligned tail.
        while at < out.len() && !pos.is_multiple_of(8) {
            out[at] = self.word(pos / 8)[(pos % 8) as usize];
            at += 1;
            pos += 1;
        }
        let whole = (out.len() - at) / 8 * 8;
        for (i, chunk) in out[at..at + whole].chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&self.word(pos / 8 + i as u64));
        }
        at += whole;
        pos += whole as u64;
        while at < out.len() {
            out[at] = self.word(pos / 8)[(pos % 8) as usize];
            at += 1;
            pos += 1;
        }
    }
}

/// A 64-bit digest of a byte stream that does not depend on how the stream was cut
/// into chunks.
#[derive(Debug, Clone, Default)]
pub struct Digest {
    state: u64,
    carry: [u8; 8],
    carried: usize,
    len: u64,
}

impl Digest {
    fn mix(&mut self, word: u64) {
        self.state = (self.state ^ word).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(23);
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.carried > 0 {
            let take = (8 - self.carried).min(bytes.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&bytes[..take]);
            self.carried += take;
            bytes = &bytes[take..];
            if self.carried < 8 {
                return;
            }
            self.mix(u64::from_le_bytes(self.carry));
            self.carried = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().expect("chunks of 8")));
        }
        let rest = words.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
    }

    pub fn finish(&self) -> u64 {
        let mut tail = [0u8; 8];
        tail[..self.carried].copy_from_slice(&self.carry[..self.carried]);
        splitmix64(self.state ^ u64::from_le_bytes(tail) ^ self.len.rotate_left(32))
    }
}

/// Compares a stream against the pattern as it arrives.
#[derive(Debug, Clone)]
pub struct Checker {
    pattern: Pattern,
    offset: u64,
    expected: Vec<u8>,
    pub first_mismatch: Option<u64>,
    pub digest: Digest,
}

impl Checker {
    pub fn new(pattern: Pattern) -> Self {
        Checker { pattern, offset: 0, expected: Vec::new(), first_mismatch: None, digest: Digest::default() }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.digest.update(chunk);
        if self.first_mismatch.is_none() {
            self.expected.resize(chunk.len(), 0);
            self.pattern.fill(self.offset, &mut self.expected);
            if chunk != self.expected.as_slice() {
                let at = chunk.iter().zip(&self.expected).position(|(a, b)| a != b).unwrap_or(0);
                self.first_mismatch = Some(self.offset + at as u64);
            }
        }
        self.offset += chunk.len() as u64;
    }

    pub fn received(&self) -> u64 {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_wrong_byte_is_found_where_it_is() {
        let p = Pattern::new(7);
        let mut payload = vec![0u8; 10_000];
        p.fill(0, &mut payload);
        let mut good = Checker::new(p);
        payload.chunks(333).for_each(|c| good.update(c));
        assert_eq!((good.first_mismatch, good.received()), (None, 10_000));
        payload[4321] ^= 1;
        let mut bad = Checker::new(p);
        payload.chunks(1000).for_each(|c| bad.update(c));
        assert_eq!(bad.first_mismatch, Some(4321));
        assert_ne!(bad.digest.finish(), good.digest.finish());
    }

    proptest! {
        #[test]
        fn fill_and_digest_do_not_depend_on_the_cuts(seed: u64, len in 0usize..3000, cuts in proptest::collection::vec(0usize..3000, 0..6)) {
            let p = Pattern::new(seed);
            let mut whole = vec![0u8; len];
            p.fill(0, &mut whole);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(len)).collect();
            points.push(0);
            points.push(len);
            points.sort_unstable();
            let (mut pieced, mut digest, mut whole_digest) = (vec![0u8; len], Digest::default(), Digest::default());
            for w in points.windows(2) {
                p.fill(w[0] as u64, &mut pieced[w[0]..w[1]]);
                digest.update(&whole[w[0]..w[1]]);
            }
            whole_digest.update(&whole);
            prop_assert_eq!(&pieced, &whole);
            prop_assert_eq!(digest.finish(), whole_digest.finish());
        }
    }
}
