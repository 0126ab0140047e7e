//! A decoding that has begun to loop, stopped as it begins, and cut back to its first
//! copy when all it did was start the utterance over.
//!
//! Prompted with the home's names, whisper.cpp often transcribes a short command and
//! then starts it over ("Turn off the hallway lights, turn off the hallway lights, turn
//! off ...") up to the token budget: the prompt, a list without timestamps, leads it to
//! write no closing timestamp, so nothing ends the segment. Measured on espeak-ng
//! requests with the sample home's prompt, a quarter of the quick passes did; each then
//! cost the whole budget's decoding and a pass on a wider window, about 350 ms at ten
//! sessions where a clean pass takes 100.
//!
//! whisper.cpp hands a logits filter the tokens so far before it picks each next one.
//! Ours ([`stop_loops`]) leaves only the end of text once the words end in a phrase of
//! up to eight words said twice and begun a third time (one word: three times), which
//! speech does not do. A text that is nothing but one phrase over and over is the
//! utterance started over, and [`restart_cut`] keeps its first copy; any other loop is
//! left to `decoding.rs`, which doubts it as before, only sooner.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void, CStr};

use whisper_rs::whisper_rs_sys::{
    whisper_context, whisper_n_vocab, whisper_state, whisper_token_data, whisper_token_eot, whisper_token_to_str,
};
use whisper_rs::FullParams;

/// The longest phrase, in words, whose repeats are watched.
const MAX_PHRASE: usize = 8;

