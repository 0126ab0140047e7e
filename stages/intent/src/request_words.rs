//! What the words of a request ask for, and the values in them: timers and their
//! names, the time and the date, levels and volume steps, stop, the next track.
//! [`IntentMatcher`](crate::IntentMatcher) decides in which order to ask.

use crate::intent::{Intent, Quantity, Unmatched};
use crate::matcher::{Heard, FILLERS};
use crate::words::{duration, is_number_word, is_time_unit, number_at};

/// Longest timer: a day.
const MAX_TIMER_SECONDS: u64 = 24 * 3_600;

pub(crate) const CANCEL_WORDS: &[&str] =
    &["cancel", "stop", "delete", "remove", "clear", "end", "off", "kill", "abort", "reset"];

pub(crate) fn timer(heard: &Heard<'_>, name: Option<String>) -> Result<Intent, Unmatched> {
    let seconds = duration(&heard.folded).ok_or(Unmatched::MissingValue { what: Quantity::Timer })?;
    if seconds == 0 || seconds > MAX_TIMER_SECONDS {
        return Err(Unmatched::OutOfRange { what: Quantity::Timer });
    }
    Ok(Intent::SetTimer { seconds: seconds as u32, name })
}

/// "How much time is left", "how long is left on the timer", "time remaining".
pub(crate) fn asks_time_left(heard: &Heard<'_>) -> bool {
    heard.has_any(&["left", "remaining", "remain", "status"]) && heard.has_any(&["time", "long", "timer", "much"])
}

/// Words that are never a timer's name.
const NOT_A_TIMER_NAME: &[&str] = &[
    "pause",
    "hold",
    "freeze",
    "suspend",
    "resume",
    "unpause",
    "continue",
    "restart",
    "unfreeze",
    "unsuspend",
    "set",
    "start",
    "make",
    "create",
    "add",
    "new",
    "cancel",
    "stop",
    "delete",
    "remove",
    "clear",
    "end",
    "kill",
    "abort",
    "reset",
    "how",
    "much",
    "long",
    "left",
    "what",
    "which",
    "any",
    "is",
    "on",
    "for",
    "of",
    "minute",
    "second",
    "hour",
    "called",
    "named",
    "timer",
    "time",
    "countdown",
];

/// A timer's name: the words right before "timer" ("the pizza timer", "a 10 minute
/// egg timer": "egg"), or after "called" / "named" ("a timer called pasta").
pub(crate) fn timer_name(heard: &Heard<'_>) -> Option<String> {
    let w = &heard.folded;
    let said = |range: std::ops::Range<usize>| {
        heard.words[range].iter().map(|word| word.said.as_str()).collect::<Vec<_>>().join(" ")
    };
    let is_name_word = |word: &str| {
        !FILLERS.contains(&word)
            && !NOT_A_TIMER_NAME.contains(&word)
            && !is_number_word(word)
            && !is_time_unit(word)
            && !word.chars().all(|c| c.is_ascii_digit())
    };
    if let Some(at) = w.iter().position(|&x| x == "called" || x == "named") {
        let end = (at + 1..w.len()).find(|&i| !is_name_word(w[i])).unwrap_or(w.len());
        if end > at + 1 {
            return Some(said(at + 1..end));
        }
    }
    let at = w.iter().position(|&x| x == "timer" || x == "countdown")?;
    let start = (0..at).rev().take_while(|&i| is_name_word(w[i])).last()?;
    Some(said(start..at))
}

pub(crate) fn is_time_question(heard: &Heard<'_>) -> bool {
    let asks = heard.has_any(&["what", "tell", "current", "know", "say", "got"]) || heard.content_words().eq(["time"]);
    asks && heard.content_words().any(|w| w == "time")
}

pub(crate) fn is_stop(heard: &Heard<'_>) -> bool {
    heard.has_any(&["stop", "quiet", "silence", "enough", "hush", "nevermind"])
        || (heard.has("shut") && heard.has("up"))
        || (heard.has("never") && heard.has("mind"))
        || heard.content_words().eq(["cancel"])
}

