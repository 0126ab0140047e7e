//! What a user asked for ([`Intent`]), what goes to a device ([`DeviceCommand`]), and
//! the whole answer to one utterance ([`Understanding`]).

use alicia_home::DeviceKind;
use bytes::Bytes;
use serde::Serialize;

/// A request the assistant understands. A closed set: the composition root and the
/// replies match on it. Device and speaker fields are device ids from the home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    TurnOn {
        device: String,
    },
    TurnOff {
        device: String,
    },
    Toggle {
        device: String,
    },
    /// Several lights at once: those of `room` (its name), or with `None` every light
    /// of the home ("all the lights off").
    SwitchLights {
        on: bool,
        devices: Vec<String>,
        room: Option<String>,
    },
    SetBrightness {
        device: String,
        percent: u8,
    },
    SetVolume {
        device: String,
        percent: u8,
    },
    /// "Turn the volume up", "quieter": `step` percent up or down from where it is.
    StepVolume {
        device: String,
        up: bool,
        step: u8,
    },
    WhatTime,
    /// "What's the date?", "what day is it?"
    WhatDate,
    /// A timer of `seconds` at the site, named ("pizza") or not.
    SetTimer {
        seconds: u32,
        name: Option<String>,
    },
    /// The site's timer of that name, or all its timers.
    CancelTimer {
        name: Option<String>,
    },
    /// "How much time is left?": the site's timers, or the one of that name.
    TimerStatus {
        name: Option<String>,
    },
    /// The site's timer of that name, or all its timers, stop counting down...
    PauseTimer {
        name: Option<String>,
    },
    /// ...and go on from where they stopped.
    ResumeTimer {
        name: Option<String>,
    },
    /// Stop whatever the site is doing (speaking, playing, ringing).
    Stop,
    Play {
        speaker: String,
    },
    Pause {
        speaker: String,
    },
    /// The next track, or the previous one.
    NextTrack {
        speaker: String,
    },
    PreviousTrack {
        speaker: String,
    },
    /// Not understood, or understood but impossible here; `reason` says which, and the
    /// reply says it to the user. `text` is the transcript as heard.
    Unknown {
        text: String,
        reason: Unmatched,
    },
}

impl Intent {
    /// Words the matcher knows nothing of: the chat fallback's turn, when it is on.
    pub fn is_not_understood(&self) -> bool {
        matches!(self, Intent::Unknown { reason: Unmatched::NotUnderstood, .. })
    }

    /// The device this intent acts on, if it names one.
    pub fn device(&self) -> Option<&str> {
        match self {
            Intent::TurnOn { device }
            | Intent::TurnOff { device }
            | Intent::Toggle { device }
            | Intent::SetBrightness { device, .. }
            | Intent::SetVolume { device, .. }
            | Intent::StepVolume { device, .. } => Some(device),
            Intent::Play { speaker }
            | Intent::Pause { speaker }
            | Intent::NextTrack { speaker }
            | Intent::PreviousTrack { speaker } => Some(speaker),
            _ => None,
        }
    }
}

/// Why a transcript gave no intent. Each has its own reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unmatched {
    /// Nothing the matcher knows: "Sorry, I didn't catch that." (and the chat
    /// fallback's turn, when it is on).
    NotUnderstood,
    /// A device intent naming something that is no device here.
    UnknownDevice { name: String },
    /// "... in the garage", and there is no garage.
    UnknownRoom { name: String },
    /// The room has no device of the kind asked for (`room` is the room's name).
    NoDevice { kind: DeviceKind, room: String },
    /// Several devices fit; their names.
    Ambiguous { names: Vec<String> },
    /// The words name nothing in the home but sound like these names (one or two):
    /// "Did you mean the hallway lights?"
    DidYouMean { names: Vec<String> },
    /// On or off could not be read with confidence ("turn on the light off"): asked
    /// back rather than guessed. `device` is its name.
    OnOrOff { device: String },
    /// "Don't turn on the lights": nothing to do.
    Negated,
    /// "Turn on" with nothing to turn on; `verb` as a reply says it.
    MissingDevice { verb: &'static str },
    /// "Set the volume" without a level, a timer without a length.
    MissingValue { what: Quantity },
    /// A level over 100 percent, a timer of zero or over a day.
    OutOfRange { what: Quantity },
    /// The device cannot do this (`device` is its name).
    Unsupported { device: String, what: Quantity },
}

