//! [`IntentMatcher`]: a transcript and a site in, an [`Intent`] out.
//!
//! The words decide the request (timer, time, date, volume, level, stop, next or
//! previous track, pause, play, toggle, on/off, in that order; `request_words.rs`); the rest of the words name its target, by device
//! name or alias, or by room and kind ("the lamp in the bedroom"), the site's room
//! standing in for an omitted room.

use std::collections::HashMap;
use std::sync::Arc;

use alicia_home::{DeviceKind, Home};
use chrono::NaiveDateTime;

use crate::intent::{Action, DeviceCommand, Intent, Quantity, Understanding, Unmatched};
use crate::mishearing::{join_split_verbs, verb_in_doubt};
use crate::request_words::{
    asks_time_left, checked_percent, is_date_question, is_stop, is_time_question, level, timer, timer_name, track_skip,
    volume_direction, volume_step, CANCEL_WORDS, TIMER_PAUSE_WORDS, TIMER_RESUME_WORDS,
};
use crate::timers::{RunningTimers, TimerView};
use crate::words::{duration, is_number_word, is_time_unit, words, Word};

/// Words that carry nothing (politeness, the wake word, articles, pronouns).
pub(crate) const FILLERS: &[&str] = &[
    "the", "a", "an", "my", "our", "your", "please", "pls", "can", "could", "would", "will", "you", "u", "i", "me",
    "want", "like", "id", "hey", "hi", "ok", "okay", "alicia", "um", "uh", "uhm", "er", "erm", "hmm", "just", "now",
    "kindly", "thank", "thanks", "it", "that", "this", "those", "these", "them", "some", "all", "be", "go", "ahead",
    "right", "again", "there", "so", "well",
];

/// Words that say what to do or join the target to it, never part of a device name.
pub(crate) const FUNCTION_WORDS: &[&str] = &[
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
    "next",
    "skip",
    "previous",
    "back",
    "last",
    "song",
    "track",
    "tune",
    "item",
    "replay",
    "louder",
    "quieter",
    "softer",
    "increase",
    "decrease",
    "raise",
    "lower",
    "higher",
    "reduce",
    "boost",
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
    "min",
    "minimum",
    "lowest",
    "highest",
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
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) kind: DeviceKind,
    pub(crate) room: String,
    /// Name, aliases and id, as folded words without fillers.
    pub(crate) phrases: Vec<Vec<String>>,
    /// Name, aliases and id as said (lowercase words), for names that sound alike.
    pub(crate) spoken: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct KnownRoom {
    pub(crate) id: String,
    pub(crate) name: String,
    phrases: Vec<Vec<String>>,
    pub(crate) spoken: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct KnownSite {
    pub(crate) room: String,
    speaker: Option<String>,
}

/// A transcript's words, with the indices of those that are not fillers.
pub(crate) struct Heard<'a> {
    pub(crate) words: &'a [Word],
    pub(crate) folded: Vec<&'a str>,
    pub(crate) content: Vec<usize>,
}

impl<'a> Heard<'a> {
    fn new(words: &'a [Word]) -> Self {
        let folded: Vec<&str> = words.iter().map(|w| w.folded.as_str()).collect();
        let content = (0..words.len()).filter(|&i| !FILLERS.contains(&folded[i])).collect();
        Self { words, folded, content }
    }

    pub(crate) fn has(&self, word: &str) -> bool {
        self.folded.contains(&word)
    }

    pub(crate) fn has_any(&self, words: &[&str]) -> bool {
        words.iter().any(|w| self.has(w))
    }

