//! The sentence Alicia says back: short, plain, one per intent or problem.

use std::time::Duration;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use crate::intent::{Intent, Quantity, Unmatched};
use crate::matcher::IntentMatcher;
use crate::request_words::DEFAULT_VOLUME_STEP;
use crate::timers::{duration_spoken, timer_called, TimerLeft};

/// The reply to anything not understood.
pub const DIDNT_CATCH_THAT: &str = "Sorry, I didn't catch that.";

impl IntentMatcher {
    /// The spoken reply to `intent`; `now` is the local time for "what time is it" and
    /// "what's the date". Timer questions need the site: see [`reply_at`](Self::reply_at).
    pub fn reply(&self, intent: &Intent, now: NaiveDateTime) -> String {
        self.reply_at(intent, "", now)
    }

    /// The spoken reply to `intent` heard at `site`.
    pub fn reply_at(&self, intent: &Intent, site: &str, now: NaiveDateTime) -> String {
        let name = |id: &str| self.device_name(id).to_string();
        match intent {
            Intent::TurnOn { device } => format!("Turning on the {}.", name(device)),
            Intent::TurnOff { device } => format!("Turning off the {}.", name(device)),
            Intent::Toggle { device } => format!("Toggling the {}.", name(device)),
            Intent::SwitchLights { on, room, .. } => {
                let way = if *on { "on" } else { "off" };
                match room {
                    Some(room) => format!("Turning {way} the lights in the {room}."),
                    None => format!("Turning {way} all the lights."),
                }
            }
            Intent::SetBrightness { device, percent } => format!("Setting the {} to {percent} percent.", name(device)),
            Intent::SetVolume { device, percent: 0 } => format!("Muting the {}.", name(device)),
            Intent::SetVolume { device, percent } => {
                format!("Setting the {} volume to {percent} percent.", name(device))
            }
            Intent::StepVolume { device, up, step } => {
                let way = if *up { "up" } else { "down" };
                match *step {
                    DEFAULT_VOLUME_STEP => format!("Turning {way} the {}.", name(device)),
                    step => format!("Turning the {} {way} by {step} percent.", name(device)),
                }
            }
            Intent::WhatTime => format!("It's {}.", clock(now.time())),
            Intent::WhatDate => format!("Today is {}.", date_spoken(now.date())),
            Intent::SetTimer { seconds, name } => {
                let length = duration_spoken(Duration::from_secs(u64::from(*seconds)));
                match name {
                    Some(name) => format!("{} timer set for {length}.", capitalised(name)),
                    None => format!("Timer set for {length}."),
                }
            }
            Intent::CancelTimer { name } => self.changed_reply(name.as_deref(), site, TimerChange::Cancel),
            Intent::PauseTimer { name } => self.changed_reply(name.as_deref(), site, TimerChange::Pause),
            Intent::ResumeTimer { name } => self.changed_reply(name.as_deref(), site, TimerChange::Resume),
            Intent::TimerStatus { name } => self.status_reply(name.as_deref(), site),
            Intent::Stop => "Okay.".to_string(),
            Intent::Play { speaker } => format!("Playing on the {}.", name(speaker)),
            Intent::Pause { speaker } => format!("Pausing the {}.", name(speaker)),
            Intent::NextTrack { speaker } => format!("Next track on the {}.", name(speaker)),
            Intent::PreviousTrack { speaker } => format!("Previous track on the {}.", name(speaker)),
            Intent::Unknown { reason, .. } => unmatched(reason),
        }
    }
}

impl IntentMatcher {
    /// The site's timers of `name` (all when `None`), if the timers are known here.
    fn timers_named(&self, name: Option<&str>, site: &str) -> Option<Vec<TimerLeft>> {
        let running = self.timers.as_ref()?.0.running(site);
        Some(running.into_iter().filter(|t| name.is_none_or(|n| t.name.as_deref() == Some(n))).collect())
    }

    /// The reply to a cancel, a pause or a resume: what it will do to the timers there
    /// are (those it can change: a pause skips paused timers, a resume running ones).
    fn changed_reply(&self, name: Option<&str>, site: &str, change: TimerChange) -> String {
        let (verb, able) = match change {
            TimerChange::Cancel => ("cancelled", None),
            TimerChange::Pause => ("paused", Some(false)),
            TimerChange::Resume => ("resumed", Some(true)),
        };
        let timers = self.timers_named(name, site);
        let changeable: Option<Vec<TimerLeft>> =
            timers.map(|all| all.into_iter().filter(|t| able.is_none_or(|p| t.paused == p)).collect());
        match (changeable.as_deref(), name) {
            (Some([]), Some(name)) => format!("There's no {name} timer{}.", not_so(change)),
            (Some([]), None) if matches!(change, TimerChange::Resume) => "There's no timer paused.".to_string(),
            (Some([]), None) => NO_TIMER.to_string(),
            (Some([one]), _) => format!("{} {}.", capitalised(verb), timer_called(one.name.as_deref(), one.length)),
            (Some(many), _) => format!("{} timers {verb}.", many.len()),
            (None, Some(name)) => format!("{} timer {verb}.", capitalised(name)),
            (None, None) => format!("Timer {verb}."),
        }
    }

