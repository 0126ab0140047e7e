//! [`IntentMatcher`]: a transcript and a site in, an [`Intent`] out.
//!
//! The words decide the request (timer, time, volume, level, stop, pause, play,
//! toggle, on/off, in that order); the rest of the words name its target, by device
//! name or alias, or by room and kind ("the lamp in the bedroom"), the site's room
//! standing in for an omitted room.

use std::collections::HashMap;
use std::sync::Arc;

use alicia_home::{DeviceKind, Home};
use chrono::NaiveTime;

use crate::intent::{Action, DeviceCommand, Intent, Quantity, Understanding, Unmatched};
use crate::mishearing::{join_split_verbs, verb_in_doubt};
use crate::timers::{RunningTimers, TimerView};
use crate::words::{duration, is_number_word, is_time_unit, number_at, words, Word};

/// Words that carry nothing (politeness, the wake word, articles, pronouns).
const FILLERS: &[&str] = &[
    "the", "a", "an", "my", "our", "your", "please", "pls", "can", "could", "would", "will", "you", "u", "i", "me",
    "want", "like", "id", "hey", "hi", "ok", "okay", "alicia", "um", "uh", "uhm", "er", "erm", "hmm", "just", "now",
    "kindly", "thank", "thanks", "it", "that", "this", "those", "these", "them", "some", "all", "be", "go", "ahead",
    "right", "again", "there", "so", "well",
];

/// Words that say what to do or join the target to it, never part of a device name.
const FUNCTION_WORDS: &[&str] = &[
    "in",
    "on",
    "of",
    "at",
    "for",
    "to",
    "from",
    "with",
    "by",
    "inside",
    "and",
    "turn",
    "switch",
    "power",
    "put",
    "set",
    "make",
    "change",
    "adjust",
    "shut",
    "kill",
    "enable",
    "disable",
    "activate",
    "deactivate",
    "toggle",
    "flip",
    "dim",
    "brighten",
    "bright",
    "brightness",
    "volume",
    "level",
    "percent",
    "per",
    "cent",
    "play",
    "playing",
    "resume",
    "unpause",
    "continue",
    "pause",
    "stop",
    "mute",
    "up",
    "down",
    "off",
    "out",
    "max",
    "maximum",
    "full",
    "half",
    "open",
    "close",
    "lock",
    "unlock",
];

/// Prepositions after which an unknown word is a room ("in the garage").
const ROOM_PREPOSITIONS: &[&str] = &["in", "inside", "of", "at"];

/// Verbs that make a bare "on" or "off" a request ("turn it on" asks which device;
/// a lone "on." is not understood).
const SWITCH_VERBS: &[&str] =
    &["turn", "switch", "power", "put", "shut", "kill", "enable", "disable", "activate", "deactivate"];

const CANCEL_WORDS: &[&str] = &["cancel", "stop", "delete", "remove", "clear", "end", "off", "kill", "abort", "reset"];

/// Longest timer: a day.
const MAX_TIMER_SECONDS: u64 = 24 * 3_600;

/// Matches transcripts against one home. Cheap to call (microseconds, a few small
/// allocations), so the stage stays async.
#[derive(Clone, Debug)]
pub struct IntentMatcher {
    pub(crate) devices: Vec<KnownDevice>,
    pub(crate) rooms: Vec<KnownRoom>,
    sites: HashMap<String, KnownSite>,
    pub(crate) timers: Option<TimerView>,
}

#[derive(Clone, Debug)]
pub(crate) struct KnownDevice {
    id: String,
    pub(crate) name: String,
    kind: DeviceKind,
    room: String,
    /// Name, aliases and id, as folded words without fillers.
    phrases: Vec<Vec<String>>,
    /// Name, aliases and id as said (lowercase words), for names that sound alike.
    pub(crate) spoken: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct KnownRoom {
    id: String,
    pub(crate) name: String,
    phrases: Vec<Vec<String>>,
    pub(crate) spoken: Vec<String>,
}

#[derive(Clone, Debug)]
struct KnownSite {
    room: String,
    speaker: Option<String>,
}

/// A transcript's words, with the indices of those that are not fillers.
struct Heard<'a> {
    words: &'a [Word],
    folded: Vec<&'a str>,
    content: Vec<usize>,
}

impl<'a> Heard<'a> {
    fn new(words: &'a [Word]) -> Self {
        let folded: Vec<&str> = words.iter().map(|w| w.folded.as_str()).collect();
        let content = (0..words.len()).filter(|&i| !FILLERS.contains(&folded[i])).collect();
        Self { words, folded, content }
    }

