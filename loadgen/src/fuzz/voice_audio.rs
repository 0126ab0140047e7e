//! The voice plane's MQTT door: `alicia/voice/audio/{site}/start|frame|stop` with odd
//! sites, session ids and formats, frames empty, odd-sized and over the limit, stops
//! for sessions nobody started, and audio loud enough now and then that the VAD hears
//! speech and Whisper runs.

use serde_json::{json, Value};

use super::case::Case;
use super::envelopes;
use super::gen::Gen;
use super::mqtt_cases::{ending, level, pause, send};
use super::mqtt_packets::{connect, plain_publish, plain_subscribe};

/// 16-bit PCM: silence, low noise, or a loud tone the VAD takes for speech.
pub(crate) fn pcm(gen: &mut Gen, len: usize) -> Vec<u8> {
    match gen.below(3) {
        0 => vec![0; len],
        1 => (0..len).map(|i| if i % 2 == 0 { gen.u8() % 16 } else { 0 }).collect(),
        _ => {
            let step = 2.0 * std::f32::consts::PI * (200 + gen.below(600)) as f32 / 16_000.0;
            let mut out = Vec::with_capacity(len + 1);
            for i in 0..len.div_ceil(2) {
                let sample = ((i as f32 * step).sin() * 12_000.0) as i16;
                out.extend_from_slice(&sample.to_le_bytes());
            }
            out.truncate(len);
            out
        }
    }
}

fn site(gen: &mut Gen) -> String {
    match gen.weighted(&[70, 8, 22]) {
        0 => gen.pick(&["kitchen", "living_room", "bedroom", "hallway"]).to_string(),
        1 => "garage".into(),
        _ => match gen.below(6) {
            0 => String::new(),
            1 => "+".into(),
            2 => "s".repeat(300),
            3 => "küche".into(),
            4 => "kitchen/extra".into(),
            _ => gen.unicode(),
        },
    }
}

fn session_id(gen: &mut Gen) -> Value {
    match gen.weighted(&[70, 5, 8, 5, 4, 4, 4]) {
        0 => json!(format!("s-{}", gen.below(1000))),
        1 => json!(""),
        2 => json!("i".repeat(*gen.pick(&[128usize, 129, 70_000]))),
        3 => json!(5),
        4 => Value::Null,
        5 => json!(gen.unicode()),
        _ => json!({"id": "s"}),
    }
}

fn format_value(gen: &mut Gen, good: Value, odd: &[Value]) -> Value {
    if gen.chance(80) {
        good
    } else {
        gen.pick(odd).clone()
    }
}

fn start_data(gen: &mut Gen, session: &Value) -> Value {
    let mut data = json!({
        "session_id": session,
        "rate": format_value(gen, json!(16_000), &[json!(0), json!(8_000), json!(44_100), json!(-1), json!("16000"), json!(1e20), Value::Null]),
        "width": format_value(gen, json!(2), &[json!(0), json!(1), json!(3), json!(255)]),
        "channels": format_value(gen, json!(1), &[json!(0), json!(2), json!(9)]),
    });
    if gen.chance(5) {
        data = json!([data]);
    }
    data
}

/// The bytes of a start or stop envelope: mostly valid, sometimes broken.
fn envelope(gen: &mut Gen, data: Value) -> (Vec<u8>, String) {
    if gen.chance(80) {
        let env = envelopes::valid(gen, data);
        (serde_json::to_vec(&env).expect("serialises"), "valid".into())
    } else {
        envelopes::body(gen, data)
    }
}

fn frame_len(gen: &mut Gen) -> usize {
    match gen.weighted(&[50, 5, 5, 5, 5, 5, 5, 20]) {
        0 => 640,
        1 => 0,
        2 => 1,
        3 => 3,
        4 => 641,
        5 => 65_536,
        6 => 65_537,
        _ => gen.len_up_to(70_000),
    }
}

