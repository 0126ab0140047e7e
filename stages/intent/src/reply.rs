//! The sentence Alicia says back: short, plain, one per intent or problem.

use chrono::{NaiveTime, Timelike};

use crate::intent::{Intent, Quantity, Unmatched};
use crate::matcher::IntentMatcher;

/// The reply to anything not understood.
pub const DIDNT_CATCH_THAT: &str = "Sorry, I didn't catch that.";

impl IntentMatcher {
    /// The spoken reply to `intent`; `now` is the local time for "what time is it".
    pub fn reply(&self, intent: &Intent, now: NaiveTime) -> String {
        let name = |id: &str| self.device_name(id).to_string();
        match intent {
            Intent::TurnOn { device } => format!("Turning on the {}.", name(device)),
            Intent::TurnOff { device } => format!("Turning off the {}.", name(device)),
            Intent::Toggle { device } => format!("Toggling the {}.", name(device)),
            Intent::SetBrightness { device, percent } => format!("Setting the {} to {percent} percent.", name(device)),
            Intent::SetVolume { device, percent: 0 } => format!("Muting the {}.", name(device)),
            Intent::SetVolume { device, percent } => {
                format!("Setting the {} volume to {percent} percent.", name(device))
            }
            Intent::WhatTime => format!("It's {}.", clock(now)),
            Intent::SetTimer { minutes } => format!("Timer set for {}.", minutes_spoken(*minutes)),
            Intent::CancelTimer => "Timer cancelled.".to_string(),
            Intent::Stop => "Okay.".to_string(),
            Intent::Play { speaker } => format!("Playing on the {}.", name(speaker)),
            Intent::Pause { speaker } => format!("Pausing the {}.", name(speaker)),
            Intent::Unknown { reason, .. } => unmatched(reason),
        }
    }
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
        Unmatched::OutOfRange { what: Quantity::Timer } => "Timers run from one minute to 24 hours.".to_string(),
        Unmatched::OutOfRange { what: _ } => "Pick a level from 0 to 100 percent.".to_string(),
        Unmatched::PartialMinute => "I can only set timers in whole minutes.".to_string(),
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

/// "3:05 PM", "12:00 AM".
fn clock(time: NaiveTime) -> String {
    let (pm, hour) = time.hour12();
    format!("{hour}:{:02} {}", time.minute(), if pm { "PM" } else { "AM" })
}

/// "1 minute", "5 minutes", "1 hour", "1 hour and 30 minutes".
fn minutes_spoken(minutes: u32) -> String {
    let plural = |n: u32, unit: &str| if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") };
    match (minutes / 60, minutes % 60) {
        (0, m) => plural(m, "minute"),
        (h, 0) => plural(h, "hour"),
        (h, m) => format!("{} and {}", plural(h, "hour"), plural(m, "minute")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_read_aloud() {
        assert_eq!(clock(NaiveTime::from_hms_opt(15, 5, 0).unwrap()), "3:05 PM");
        assert_eq!(clock(NaiveTime::from_hms_opt(0, 0, 59).unwrap()), "12:00 AM");
        assert_eq!(clock(NaiveTime::from_hms_opt(12, 30, 0).unwrap()), "12:30 PM");
        assert_eq!(minutes_spoken(1), "1 minute");
        assert_eq!(minutes_spoken(5), "5 minutes");
        assert_eq!(minutes_spoken(60), "1 hour");
        assert_eq!(minutes_spoken(150), "2 hours and 30 minutes");
        assert_eq!(either(&["a".into(), "b".into(), "c".into()]), "the a, the b or the c");
    }
}
