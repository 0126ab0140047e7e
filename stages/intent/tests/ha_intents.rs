//! Home Assistant's English intents (the `home-assistant/intents` sentence templates)
//! that fit the sample home, said the way those templates expand: each with the
//! command it sends and the reply Alicia says.

use alicia_home::Home;
use alicia_stage_intent::{Intent, IntentMatcher, RunningTimers, TimerLeft, Unmatched};
use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn matcher() -> IntentMatcher {
    let home = Home::from_toml(include_str!("../../../bus-config/home.toml")).expect("the sample home is valid");
    IntentMatcher::new(&home)
}

/// Thursday, 3 December 2026, 3:05 PM.
fn now() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 12, 3).unwrap().and_hms_opt(15, 5, 0).unwrap()
}

/// Each sentence heard at the kitchen: (sentence, command, reply).
fn check(table: &[(&str, Option<Value>, &str)]) {
    let matcher = matcher();
    for (text, command, reply) in table {
        let understood = matcher.understand(text, "kitchen", now());
        let sent: Vec<Value> = understood.commands.iter().map(|c| c.to_json()).collect();
        assert_eq!(sent, Vec::from_iter(command.clone()), "{text:?}");
        assert_eq!(understood.reply, *reply, "{text:?}");
    }
}

fn command(action: &str, device: &str) -> Option<Value> {
    Some(json!({"action": action, "device_id": device}))
}

fn valued(action: &str, device: &str, value: u32) -> Option<Value> {
    Some(json!({"action": action, "device_id": device, "value": value}))
}

#[test]
fn on_and_off_by_name_and_by_area() {
    check(&[
        ("turn off the living room lamp", command("turn_off", "living_room_lamp"), "Turning off the living room lamp."),
        ("light off in the kitchen", command("turn_off", "kitchen_lights"), "Turning off the kitchen lights."),
        ("lights on in the kitchen", command("turn_on", "kitchen_lights"), "Turning on the kitchen lights."),
        (
            "turn on all the lights in the hallway",
            command("turn_on", "hallway_lights"),
            "Turning on the hallway lights.",
        ),
        (
            "deactivate the lights in the kitchen",
            command("turn_off", "kitchen_lights"),
            "Turning off the kitchen lights.",
        ),
        ("switch the hall light off", command("turn_off", "hallway_lights"), "Turning off the hallway lights."),
        ("disable the bedroom lamp", command("turn_off", "bedroom_lamp"), "Turning off the bedroom lamp."),
        ("shut off the lights", command("turn_off", "kitchen_lights"), "Turning off the kitchen lights."),
        (
            "kill the lights in the living room",
            command("turn_off", "living_room_lamp"),
            "Turning off the living room lamp.",
        ),
    ]);
}

#[test]
fn brightness_by_number_and_by_word() {
    check(&[
        (
            "set the bedroom lamp brightness to 40%",
            valued("set_brightness", "bedroom_lamp", 40),
            "Setting the bedroom lamp to 40 percent.",
        ),
        (
            "set the kitchen lights to max brightness",
            valued("set_brightness", "kitchen_lights", 100),
            "Setting the kitchen lights to 100 percent.",
        ),
        (
            "set the brightness to maximum",
            valued("set_brightness", "kitchen_lights", 100),
            "Setting the kitchen lights to 100 percent.",
        ),
        (
            "set the living room lamp to minimum brightness",
            valued("set_brightness", "living_room_lamp", 1),
            "Setting the living room lamp to 1 percent.",
        ),
        (
            "set the brightness to min",
            valued("set_brightness", "kitchen_lights", 1),
            "Setting the kitchen lights to 1 percent.",
        ),
        (
            "set the bedroom lamp to half brightness",
            valued("set_brightness", "bedroom_lamp", 50),
            "Setting the bedroom lamp to 50 percent.",
        ),
        (
            "kitchen lights brightness twenty five percent",
            valued("set_brightness", "kitchen_lights", 25),
            "Setting the kitchen lights to 25 percent.",
        ),
    ]);
}

#[test]
fn volume_absolute_and_relative() {
    check(&[
        (
            "set the volume to 30%",
            valued("set_volume", "kitchen_speaker", 30),
            "Setting the kitchen speaker volume to 30 percent.",
        ),
        (
            "set the bedroom speaker volume to 80",
            valued("set_volume", "bedroom_speaker", 80),
            "Setting the bedroom speaker volume to 80 percent.",
        ),
        ("turn up the volume", valued("volume_up", "kitchen_speaker", 10), "Turning up the kitchen speaker."),
        ("volume up", valued("volume_up", "kitchen_speaker", 10), "Turning up the kitchen speaker."),
        ("turn the volume down", valued("volume_down", "kitchen_speaker", 10), "Turning down the kitchen speaker."),
        ("louder", valued("volume_up", "kitchen_speaker", 10), "Turning up the kitchen speaker."),
        (
            "make it quieter in the bedroom",
            valued("volume_down", "bedroom_speaker", 10),
            "Turning down the bedroom speaker.",
        ),
        ("turn the music down", valued("volume_down", "kitchen_speaker", 10), "Turning down the kitchen speaker."),
        (
            "turn up the living room speaker",
            valued("volume_up", "living_room_speaker", 10),
            "Turning up the living room speaker.",
        ),
        (
            "increase the volume by 20 percent",
            valued("volume_up", "kitchen_speaker", 20),
            "Turning the kitchen speaker up by 20 percent.",
        ),
        (
            "lower the volume by five",
            valued("volume_down", "kitchen_speaker", 5),
            "Turning the kitchen speaker down by 5 percent.",
        ),
        (
            "turn the volume up to 70 percent",
            valued("set_volume", "kitchen_speaker", 70),
            "Setting the kitchen speaker volume to 70 percent.",
        ),
        ("mute", valued("set_volume", "kitchen_speaker", 0), "Muting the kitchen speaker."),
        ("turn up the bedroom lamp volume", None, "I can't set the volume of the bedroom lamp."),
    ]);
}