/// A satellite that streams an utterance, or gets the order of things wrong.
pub(crate) fn voice_audio(gen: &mut Gen, case: &mut Case) {
    let level = level(gen);
    let (bytes, label) = connect(gen, level, false);
    send(gen, case, label, bytes);
    if gen.chance(30) {
        let bytes = plain_subscribe(level, 1, &["alicia/voice/stt/error", "alicia/voice/stt/response"], 0);
        send(gen, case, "SUBSCRIBE stt error and response".into(), bytes);
    }
    let site = site(gen);
    let topic = |what: &str| format!("alicia/voice/audio/{site}/{what}");
    let session = session_id(gen);
    let order = gen.weighted(&[60, 10, 8, 8, 7, 7]);
    let mut pkid = 1u16;
    let mut publish = |gen: &mut Gen, case: &mut Case, what: &str, payload: Vec<u8>, label: String| {
        let qos = gen.weighted(&[70, 25, 5]) as u8;
        pkid = pkid.wrapping_add(1).max(1);
        let bytes = plain_publish(level, topic(what).as_bytes(), qos, pkid, gen.chance(2), &payload);
        send(gen, case, format!("{what} {site:.40} qos{qos}: {label}"), bytes);
    };
    // 1: frames without a start; 2: a stop without one; 3: two starts; 4: a stop for
    // another session; 5: frames to another site mid-session.
    if order != 1 && order != 2 {
        for _ in 0..if order == 3 { 2 } else { 1 } {
            let data = start_data(gen, &session);
            let (payload, what) = envelope(gen, data);
            let id = short(&session.to_string());
            publish(gen, case, "start", payload, format!("{what} start, session {id}"));
        }
    }
    if order != 2 {
        for i in 0..gen.len_up_to(60) {
            let len = frame_len(gen);
            let payload = pcm(gen, len);
            if order == 5 && i == 2 {
                let other = format!("alicia/voice/audio/{}/frame", site_other(gen));
                let bytes = plain_publish(level, other.as_bytes(), 0, 0, false, &payload);
                send(gen, case, format!("frame {len} B to another site"), bytes);
                continue;
            }
            publish(gen, case, "frame", payload, format!("{len} B"));
            if gen.chance(5) {
                case.steps.push(pause(gen));
            }
        }
    }
    if gen.chance(85) {
        let stop_session = if order == 4 { json!("someone-else") } else { session.clone() };
        let data = if gen.chance(90) { json!({"session_id": stop_session}) } else { json!({}) };
        let (payload, what) = envelope(gen, data);
        publish(gen, case, "stop", payload, format!("{what} stop"));
    }
    case.ending = ending(gen);
}

/// At most 40 characters of `s`, for labels.
fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

fn site_other(gen: &mut Gen) -> &'static str {
    const OTHERS: [&str; 3] = ["kitchen", "bedroom", "garage"];
    OTHERS[gen.below(OTHERS.len())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::case::{Family, Step, Target};

    #[test]
    fn pcm_has_the_asked_length_and_tones_are_loud() {
        let mut g = Gen::for_case(31, 0);
        let mut saw_loud = false;
        for len in [0usize, 1, 3, 640, 641, 65_537] {
            for _ in 0..6 {
                let p = pcm(&mut g, len);
                assert_eq!(p.len(), len);
                saw_loud |= p.chunks_exact(2).any(|s| i16::from_le_bytes([s[0], s[1]]).abs() > 8_000);
            }
        }
        assert!(saw_loud);
    }

    #[test]
    fn a_satellite_case_publishes_on_audio_topics() {
        let mut seen_frame = false;
        for i in 0..50 {
            let mut g = Gen::for_case(32, i);
            let mut case = Case::new(i, Family::VoiceAudio, Target::Mqtt);
            voice_audio(&mut g, &mut case);
            assert!(matches!(case.steps[0], Step::Send { .. }));
            seen_frame |= case.labels.iter().any(|l| l.starts_with("frame"));
        }
        assert!(seen_frame);
    }
}
