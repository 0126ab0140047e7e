//! What to do when the words name nothing in the home, or the verb is in doubt:
//! Whisper wrote what it heard, and short names are what it mishears most ("turn on
//! the whole way light"). A name that sounds like exactly one of the home's is read as
//! that one; one that is only close, or close to two, is asked back ("Did you mean
//! the hallway lights?"), never acted on. A switch verb Whisper split is joined
//! ("the activate the lights" opening a request is "deactivate"), and a request that
//! says both on and off is asked back: acting on it could do the opposite of what was
//! asked.

use crate::intent::{Intent, Unmatched};
use crate::matcher::kind_word;
use crate::matcher::IntentMatcher;
use crate::sounds::{distance, CLOSE, SAME};
use crate::words::{fold, words};

/// Words that may come before the verb that opens a request.
const OPENING: &[&str] = &["please", "alicia", "hey", "ok", "okay", "now"];

/// Verbs after which "on" is the switch, not a preposition.
const SWITCH_VERBS: &[&str] = &["turn", "switch", "power", "put"];

/// Words after which a request goes on ("turn on the", "set it to").
const DANGLING: &[&str] = &[
    "the", "a", "an", "to", "for", "of", "in", "at", "and", "my", "our", "set", "turn", "switch", "make", "put",
    "with", "into", "by", "about", "is", "what", "whats",
];

/// Hesitations that end words without ending the request.
const FILLER_TAIL: &[&str] = &["um", "uh", "uhm", "er", "erm", "hmm"];

/// A known name that a heard one may be.
struct Candidate {
    /// The heard name with the known one in its place, matched again.
    corrected: Result<Intent, Unmatched>,
    /// What to call it when asking back.
    name: String,
    distance: f32,
}

impl IntentMatcher {
    /// `text` matched again with a misheard name replaced by the home's name it
    /// sounds like, or the question to ask back; `None` if no name is close.
    pub(crate) fn reheard(&self, text: &str, site: &str, reason: &Unmatched) -> Option<Result<Intent, Unmatched>> {
        let (Unmatched::UnknownDevice { name } | Unmatched::UnknownRoom { name }) = reason else {
            return None;
        };
        let said = said_words(text);
        let mut candidates: Vec<Candidate> = Vec::new();
        for (known, display) in self.known_names() {
            // The heard name as a whole ("whole way light" ~ "hallway light"), and each
            // of its runs of words ("whole way" ~ "hallway").
            let heard_words: Vec<&str> = name.split(' ').collect();
            for len in (1..=heard_words.len()).rev() {
                for start in 0..=heard_words.len() - len {
                    let run = &heard_words[start..start + len];
                    // A kind alone ("lights") is no name to correct.
                    if run.iter().all(|w| kind_word(&fold(w)).is_some()) {
                        continue;
                    }
                    let heard = run.join(" ");
                    let Some((heard_part, known_part)) = differing(&heard, known) else { continue };
                    let d = distance(&heard_part, &known_part);
                    if d >= CLOSE || candidates.iter().any(|c| c.name == display && c.distance <= d) {
                        continue;
                    }
                    let Some(corrected_text) = replace_words(&said, &heard, known) else { continue };
                    let corrected = self.match_words_once(&corrected_text, site);
                    let name = match &corrected {
                        Ok(intent) => intent.device().map_or(display.clone(), |id| self.device_name(id).to_string()),
                        Err(_) => display.clone(),
                    };
                    candidates.retain(|c| c.name != name);
                    candidates.push(Candidate { corrected, name, distance: d });
                }
            }
        }
        candidates.sort_by(|a, b| a.distance.total_cmp(&b.distance));
        let best = candidates.first()?;
        let runner_up_close = candidates.get(1).is_some_and(|c| c.distance <= SAME.max(best.distance + 0.1));
        if best.distance <= SAME && !runner_up_close && best.corrected.is_ok() {
            return Some(best.corrected.clone());
        }
        let names = candidates.iter().take(2).map(|c| c.name.clone()).collect();
        Some(Err(Unmatched::DidYouMean { names }))
    }

    /// Whether words that gave `intent` sound like a finished request, for deciding at
    /// a pause in speech whether the user is done. A request the matcher knows is; so
    /// is one it cannot place, unless its words stop where a request goes on: a verb
    /// without its device, a setting without its value ("set a timer for"), a word
    /// that dangles ("turn on the"), or the first word of a name ("turn on the
    /// living"). Words not understood are answered as fast as words understood.
    pub fn sounds_finished(&self, intent: &Intent) -> bool {
        let Intent::Unknown { text, reason } = intent else { return true };
        if matches!(reason, Unmatched::MissingDevice { .. } | Unmatched::MissingValue { .. }) {
            return false;
        }
        let said = said_words(text);
        let Some(last) = said.iter().rev().find(|w| !FILLER_TAIL.contains(&w.as_str())) else { return false };
        if DANGLING.contains(&last.as_str()) || said.last().is_some_and(|w| DANGLING.contains(&w.as_str())) {
            return false;
        }
        let begins_a_name = |name: &String| {
            let mut words = name.split(' ');
            words.next() == Some(last.as_str()) && words.next().is_some()
        };
        !self.devices.iter().flat_map(|d| &d.spoken).chain(self.rooms.iter().flat_map(|r| &r.spoken)).any(begins_a_name)
    }