#[test]
fn media_pause_resume_next_and_previous() {
    check(&[
        ("pause", command("pause", "kitchen_speaker"), "Pausing the kitchen speaker."),
        ("pause the music in the bedroom", command("pause", "bedroom_speaker"), "Pausing the bedroom speaker."),
        ("resume", command("play", "kitchen_speaker"), "Playing on the kitchen speaker."),
        (
            "unpause the living room speaker",
            command("play", "living_room_speaker"),
            "Playing on the living room speaker.",
        ),
        ("next", command("next", "kitchen_speaker"), "Next track on the kitchen speaker."),
        ("next track", command("next", "kitchen_speaker"), "Next track on the kitchen speaker."),
        ("skip this song", command("next", "kitchen_speaker"), "Next track on the kitchen speaker."),
        (
            "skip to the next track in the bedroom",
            command("next", "bedroom_speaker"),
            "Next track on the bedroom speaker.",
        ),
        ("go back", command("previous", "kitchen_speaker"), "Previous track on the kitchen speaker."),
        (
            "go back to the previous song",
            command("previous", "kitchen_speaker"),
            "Previous track on the kitchen speaker.",
        ),
        ("play the last track again", command("previous", "kitchen_speaker"), "Previous track on the kitchen speaker."),
        (
            "replay the previous song on the lounge speaker",
            command("previous", "living_room_speaker"),
            "Previous track on the living room speaker.",
        ),
        ("skip on the bedroom lamp", None, "I can't play anything on the bedroom lamp."),
        // Recorded phone prompts, heard through the live pipeline: no track to skip.
        ("press for the previous message,", None, "Sorry, I didn't catch that."),
        ("Press 7 for the next message.", None, "Sorry, I didn't catch that."),
    ]);
}

#[test]
fn timers_start_cancel_pause_resume_and_status() {
    let timer = |action: &str, name: Option<&str>, value: Option<u32>| {
        let mut command = json!({"action": action, "device_id": "kitchen_speaker"});
        if let Some(name) = name {
            command["name"] = json!(name);
        }
        if let Some(value) = value {
            command["value"] = json!(value);
        }
        Some(command)
    };
    check(&[
        (
            "set a timer for 1 hour and 30 minutes",
            timer("set_timer", None, Some(5_400)),
            "Timer set for 1 hour and 30 minutes.",
        ),
        ("start a 45 second timer", timer("set_timer", None, Some(45)), "Timer set for 45 seconds."),
        (
            "set a pizza timer for 12 minutes",
            timer("set_timer", Some("pizza"), Some(720)),
            "Pizza timer set for 12 minutes.",
        ),
        (
            "set a timer for 5 minutes called pasta",
            timer("set_timer", Some("pasta"), Some(300)),
            "Pasta timer set for 5 minutes.",
        ),
        ("cancel my timer", timer("cancel_timer", None, None), "Timer cancelled."),
        ("pause the timer", timer("pause_timer", None, None), "Timer paused."),
        ("pause the pizza timer", timer("pause_timer", Some("pizza"), None), "Pizza timer paused."),
        ("resume my timer", timer("resume_timer", None, None), "Timer resumed."),
        ("continue the timer called pasta", timer("resume_timer", Some("pasta"), None), "Pasta timer resumed."),
        ("unpause the pizza timer", timer("resume_timer", Some("pizza"), None), "Pizza timer resumed."),
    ]);
    let matcher = matcher();
    assert_eq!(matcher.match_text("how much time is left on my timer", "kitchen"), Intent::TimerStatus { name: None });
    assert_eq!(
        matcher.match_text("timer status", "kitchen"),
        Intent::TimerStatus { name: None },
        "Home Assistant's 'timer status'"
    );
}

/// The timers the engine would report: a pizza timer paused, a tea timer running.
struct Kitchen;

impl RunningTimers for Kitchen {
    fn running(&self, site: &str) -> Vec<TimerLeft> {
        if site != "kitchen" {
            return Vec::new();
        }
        let minutes = |m: u64| Duration::from_secs(m * 60);
        vec![
            TimerLeft { name: Some("tea".into()), length: minutes(5), paused: false, remaining: minutes(3) },
            TimerLeft { name: Some("pizza".into()), length: minutes(12), paused: true, remaining: minutes(7) },
        ]
    }
}