    pub(crate) fn content_words(&self) -> impl Iterator<Item = &str> + '_ {
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
            Ok(Intent::SwitchLights { .. }) if verb_in_doubt(words_heard) => {
                Err(Unmatched::OnOrOff { device: "lights".to_string() })
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

    /// The intent, the device command it implies, and the reply, with `now` (local)
    /// for "what time is it" and "what's the date".
    pub fn understand(&self, text: &str, site: &str, now: NaiveDateTime) -> Understanding {
        let intent = self.match_text(text, site);
        let commands = self.commands(&intent, site);
        let reply = self.reply_at(&intent, site, now);
        Understanding { intent, commands, reply }
    }

    /// Every device command for `intent` heard at `site`: one per light of a group,
    /// else [`command`](Self::command)'s.
    pub fn commands(&self, intent: &Intent, site: &str) -> Vec<DeviceCommand> {
        match intent {
            Intent::SwitchLights { on, devices, .. } => {
                let action = if *on { Action::TurnOn } else { Action::TurnOff };
                devices.iter().map(|device| DeviceCommand::new(action, device, None)).collect()
            }
            _ => self.command(intent, site).into_iter().collect(),
        }
    }

    /// The device command for `intent` heard at `site`. Stop and the timers go to the
    /// site's speaker; none when the site has no speaker, and none for a group of
    /// lights (see [`commands`](Self::commands)).
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
            Intent::StepVolume { device, up, step } => {
                (if *up { Action::VolumeUp } else { Action::VolumeDown }, device.clone(), Some(u32::from(*step)))
            }
            Intent::Play { speaker } => (Action::Play, speaker.clone(), None),
            Intent::Pause { speaker } => (Action::Pause, speaker.clone(), None),
            Intent::NextTrack { speaker } => (Action::Next, speaker.clone(), None),
            Intent::PreviousTrack { speaker } => (Action::Previous, speaker.clone(), None),
            Intent::Stop => (Action::Stop, speaker()?, None),
            Intent::SetTimer { seconds, name } => {
                return Some(DeviceCommand::new(Action::SetTimer, speaker()?, Some(*seconds)).named(name.clone()));
            }
            Intent::CancelTimer { name } | Intent::PauseTimer { name } | Intent::ResumeTimer { name } => {
                let action = match intent {
                    Intent::CancelTimer { .. } => Action::CancelTimer,
                    Intent::PauseTimer { .. } => Action::PauseTimer,
                    _ => Action::ResumeTimer,
                };
                return Some(DeviceCommand::new(action, speaker()?, None).named(name.clone()));
            }
            Intent::WhatTime
            | Intent::WhatDate
            | Intent::TimerStatus { .. }
            | Intent::SwitchLights { .. }
            | Intent::Unknown { .. } => return None,
        };
        Some(DeviceCommand::new(action, device, value))
    }

    /// Whether the words name a speaker, by name, alias or kind ("the music").
    fn names_a_speaker(&self, heard: &Heard<'_>) -> bool {
        let seq: Vec<(usize, &str)> = heard.content.iter().map(|&i| (i, heard.folded[i])).collect();
        heard.content_words().any(|w| kind_word(w).is_some_and(|k| k[0] == DeviceKind::Speaker))
            || self
                .devices
                .iter()
                .filter(|d| d.kind == DeviceKind::Speaker)
                .any(|d| d.phrases.iter().any(|p| find(&seq, p).is_some()))
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
            if heard.has_any(TIMER_RESUME_WORDS) {
                return Ok(Intent::ResumeTimer { name });
            }
            if heard.has_any(TIMER_PAUSE_WORDS) {
                return Ok(Intent::PauseTimer { name });
            }
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
        if is_date_question(heard) {
            return Ok(Intent::WhatDate);
        }
        let louder = heard.has_any(&["louder", "quieter", "softer"]);
        let turned = volume_direction(heard).filter(|_| heard.has_any(&["turn", "music", "sound", "radio", "speaker"]));
        if heard.has("volume") || heard.has("mute") || louder || (turned.is_some() && self.names_a_speaker(heard)) {
            let device = self.target(heard, site, Want::Speaker, "set", true)?;
            if device.kind != DeviceKind::Speaker {
                return Err(Unmatched::Unsupported { device: device.name.clone(), what: Quantity::Volume });
            }
            // "Up by 20" is a step; "up to 20" and "to 20 percent" are a level.
            if let (Some(up), false, false) = (volume_direction(heard), heard.has("to"), heard.has("mute")) {
                return Ok(Intent::StepVolume { device: device.id.clone(), up, step: volume_step(heard)? });
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
        if let Some(next) = track_skip(heard) {
            let speaker = self.target(heard, site, Want::Speaker, "play", false)?;
            if speaker.kind != DeviceKind::Speaker {
                return Err(Unmatched::Unsupported { device: speaker.name.clone(), what: Quantity::Playback });
            }
            let speaker = speaker.id.clone();
            return Ok(if next { Intent::NextTrack { speaker } } else { Intent::PreviousTrack { speaker } });
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
            if let Some(group) = self.light_group(heard, site).filter(|g| !g.devices.is_empty()) {
                return Ok(Intent::SwitchLights { on: !off, devices: group.devices, room: group.room });
            }
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

        let room = self.room_said(&seq);
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

impl IntentMatcher {
    /// The room the words name (the longest name heard), and where in `seq` it is.
    pub(crate) fn room_said(&self, seq: &[(usize, &str)]) -> Option<(&KnownRoom, std::ops::Range<usize>)> {
        let mut room: Option<(&KnownRoom, std::ops::Range<usize>)> = None;
        for known in &self.rooms {
            for phrase in &known.phrases {
                if let Some(at) = find(seq, phrase) {
                    if room.as_ref().is_none_or(|(_, r)| phrase.len() > r.len()) {
                        room = Some((known, at..at + phrase.len()));
                    }
                }
            }
        }
        room
    }
}

/// Where `phrase` starts in `seq`, as a run of consecutive words.
pub(crate) fn find(seq: &[(usize, &str)], phrase: &[String]) -> Option<usize> {
    if phrase.is_empty() || phrase.len() > seq.len() {
        return None;
    }
    (0..=seq.len() - phrase.len()).find(|&at| phrase.iter().zip(&seq[at..]).all(|(p, (_, w))| p == w))
}
