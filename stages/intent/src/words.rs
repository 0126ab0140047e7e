//! From a transcript to words the matcher compares: case, punctuation, Whisper's
//! bracketed notes, plurals, number words and durations.

use alicia_home::{fold_plural, spoken_words};

/// One word of the transcript: as said (for replies) and folded (for matching).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) said: String,
    pub(crate) folded: String,
}

/// The words of `text` as the home's names are cut ([`alicia_home::spoken_words`]),
/// each as said and folded to its singular.
pub(crate) fn words(text: &str) -> Vec<Word> {
    let said = spoken_words(text);
    said.split_whitespace().map(|w| Word { folded: fold(w), said: w.to_string() }).collect()
}

/// Plural and singular meet: "lights" and "light" both fold to "light".
pub(crate) fn fold(word: &str) -> String {
    fold_plural(word).to_string()
}

fn unit_value(word: &str) -> Option<u32> {
    let value = match word {
        "zero" | "oh" | "nil" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        _ => return None,
    };
    Some(value)
}

fn tens_value(word: &str) -> Option<u32> {
    let value = match word {
        "twenty" => 20,
        "thirty" => 30,
        "forty" | "fourty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    };
    Some(value)
}

/// Whether `word` (folded) is part of how a number is said.
pub(crate) fn is_number_word(word: &str) -> bool {
    word.bytes().all(|b| b.is_ascii_digit())
        || unit_value(word).is_some()
        || tens_value(word).is_some()
        || matches!(word, "hundred" | "thousand")
}

/// The number that starts at `words[at]` and how many words it took: "50",
/// "fifty", "twenty five", "a hundred", "one hundred and twenty".
pub(crate) fn number_at(words: &[&str], at: usize) -> Option<(u32, usize)> {
    let word = *words.get(at)?;
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
        return word.parse().ok().map(|n| (n, 1));
    }
    let mut used = 0;
    let mut value = match word {
        "a" | "an" if words.get(at + 1) == Some(&"hundred") => {
            used += 1;
            Some(1)
        }
        _ => None,
    };
    if value.is_none() {
        value = small_number(words, at).map(|(n, len)| {
            used += len;
            n
        });
    }
    let mut value = match (value, words.get(at + used)) {
        (Some(n), Some(&"hundred")) => {
            used += 1;
            n * 100
        }
        (None, _) if word == "hundred" => {
            used += 1;
            100
        }
        (Some(n), _) => return Some((n, used)),
        (None, _) => return None,
    };
    // "one hundred and twenty", "a hundred five"
    let and = usize::from(words.get(at + used) == Some(&"and"));
    if let Some((rest, len)) = small_number(words, at + used + and) {
        value += rest;
        used += and + len;
    }
    Some((value, used))
}

/// 0..=99 in words.
fn small_number(words: &[&str], at: usize) -> Option<(u32, usize)> {
    let word = *words.get(at)?;
    if let Some(n) = unit_value(word) {
        return Some((n, 1));
    }
    let tens = tens_value(word)?;
    match words.get(at + 1).and_then(|w| unit_value(w)) {
        Some(unit @ 1..=9) => Some((tens + unit, 2)),
        _ => Some((tens, 1)),
    }
}

