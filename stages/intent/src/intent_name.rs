//! The stable name of each [`Intent`], for answers that leave the engine as JSON
//! (`alicia/voice/ai/response`'s `intent`). Kept apart from `intent.rs` so the set of
//! names reads as one list.

use crate::intent::{Intent, Unmatched};

impl Intent {
    /// `turn_on`, `set_timer`, ...; `not_understood` for words the matcher does not
    /// know, `unknown` for a request it understood and cannot carry out here.
    pub fn name(&self) -> &'static str {
        match self {
            Intent::TurnOn { .. } => "turn_on",
            Intent::TurnOff { .. } => "turn_off",
            Intent::Toggle { .. } => "toggle",
            Intent::SwitchLights { on: true, .. } => "turn_on",
            Intent::SwitchLights { on: false, .. } => "turn_off",
            Intent::SetBrightness { .. } => "set_brightness",
            Intent::SetVolume { .. } => "set_volume",
            Intent::StepVolume { up: true, .. } => "volume_up",
            Intent::StepVolume { up: false, .. } => "volume_down",
            Intent::WhatTime => "what_time",
            Intent::WhatDate => "what_date",
            Intent::SetTimer { .. } => "set_timer",
            Intent::CancelTimer { .. } => "cancel_timer",
            Intent::TimerStatus { .. } => "timer_status",
            Intent::PauseTimer { .. } => "pause_timer",
            Intent::ResumeTimer { .. } => "resume_timer",
            Intent::Stop => "stop",
            Intent::Play { .. } => "play",
            Intent::Pause { .. } => "pause",
            Intent::NextTrack { .. } => "next_track",
            Intent::PreviousTrack { .. } => "previous_track",
            Intent::Unknown { reason: Unmatched::NotUnderstood, .. } => "not_understood",
            Intent::Unknown { .. } => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_snake_case_labels() {
        assert_eq!(Intent::TurnOn { device: "kitchen_lights".into() }.name(), "turn_on");
        assert_eq!(Intent::SetTimer { seconds: 300, name: None }.name(), "set_timer");
        let unknown = |reason| Intent::Unknown { text: "x".into(), reason };
        assert_eq!(unknown(Unmatched::NotUnderstood).name(), "not_understood");
        assert_eq!(unknown(Unmatched::UnknownRoom { name: "attic".into() }).name(), "unknown");
    }
}
