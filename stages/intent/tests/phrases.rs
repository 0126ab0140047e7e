//! The matcher against the shipped sample home: how people say things, the way
//! Whisper writes them down.

use alicia_home::{DeviceKind, Home};
use alicia_stage_intent::{Intent, IntentMatcher, Quantity, Unmatched, DIDNT_CATCH_THAT};
use chrono::{NaiveDate, NaiveDateTime};

fn matcher() -> IntentMatcher {
    let home = Home::from_toml(include_str!("../../../bus-config/home.toml")).expect("the sample home is valid");
    IntentMatcher::new(&home)
}

fn on(device: &str) -> Intent {
    Intent::TurnOn { device: device.into() }
}

fn off(device: &str) -> Intent {
    Intent::TurnOff { device: device.into() }
}

fn brightness(device: &str, percent: u8) -> Intent {
    Intent::SetBrightness { device: device.into(), percent }
}

fn volume(device: &str, percent: u8) -> Intent {
    Intent::SetVolume { device: device.into(), percent }
}

fn timer(minutes: u32) -> Intent {
    Intent::SetTimer { seconds: minutes * 60, name: None }
}

fn cancel_timer() -> Intent {
    Intent::CancelTimer { name: None }
}

fn play(speaker: &str) -> Intent {
    Intent::Play { speaker: speaker.into() }
}

fn pause(speaker: &str) -> Intent {
    Intent::Pause { speaker: speaker.into() }
}

