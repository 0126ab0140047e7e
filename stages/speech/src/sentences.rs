//! Splits a reply into the pieces synthesised one at a time, so the first sentence
//! plays while the rest is still being synthesised.
//!
//! The split only decides latency and cache granularity, not pronunciation: espeak
//! and the phonemizer still see each piece's punctuation.

/// A piece longer than this (in characters) is split again at its commas, semicolons
/// or colons: a rambling LLM sentence would otherwise delay the first audio by its
/// whole synthesis time.
pub const MAX_PIECE_CHARS: usize = 200;

/// Words that end in a period without ending the sentence.
const ABBREVIATIONS: &[&str] = &["mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "approx", "mt", "no"];

/// The sentences of `text`, trimmed, in order, none empty. A sentence ends at `.`, `!`,
/// `?` or `…` (runs such as `?!` or `...` included, closing quotes and brackets kept)
/// followed by whitespace or the end, and at every line break.
pub fn split_sentences(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c == '\n' {
            push_piece(&mut pieces, &text[start..at]);
            start = at + c.len_utf8();
            i += 1;
            continue;
        }
        if !is_terminal(c) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && is_terminal(chars[j].1) {
            j += 1;
        }
        let marks = j - i;
        while j < chars.len() && is_closing(chars[j].1) {
            j += 1;
        }
        let end = chars.get(j).map_or(text.len(), |&(at, _)| at);
        let at_break = chars.get(j).is_none_or(|&(_, next)| next.is_whitespace());
        let abbreviated = c == '.' && marks == 1 && is_abbreviation(last_word(&text[start..at]));
        if at_break && !abbreviated {
            push_piece(&mut pieces, &text[start..end]);
            start = end;
        }
        i = j;
    }
    push_piece(&mut pieces, &text[start..]);
    pieces
}

/// How much of `text`, a reply still arriving, is whole sentences that can be spoken
/// now: the byte length of that prefix (0 when the first sentence is not finished).
/// A sentence counts as finished once what follows it shows it ended, so "Dr." or
/// "21." at the end of the text waits for the next word.
pub fn finished_len(text: &str) -> usize {
    // A word glued on after the text stands for whatever comes next: every piece
    // before the one holding it is as final as it will ever be.
    let probe = format!("{text}X");
    let pieces = split_sentences(&probe);
    match pieces.len().checked_sub(2).map(|i| pieces[i]) {
        Some(last_whole) => last_whole.as_ptr() as usize - probe.as_ptr() as usize + last_whole.len(),
        None => 0,
    }
}

fn push_piece<'a>(pieces: &mut Vec<&'a str>, piece: &'a str) {
    let piece = piece.trim();
    if piece.is_empty() {
        return;
    }
    if piece.chars().count() <= MAX_PIECE_CHARS {
        pieces.push(piece);
    } else {
        split_long(pieces, piece);
    }
}

/// Greedy: clauses are joined while the piece stays within the limit; a single clause
/// longer than the limit stays whole rather than being cut mid-phrase.
fn split_long<'a>(pieces: &mut Vec<&'a str>, sentence: &'a str) {
    let mut clause_ends: Vec<usize> = sentence
        .char_indices()
        .zip(sentence.chars().skip(1))
        .filter(|&((_, c), next)| matches!(c, ',' | ';' | ':') && next.is_whitespace())
        .map(|((at, c), _)| at + c.len_utf8())
        .collect();
    clause_ends.push(sentence.len());
    let mut start = 0;
    let mut last_fit = None;
    for end in clause_ends {
        if sentence[start..end].chars().count() > MAX_PIECE_CHARS {
            if let Some(fit) = last_fit.take() {
                pieces.push(sentence[start..fit].trim());
                start = fit;
            }
        }
        last_fit = Some(end);
    }
    let rest = sentence[start..].trim();
    if !rest.is_empty() {
        pieces.push(rest);
    }
}

fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…')
}

fn is_closing(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '”' | '’' | '»')
}

fn last_word(text: &str) -> &str {
    let word = text.rsplit(char::is_whitespace).next().unwrap_or_default();
    word.trim_start_matches(|c: char| !c.is_alphanumeric())
}

/// `Dr.`, an initial (`J.`), or a dotted abbreviation (`e.g.`, `U.S.`).
fn is_abbreviation(word: &str) -> bool {
    let single_letter = word.chars().count() == 1 && word.chars().all(char::is_alphabetic);
    single_letter || word.contains('.') || ABBREVIATIONS.iter().any(|known| word.eq_ignore_ascii_case(known))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_end_at_terminal_marks_followed_by_space() {
        assert_eq!(
            split_sentences("Turning on the lights. Done! Anything else?  Yes?! OK..."),
            ["Turning on the lights.", "Done!", "Anything else?", "Yes?!", "OK..."]
        );
    }

    #[test]
    fn numbers_abbreviations_and_initials_do_not_end_a_sentence() {
        assert_eq!(
            split_sentences("It is 21.5 degrees, e.g. warm. Dr. Who and J. Smith agree. Mr. T left."),
            ["It is 21.5 degrees, e.g. warm.", "Dr. Who and J. Smith agree.", "Mr. T left."]
        );
    }

    #[test]
    fn quotes_stay_with_their_sentence_and_lines_split() {
        assert_eq!(split_sentences("He said \"hi.\" Then left"), ["He said \"hi.\"", "Then left"]);
        assert_eq!(split_sentences("- milk\n- eggs\n\nthat's all"), ["- milk", "- eggs", "that's all"]);
    }

    #[test]
    fn a_growing_reply_is_finished_up_to_its_last_ended_sentence() {
        assert_eq!(finished_len("It is sunny"), 0);
        assert_eq!(finished_len("It is sunny."), 0, "the next character may be a digit");
        assert_eq!(finished_len("It is sunny. "), "It is sunny.".len());
        assert_eq!(finished_len("It is sunny. Take a"), "It is sunny.".len());
        assert_eq!(finished_len("One. Two! Three"), "One. Two!".len());
        assert_eq!(finished_len("Ask Dr. "), 0, "an abbreviation does not end the sentence");
        assert_eq!(finished_len("It is 21."), 0);
        assert_eq!(finished_len("- milk\n- egg"), "- milk".len());
        assert_eq!(finished_len(""), 0);
    }

    #[test]
    fn blank_text_has_no_sentences() {
        assert!(split_sentences("").is_empty());
        assert!(split_sentences(" \n\t ").is_empty());
        assert_eq!(split_sentences("..."), ["..."]);
    }

    #[test]
    fn a_long_sentence_splits_at_clauses_within_the_limit() {
        let clause = "the quick brown fox jumps over the lazy dog";
        let long = [clause; 8].join(", ") + ".";
        let pieces = split_sentences(&long);
        assert!(pieces.len() > 1, "{pieces:?}");
        assert!(pieces.iter().all(|piece| piece.chars().count() <= MAX_PIECE_CHARS), "{pieces:?}");
        assert_eq!(pieces.join(" "), long);
        assert!(pieces[0].ends_with(','));
    }

    #[test]
    fn a_long_clause_is_not_cut() {
        let long = "word ".repeat(60);
        assert_eq!(split_sentences(&long), [long.trim()]);
    }
}
