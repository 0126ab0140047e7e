//! Synthesised sentences kept for reuse: assistants repeat themselves ("OK.", "Done.",
//! "The kitchen lights are on."), and a hit costs a hash lookup instead of a model run.

use std::num::NonZeroUsize;

use bytes::Bytes;
use lru::LruCache;

/// Least-recently-used audio by voice and sentence, bounded by entries and by bytes
/// (one long sentence is ~32 KB per second of audio).
pub(crate) struct SentenceCache {
    entries: LruCache<String, Bytes>,
    bytes: usize,
    max_bytes: usize,
}

impl SentenceCache {
    /// `None` when either bound is zero: caching is off.
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Option<Self> {
        let max_entries = NonZeroUsize::new(max_entries)?;
        (max_bytes > 0).then(|| Self { entries: LruCache::new(max_entries), bytes: 0, max_bytes })
    }

    /// The key joins voice and text with a separator neither contains in practice, so
    /// two voices never share audio.
    pub(crate) fn key(voice: &str, sentence: &str) -> String {
        let mut key = String::with_capacity(voice.len() + 1 + sentence.len());
        key.push_str(voice);
        key.push('\u{1f}');
        key.push_str(sentence);
        key
    }

    /// The audio for `key`, marked as recently used; a clone of the `Bytes` handle.
    pub(crate) fn get(&mut self, key: &str) -> Option<Bytes> {
        self.entries.get(key).cloned()
    }

    pub(crate) fn insert(&mut self, key: String, audio: Bytes) {
        if audio.len() > self.max_bytes {
            return;
        }
        self.bytes += audio.len();
        if let Some((_, replaced)) = self.entries.push(key, audio) {
            self.bytes -= replaced.len();
        }
        while self.bytes > self.max_bytes {
            match self.entries.pop_lru() {
                Some((_, evicted)) => self.bytes -= evicted.len(),
                None => break,
            }
        }
        debug_assert_eq!(self.bytes, self.entries.iter().map(|(_, audio)| audio.len()).sum::<usize>());
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(len: usize) -> Bytes {
        Bytes::from(vec![7u8; len])
    }

    #[test]
    fn a_hit_returns_the_same_buffer() {
        let mut cache = SentenceCache::new(4, 1_000).unwrap();
        let key = SentenceCache::key("joe", "OK.");
        let pcm = audio(10);
        cache.insert(key.clone(), pcm.clone());
        assert_eq!(cache.get(&key).unwrap().as_ptr(), pcm.as_ptr());
        assert!(cache.get(&SentenceCache::key("amy", "OK.")).is_none());
    }

    #[test]
    fn least_recently_used_goes_first_by_count_and_by_bytes() {
        let mut cache = SentenceCache::new(2, 100).unwrap();
        cache.insert("a".into(), audio(10));
        cache.insert("b".into(), audio(10));
        cache.get("a");
        cache.insert("c".into(), audio(10));
        assert!(cache.get("b").is_none() && cache.get("a").is_some() && cache.get("c").is_some());

        cache.insert("d".into(), audio(95));
        assert_eq!(cache.len(), 1);
        assert!(cache.get("d").is_some());
        cache.insert("huge".into(), audio(101));
        assert!(cache.get("huge").is_none() && cache.get("d").is_some());
    }

    #[test]
    fn replacing_a_key_keeps_the_byte_count_right() {
        let mut cache = SentenceCache::new(4, 100).unwrap();
        cache.insert("a".into(), audio(60));
        cache.insert("a".into(), audio(30));
        cache.insert("b".into(), audio(60));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn zero_bounds_turn_caching_off() {
        assert!(SentenceCache::new(0, 100).is_none());
        assert!(SentenceCache::new(4, 0).is_none());
    }
}