/// The duration said in `words` (folded), in seconds: "five minutes", "a minute",
/// "half an hour", "an hour and a half", "1 hour 30 minutes", "90 seconds", "a quarter
/// of an hour". Several amounts add up.
pub(crate) fn duration(words: &[&str]) -> Option<u64> {
    let mut total = 0u64;
    let mut found = false;
    let mut at = 0;
    while at < words.len() {
        // "half an hour", "half a minute", "a quarter of an hour"
        let fraction = match (words[at], words.get(at + 1)) {
            ("half", _) => Some((1, 2, 1)),
            ("a", Some(&"half")) => Some((1, 2, 2)),
            ("quarter", _) => Some((1, 4, 1)),
            ("a", Some(&"quarter")) => Some((1, 4, 2)),
            _ => None,
        };
        if let Some((num, den, len)) = fraction {
            let mut next = at + len;
            while matches!(words.get(next), Some(&("a" | "an" | "of"))) {
                next += 1;
            }
            if let Some(unit) = words.get(next).and_then(|w| unit_seconds(w)) {
                total += unit * num / den;
                found = true;
                at = next + 1;
                continue;
            }
        }
        let count = match words[at] {
            "a" | "an" | "one" if words.get(at + 1).and_then(|w| unit_seconds(w)).is_some() => Some((1, 1)),
            _ => number_at(words, at),
        };
        if let Some((n, len)) = count {
            // "two and a half minutes"
            let half = words.get(at + len..at + len + 3) == Some(&["and", "a", "half"][..]);
            let unit_at = at + len + if half { 3 } else { 0 };
            if let Some(unit) = words.get(unit_at).and_then(|w| unit_seconds(w)) {
                total += u64::from(n) * unit + if half { unit / 2 } else { 0 };
                found = true;
                // "an hour and a half"
                if words.get(unit_at + 1..unit_at + 4) == Some(&["and", "a", "half"][..]) {
                    total += unit / 2;
                    at = unit_at + 4;
                } else {
                    at = unit_at + 1;
                }
                continue;
            }
        }
        at += 1;
    }
    found.then_some(total)
}

fn unit_seconds(word: &str) -> Option<u64> {
    match word {
        "second" | "sec" => Some(1),
        "minute" | "min" => Some(60),
        "hour" | "hr" => Some(3_600),
        _ => None,
    }
}

/// Whether `word` (folded) names a unit of time.
pub(crate) fn is_time_unit(word: &str) -> bool {
    unit_seconds(word).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(text: &str) -> Vec<String> {
        words(text).into_iter().map(|w| w.folded).collect()
    }

    fn number(text: &str) -> Option<(u32, usize)> {
        let words = folded(text);
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        number_at(&refs, 0)
    }

    fn minutes(text: &str) -> Option<f64> {
        let words = folded(text);
        let refs: Vec<&str> = words.iter().map(String::as_str).collect();
        duration(&refs).map(|seconds| seconds as f64 / 60.0)
    }

    #[test]
    fn whisper_output_becomes_plain_words() {
        assert_eq!(folded(" Turn on the Kitchen Lights, please!"), ["turn", "on", "the", "kitchen", "light", "please"]);
        assert_eq!(folded("[BLANK_AUDIO] (music) What's the time?"), ["what", "the", "time"]);
        assert_eq!(folded("Set it to 50%."), ["set", "it", "to", "50", "percent"]);
        assert_eq!(folded("a twenty-five 5min timer"), ["a", "twenty", "five", "5", "min", "timer"]);
        assert_eq!(words("Lamps")[0].said, "lamps");
        assert_eq!(fold("glass"), "glass");
        assert_eq!(fold("its"), "its");
    }

    #[test]
    fn numbers_in_digits_and_words() {
        assert_eq!(number("50"), Some((50, 1)));
        assert_eq!(number("fifty percent"), Some((50, 1)));
        assert_eq!(number("twenty five"), Some((25, 2)));
        assert_eq!(number("seventy"), Some((70, 1)));
        assert_eq!(number("a hundred"), Some((100, 2)));
        assert_eq!(number("one hundred and twenty"), Some((120, 4)));
        assert_eq!(number("hundred"), Some((100, 1)));
        assert_eq!(number("lamp"), None);
        assert_eq!(number("a lamp"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(minutes("five minutes"), Some(5.0));
        assert_eq!(minutes("for 5 minutes"), Some(5.0));
        assert_eq!(minutes("a minute"), Some(1.0));
        assert_eq!(minutes("one minute"), Some(1.0));
        assert_eq!(minutes("half an hour"), Some(30.0));
        assert_eq!(minutes("a quarter of an hour"), Some(15.0));
        assert_eq!(minutes("an hour and a half"), Some(90.0));
        assert_eq!(minutes("two and a half minutes"), Some(2.5));
        assert_eq!(minutes("1 hour 30 minutes"), Some(90.0));
        assert_eq!(minutes("an hour and 10 minutes"), Some(70.0));
        assert_eq!(minutes("90 seconds"), Some(1.5));
        assert_eq!(minutes("twenty five minutes"), Some(25.0));
        assert_eq!(minutes("a 10 minute timer"), Some(10.0));
        assert_eq!(minutes("set a timer"), None);
    }
}
