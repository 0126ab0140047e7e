//! The stage around the matcher: frames in, command messages and replies out.

use alicia_pipeline::Execution;
use alicia_speech::{AudioFormat, FrameMeta, PauseSignal, SpeechFrame, Transcript};
use bytes::Bytes;
use chrono::NaiveDate;

use super::*;
use crate::reply::DIDNT_CATCH_THAT;

fn home() -> Home {
    Home::from_toml(include_str!("../../../../bus-config/home.toml")).unwrap()
}

fn five_past_three() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 12, 3).unwrap().and_hms_opt(15, 5, 0).unwrap()
}

fn stage(outputs: OutputLayout) -> IntentStage {
    IntentConfig { outputs, ..IntentConfig::default() }.build(&home()).unwrap().with_clock(five_past_three)
}

fn heard(text: &str, site: &str) -> Frame {
    Frame::text(FrameMeta::new("session-7", site, 3), text)
}

/// (port, payload kind, topic or text) of each pushed frame.
fn run(stage: &mut IntentStage, frame: Frame) -> Vec<(&'static str, String)> {
    let ports = stage.hints().outputs;
    let mut out = Outputs::detached(ports);
    stage.process(frame, &mut out).unwrap();
    out.take_pushed()
        .into_iter()
        .map(|(port, frame)| {
            assert_eq!((frame.meta.session_id.as_str(), frame.meta.seq), ("session-7", 3), "meta is kept");
            let what = match frame.payload {
                Payload::Message { topic, body } => format!("{topic} {}", String::from_utf8(body.to_vec()).unwrap()),
                Payload::Text(text) => text,
                other => other.kind().to_string(),
            };
            (port, what)
        })
        .collect()
}

#[test]
fn a_command_goes_out_before_its_reply() {
    let mut stage = stage(OutputLayout::Single);
    assert_eq!(
        run(&mut stage, heard("Turn on the lights, please.", "kitchen")),
        [
            (
                "out",
                r#"alicia/devices/kitchen_lights/command {"action":"turn_on","device_id":"kitchen_lights"}"#.into()
            ),
            ("out", "Turning on the kitchen lights.".into()),
        ]
    );
}

fn transcript(text: &str, pause: Option<&PauseSignal>) -> Frame {
    let pause = pause.cloned();
    let transcript = Transcript { text: text.into(), confidence: 0.91, language: "en".into(), pause };
    Frame::new(FrameMeta::new("session-7", "bedroom", 3), Payload::Transcript(transcript))
}

#[test]
fn the_stt_transcript_is_read_and_stamped_understood() {
    let mut stage = stage(OutputLayout::Single);
    assert_eq!(
        run(&mut stage, transcript("Set a timer for five minutes.", None)),
        [
            (
                "out",
                r#"alicia/voice/timer/command {"action":"set_timer","device_id":"bedroom_speaker","value":300}"#.into()
            ),
            ("out", "Timer set for 5 minutes.".into()),
        ]
    );
    let mut out = Outputs::detached(stage.hints().outputs);
    stage.process(transcript("what time is it", None), &mut out).unwrap();
    assert!(out.take_pushed().iter().all(|(_, f)| f.meta.domain.timeline().understood.is_some()));
    // Text is words, whatever they look like.
    assert_eq!(run(&mut stage, heard("{oops", "bedroom")), [("out", DIDNT_CATCH_THAT.into())]);
}

#[test]
fn a_provisional_transcript_only_prepares_the_reply_on_the_reply_port() {
    let mut stage = stage(OutputLayout::Split);
    let mut out = Outputs::detached(stage.hints().outputs);
    let pause = PauseSignal::new();
    stage.process(transcript("Set a timer for five minutes.", Some(&pause)), &mut out).unwrap();
    let pushed = out.take_pushed();
    assert_eq!(pushed.len(), 1, "no command for a guess: {pushed:?}");
    assert_eq!(pushed[0].0, REPLY_OUTPUT);
    assert_eq!(pushed[0].1.payload, Payload::Prepare { text: "Timer set for 5 minutes.".into(), pause: pause.clone() });
    assert_eq!(pause.verdict(), Some(true), "a finished request");
}

