//! What Whisper mishears, against the shipped sample home: names that sound like the
//! home's are read as them or asked back, a split switch verb ("the activate") is
//! read whole, and on with off is asked back, never guessed.

use alicia_home::Home;
use alicia_stage_intent::{Intent, IntentMatcher, Unmatched};
use chrono::NaiveDateTime;

fn matcher() -> IntentMatcher {
    let home = Home::from_toml(include_str!("../../../bus-config/home.toml")).expect("the sample home is valid");
    IntentMatcher::new(&home)
}

fn reply(matcher: &IntentMatcher, text: &str) -> String {
    matcher.reply(&matcher.match_text(text, "kitchen"), NaiveDateTime::MIN)
}

#[test]
fn a_name_that_sounds_like_one_of_the_homes_is_read_as_it() {
    let m = matcher();
    for (heard, expected) in [
        ("Turn on the whole way light.", Intent::TurnOn { device: "hallway_lights".into() }),
        ("Turn off the leaving room lamp.", Intent::TurnOff { device: "living_room_lamp".into() }),
        ("Switch on the bad room lamp", Intent::TurnOn { device: "bedroom_lamp".into() }),
        ("Turn off the lights in the whole way.", Intent::TurnOff { device: "hallway_lights".into() }),
        ("Set the leaving room lamp to 40%.", Intent::SetBrightness { device: "living_room_lamp".into(), percent: 40 }),
    ] {
        assert_eq!(m.match_text(heard, "kitchen"), expected, "{heard}");
    }
    assert_eq!(reply(&m, "turn on the whole way light"), "Turning on the hallway lights.");
}

#[test]
fn a_name_only_close_to_the_homes_is_asked_back() {
    let m = matcher();
    // "bathroom" is near "bedroom" but not its sound: asked, not acted on.
    let intent = m.match_text("Turn on the bathroom lamp", "kitchen");
    assert_eq!(
        intent,
        Intent::Unknown {
            text: "Turn on the bathroom lamp".into(),
            reason: Unmatched::DidYouMean { names: vec!["bedroom lamp".into()] }
        }
    );
    assert_eq!(reply(&m, "Turn on the bathroom lamp"), "Did you mean the bedroom lamp?");
    // Nothing near: the plain answer.
    assert_eq!(reply(&m, "Turn on the garage lights"), "I don't know a device called garage lights.");
}

#[test]
fn a_name_close_to_two_of_the_homes_is_asked_back_with_both() {
    let home = Home::from_toml(
        r#"
[rooms.hallway]
name = "hallway"
[rooms.living_room]
name = "living room"
[[devices]]
id = "hall_lamp"
name = "hall lamp"
kind = "lamp"
room = "hallway"
[[devices]]
id = "wall_lamp"
name = "wall lamp"
kind = "lamp"
room = "living_room"
"#,
    )
    .unwrap();
    let m = IntentMatcher::new(&home);
    assert_eq!(reply(&m, "turn on the fall lamp"), "Did you mean the hall lamp or the wall lamp?");
}

fn kitchen_off() -> Intent {
    Intent::TurnOff { device: "kitchen_lights".into() }
}

#[test]
fn off_is_never_read_as_on() {
    let m = matcher();
    for heard in [
        "Deactivate the lights in the kitchen.",
        "de-activate the lights in the kitchen",
        "Disable the kitchen lights.",
        "Switch the kitchen light off.",
        "Light off in the kitchen.",
        "Kill the lights in the kitchen.",
        "Shut off the kitchen lights.",
        "Turn the lights in the kitchen off, please.",
    ] {
        assert_eq!(m.match_text(heard, "hallway"), kitchen_off(), "{heard}");
    }
    // How Whisper writes "deactivate" said by every espeak-ng English voice: the
    // article cannot open a request, so it is the verb's "de".
    assert_eq!(m.match_text("The activate the light in the kitchen.", "hallway"), kitchen_off());
    // On and off in one request: asked, not guessed.
    let both = m.match_text("Turn on, off the kitchen light.", "hallway");
    assert!(
        matches!(&both, Intent::Unknown { reason: Unmatched::OnOrOff { device }, .. } if device == "kitchen lights"),
        "{both:?}"
    );
    assert_eq!(reply(&m, "Turn on, off the kitchen light."), "Should I turn the kitchen lights on or off?");
    assert_eq!(reply(&m, "Don't turn on the lights."), "Okay, I won't.");
}

#[test]
fn words_not_understood_sound_finished_unless_they_stop_where_a_request_goes_on() {
    let m = matcher();
    for (words, finished) in [
        ("tell me a joke", true),
        ("what is the meaning of life", true),
        ("turn on the whole way light", true),
        ("turn on the living", false),
        ("turn on the bedside", false),
        ("set the lamp to", false),
        ("what is the", false),
        ("um", false),
    ] {
        assert_eq!(m.sounds_finished(&m.match_text(words, "kitchen")), finished, "{words}");
    }
}