    fn has(&self, word: &str) -> bool {
        self.folded.contains(&word)
    }

    fn has_any(&self, words: &[&str]) -> bool {
        words.iter().any(|w| self.has(w))
    }

    fn content_words(&self) -> impl Iterator<Item = &str> + '_ {
        self.content.iter().map(|&i| self.folded[i])
    }
}

/// The kinds a word asks for, the preferred first.
pub(crate) fn kind_word(word: &str) -> Option<&'static [DeviceKind]> {
    match word {
        "light" | "lighting" | "bulb" => Some(&[DeviceKind::Light, DeviceKind::Lamp]),
        "lamp" => Some(&[DeviceKind::Lamp, DeviceKind::Light]),
        "speaker" | "music" | "radio" | "sound" | "audio" => Some(&[DeviceKind::Speaker]),
        _ => None,
    }
}

/// What a device intent acts on when the words name no kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// A light, which the words must name by kind, room or name ("turn it on" is
    /// too vague).
    Light,
    /// A light, and the request says so ("set the brightness"): the site's lights.
    SiteLight,
    /// A speaker: the site's speaker unless a room or name says otherwise.
    Speaker,
}

impl IntentMatcher {
    pub fn new(home: &Home) -> Self {
        // Each name, alias and id (with spaces for `_` and `-`), as its words.
        let names = |name: &str, aliases: &[String], id: &str| -> Vec<Vec<Word>> {
            let id = id.replace(['_', '-'], " ");
            std::iter::once(name)
                .chain(aliases.iter().map(String::as_str))
                .chain(std::iter::once(id.as_str()))
                .map(words)
                .collect()
        };
        // Matched: folded words without fillers.
        let phrases = |names: &[Vec<Word>]| -> Vec<Vec<String>> {
            names
                .iter()
                .map(|n| n.iter().map(|w| w.folded.clone()).filter(|w| !FILLERS.contains(&w.as_str())).collect())
                .filter(|phrase: &Vec<String>| !phrase.is_empty())
                .collect()
        };
        // Compared by sound: the words as said.
        let spoken = |names: &[Vec<Word>]| -> Vec<String> {
            names
                .iter()
                .map(|n| n.iter().map(|w| w.said.as_str()).collect::<Vec<_>>().join(" "))
                .filter(|phrase| !phrase.is_empty())
                .collect()
        };
        let devices = home
            .devices
            .iter()
            .map(|d| {
                let names = names(&d.name, &d.aliases, &d.id);
                KnownDevice {
                    id: d.id.clone(),
                    name: d.name.trim().to_string(),
                    kind: d.kind,
                    room: d.room.clone(),
                    phrases: phrases(&names),
                    spoken: spoken(&names),
                }
            })
            .collect();
        let rooms = home
            .rooms
            .iter()
            .map(|(id, r)| {
                let names = names(&r.name, &r.aliases, id);
                KnownRoom {
                    id: id.clone(),
                    name: r.name.trim().to_string(),
                    phrases: phrases(&names),
                    spoken: spoken(&names),
                }
            })
            .collect();
        let sites = home
            .sites
            .iter()
            .map(|(id, s)| (id.clone(), KnownSite { room: s.room.clone(), speaker: s.speaker.clone() }))
            .collect();
        Self { devices, rooms, sites, timers: None }
    }

    /// Answers timer questions from `timers` (the engine's timers).
    pub fn with_timers(mut self, timers: Arc<dyn RunningTimers>) -> Self {
        self.timers = Some(TimerView(timers));
        self
    }

    /// The intent in `text`, heard at `site` (a site id; an unknown site has no
    /// default room or speaker).
    ///
    /// A name that sounds like one of the home's is read as it, or asked back; a
    /// switch verb Whisper split ("the activate") is asked back (`mishearing.rs`).
    pub fn match_text(&self, text: &str, site: &str) -> Intent {
        let joined = join_split_verbs(text);
        let words_heard = joined.as_deref().unwrap_or(text);
        let result = match self.match_words_once(words_heard, site) {
            Err(reason) => self.reheard(words_heard, site, &reason).unwrap_or(Err(reason)),
            ok => ok,
        };
        let result = match result {
            Ok(Intent::TurnOn { device } | Intent::TurnOff { device }) if verb_in_doubt(words_heard) => {
                Err(Unmatched::OnOrOff { device: self.device_name(&device).to_string() })
            }
            other => other,
        };
        result.unwrap_or_else(|reason| Intent::Unknown { text: text.trim().to_string(), reason })
    }