    fn status_reply(&self, name: Option<&str>, site: &str) -> String {
        let left = |t: &TimerLeft| {
            let timer = timer_called(t.name.as_deref(), t.length);
            match t.paused {
                true => format!("{timer} is paused with {} left", duration_spoken(t.remaining)),
                false => format!("{timer} has {} left", duration_spoken(t.remaining)),
            }
        };
        match (self.timers_named(name, site).as_deref(), name) {
            (None, _) => "I'm not keeping any timers.".to_string(),
            (Some([]), Some(name)) => format!("There's no {name} timer."),
            (Some([]), None) => NO_TIMER.to_string(),
            (Some([one]), _) => format!("{}.", capitalised(&left(one))),
            (Some(many), _) => {
                let each: Vec<String> = many.iter().map(left).collect();
                format!("{} timers: {}.", many.len(), each.join("; "))
            }
        }
    }
}

const NO_TIMER: &str = "There's no timer running.";

/// What a spoken request does to the timers it names.
#[derive(Clone, Copy)]
enum TimerChange {
    Cancel,
    Pause,
    Resume,
}

/// The end of "There's no timer…" for a change that found none to change.
fn not_so(change: TimerChange) -> &'static str {
    match change {
        TimerChange::Cancel => "",
        TimerChange::Pause => " running",
        TimerChange::Resume => " paused",
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

fn unmatched(reason: &Unmatched) -> String {
    match reason {
        Unmatched::NotUnderstood => DIDNT_CATCH_THAT.to_string(),
        Unmatched::UnknownDevice { name } => format!("I don't know a device called {name}."),
        Unmatched::UnknownRoom { name } => format!("I don't know a room called {name}."),
        Unmatched::NoDevice { kind, room } => format!("There's no {} in the {room}.", kind.noun()),
        Unmatched::Ambiguous { names } => format!("Which one: {}?", either(names)),
        Unmatched::DidYouMean { names } => format!("Did you mean {}?", either(names)),
        Unmatched::OnOrOff { device } => format!("Should I turn the {device} on or off?"),
        Unmatched::Negated => "Okay, I won't.".to_string(),
        Unmatched::MissingDevice { verb } => format!("Which device should I {verb}?"),
        Unmatched::MissingValue { what: Quantity::Timer } => "How long should the timer be?".to_string(),
        Unmatched::MissingValue { what: Quantity::Volume } => "What volume, in percent?".to_string(),
        Unmatched::MissingValue { what: _ } => "What brightness, in percent?".to_string(),
        Unmatched::OutOfRange { what: Quantity::Timer } => "Timers run from one second to 24 hours.".to_string(),
        Unmatched::OutOfRange { what: _ } => "Pick a level from 0 to 100 percent.".to_string(),
        Unmatched::Unsupported { device, what: Quantity::Playback } => {
            format!("I can't play anything on the {device}.")
        }
        Unmatched::Unsupported { device, what: Quantity::Volume } => format!("I can't set the volume of the {device}."),
        Unmatched::Unsupported { device, what: _ } => format!("I can't set the brightness of the {device}."),
    }
}

/// "the kitchen lights or the hallway lights", "the a, the b or the c".
fn either(names: &[String]) -> String {
    let the: Vec<String> = names.iter().map(|n| format!("the {n}")).collect();
    match the.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// "Thursday, December 3rd".
fn date_spoken(date: NaiveDate) -> String {
    let day = date.day();
    let suffix = match (day % 10, day % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{} {day}{suffix}", date.format("%A, %B"))
}

/// "3:05 PM", "12:00 AM".
fn clock(time: NaiveTime) -> String {
    let (pm, hour) = time.hour12();
    format!("{hour}:{:02} {}", time.minute(), if pm { "PM" } else { "AM" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_aloud() {
        assert_eq!(clock(NaiveTime::from_hms_opt(15, 5, 0).unwrap()), "3:05 PM");
        assert_eq!(clock(NaiveTime::from_hms_opt(0, 0, 59).unwrap()), "12:00 AM");
        assert_eq!(clock(NaiveTime::from_hms_opt(12, 30, 0).unwrap()), "12:30 PM");
        assert_eq!(either(&["a".into(), "b".into(), "c".into()]), "the a, the b or the c");
        let date = |m, d| date_spoken(NaiveDate::from_ymd_opt(2026, m, d).unwrap());
        assert_eq!(date(12, 3), "Thursday, December 3rd");
        assert_eq!(date(12, 1), "Tuesday, December 1st");
        assert_eq!(date(12, 2), "Wednesday, December 2nd");
        assert_eq!(date(12, 11), "Friday, December 11th");
        assert_eq!(date(12, 22), "Tuesday, December 22nd");
    }
}
