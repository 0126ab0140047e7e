//! When two of the home's names are the same thing said: case, punctuation, Whisper's
//! bracketed notes and plurals aside. The intent stage's matcher folds a transcript's
//! words the same way (`words.rs`), so a name the home accepts is one the matcher can
//! tell from every other; its tests check the two agree.

/// The words of `phrase`, lowercase, without punctuation or bracketed notes, each
/// plural folded to its singular, joined by single spaces: equal keys are the same
/// thing said ("Kitchen LIGHTS" and "kitchen light").
pub fn spoken_key(phrase: &str) -> String {
    spoken_words(phrase).split_whitespace().map(fold_plural).collect::<Vec<_>>().join(" ")
}

/// `text` as words said, separated by spaces: lowercase, without punctuation or
/// Whisper's `[BLANK_AUDIO]` and `(music)` notes; `%` becomes "percent",
/// `twenty-five` two words, `what's` one word ("whats"), and "5min" two. The
/// matcher reads transcripts through it too, so the home's names and what users say
/// are cut into words alike.
pub fn spoken_words(text: &str) -> String {
    let mut clean = String::with_capacity(text.len() + 8);
    let mut depth = 0usize;
    let mut previous = ' ';
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            '[' | '(' | '{' => depth += 1,
            ']' | ')' | '}' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            '%' => clean.push_str(" percent "),
            '\'' | '’' | '`' => {}
            c if c.is_alphanumeric() => {
                // A digit run and a letter run are separate words: "5min", "50percent".
                if previous.is_alphanumeric() && previous.is_ascii_digit() != c.is_ascii_digit() {
                    clean.push(' ');
                }
                clean.push(c);
            }
            _ => clean.push(' '),
        }
        previous = c;
    }
    clean
}

/// Plural and singular meet: "lights" and "light" both fold to "light".
pub fn fold_plural(word: &str) -> &str {
    let keep =
        word.len() <= 3 || !word.ends_with('s') || word.ends_with("ss") || word.ends_with("us") || word.ends_with("is");
    if keep {
        word
    } else {
        &word[..word.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_said_alike_have_one_key() {
        assert_eq!(spoken_key("  Kitchen   LIGHTS "), "kitchen light");
        assert_eq!(spoken_key("Living-room lamp (big)"), "living room lamp");
        assert_eq!(spoken_key("what's 5min"), "what 5 min");
        assert_eq!(spoken_key("glass its"), "glass its");
        assert_eq!(spoken_key("?!"), "");
    }
}