    /// The intent in `text` as written, names and verbs taken as they are.
    pub(crate) fn match_words_once(&self, text: &str, site: &str) -> Result<Intent, Unmatched> {
        let words = words(text);
        let heard = Heard::new(&words);
        self.recognise(&heard, self.sites.get(site))
    }

    /// The intent, the device command it implies, and the reply, with `now` for "what
    /// time is it".
    pub fn understand(&self, text: &str, site: &str, now: NaiveTime) -> Understanding {
        let intent = self.match_text(text, site);
        let command = self.command(&intent, site);
        let reply = self.reply_at(&intent, site, now);
        Understanding { intent, command, reply }
    }

    /// The device command for `intent` heard at `site`. Stop and the timers go to the
    /// site's speaker; none when the site has no speaker.
    pub fn command(&self, intent: &Intent, site: &str) -> Option<DeviceCommand> {
        let speaker = || self.sites.get(site).and_then(|s| s.speaker.clone());
        let (action, device, value) = match intent {
            Intent::TurnOn { device } => (Action::TurnOn, device.clone(), None),
            Intent::TurnOff { device } => (Action::TurnOff, device.clone(), None),
            Intent::Toggle { device } => (Action::Toggle, device.clone(), None),
            Intent::SetBrightness { device, percent } => {
                (Action::SetBrightness, device.clone(), Some(u32::from(*percent)))
            }
            Intent::SetVolume { device, percent } => (Action::SetVolume, device.clone(), Some(u32::from(*percent))),
            Intent::Play { speaker } => (Action::Play, speaker.clone(), None),
            Intent::Pause { speaker } => (Action::Pause, speaker.clone(), None),
            Intent::Stop => (Action::Stop, speaker()?, None),
            Intent::SetTimer { seconds, name } => {
                return Some(DeviceCommand::new(Action::SetTimer, speaker()?, Some(*seconds)).named(name.clone()));
            }
            Intent::CancelTimer { name } => {
                return Some(DeviceCommand::new(Action::CancelTimer, speaker()?, None).named(name.clone()));
            }
            Intent::WhatTime | Intent::TimerStatus { .. } | Intent::Unknown { .. } => return None,
        };
        Some(DeviceCommand::new(action, device, value))
    }

    /// The name a reply uses for a device id (the id itself if unknown).
    pub(crate) fn device_name<'s>(&'s self, id: &'s str) -> &'s str {
        self.devices.iter().find(|d| d.id == id).map_or(id, |d| d.name.as_str())
    }