#[test]
fn words_cut_short_at_a_pause_are_judged_unfinished() {
    let mut stage = stage(OutputLayout::Split);
    let mut out = Outputs::detached(stage.hints().outputs);
    for (words, finished) in [
        ("turn on the", false),
        ("set the living room lamp to", false),
        ("set a timer for", false),
        ("turn on the living", false),
        ("um", false),
        ("turn on the kitchen lights", true),
        ("what time is it", true),
        ("set the bedroom lamp to 300 percent", true),
    ] {
        let pause = PauseSignal::new();
        stage.process(transcript(words, Some(&pause)), &mut out).unwrap();
        assert_eq!(pause.verdict(), Some(finished), "{words:?}");
    }
}

#[test]
fn split_outputs_send_commands_and_replies_apart() {
    let mut stage = stage(OutputLayout::Split);
    assert_eq!(stage.hints().outputs, [COMMAND_OUTPUT, REPLY_OUTPUT]);
    let pushed = run(&mut stage, heard("set the living room lamp to fifty percent", "kitchen"));
    assert_eq!(pushed.iter().map(|(port, _)| *port).collect::<Vec<_>>(), ["command", "reply"]);
    assert_eq!(pushed[1].1, "Setting the living room lamp to 50 percent.");
    let end = Frame::end_of_stream(FrameMeta::new("session-7", "kitchen", 3));
    assert_eq!(run(&mut stage, end), [("reply", "end_of_stream".to_string())]);
}

#[test]
fn replies_without_a_command() {
    let mut stage = stage(OutputLayout::Single);
    assert_eq!(run(&mut stage, heard("What time is it?", "kitchen")), [("out", "It's 3:05 PM.".into())]);
    assert_eq!(
        run(&mut stage, heard("Open the garage door.", "kitchen")),
        [("out", "I don't know a device called garage door.".into())]
    );
    assert_eq!(run(&mut stage, heard("", "kitchen")), [("out", DIDNT_CATCH_THAT.into())]);
}

#[test]
fn other_frames_pass_through() {
    let mut stage = stage(OutputLayout::Single);
    let audio = Frame::audio(
        FrameMeta::new("session-7", "kitchen", 3),
        Bytes::from_static(&[0; 4]),
        AudioFormat::PCM16_MONO_16K,
    );
    assert_eq!(run(&mut stage, audio), [("out", "audio".to_string())]);
}

#[test]
fn async_without_the_chat_fallback_blocking_with_it() {
    let stage = stage(OutputLayout::Single);
    assert_eq!((stage.name(), stage.hints().execution, stage.hints().input_capacity), ("intent", Execution::Async, 16));
    let config = IntentConfig { chat: Some(ChatFallback::new("http://127.0.0.1:9", "m")), ..IntentConfig::default() };
    assert_eq!(config.build(&home()).unwrap().hints().execution, Execution::Blocking);
    let https =
        IntentConfig { chat: Some(ChatFallback::new("https://api.example/v1", "m")), ..IntentConfig::default() };
    assert!(matches!(https.build(&home()), Err(IntentError::Chat(_))));
}

#[test]
fn the_config_is_toml_with_defaults() {
    let config: IntentConfig = toml::from_str("").unwrap();
    assert_eq!(config, IntentConfig::default());
    let config: IntentConfig = toml::from_str(
        "outputs = \"split\"\n[chat]\nurl = \"http://127.0.0.1:8081\"\nmodel = \"qwen\"\ntimeout_ms = 500\n",
    )
    .unwrap();
    assert_eq!(config.outputs, OutputLayout::Split);
    assert_eq!(config.chat.unwrap().timeout_ms, 500);
    assert!(toml::from_str::<IntentConfig>("output = \"split\"").is_err());
}

#[test]
fn an_invalid_home_is_refused() {
    let mut home = home();
    home.devices[0].room = "garage".into();
    let err = IntentConfig::default().build(&home).unwrap_err();
    assert!(err.to_string().contains("devices[0].room: unknown room \"garage\""), "{err}");
}
