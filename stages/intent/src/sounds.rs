//! Names that sound alike: Whisper writes what it heard, and a room it was not sure of
//! comes out as words that sound the same ("whole way" for hallway, "leaving room" for
//! living room, "bad room" for bedroom). A phonetic key (letters folded to the sounds
//! they make in English, vowels to one mark) makes those equal, and an edit distance
//! over keys and over spellings says how close the rest are.

/// The sound of `phrase`, spaces ignored: "whole way" and "hallway" are both `HALWA`.
pub(crate) fn sound_key(phrase: &str) -> String {
    let mut key = String::with_capacity(phrase.len());
    let push = |key: &mut String, c: char| {
        if !key.ends_with(c) {
            key.push(c);
        }
    };
    // Words are keyed one by one for their first-letter rules and a silent final e,
    // then joined: a name's sound does not depend on where Whisper put the spaces.
    for word in phrase.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty()) {
        let w: Vec<char> = word.chars().map(|c| c.to_ascii_lowercase()).collect();
        let mut end = w.len();
        if end > 2 && w[end - 1] == 'e' && !is_vowel(w[end - 2]) {
            end -= 1; // "whole", "lounge": the final e is silent
        }
        let mut i = 0;
        while i < end {
            let (c, next, after) = (w[i], w.get(i + 1).copied(), w.get(i + 2).copied());
            let rest = |s: &str| w[i..end].iter().collect::<String>().starts_with(s);
            let (sound, used) = match c {
                'w' if i == 0 && next == Some('h') && after == Some('o') => ('h', 2), // whole, who
                'w' if next == Some('h') => ('w', 2),
                'w' if i == 0 && next == Some('r') => ('r', 2),
                'k' if i == 0 && next == Some('n') => ('n', 2),
                'p' if next == Some('h') => ('f', 2),
                'g' if next == Some('h') => ('\0', 2),
                't' if rest("tch") => ('x', 3),
                't' if next == Some('h') => ('0', 2),
                's' | 'c' if next == Some('h') => ('x', 2),
                'c' if next == Some('k') => ('k', 2),
                'c' if matches!(next, Some('e' | 'i' | 'y')) => ('s', 1),
                'c' | 'q' => ('k', 1),
                'd' if next == Some('g') => ('j', 2),
                'z' => ('s', 1),
                'x' => ('s', 1),
                'y' if i == 0 => ('y', 1),
                c if is_vowel(c) => ('a', 1),
                c => (c, 1),
            };
            if sound != '\0' {
                push(&mut key, sound);
            }
            i += used;
        }
    }
    key.to_ascii_uppercase()
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y')
}

/// Levenshtein distance between two strings, by characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            row[j + 1] = (previous[j] + usize::from(ca != cb)).min(previous[j + 1] + 1).min(row[j] + 1);
        }
        previous = row;
    }
    previous[b.len()]
}

/// How far `heard` is from `known`, 0 (the same sound) to 1: the smaller of the
/// distances between their sounds and between their spellings, each over the longer;
/// but names spelt more than half apart are apart, however their keys compare (the
/// key is coarse: "garage door" and "corridor" differ by two sounds).
pub(crate) fn distance(heard: &str, known: &str) -> f32 {
    let relative =
        |a: &str, b: &str| edit_distance(a, b) as f32 / a.chars().count().max(b.chars().count()).max(1) as f32;
    let letters = |s: &str| s.chars().filter(char::is_ascii_alphabetic).collect::<String>().to_ascii_lowercase();
    let spelling = relative(&letters(heard), &letters(known));
    if spelling > SPELT_APART {
        return spelling;
    }
    relative(&sound_key(heard), &sound_key(known)).min(spelling)
}

/// Spellings further apart than this are different names.
const SPELT_APART: f32 = 0.5;

/// Closer than this, a heard name may be a known one: asked back ("Did you mean the
/// bedroom lamp?"), never acted on.
pub(crate) const CLOSE: f32 = 0.34;
/// This close, a heard name is the known one (the same sound, or a letter off in a
/// long word), when no other is close.
pub(crate) const SAME: f32 = 0.15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_whisper_mishears_sound_like_the_real_ones() {
        for (heard, known) in [
            ("whole way", "hallway"),
            ("leaving room", "living room"),
            ("bad room", "bedroom"),
            ("kitten", "kitchen"),
            ("hole way lights", "hallway lights"),
            ("bed side lamp", "bedside lamp"),
            ("lounge", "lounge"),
        ] {
            assert!(distance(heard, known) < CLOSE, "{heard} ~ {known}: {}", distance(heard, known));
        }
        assert_eq!(sound_key("whole way"), sound_key("hallway"));
        for (heard, known) in [("whole way", "hallway"), ("leaving room", "living room"), ("bad room", "bedroom")] {
            assert!(distance(heard, known) <= SAME, "{heard} = {known}");
        }
        // Close enough to ask about, not to act on.
        assert!(distance("bathroom", "bedroom") > SAME && distance("bathroom", "bedroom") < CLOSE);
    }

    #[test]
    fn different_names_stay_apart() {
        for (heard, known) in [
            ("garage", "kitchen"),
            ("office", "hallway"),
            ("tv", "lamp"),
            ("porch", "lounge"),
            ("garage door", "corridor"),
        ] {
            assert!(distance(heard, known) >= CLOSE, "{heard} !~ {known}: {}", distance(heard, known));
        }
    }
}