    fn recognise(&self, heard: &Heard<'_>, site: Option<&KnownSite>) -> Result<Intent, Unmatched> {
        if heard.content.is_empty() {
            return Err(Unmatched::NotUnderstood);
        }
        if heard.has("dont") || (heard.has("do") && heard.has("not")) || heard.has("never") && !heard.has("mind") {
            return Err(Unmatched::Negated);
        }
        if heard.has("timer") || heard.has("countdown") {
            let name = timer_name(heard);
            if heard.has_any(CANCEL_WORDS) {
                return Ok(Intent::CancelTimer { name });
            }
            if asks_time_left(heard) || (heard.has_any(&["what", "which", "any"]) && duration(&heard.folded).is_none())
            {
                return Ok(Intent::TimerStatus { name });
            }
            return timer(heard, name);
        }
        if asks_time_left(heard) {
            return Ok(Intent::TimerStatus { name: None });
        }
        if is_time_question(heard) {
            return Ok(Intent::WhatTime);
        }
        if heard.has("volume") || heard.has("mute") {
            let device = self.target(heard, site, Want::Speaker, "set", true)?;
            if device.kind != DeviceKind::Speaker {
                return Err(Unmatched::Unsupported { device: device.name.clone(), what: Quantity::Volume });
            }
            let percent = if heard.has("mute") { Some(0) } else { level(heard, true) };
            let percent = checked_percent(percent, Quantity::Volume)?;
            return Ok(Intent::SetVolume { device: device.id.clone(), percent });
        }
        let asks_brightness = heard.has_any(&["brightness", "dim", "brighten", "bright"]);
        if asks_brightness || level(heard, false).is_some() {
            let want = if asks_brightness { Want::SiteLight } else { Want::Light };
            let device = self.target(heard, site, want, "set", true)?;
            if device.kind == DeviceKind::Speaker && !asks_brightness {
                let percent = checked_percent(level(heard, true), Quantity::Volume)?;
                return Ok(Intent::SetVolume { device: device.id.clone(), percent });
            }
            if !device.kind.is_light() {
                return Err(Unmatched::Unsupported { device: device.name.clone(), what: Quantity::Brightness });
            }
            let percent = checked_percent(level(heard, true), Quantity::Brightness)?;
            return Ok(Intent::SetBrightness { device: device.id.clone(), percent });
        }
        if is_stop(heard) {
            return Ok(Intent::Stop);
        }
        let pause = heard.has("pause");
        if pause || heard.has_any(&["play", "resume", "unpause", "continue"]) {
            let speaker = self.target(heard, site, Want::Speaker, "play", false)?;
            if speaker.kind != DeviceKind::Speaker {
                return Err(Unmatched::Unsupported { device: speaker.name.clone(), what: Quantity::Playback });
            }
            let speaker = speaker.id.clone();
            return Ok(if pause { Intent::Pause { speaker } } else { Intent::Play { speaker } });
        }
        if heard.has_any(&["toggle", "flip"]) {
            let device = self.target(heard, site, Want::Light, "toggle", true)?;
            return Ok(Intent::Toggle { device: device.id.clone() });
        }
        let off =
            heard.has_any(&["off", "out", "disable", "deactivate", "kill"]) || (heard.has("shut") && heard.has("down"));
        let on = heard.has_any(&["on", "enable", "activate"]);
        if on || off {
            let verb = if off { "turn off" } else { "turn on" };
            let said_verb = heard.has_any(SWITCH_VERBS);
            let device = match self.target(heard, site, Want::Light, verb, true) {
                Err(Unmatched::MissingDevice { .. }) if !said_verb => return Err(Unmatched::NotUnderstood),
                other => other?,
            };
            let device = device.id.clone();
            return Ok(if off { Intent::TurnOff { device } } else { Intent::TurnOn { device } });
        }
        if heard.has_any(&["open", "close", "lock", "unlock"]) {
            // Nothing in the home opens or locks yet, but "open the garage door" should
            // hear that there is no garage door rather than a shrug.
            if let Err(reason @ (Unmatched::UnknownDevice { .. } | Unmatched::UnknownRoom { .. })) =
                self.target(heard, site, Want::Light, "open", true)
            {
                return Err(reason);
            }
        }
        Err(Unmatched::NotUnderstood)
    }

    /// The one device the words point at. `strict`: words that are neither a device,
    /// a room, a kind nor part of the request make it an unknown device (play takes
    /// "play some jazz" without complaint).
    fn target(
        &self,
        heard: &Heard<'_>,
        site: Option<&KnownSite>,
        want: Want,
        verb: &'static str,
        strict: bool,
    ) -> Result<&KnownDevice, Unmatched> {
        // The transcript without fillers, as (index into words, folded word).
        let seq: Vec<(usize, &str)> = heard.content.iter().map(|&i| (i, heard.folded[i])).collect();
        let mut best: Option<(&KnownDevice, usize)> = None;
        for device in &self.devices {
            for phrase in &device.phrases {
                if phrase.len() > best.map_or(0, |(_, len)| len) && find(&seq, phrase).is_some() {
                    best = Some((device, phrase.len()));
                }
            }
        }
        if let Some((device, _)) = best {
            return Ok(device);
        }

        let mut room: Option<(&KnownRoom, std::ops::Range<usize>)> = None;
        for known in &self.rooms {
            for phrase in &known.phrases {
                if let Some(at) = find(&seq, phrase) {
                    if room.as_ref().is_none_or(|(_, r)| phrase.len() > r.len()) {
                        room = Some((known, at..at + phrase.len()));
                    }
                }
            }
        }
        let mut kinds: Option<&[DeviceKind]> = None;
        let mut named = Vec::new();
        let mut unknown = Vec::new();
        let mut unknown_after_preposition = true;
        for (n, &(index, word)) in seq.iter().enumerate() {
            if room.as_ref().is_some_and(|(_, r)| r.contains(&n)) {
                continue;
            }
            if let Some(k) = kind_word(word) {
                kinds.get_or_insert(k);
                named.push(index);
            } else if !FUNCTION_WORDS.contains(&word) && !is_number_word(word) && !is_time_unit(word) {
                named.push(index);
                unknown.push(index);
                let previous = n.checked_sub(1).map(|p| seq[p].1);
                let joined =
                    previous.is_some_and(|p| ROOM_PREPOSITIONS.contains(&p) || unknown.contains(&seq[n - 1].0));
                unknown_after_preposition &= joined;
            }
        }
        if !unknown.is_empty() {
            let say =
                |indices: &[usize]| indices.iter().map(|&i| heard.words[i].said.as_str()).collect::<Vec<_>>().join(" ");
            if unknown_after_preposition {
                return Err(Unmatched::UnknownRoom { name: say(&unknown) });
            }
            if strict {
                return Err(Unmatched::UnknownDevice { name: say(&named) });
            }
        }

        let room = room.map(|(known, _)| known);
        if kinds.is_none() && room.is_none() && want == Want::Light {
            return Err(Unmatched::MissingDevice { verb });
        }
        if want == Want::Speaker && room.is_none() && kinds.is_none_or(|k| k == [DeviceKind::Speaker]) {
            if let Some(speaker) =
                site.and_then(|s| s.speaker.as_deref()).and_then(|id| self.devices.iter().find(|d| d.id == id))
            {
                return Ok(speaker);
            }
        }
        let kinds = kinds.unwrap_or(match want {
            Want::Light | Want::SiteLight => &[DeviceKind::Light, DeviceKind::Lamp],
            Want::Speaker => &[DeviceKind::Speaker],
        });
        let room_id = room.map(|r| r.id.as_str()).or(site.map(|s| s.room.as_str()));
        for kind in kinds {
            let found: Vec<&KnownDevice> =
                self.devices.iter().filter(|d| d.kind == *kind && room_id.is_none_or(|r| d.room == r)).collect();
            match found.as_slice() {
                [] => continue,
                [one] => return Ok(one),
                many => return Err(Unmatched::Ambiguous { names: many.iter().map(|d| d.name.clone()).collect() }),
            }
        }
        let room_name = match room_id {
            Some(id) => self.rooms.iter().find(|r| r.id == id).map_or(id.to_string(), |r| r.name.clone()),
            None => "house".to_string(),
        };
        Err(Unmatched::NoDevice { kind: kinds[0], room: room_name })
    }
}