#[test]
fn pause_and_resume_replies_say_what_they_change_and_status_says_paused() {
    let matcher = matcher().with_timers(Arc::new(Kitchen));
    let reply = |said: &str| matcher.reply_at(&matcher.match_text(said, "kitchen"), "kitchen", now());
    assert_eq!(reply("pause the tea timer"), "Paused the tea timer.");
    assert_eq!(reply("pause the pizza timer"), "There's no pizza timer running.", "already paused");
    assert_eq!(reply("pause the timer"), "Paused the tea timer.", "the one that runs");
    assert_eq!(reply("resume the timer"), "Resumed the pizza timer.", "the one that is paused");
    assert_eq!(reply("resume the tea timer"), "There's no tea timer paused.");
    assert_eq!(
        reply("how much time is left"),
        "2 timers: the tea timer has 3 minutes left; the pizza timer is paused with 7 minutes left."
    );
    assert_eq!(reply("how long is left on the pizza timer"), "The pizza timer is paused with 7 minutes left.");
}

#[test]
fn time_and_date() {
    check(&[
        ("what time is it", None, "It's 3:05 PM."),
        ("what's the time", None, "It's 3:05 PM."),
        ("what is the date", None, "Today is Thursday, December 3rd."),
        ("what's today's date", None, "Today is Thursday, December 3rd."),
        ("what is the current date", None, "Today is Thursday, December 3rd."),
        ("what's the date today", None, "Today is Thursday, December 3rd."),
        ("what day is it", None, "Today is Thursday, December 3rd."),
    ]);
    assert_eq!(matcher().match_text("what day is it today", "kitchen"), Intent::WhatDate);
}

#[test]
fn levels_and_steps_out_of_range_are_refused() {
    let matcher = matcher();
    assert!(matches!(
        matcher.match_text("turn the volume up by 300 percent", "kitchen"),
        Intent::Unknown { reason: Unmatched::OutOfRange { .. }, .. }
    ));
}

/// A home with two lights in the living room and a lamp in the bedroom.
fn two_light_home() -> IntentMatcher {
    let home = Home::from_toml(
        r#"
[rooms.living_room]
name = "living room"
[rooms.bedroom]
name = "bedroom"

[[devices]]
id = "ceiling"
name = "ceiling light"
kind = "light"
room = "living_room"

[[devices]]
id = "reading_lamp"
name = "reading lamp"
kind = "lamp"
room = "living_room"

[[devices]]
id = "bedside"
name = "bedside lamp"
kind = "lamp"
room = "bedroom"

[sites.living_room]
room = "living_room"
"#,
    )
    .unwrap();
    IntentMatcher::new(&home)
}

#[test]
fn all_the_lights_of_a_room_or_of_the_home() {
    let matcher = two_light_home();
    let sent = |text: &str| {
        let understood = matcher.understand(text, "living_room", now());
        let commands: Vec<(String, String)> = understood
            .commands
            .iter()
            .map(|c| (c.to_json()["action"].as_str().unwrap().to_string(), c.device_id.clone()))
            .collect();
        (commands, understood.reply)
    };
    let each = |action: &str, ids: &[&str]| -> Vec<(String, String)> {
        ids.iter().map(|id| (action.to_string(), id.to_string())).collect()
    };
    assert_eq!(
        sent("turn off the lights in the living room"),
        (each("turn_off", &["ceiling", "reading_lamp"]), "Turning off the lights in the living room.".into())
    );
    assert_eq!(
        sent("turn on all the lights in the living room"),
        (each("turn_on", &["ceiling", "reading_lamp"]), "Turning on the lights in the living room.".into())
    );
    assert_eq!(
        sent("lights off"),
        (each("turn_off", &["ceiling", "reading_lamp"]), "Turning off the lights in the living room.".into()),
        "the site's room"
    );
    assert_eq!(
        sent("turn off all the lights"),
        (each("turn_off", &["ceiling", "reading_lamp", "bedside"]), "Turning off all the lights.".into())
    );
    assert_eq!(
        sent("deactivate the lights everywhere"),
        (each("turn_off", &["ceiling", "reading_lamp", "bedside"]), "Turning off all the lights.".into())
    );
    // One light by name, or the only light of a room, is one command.
    assert_eq!(sent("turn off the reading lamp").0, each("turn_off", &["reading_lamp"]));
    assert_eq!(sent("turn on the lights in the bedroom").0, each("turn_on", &["bedside"]));
    // A singular is one light: "the light" prefers a light to a lamp. A room not in the
    // home is named.
    assert_eq!(sent("turn on the light").0, each("turn_on", &["ceiling"]));
    assert_eq!(sent("turn off all the lights in the garage").1, "I don't know a room called garage.");
    assert_eq!(
        matcher.match_text("turn on the lights off", "living_room"),
        Intent::Unknown {
            text: "turn on the lights off".into(),
            reason: Unmatched::OnOrOff { device: "lights".into() }
        }
    );
    assert_eq!(Intent::SwitchLights { on: false, devices: vec![], room: None }.name(), "turn_off");
}