    /// The device or room names of the home, each with the name a reply uses.
    fn known_names(&self) -> Vec<(&str, String)> {
        let devices = self.devices.iter().flat_map(|d| d.spoken.iter().map(|p| (p.as_str(), d.name.clone())));
        let rooms = self.rooms.iter().flat_map(|r| r.spoken.iter().map(|p| (p.as_str(), r.name.clone())));
        devices.chain(rooms).collect()
    }
}

/// Whether on or off cannot be read with confidence: "turn on" and "off" in one
/// request ("turn on the light off", Whisper's "turn on, off the lamp").
pub(crate) fn verb_in_doubt(text: &str) -> bool {
    let said = said_words(text);
    let switched_on = said.windows(2).position(|p| SWITCH_VERBS.contains(&p[0].as_str()) && p[1] == "on");
    switched_on.is_some_and(|at| said[at + 2..].iter().any(|w| matches!(w.as_str(), "off" | "out")))
}

/// A switch verb Whisper wrote apart, read as the one verb it is: "de activate",
/// "dis able", and "the activate" opening a request (an article cannot come before a
/// verb there, so the sound was "de": "deactivate").
pub(crate) fn join_split_verbs(text: &str) -> Option<String> {
    let said = said_words(text);
    let joined = said.windows(2).enumerate().position(|(at, pair)| {
        let opening = said[..at].iter().all(|w| OPENING.contains(&w.as_str()));
        match (pair[0].as_str(), pair[1].as_str()) {
            ("de" | "dee", "activate") | ("dis", "able") => true,
            ("the" | "d", "activate") | ("this", "able") => opening,
            _ => false,
        }
    })?;
    let mut words = said;
    let verb = if words[joined + 1] == "activate" { "deactivate" } else { "disable" };
    words.splice(joined..joined + 2, [verb.to_string()]);
    Some(words.join(" "))
}

/// The words in which `heard` and `known` differ, the words they share at either end
/// left out: "garage lights" and "kitchen lights" differ in "garage" and "kitchen",
/// and are as far apart as those two are.
fn differing(heard: &str, known: &str) -> Option<(String, String)> {
    let (mut h, mut k): (Vec<&str>, Vec<&str>) = (heard.split(' ').collect(), known.split(' ').collect());
    while h.len() > 1 && k.len() > 1 && h.last() == k.last() {
        h.pop();
        k.pop();
    }
    while h.len() > 1 && k.len() > 1 && h.first() == k.first() {
        h.remove(0);
        k.remove(0);
    }
    (h != k).then(|| (h.join(" "), k.join(" ")))
}

fn said_words(text: &str) -> Vec<String> {
    words(text).into_iter().map(|w| w.said).collect()
}

/// `said` with the words of `heard` (a run of them) replaced by `known`.
fn replace_words(said: &[String], heard: &str, known: &str) -> Option<String> {
    let heard: Vec<&str> = heard.split(' ').collect();
    let at = said.windows(heard.len()).position(|w| w.iter().zip(&heard).all(|(a, b)| a == b))?;
    let mut out: Vec<&str> = said[..at].iter().map(String::as_str).collect();
    out.push(known);
    out.extend(said[at + heard.len()..].iter().map(String::as_str));
    Some(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_verbs_are_joined_where_they_can_only_be_one_verb() {
        assert_eq!(join_split_verbs("The activate the light.").as_deref(), Some("deactivate the light"));
        assert_eq!(join_split_verbs("please de activate the lamp").as_deref(), Some("please deactivate the lamp"));
        assert_eq!(join_split_verbs("de-activate the lamp").as_deref(), Some("deactivate the lamp"));
        assert_eq!(join_split_verbs("this able the lamp").as_deref(), Some("disable the lamp"));
        // Not at the opening, "the" is an article.
        assert_eq!(join_split_verbs("turn on the activate room light"), None);
        assert_eq!(join_split_verbs("Activate the lights in the kitchen."), None);
    }

    #[test]
    fn on_and_off_together_are_in_doubt() {
        assert!(verb_in_doubt("Turn on, off the lamp."));
        assert!(verb_in_doubt("turn on the light off"));
        assert!(!verb_in_doubt("turn on the lights on the porch"));
        assert!(!verb_in_doubt("turn off the light"));
        assert!(!verb_in_doubt("switch off the lights on the porch"));
    }

    #[test]
    fn names_are_compared_where_they_differ() {
        assert_eq!(differing("garage lights", "kitchen lights"), Some(("garage".into(), "kitchen".into())));
        assert_eq!(differing("whole way light", "hallway light"), Some(("whole way".into(), "hallway".into())));
        assert_eq!(differing("bed room lamp", "bedroom lamp"), Some(("bed room".into(), "bedroom".into())));
        assert_eq!(differing("lamp", "lamp"), None);
    }

    #[test]
    fn a_run_of_heard_words_is_replaced_by_the_known_name() {
        let said = said_words("turn on the whole way light");
        assert_eq!(replace_words(&said, "whole way", "hallway").as_deref(), Some("turn on the hallway light"));
        assert_eq!(replace_words(&said, "garage", "hallway"), None);
    }
}