/// The words of `text` (runs of letters, digits and any non-ASCII byte), each with the
/// offset it starts at.
fn words(text: &[u8]) -> Vec<(usize, &[u8])> {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || !b.is_ascii();
    let mut words = Vec::new();
    let mut start = None;
    for (i, &b) in text.iter().enumerate() {
        match (start, is_word(b)) {
            (None, true) => start = Some(i),
            (Some(s), false) => {
                words.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        words.push((s, &text[s..]));
    }
    words
}

/// Whether `words[n..]` repeats `words` with period `n` (case aside).
fn has_period(words: &[(usize, &[u8])], n: usize) -> bool {
    (n..words.len()).all(|i| words[i].1.eq_ignore_ascii_case(words[i - n].1))
}

/// Whether the words end in a loop: a phrase of `n` words twice and begun a third time.
fn ends_in_loop(words: &[(usize, &[u8])]) -> bool {
    (1..=MAX_PHRASE).any(|n| words.len() > 2 * n && has_period(&words[words.len() - (2 * n + 1)..], n))
}

/// The first copy of `text` when it is one phrase of two or more words over and over
/// (twice and begun a third time at least). `None` for anything else, a word said over
/// and over ("6, 6, 6") included: that may be "six" or "six six", and is left to the
/// fallback passes.
pub(crate) fn restart_cut(text: &str) -> Option<&str> {
    first_copy(text, 1)
}

/// [`restart_cut`] for a text that is a phrase exactly twice, too: the last resort when
/// every pass, the reference's own included, heard the same phrase twice and none
/// found anything else. Once is the better guess than twice then.
pub(crate) fn twice_cut(text: &str) -> Option<&str> {
    first_copy(text, 0)
}

/// The first copy (its trailing space dropped) of a phrase of two or more words that
/// makes up all of `text`, twice and then `extra` words more at least. A phrase longer than
/// [`MAX_PHRASE`] needs no more than twice: nobody says a sentence of nine words or
/// more twice in a row, and the judgement of `decoding.rs` does not see so long a
/// repeat (a recorded phone prompt of 16 words came back twice, and was kept).
fn first_copy(text: &str, extra: usize) -> Option<&str> {
    let words = words(text.as_bytes());
    let needed = |n: usize| if n > MAX_PHRASE { 2 * n } else { 2 * n + extra };
    let n = (2..=words.len() / 2).find(|&n| words.len() >= needed(n) && has_period(&words, n))?;
    // "five five five five five": the phrase "five five" is itself a word repeated.
    let phrase = &words[..n];
    if (1..n).any(|d| n.is_multiple_of(d) && has_period(phrase, d)) {
        return None;
    }
    Some(text[..words[n].0].trim_end())
}

/// Makes every `full` call run with `params` end a loop as it begins (see the module
/// docs). The filter keeps no state: it reads only what whisper.cpp passes it.
pub(crate) fn stop_loops(params: &mut FullParams<'_, '_>) {
    // SAFETY: `end_a_loop` reads the tokens and writes the logits within the lengths
    // whisper.cpp gives it, asks the context only for token texts and sizes, never
    // unwinds (it catches panics) and uses no user data.
    unsafe {
        params.set_filter_logits_callback(Some(end_a_loop));
        params.set_filter_logits_callback_user_data(std::ptr::null_mut());
    }
}

/// whisper.cpp's logits filter: before each token of each decoder, `tokens` are the
/// `n_tokens` it has decoded so far and `logits` the next token's, one per vocabulary
/// entry.
unsafe extern "C" fn end_a_loop(
    ctx: *mut whisper_context,
    _state: *mut whisper_state,
    tokens: *const whisper_token_data,
    n_tokens: c_int,
    logits: *mut f32,
    _user_data: *mut c_void,
) {
    if ctx.is_null() || tokens.is_null() || logits.is_null() || n_tokens < 3 {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: whisper.cpp passes a live context, `n_tokens` tokens and `n_vocab`
        // logits, all valid for the call; a token's text is a NUL-terminated string the
        // context owns.
        unsafe {
            let eot = whisper_token_eot(ctx);
            let mut text = Vec::with_capacity(n_tokens as usize * 4);
            for token in std::slice::from_raw_parts(tokens, n_tokens as usize) {
                // Text tokens only: timestamps and the other specials come after EOT.
                if token.id < eot {
                    let piece = whisper_token_to_str(ctx, token.id);
                    if !piece.is_null() {
                        text.extend_from_slice(CStr::from_ptr(piece).to_bytes());
                    }
                }
            }
            if ends_in_loop(&words(&text)) {
                let logits = std::slice::from_raw_parts_mut(logits, whisper_n_vocab(ctx) as usize);
                for (id, logit) in logits.iter_mut().enumerate() {
                    if id as i32 != eot {
                        *logit = f32::NEG_INFINITY;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn looping(text: &str) -> bool {
        ends_in_loop(&words(text.as_bytes()))
    }

    #[test]
    fn a_loop_is_a_phrase_twice_and_begun_again() {
        assert!(looping("Turn off the hallway lights, turn off the hallway lights, turn"));
        assert!(looping("6, 6, 6"));
        assert!(looping("Set the lamp to 50% percent, 50% percent, 50"));
        // Twice is speech ("five five", "turn it off, turn it off"), and so is a restart
        // that goes on differently.
        for speech in [
            "5 5",
            "very very good",
            "turn it off, turn it off",
            "set a timer for, set a timer for five minutes",
            "Turn off the hallway lights.",
        ] {
            assert!(!looping(speech), "{speech}");
        }
    }

    #[test]
    fn an_utterance_started_over_keeps_its_first_copy() {
        assert_eq!(
            restart_cut("Turn off the hallway lights, turn off the hallway lights, turn"),
            Some("Turn off the hallway lights,")
        );
        assert_eq!(restart_cut("What time is it? What time is it? What"), Some("What time is it?"));
        assert_eq!(
            restart_cut("go forward 10 meters. Go forward 10 meters. Go forward 10 meters."),
            Some("go forward 10 meters.")
        );
        // A word over and over may be one word or two: left to the fallback.
        assert_eq!(restart_cut("6, 6, 6, 6, 6"), None);
        assert_eq!(restart_cut("5 5 5 5 5 5"), None);
        // A loop after other words is no restart; neither is a phrase said twice.
        assert_eq!(restart_cut("Set the lamp to 50% percent, 50% percent, 50"), None);
        assert_eq!(restart_cut("turn it off, turn it off"), None);
        assert_eq!(restart_cut("Turn off the hallway lights."), None);
        let long = "The number you have dialed is not in service. Please check the number and try again.";
        assert_eq!(restart_cut(&format!("{long} {long}")), Some(long));
        assert_eq!(restart_cut(&format!("{long} The number")), None);
    }

    #[test]
    fn as_a_last_resort_a_phrase_heard_twice_is_kept_once() {
        let once = twice_cut;
        assert_eq!(once("Please try again. Please try again."), Some("Please try again."));
        assert_eq!(
            once("Turn off the hallway lights, turn off the hallway lights, turn"),
            Some("Turn off the hallway lights,")
        );
        for not_twice in ["five five", "6, 6, 6", "set a timer for, set a timer for five minutes", "Please try again."]
        {
            assert_eq!(once(not_twice), None, "{not_twice}");
        }
    }

    /// Prompted with a home's names, these commands were each decoded as the command
    /// over and over up to the token budget on the tight window, then again on a wider
    /// one. Now the first pass stops at the restart and keeps one copy.
    #[test]
    fn a_prompted_command_started_over_is_one_copy_in_one_pass() {
        use crate::testing::{exclusive, model, speech};
        use crate::{DecodeOptions, WhisperStt};

        let _one_at_a_time = exclusive();
        let prompt = "Kitchen lights, living room lamp, bedroom lamp, hallway lights, kitchen speaker, \
                      living room speaker, bedroom speaker, hallway speaker.";
        let options = DecodeOptions { initial_prompt: Some(prompt.into()), ..DecodeOptions::default() };
        let mut stt = WhisperStt::load(model(), 2).unwrap().with_options(options);
        for said in ["turn on the kitchen lights", "turn off the hallway lights", "what time is it"] {
            // A quiet room before the words and 40 ms after them, as at a pause.
            let mut pcm: Vec<i16> = (0..3200).map(|i| if i % 2 == 0 { 8 } else { -8 }).collect();
            let words = crate::testing::samples(&speech(said));
            let spoken = words.iter().rposition(|&s| s != 0).map_or(0, |last| last + 1);
            pcm.extend(&words[..spoken]);
            pcm.extend([0; 640]);
            let before = stt.passes();
            let heard = stt.transcribe(&pcm).unwrap().text;
            let normalised: String =
                heard.to_lowercase().chars().filter(|c| c.is_alphanumeric() || *c == ' ').collect();
            assert_eq!(normalised, said, "{said:?} heard as {heard:?}");
            assert_eq!(stt.passes() - before, 1, "{said:?}: one pass, on the tight window");
        }
    }

    #[test]
    fn words_are_runs_of_letters_and_digits() {
        let w: Vec<&[u8]> = words(b"It's 50%, caf\xc3\xa9!").into_iter().map(|(_, w)| w).collect();
        assert_eq!(w, [&b"It"[..], b"s", b"50", b"caf\xc3\xa9"]);
    }
}