/// The level said: a number before "percent", after "to", or anywhere when the
/// request is about a level (`about_level`); "half", "full", "max" and "min" too. A number before a
/// unit of time is not a level.
pub(crate) fn level(heard: &Heard<'_>, about_level: bool) -> Option<u32> {
    let w = &heard.folded;
    for at in 0..w.len() {
        let before = at.checked_sub(1).map(|b| w[b]);
        if let Some((n, len)) = number_at(w, at) {
            let next = w.get(at + len).copied();
            if next.is_some_and(is_time_unit) {
                continue;
            }
            if about_level || matches!(next, Some("percent" | "per")) || before == Some("to") {
                return Some(n);
            }
        }
        let named = match w[at] {
            "half" => Some(50),
            "full" | "max" | "maximum" | "highest" => Some(100),
            // Home Assistant's minimum: the dimmest a light goes while still on.
            "min" | "minimum" | "lowest" => Some(1),
            _ => None,
        };
        if named.is_some() && (about_level || before == Some("to")) {
            return named;
        }
    }
    None
}

pub(crate) fn checked_percent(percent: Option<u32>, what: Quantity) -> Result<u8, Unmatched> {
    match percent {
        None => Err(Unmatched::MissingValue { what }),
        Some(p @ 0..=100) => Ok(p as u8),
        Some(_) => Err(Unmatched::OutOfRange { what }),
    }
}

/// Words for a pause of a timer, and for going on with it.
pub(crate) const TIMER_PAUSE_WORDS: &[&str] = &["pause", "hold", "freeze", "suspend"];
pub(crate) const TIMER_RESUME_WORDS: &[&str] = &["resume", "unpause", "continue", "restart", "unfreeze", "unsuspend"];

/// "What's the date", "what day is it", "what is today's date", "tell me the date".
pub(crate) fn is_date_question(heard: &Heard<'_>) -> bool {
    let asks = heard.has_any(&["what", "which", "tell", "know", "say"]) || heard.content_words().eq(["date"]);
    asks && (heard.has("date") || (heard.has("day") && heard.has_any(&["is", "today"])))
}

/// Volume words: "louder", "turn it down". `None` when the words say no direction.
pub(crate) fn volume_direction(heard: &Heard<'_>) -> Option<bool> {
    let up = heard.has_any(&["louder", "up", "increase", "raise", "higher", "boost"]);
    let down = heard.has_any(&["quieter", "softer", "down", "decrease", "lower", "reduce"]);
    match (up, down) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    }
}

/// The step of a relative volume change: a number after "by" or before "percent"
/// ("up by 20", "down 5 percent"); 10 when none is said (Home Assistant's step).
pub(crate) fn volume_step(heard: &Heard<'_>) -> Result<u8, Unmatched> {
    let w = &heard.folded;
    for at in 0..w.len() {
        if let Some((n, len)) = number_at(w, at) {
            let after_by = at.checked_sub(1).is_some_and(|b| w[b] == "by");
            if after_by || matches!(w.get(at + len).copied(), Some("percent" | "per")) {
                return match n {
                    1..=100 => Ok(n as u8),
                    _ => Err(Unmatched::OutOfRange { what: Quantity::Volume }),
                };
            }
        }
    }
    Ok(DEFAULT_VOLUME_STEP)
}

/// Home Assistant's volume step for "volume up" without a number.
pub(crate) const DEFAULT_VOLUME_STEP: u8 = 10;

/// What a track is called.
const TRACK_WORDS: &[&str] = &["song", "track", "tune", "item", "chapter", "episode"];

/// Home Assistant's media phrasings: "next", "next song", "skip this track"
/// (`Some(true)`); "previous track", "go back", "replay the last song", "play the
/// previous song again" (`Some(false)`). "Next" and "previous" name a track only alone
/// or beside a track word: "press 4 for the previous message", a recorded phone prompt,
/// once skipped the kitchen speaker back a track.
pub(crate) fn track_skip(heard: &Heard<'_>) -> Option<bool> {
    let alone = |word: &str| heard.content_words().eq([word]);
    let of_a_track = |word: &str| heard.has(word) && (heard.has_any(TRACK_WORDS) || alone(word));
    if heard.has("skip") || of_a_track("next") {
        return Some(true);
    }
    let back = of_a_track("previous")
        || alone("back")
        || (heard.has_any(&["back", "last", "replay"]) && heard.has_any(TRACK_WORDS));
    back.then_some(false)
}
