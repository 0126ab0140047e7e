//! Timers as people ask for them: lengths in hours, minutes and seconds, names, cancel
//! and "how much time is left", answered from the running timers when the matcher
//! knows them.

use std::sync::Arc;
use std::time::Duration;

use alicia_home::Home;
use alicia_stage_intent::{Intent, IntentMatcher, RunningTimers, TimerLeft, TIMER_COMMAND_TOPIC};
use chrono::NaiveDateTime;

fn matcher() -> IntentMatcher {
    let home = Home::from_toml(include_str!("../../../bus-config/home.toml")).expect("the sample home is valid");
    IntentMatcher::new(&home)
}

struct Running(Vec<TimerLeft>);

impl RunningTimers for Running {
    fn running(&self, site: &str) -> Vec<TimerLeft> {
        if site == "kitchen" {
            self.0.clone()
        } else {
            Vec::new()
        }
    }
}

fn left(name: Option<&str>, length: u64, remaining: u64) -> TimerLeft {
    TimerLeft {
        name: name.map(str::to_string),
        length: Duration::from_secs(length),
        paused: false,
        remaining: Duration::from_secs(remaining),
    }
}

#[test]
fn timers_are_named_and_asked_about() {
    let m = matcher();
    let name = |n: &str| Some(n.to_string());
    for (said, expected) in [
        ("Set a pizza timer for 10 minutes.", Intent::SetTimer { seconds: 600, name: name("pizza") }),
        ("Start a timer called pasta for 8 minutes", Intent::SetTimer { seconds: 480, name: name("pasta") }),
        ("Set a 3 minute egg timer", Intent::SetTimer { seconds: 180, name: name("egg") }),
        ("Set a timer for 45 seconds", Intent::SetTimer { seconds: 45, name: None }),
        ("Cancel the pizza timer.", Intent::CancelTimer { name: name("pizza") }),
        ("Cancel all timers", Intent::CancelTimer { name: None }),
        ("How much time is left?", Intent::TimerStatus { name: None }),
        ("How long is left on the pizza timer?", Intent::TimerStatus { name: name("pizza") }),
        ("What timers are running?", Intent::TimerStatus { name: None }),
        ("Timer status", Intent::TimerStatus { name: None }),
    ] {
        assert_eq!(m.match_text(said, "kitchen"), expected, "{said}");
    }
    let command = m.command(&m.match_text("set a pizza timer for ten minutes", "kitchen"), "kitchen").unwrap();
    assert_eq!(command.topic(), TIMER_COMMAND_TOPIC);
    assert_eq!(
        command.to_json(),
        serde_json::json!({"action": "set_timer", "device_id": "kitchen_speaker", "value": 600, "name": "pizza"})
    );
    assert_eq!(m.command(&Intent::TimerStatus { name: None }, "kitchen"), None, "a question commands nothing");
}

#[test]
fn replies_read_the_running_timers() {
    let now = NaiveDateTime::MIN;
    let reply = |m: &IntentMatcher, said: &str, site: &str| m.reply_at(&m.match_text(said, site), site, now);
    let bare = matcher();
    assert_eq!(reply(&bare, "set a pizza timer for 10 minutes", "kitchen"), "Pizza timer set for 10 minutes.");
    assert_eq!(reply(&bare, "set a timer for 90 seconds", "kitchen"), "Timer set for 1 minute and 30 seconds.");
    assert_eq!(reply(&bare, "how much time is left", "kitchen"), "I'm not keeping any timers.");

    let running = Running(vec![left(Some("pizza"), 600, 250), left(None, 300, 61)]);
    let m = matcher().with_timers(Arc::new(running));
    assert_eq!(
        reply(&m, "how much time is left", "kitchen"),
        "2 timers: the pizza timer has 4 minutes and 10 seconds left; the 5 minute timer has 1 minute and 1 second left."
    );
    assert_eq!(
        reply(&m, "how long is left on the pizza timer", "kitchen"),
        "The pizza timer has 4 minutes and 10 seconds left."
    );
    assert_eq!(reply(&m, "how much time is left", "bedroom"), "There's no timer running.");
    assert_eq!(reply(&m, "cancel the tea timer", "kitchen"), "There's no tea timer.");
    assert_eq!(reply(&m, "cancel the pizza timer", "kitchen"), "Cancelled the pizza timer.");
    assert_eq!(reply(&m, "cancel the timers", "kitchen"), "2 timers cancelled.");
    assert_eq!(reply(&m, "cancel the timer", "bedroom"), "There's no timer running.");
}
