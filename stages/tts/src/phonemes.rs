//! Text → IPA phonemes the way Piper voices were trained: libespeak-ng, clause by
//! clause, with each clause's punctuation put back, one phoneme string per sentence.
//!
//! `espeak_TextToPhonemes` returns a clause's phonemes but not the punctuation that
//! ended it (Piper's own espeak fork adds a call for that; Debian's libespeak-ng 1.51
//! lacks it). The voice needs the punctuation — it shapes pauses and intonation — so it
//! is recovered from the text espeak consumed for the clause.

use crate::error::TtsError;
use crate::espeak::{self, RawClause};

/// Turns text into Piper phoneme sentences with one espeak-ng voice.
#[derive(Clone, Debug)]
pub struct Phonemizer {
    voice: String,
}

impl Phonemizer {
    /// `voice` is an espeak-ng voice name, as in the Piper voice's `espeak.voice`
    /// (`en-us`).
    pub fn new(voice: impl Into<String>) -> Self {
        Self { voice: voice.into() }
    }

    pub fn voice(&self) -> &str {
        &self.voice
    }

    /// One IPA string per sentence, punctuation kept (`"həlˈoʊ, wˈɜːld!"`). Empty when
    /// the text has nothing to pronounce.
    pub fn phonemize(&self, text: &str) -> Result<Vec<String>, TtsError> {
        // espeak names a lone mark ("colon", "exclamation"); a reply of only marks is
        // nothing to say, not a word to read out.
        if !text.chars().any(|c| !c.is_whitespace() && !is_silent_mark(c)) {
            return Ok(Vec::new());
        }
        let clauses = espeak::text_to_phonemes(&self.voice, text)?;
        Ok(assemble_sentences(text, &clauses))
    }
}

/// Joins espeak's clauses into sentences: a clause ending in `.`, `?` or `!` closes a
/// sentence; `,`, `;` and `:` stay inside it followed by a space, as Piper writes them.
fn assemble_sentences(text: &str, clauses: &[RawClause]) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut current = String::new();
    for (index, clause) in clauses.iter().enumerate() {
        let is_last = index + 1 == clauses.len();
        let ipa = without_language_flags(clause.ipa.trim());
        if !ipa.is_empty() {
            if !current.is_empty() && !current.ends_with(' ') {
                current.push(' ');
            }
            current.push_str(ipa.trim());
        }
        let source = text.get(clause.text.clone()).unwrap_or_default();
        match clause_punctuation(source, is_last) {
            Some(mark @ ('.' | '?' | '!')) if !current.is_empty() => {
                current.push(mark);
                sentences.push(std::mem::take(&mut current));
            }
            // A sentence mark after nothing (`"... "`) closes no sentence.
            Some('.' | '?' | '!') => {}
            Some(mark) if !current.is_empty() => {
                current.push(mark);
                current.push(' ');
            }
            _ => {}
        }
    }
    let rest = current.trim_end();
    if !rest.is_empty() {
        sentences.push(rest.to_owned());
    }
    sentences
}

/// The punctuation that ended a clause, from the text espeak consumed for it, mapped
/// the way Piper's espeak bridge reports clause types.
///
/// Unless the clause is the last one, espeak has read one character of the next
/// clause before returning (`"Hello, w"`), so a trailing non-space character is
/// dropped first; closing quotes and brackets after the mark are skipped (`"hi."`).
/// In a run of marks the first counts (`?!` is a question); a dash is a semicolon;
/// an ellipsis is a pause with no mark and no sentence end.
fn clause_punctuation(source: &str, is_last: bool) -> Option<char> {
    let mut chars = source.chars().rev().peekable();
    if !is_last {
        chars.next_if(|&c| !c.is_whitespace() && !is_clause_mark(c) && !is_closing(c));
    }
    while chars.next_if(|&c| c.is_whitespace() || is_closing(c)).is_some() {}
    let run: Vec<char> = std::iter::from_fn(|| chars.next_if(|&c| is_clause_mark(c))).collect();
    let first = *run.last()?;
    if run.contains(&'…') || run.iter().filter(|&&c| c == '.').count() > 1 {
        return None;
    }
    match first {
        '—' | '–' => Some(';'),
        mark => Some(mark),
    }
}

/// Punctuation with no name worth speaking; symbols such as `$`, `%` or `&` are words.
fn is_silent_mark(c: char) -> bool {
    is_clause_mark(c)
        || is_closing(c)
        || matches!(c, '-' | '(' | '[' | '{' | '“' | '‘' | '«' | '¡' | '¿' | '/' | '\\' | '_' | '*' | '~')
}