/// What a number in a request is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    Brightness,
    Volume,
    Timer,
    /// Play and pause, which have no number but need a speaker.
    Playback,
}

/// Where timer commands go: the engine keeps the timers and rings them on the speaker.
pub const TIMER_COMMAND_TOPIC: &str = "alicia/voice/timer/command";

/// What a device is told to do: `{"action": "turn_on", "device_id": "kitchen_lights"}`,
/// with `"value"` for levels and volume steps (percent) and timers (seconds). The engine wraps it in
/// the standard envelope on [`topic`](Self::topic).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceCommand {
    pub action: Action,
    pub device_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<u32>,
    /// A timer's name ("pizza"), for the timer actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    TurnOn,
    TurnOff,
    Toggle,
    /// `value`: 0..=100 percent.
    SetBrightness,
    /// `value`: 0..=100 percent.
    SetVolume,
    /// `value`: percent to add to the volume...
    VolumeUp,
    /// ...or take from it.
    VolumeDown,
    Play,
    Pause,
    /// The next track.
    Next,
    /// The previous track.
    Previous,
    Stop,
    /// `value`: seconds; `name`, if it has one. Goes to the engine's timers
    /// ([`TIMER_COMMAND_TOPIC`]), which ring on the site's speaker.
    SetTimer,
    /// `name`: that timer; without it, every timer of the site.
    CancelTimer,
    /// `name` as for [`Action::CancelTimer`]: the timers stop counting down...
    PauseTimer,
    /// ...and go on.
    ResumeTimer,
}

impl Action {
    /// The actions the engine's timers carry out rather than a device.
    pub fn is_timer(self) -> bool {
        matches!(self, Action::SetTimer | Action::CancelTimer | Action::PauseTimer | Action::ResumeTimer)
    }
}

impl DeviceCommand {
    pub fn new(action: Action, device_id: impl Into<String>, value: Option<u32>) -> Self {
        Self { action, device_id: device_id.into(), value, name: None }
    }

    pub fn named(mut self, name: Option<String>) -> Self {
        self.name = name;
        self
    }

    /// `alicia/devices/{id}/command`; the timer actions go to the engine's timers,
    /// [`TIMER_COMMAND_TOPIC`], with `device_id` the speaker they ring on.
    pub fn topic(&self) -> String {
        match self.action {
            action if action.is_timer() => TIMER_COMMAND_TOPIC.to_string(),
            _ => format!("alicia/devices/{}/command", self.device_id),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a command is plain data")
    }

    /// The JSON as bytes, the body of the message frame.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("a command is plain data"))
    }
}

/// The matcher's whole answer to one transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Understanding {
    pub intent: Intent,
    /// What to send to devices: none for the time or an unknown, one per light for a
    /// group of lights, else one.
    pub commands: Vec<DeviceCommand>,
    /// One short sentence for the TTS.
    pub reply: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_the_documented_json() {
        let on = DeviceCommand::new(Action::TurnOn, "kitchen_lights", None);
        assert_eq!(on.topic(), "alicia/devices/kitchen_lights/command");
        assert_eq!(on.to_json(), serde_json::json!({"action": "turn_on", "device_id": "kitchen_lights"}));
        let dim = DeviceCommand::new(Action::SetBrightness, "bedroom_lamp", Some(30));
        assert_eq!(&dim.to_bytes()[..], br#"{"action":"set_brightness","device_id":"bedroom_lamp","value":30}"#);
        let timer = DeviceCommand::new(Action::SetTimer, "kitchen_speaker", Some(300)).named(Some("pizza".into()));
        assert_eq!(timer.to_json()["action"], "set_timer");
        assert_eq!(timer.to_json()["name"], "pizza");
        assert_eq!(timer.topic(), TIMER_COMMAND_TOPIC);
    }
}