#[test]
fn phrasings_people_use() {
    let table: Vec<(&str, &str, Intent)> = vec![
        // on / off, by name, alias, room and kind, or the site's room
        ("turn on the kitchen lights", "hallway", on("kitchen_lights")),
        (" Turn on the kitchen lights.", "hallway", on("kitchen_lights")),
        ("Turn on the kitchen light", "bedroom", on("kitchen_lights")),
        ("TURN THE KITCHEN LIGHTS ON!", "bedroom", on("kitchen_lights")),
        ("Please turn on the kitchen lights.", "bedroom", on("kitchen_lights")),
        ("Hey Alicia, could you turn on the kitchen lights for me please?", "bedroom", on("kitchen_lights")),
        ("Kitchen lights on.", "bedroom", on("kitchen_lights")),
        ("Turn on the lights.", "kitchen", on("kitchen_lights")),
        ("Turn on the light", "hallway", on("hallway_lights")),
        ("Lights on, please.", "kitchen", on("kitchen_lights")),
        ("Turn on the light", "bedroom", on("bedroom_lamp")),
        ("Turn on the lamp.", "living_room", on("living_room_lamp")),
        ("Switch off the lamp in the bedroom.", "kitchen", off("bedroom_lamp")),
        ("Switch the bedroom lamp off.", "kitchen", off("bedroom_lamp")),
        ("Turn the lights off in the living room.", "kitchen", off("living_room_lamp")),
        ("Turn off the lights in the lounge", "kitchen", off("living_room_lamp")),
        ("turn off the hall light", "kitchen", off("hallway_lights")),
        ("Turn off the hallway lights.", "kitchen", off("hallway_lights")),
        ("Shut off the bedside lamp.", "kitchen", off("bedroom_lamp")),
        ("Lights out.", "bedroom", off("bedroom_lamp")),
        ("Kill the lights.", "hallway", off("hallway_lights")),
        ("Could you switch on the floor lamp?", "kitchen", on("living_room_lamp")),
        ("Turn on the bedroom lamps", "kitchen", on("bedroom_lamp")),
        ("Turn on the living room lamp", "kitchen", on("living_room_lamp")),
        ("Turn off the music.", "bedroom", off("bedroom_speaker")),
        ("Turn on the kitchen lights. Turn on the kitchen lights.", "bedroom", on("kitchen_lights")),
        ("Turn on the kitchen's lights", "bedroom", on("kitchen_lights")),
        ("Switch on the bedside light.", "kitchen", on("bedroom_lamp")),
        ("Turn on the living room lights", "kitchen", on("living_room_lamp")),
        ("Turn on the corridor lights", "kitchen", on("hallway_lights")),
        ("Switch the lights on in the bed room.", "kitchen", on("bedroom_lamp")),
        ("Turn on the kitchen lights in 5 minutes.", "bedroom", on("kitchen_lights")),
        ("Turn on the bedroom speaker.", "kitchen", on("bedroom_speaker")),
        ("Toggle the hallway lights.", "kitchen", Intent::Toggle { device: "hallway_lights".into() }),
        ("Toggle the lamp", "living_room", Intent::Toggle { device: "living_room_lamp".into() }),
        // levels
        ("Set the living room lamp to 50%.", "kitchen", brightness("living_room_lamp", 50)),
        ("Set the living room lamp to fifty percent.", "kitchen", brightness("living_room_lamp", 50)),
        ("Dim the bedroom lamp to 20 percent", "kitchen", brightness("bedroom_lamp", 20)),
        (
            "Set the brightness of the kitchen lights to twenty-five percent.",
            "hallway",
            brightness("kitchen_lights", 25),
        ),
        ("Kitchen lights, 75%.", "hallway", brightness("kitchen_lights", 75)),
        ("Set the lights to a hundred percent", "kitchen", brightness("kitchen_lights", 100)),
        ("Dim the lights to half.", "bedroom", brightness("bedroom_lamp", 50)),
        ("Set brightness to 40 percent.", "bedroom", brightness("bedroom_lamp", 40)),
        ("Set the kitchen lights to 40.", "bedroom", brightness("kitchen_lights", 40)),
        ("Set the lamp to seventy five per cent.", "living_room", brightness("living_room_lamp", 75)),
        ("Turn up the volume to 80 percent.", "hallway", volume("hallway_speaker", 80)),
        ("Set the volume to 30%.", "kitchen", volume("kitchen_speaker", 30)),
        ("Volume forty percent, please.", "bedroom", volume("bedroom_speaker", 40)),
        ("Turn the volume to 10 in the living room.", "kitchen", volume("living_room_speaker", 10)),
        ("Set the kitchen speaker to sixty percent.", "bedroom", volume("kitchen_speaker", 60)),
        ("Mute the hall speaker.", "kitchen", volume("hallway_speaker", 0)),
        // time and timers
        ("What time is it?", "kitchen", Intent::WhatTime),
        ("What's the time?", "kitchen", Intent::WhatTime),
        ("Alicia, tell me the time.", "unknown_site", Intent::WhatTime),
        ("What time is it now?", "kitchen", Intent::WhatTime),
        ("Time?", "kitchen", Intent::WhatTime),
        ("Set a timer for 5 minutes.", "kitchen", timer(5)),
        ("Set a timer for five minutes.", "kitchen", timer(5)),
        ("Set a 10-minute timer.", "kitchen", timer(10)),
        ("Timer for a minute.", "kitchen", timer(1)),
        ("Set a timer for half an hour.", "kitchen", timer(30)),
        ("Start a timer for an hour and a half", "kitchen", timer(90)),
        ("Set a timer for 120 seconds", "kitchen", timer(2)),
        ("Set timers for twenty five minutes", "kitchen", timer(25)),
        ("Can you set a timer for 15 minutes?", "kitchen", timer(15)),
        ("Set a timer for a quarter of an hour.", "kitchen", timer(15)),
        ("Cancel the timer.", "kitchen", cancel_timer()),
        ("Stop the timer!", "kitchen", cancel_timer()),
        ("Turn off my timer.", "kitchen", cancel_timer()),
        ("Set a timer for 90 seconds.", "kitchen", Intent::SetTimer { seconds: 90, name: None }),
        ("Set a timer for 1 hour, 2 minutes and 5 seconds", "kitchen", Intent::SetTimer { seconds: 3_725, name: None }),
        // playback and stop
        ("Stop.", "kitchen", Intent::Stop),
        ("Stop!", "kitchen", Intent::Stop),
        ("Be quiet.", "kitchen", Intent::Stop),
        ("Stop playing music.", "kitchen", Intent::Stop),
        ("Never mind.", "kitchen", Intent::Stop),
        ("Shut up.", "kitchen", Intent::Stop),
        ("Play music.", "kitchen", play("kitchen_speaker")),
        ("Continue.", "kitchen", play("kitchen_speaker")),
        ("Play some music in the bedroom.", "kitchen", play("bedroom_speaker")),
        ("Play some jazz.", "living_room", play("living_room_speaker")),
        ("Resume the music on the lounge speaker.", "kitchen", play("living_room_speaker")),
        ("Pause.", "hallway", pause("hallway_speaker")),
        ("Pause the music in the kitchen.", "bedroom", pause("kitchen_speaker")),
    ];
    assert!(table.len() >= 40);
    let matcher = matcher();
    let failures: Vec<String> = table
        .iter()
        .filter_map(|(text, site, expected)| {
            let got = matcher.match_text(text, site);
            (got != *expected).then(|| format!("{text:?} at {site}: expected {expected:?}, got {got:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} phrasings failed:\n{}", failures.len(), table.len(), failures.join("\n"));
}

#[test]
fn what_cannot_be_done_gets_a_reply_that_says_why() {
    let table: Vec<(&str, &str, Unmatched, &str)> = vec![
        (
            "Turn on the garage door.",
            "kitchen",
            Unmatched::UnknownDevice { name: "garage door".into() },
            "I don't know a device called garage door.",
        ),
        (
            "Turn on the garage lights",
            "kitchen",
            Unmatched::UnknownDevice { name: "garage lights".into() },
            "I don't know a device called garage lights.",
        ),
        (
            "Turn on the lights in the garage.",
            "kitchen",
            Unmatched::UnknownRoom { name: "garage".into() },
            "I don't know a room called garage.",
        ),
        (
            "Turn on the lights.",
            "attic",
            Unmatched::Ambiguous { names: vec!["kitchen lights".into(), "hallway lights".into()] },
            "Which one: the kitchen lights or the hallway lights?",
        ),
        ("Turn it on.", "kitchen", Unmatched::MissingDevice { verb: "turn on" }, "Which device should I turn on?"),
        (
            "Set the volume of the kitchen lights to 50.",
            "kitchen",
            Unmatched::Unsupported { device: "kitchen lights".into(), what: Quantity::Volume },
            "I can't set the volume of the kitchen lights.",
        ),
        (
            "Dim the kitchen speaker to 20 percent.",
            "kitchen",
            Unmatched::Unsupported { device: "kitchen speaker".into(), what: Quantity::Brightness },
            "I can't set the brightness of the kitchen speaker.",
        ),
        (
            "Play music on the bedroom lamp.",
            "kitchen",
            Unmatched::Unsupported { device: "bedroom lamp".into(), what: Quantity::Playback },
            "I can't play anything on the bedroom lamp.",
        ),
        (
            "Set the lamp to 150 percent.",
            "bedroom",
            Unmatched::OutOfRange { what: Quantity::Brightness },
            "Pick a level from 0 to 100 percent.",
        ),
        ("Set the volume.", "kitchen", Unmatched::MissingValue { what: Quantity::Volume }, "What volume, in percent?"),
        (
            "Dim the lights.",
            "kitchen",
            Unmatched::MissingValue { what: Quantity::Brightness },
            "What brightness, in percent?",
        ),
        ("Set a timer.", "kitchen", Unmatched::MissingValue { what: Quantity::Timer }, "How long should the timer be?"),
        (
            "Set a timer for 48 hours.",
            "kitchen",
            Unmatched::OutOfRange { what: Quantity::Timer },
            "Timers run from one second to 24 hours.",
        ),
        (
            "Play music.",
            "attic",
            Unmatched::Ambiguous {
                names: vec![
                    "kitchen speaker".into(),
                    "living room speaker".into(),
                    "bedroom speaker".into(),
                    "hallway speaker".into(),
                ],
            },
            "Which one: the kitchen speaker, the living room speaker, the bedroom speaker or the hallway speaker?",
        ),
        (
            "Open the garage door.",
            "kitchen",
            Unmatched::UnknownDevice { name: "garage door".into() },
            "I don't know a device called garage door.",
        ),
        (
            "Open the window.",
            "kitchen",
            Unmatched::UnknownDevice { name: "window".into() },
            "I don't know a device called window.",
        ),
        ("Open the kitchen lights.", "kitchen", Unmatched::NotUnderstood, DIDNT_CATCH_THAT),
        (
            "Turn on the TV.",
            "kitchen",
            Unmatched::UnknownDevice { name: "tv".into() },
            "I don't know a device called tv.",
        ),
        ("What's the weather like tomorrow?", "kitchen", Unmatched::NotUnderstood, DIDNT_CATCH_THAT),
        ("On.", "kitchen", Unmatched::NotUnderstood, DIDNT_CATCH_THAT),
        ("", "kitchen", Unmatched::NotUnderstood, DIDNT_CATCH_THAT),
        (" [BLANK_AUDIO]", "kitchen", Unmatched::NotUnderstood, DIDNT_CATCH_THAT),
        ("Um, please.", "kitchen", Unmatched::NotUnderstood, DIDNT_CATCH_THAT),
    ];
    let matcher = matcher();
    let noon = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap().and_hms_opt(12, 0, 0).unwrap();
    for (text, site, reason, reply) in table {
        let understood = matcher.understand(text, site, noon);
        assert_eq!(understood.intent, Intent::Unknown { text: text.trim().into(), reason }, "{text:?}");
        assert_eq!(understood.reply, reply, "{text:?}");
        assert_eq!(understood.commands, [], "{text:?}");
    }
}

#[test]
fn a_room_without_the_kind_asked_for() {
    let home = Home::from_toml(
        r#"
        [rooms.office]
        name = "office"
        [[devices]]
        id = "desk_lamp"
        name = "desk lamp"
        kind = "lamp"
        room = "office"
        [sites.office]
        room = "office"
        "#,
    )
    .unwrap();
    let matcher = IntentMatcher::new(&home);
    let intent = matcher.match_text("play music", "office");
    let reason = Unmatched::NoDevice { kind: DeviceKind::Speaker, room: "office".into() };
    assert_eq!(intent, Intent::Unknown { text: "play music".into(), reason });
    assert_eq!(matcher.reply(&intent, NaiveDateTime::MIN), "There's no speaker in the office.");
    // Without a speaker at the site, a timer is understood but has no device to run it.
    assert_eq!(matcher.command(&timer(5), "office"), None);
}

#[test]
fn each_intent_has_its_command_and_reply() {
    let matcher = matcher();
    let at = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap().and_hms_opt(15, 5, 0).unwrap();
    let table: Vec<(&str, Option<serde_json::Value>, &str)> = vec![
        (
            "turn on the kitchen lights",
            Some(serde_json::json!({"action": "turn_on", "device_id": "kitchen_lights"})),
            "Turning on the kitchen lights.",
        ),
        (
            "switch off the lamp in the bedroom",
            Some(serde_json::json!({"action": "turn_off", "device_id": "bedroom_lamp"})),
            "Turning off the bedroom lamp.",
        ),
        (
            "toggle the hall lights",
            Some(serde_json::json!({"action": "toggle", "device_id": "hallway_lights"})),
            "Toggling the hallway lights.",
        ),
        (
            "set the living room lamp to fifty percent",
            Some(serde_json::json!({"action": "set_brightness", "device_id": "living_room_lamp", "value": 50})),
            "Setting the living room lamp to 50 percent.",
        ),
        (
            "volume 30 percent",
            Some(serde_json::json!({"action": "set_volume", "device_id": "kitchen_speaker", "value": 30})),
            "Setting the kitchen speaker volume to 30 percent.",
        ),
        ("what time is it", None, "It's 3:05 PM."),
        (
            "set a timer for five minutes",
            Some(serde_json::json!({"action": "set_timer", "device_id": "kitchen_speaker", "value": 300})),
            "Timer set for 5 minutes.",
        ),
        (
            "set a timer for a minute",
            Some(serde_json::json!({"action": "set_timer", "device_id": "kitchen_speaker", "value": 60})),
            "Timer set for 1 minute.",
        ),
        (
            "cancel the timer",
            Some(serde_json::json!({"action": "cancel_timer", "device_id": "kitchen_speaker"})),
            "Timer cancelled.",
        ),
        ("stop", Some(serde_json::json!({"action": "stop", "device_id": "kitchen_speaker"})), "Okay."),
        (
            "play music in the bedroom",
            Some(serde_json::json!({"action": "play", "device_id": "bedroom_speaker"})),
            "Playing on the bedroom speaker.",
        ),
        (
            "pause",
            Some(serde_json::json!({"action": "pause", "device_id": "kitchen_speaker"})),
            "Pausing the kitchen speaker.",
        ),
    ];
    for (text, command, reply) in table {
        let understood = matcher.understand(text, "kitchen", at);
        let sent: Vec<serde_json::Value> = understood.commands.iter().map(|c| c.to_json()).collect();
        assert_eq!(sent, Vec::from_iter(command), "{text:?}");
        assert_eq!(understood.reply, reply, "{text:?}");
        if let Some(command) = understood.commands.into_iter().next() {
            // Timers go to the engine's timers; everything else to its device.
            let expected = if command.to_json()["action"].as_str().is_some_and(|a| a.ends_with("_timer")) {
                alicia_stage_intent::TIMER_COMMAND_TOPIC.to_string()
            } else {
                format!("alicia/devices/{}/command", command.device_id)
            };
            assert_eq!(command.topic(), expected, "{text:?}");
        }
    }
}