/// Marks espeak ends a clause at (a spaced dash does too).
fn is_clause_mark(c: char) -> bool {
    matches!(c, '.' | ',' | ';' | ':' | '!' | '?' | '…' | '—' | '–')
}

fn is_closing(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '”' | '’' | '»')
}

/// espeak marks words it reads in another language with `(fr)`…`(en)`; the voice has
/// no phonemes for the marks, and Piper drops them too.
fn without_language_flags(ipa: &str) -> std::borrow::Cow<'_, str> {
    if !ipa.contains('(') {
        return ipa.into();
    }
    let mut out = String::with_capacity(ipa.len());
    let mut rest = ipa;
    while let Some(open) = rest.find('(') {
        out.push_str(&rest[..open]);
        match rest[open..].find(')') {
            Some(close) if is_language_tag(&rest[open + 1..open + close]) => rest = &rest[open + close + 1..],
            _ => {
                out.push('(');
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out.into()
}

fn is_language_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= 12 && tag.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phonemes(text: &str) -> Vec<String> {
        Phonemizer::new("en-us").phonemize(text).unwrap()
    }

    #[test]
    fn a_sentence_keeps_its_final_punctuation() {
        assert_eq!(phonemes("Turning on the kitchen lights."), ["tˈɜːnɪŋ ɔnðə kˈɪtʃən lˈaɪts."]);
    }

    #[test]
    fn clauses_keep_their_marks_and_sentences_split_at_terminal_marks() {
        assert_eq!(
            phonemes("Hello, world! How are you? I'm fine; thanks: really."),
            ["həlˈoʊ, wˈɜːld!", "hˈaʊ ɑːɹ juː?", "aɪm fˈaɪn; θˈæŋks: ɹˈiəli."]
        );
    }

    #[test]
    fn closing_quotes_spaces_and_a_missing_final_mark_are_handled() {
        assert_eq!(phonemes("He said \"hi.\"   Then left"), ["hiː sˈɛd hˈaɪ.", "ðˈɛn lˈɛft"]);
        assert_eq!(phonemes("Is it 3.5? Yes"), ["ɪz ɪt θɹˈiː pɔɪnt fˈaɪv?", "jˈɛs"]);
    }

    /// Checked against Piper 1.8's own phonemizer on the same texts. Where an ellipsis
    /// ends a clause Piper glues the words together (`wˈeɪtwˌʌt`); a space is kept here.
    #[test]
    fn dashes_ellipses_and_mark_runs_follow_piper() {
        assert_eq!(phonemes("Voilà — naïve café (maybe)."), ["vwɑːlˈɑː; naɪˈiːv kæfˈeɪ mˈeɪbiː."]);
        assert_eq!(phonemes("Really?!"), ["ɹˈiəli?"]);
        assert_eq!(phonemes("Hello!! World"), ["həlˈoʊ!", "wˈɜːld"]);
        assert_eq!(phonemes("Wait... what?"), ["wˈeɪt wˌʌt?"]);
        assert_eq!(phonemes("Dr. Smith."), ["dˈɑːktɚ.", "smˈɪθ."]);
    }

    #[test]
    fn nothing_to_pronounce_gives_no_sentences() {
        for text in ["", "   ", "...?!", "\n\n", "— ; :", "?? !! …", "(\"...\")"] {
            assert!(phonemes(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn a_nul_byte_does_not_cut_the_text_short() {
        assert_eq!(phonemes("one\0two.").len(), 1);
        assert!(phonemes("one\0two.")[0].contains("tˈuː"));
    }

    #[test]
    fn punctuation_is_recovered_from_the_consumed_text() {
        assert_eq!(clause_punctuation("Hello, w", false), Some(','));
        assert_eq!(clause_punctuation("orld.   N", false), Some('.'));
        assert_eq!(clause_punctuation("He said \"hi.\"", false), Some('.'));
        assert_eq!(clause_punctuation("Wait… w", false), None);
        assert_eq!(clause_punctuation("Wait... w", false), None);
        assert_eq!(clause_punctuation("Really?!", true), Some('?'));
        assert_eq!(clause_punctuation("Hello!! W", false), Some('!'));
        assert_eq!(clause_punctuation("Voilà — n", false), Some(';'));
        assert_eq!(clause_punctuation("eally.", true), Some('.'));
        assert_eq!(clause_punctuation("ext", true), None);
        assert_eq!(clause_punctuation("word word w", false), None);
    }

    #[test]
    fn language_flags_are_dropped_and_other_parentheses_kept() {
        assert_eq!(without_language_flags("(fr)kafe(en) ɪz"), "kafe ɪz");
        assert_eq!(without_language_flags("a(b"), "a(b");
        assert_eq!(without_language_flags("a (X) b"), "a (X) b");
    }
}