/// Where `phrase` starts in `seq`, as a run of consecutive words.
fn find(seq: &[(usize, &str)], phrase: &[String]) -> Option<usize> {
    if phrase.is_empty() || phrase.len() > seq.len() {
        return None;
    }
    (0..=seq.len() - phrase.len()).find(|&at| phrase.iter().zip(&seq[at..]).all(|(p, (_, w))| p == w))
}

fn timer(heard: &Heard<'_>, name: Option<String>) -> Result<Intent, Unmatched> {
    let seconds = duration(&heard.folded).ok_or(Unmatched::MissingValue { what: Quantity::Timer })?;
    if seconds == 0 || seconds > MAX_TIMER_SECONDS {
        return Err(Unmatched::OutOfRange { what: Quantity::Timer });
    }
    Ok(Intent::SetTimer { seconds: seconds as u32, name })
}

/// "How much time is left", "how long is left on the timer", "time remaining".
fn asks_time_left(heard: &Heard<'_>) -> bool {
    heard.has_any(&["left", "remaining", "remain", "status"]) && heard.has_any(&["time", "long", "timer", "much"])
}

/// Words that are never a timer's name.
const NOT_A_TIMER_NAME: &[&str] = &[
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
fn timer_name(heard: &Heard<'_>) -> Option<String> {
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

fn is_time_question(heard: &Heard<'_>) -> bool {
    let asks = heard.has_any(&["what", "tell", "current", "know", "say", "got"]) || heard.content_words().eq(["time"]);
    asks && heard.content_words().any(|w| w == "time")
}

fn is_stop(heard: &Heard<'_>) -> bool {
    heard.has_any(&["stop", "quiet", "silence", "enough", "hush", "nevermind"])
        || (heard.has("shut") && heard.has("up"))
        || (heard.has("never") && heard.has("mind"))
        || heard.content_words().eq(["cancel"])
}

/// The level said: a number before "percent", after "to", or anywhere when the
/// request is about a level (`about_level`); "half" and "full" too. A number before a
/// unit of time is not a level.
fn level(heard: &Heard<'_>, about_level: bool) -> Option<u32> {
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
            "full" | "max" | "maximum" => Some(100),
            _ => None,
        };
        if named.is_some() && (about_level || before == Some("to")) {
            return named;
        }
    }
    None
}

fn checked_percent(percent: Option<u32>, what: Quantity) -> Result<u8, Unmatched> {
    match percent {
        None => Err(Unmatched::MissingValue { what }),
        Some(p @ 0..=100) => Ok(p as u8),
        Some(_) => Err(Unmatched::OutOfRange { what }),
    }
}
