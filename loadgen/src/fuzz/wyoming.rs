//! Wyoming events: a JSON header line, then `data_length` bytes of extra JSON, then
//! `payload_length` bytes of payload. Odd headers (not JSON, not an object, too long,
//! no newline, blank, CRLF), lengths that lie or are not numbers, unknown and
//! server-only types, audio formats out of range, chunks of odd sizes, huge texts; now
//! and then a whole transcription, so the model runs on what the fuzzer sent.

use serde_json::{json, Map, Value};

use super::case::{Case, Step};
use super::gen::Gen;
use super::mqtt_cases::{ending, pause};
use super::voice_audio::pcm;

/// How the lengths in a header relate to the bytes that follow.
fn length_field(gen: &mut Gen, truth: usize) -> (Value, &'static str) {
    match gen.weighted(&[85, 4, 3, 2, 2, 2, 2]) {
        0 => (json!(truth), ""),
        1 => (json!(truth.saturating_sub(gen.range(1, 16))), " (length short)"),
        2 => (json!(truth + gen.range(1, 5_000)), " (length long)"),
        3 => (json!(u64::MAX), " (length 2^64-1)"),
        4 => (json!(-1), " (length -1)"),
        5 => (json!(truth.to_string()), " (length as a string)"),
        _ => (json!(truth as f64 + 0.5), " (fractional length)"),
    }
}

fn audio_format(gen: &mut Gen) -> Value {
    let mut pick = |good: Value, odd: &[Value]| if gen.chance(70) { good } else { gen.pick(odd).clone() };
    json!({
        "rate": pick(json!(16_000), &[json!(8_000), json!(48_000), json!(44_100), json!(0), json!(-16_000), json!(u64::MAX), json!("16000")]),
        "width": pick(json!(2), &[json!(1), json!(4), json!(0), json!(5), json!(3)]),
        "channels": pick(json!(1), &[json!(2), json!(8), json!(0), json!(9), json!(255)]),
    })
}

fn text(gen: &mut Gen) -> Value {
    match gen.weighted(&[40, 20, 10, 10, 10, 10]) {
        0 => json!(gen.pick(&["Hello.", "Turn on the kitchen lights.", "What time is it?"])),
        1 => json!(gen.unicode()),
        2 => json!(""),
        3 => json!("x".repeat(*gen.pick(&[999usize, 1_000, 1_001, 5_000, 60_000]))),
        4 => json!(42),
        _ => json!(" \n\t\u{0}"),
    }
}

/// One event: its type, its data and its payload.
fn event(gen: &mut Gen) -> (String, Map<String, Value>, Vec<u8>) {
    let mut data = Map::new();
    let mut payload = Vec::new();
    let kind = match gen.weighted(&[6, 8, 10, 22, 8, 8, 6, 8, 6]) {
        0 => "describe".to_string(),
        1 => {
            data.insert("text".into(), text(gen));
            "ping".into()
        }
        2 => {
            let language = gen.pick(&[json!("en"), json!("de"), json!(5), Value::Null]).clone();
            data.insert("language".into(), language);
            "transcribe".into()
        }
        3 => {
            if let Value::Object(format) = audio_format(gen) {
                data.extend(format);
            }
            let any = gen.len_up_to(1_100_000);
            let len = *gen.pick(&[0usize, 1, 3, 2048, 2049, 65_536, any]);
            payload = pcm(gen, len);
            "audio-chunk".into()
        }
        4 => {
            if let Value::Object(format) = audio_format(gen) {
                data.extend(format);
            }
            "audio-start".into()
        }
        5 => "audio-stop".into(),
        6 => {
            data.insert("text".into(), text(gen));
            if gen.chance(30) {
                let voice = gen.pick(&[json!("joe"), json!({"name": 1}), json!({"language": "fr"}), json!({})]).clone();
                data.insert("voice".into(), voice);
            }
            "synthesize".into()
        }
        7 => gen.pick(&["info", "transcript", "error", "pong", "run-satellite", "detect"]).to_string(),
        _ => match gen.below(4) {
            0 => String::new(),
            1 => gen.word(10),
            2 => gen.unicode(),
            _ => "x".repeat(1_000),
        },
    };
    (kind, data, payload)
}

/// The bytes of one event, written as the spec says or with one thing wrong.
fn encode(gen: &mut Gen, kind: &str, data: Map<String, Value>, payload: &[u8]) -> (Vec<u8>, String) {
    let mut header = Map::new();
    let mut label = format!("{} ", if kind.len() > 24 { "long type" } else { kind });
    match gen.weighted(&[80, 5, 5]) {
        0 => {
            header.insert("type".into(), json!(kind));
        }
        1 => {
            header.insert("type".into(), gen.pick(&[json!(5), Value::Null, json!(["audio-chunk"])]).clone());
            label.push_str("(type not a string) ");
        }
        _ => label.push_str("(no type) "),
    }
    header.insert("version".into(), json!("1.8.0"));
    let data_bytes = if data.is_empty() {
        Vec::new()
    } else if gen.chance(30) {
        header.insert("data".into(), Value::Object(data));
        Vec::new()
    } else {
        serde_json::to_vec(&data).expect("a map serialises")
    };
    let mut data_bytes = data_bytes;
    if !data_bytes.is_empty() && gen.chance(5) {
        data_bytes = gen.pick(&[&b"[1,2]"[..], b"not json", b"{\"a\":"]).to_vec();
        label.push_str("(data not an object) ");
    }
    if !data_bytes.is_empty() {
        let (v, l) = length_field(gen, data_bytes.len());
        header.insert("data_length".into(), v);
        label.push_str(l);
    }
    if !payload.is_empty() || gen.chance(5) {
        let (v, l) = length_field(gen, payload.len());
        header.insert("payload_length".into(), v);
        label.push_str(l);
    }
    let mut line = serde_json::to_vec(&Value::Object(header)).expect("a map serialises");
    match gen.weighted(&[88, 3, 3, 2, 2, 2]) {
        0 => line.push(b'\n'),
        1 => line.extend_from_slice(b"\r\n"),
        2 => {
            line.insert(0, b'\n');
            line.push(b'\n');
        }
        3 => label.push_str("(no newline) "),
        4 => {
            line = vec![b'{'; 70_000];
            line.push(b'\n');
            label.push_str("(70 KB header) ");
        }
        _ => {
            let len = gen.len_up_to(200);
            line = gen.bytes(len);
            line.push(b'\n');
            label.push_str("(header not JSON) ");
        }
    }
    line.extend_from_slice(&data_bytes);
    line.extend_from_slice(payload);
    label.push_str(&format!("{} B", payload.len()));
    (line, label)
}

fn transcription(gen: &mut Gen, case: &mut Case) {
    let (t, l) = encode_clean("transcribe", json!({"language": "en"}), &[]);
    case.send(l, t);
    let (s, l) = encode_clean("audio-start", json!({"rate": 16_000, "width": 2, "channels": 1}), &[]);
    case.send(l, s);
    for _ in 0..gen.range(1, 24) {
        let chunk = pcm(gen, 2_048);
        let (c, l) = encode_clean("audio-chunk", json!({"rate": 16_000, "width": 2, "channels": 1}), &chunk);
        case.send(l, c);
    }
    let (e, l) = encode_clean("audio-stop", json!({}), &[]);
    case.send(l, e);
}

fn encode_clean(kind: &str, data: Value, payload: &[u8]) -> (Vec<u8>, String) {
    let data = serde_json::to_vec(&data).expect("serialises");
    let mut header = json!({"type": kind, "version": "1.8.0", "data_length": data.len()});
    if !payload.is_empty() {
        header["payload_length"] = json!(payload.len());
    }
    let mut out = serde_json::to_vec(&header).expect("serialises");
    out.push(b'\n');
    out.extend_from_slice(&data);
    out.extend_from_slice(payload);
    (out, format!("{kind} {} B", payload.len()))
}

/// A Wyoming client: a sequence of events, or now and then a whole transcription.
pub(crate) fn wyoming(gen: &mut Gen, case: &mut Case) {
    if gen.chance(5) {
        transcription(gen, case);
    } else {
        for _ in 0..gen.range(1, 8) {
            let (kind, data, payload) = event(gen);
            let (bytes, label) = encode(gen, &kind, data, &payload);
            case.send(label, bytes);
            if gen.chance(15) {
                case.steps.push(pause(gen));
            }
        }
        if gen.chance(5) {
            if let Some(Step::Send { chunk, .. }) = case.steps.first_mut() {
                *chunk = Some(1);
                case.labels.push("first event one byte at a time".into());
            }
        }
    }
    case.ending = ending(gen);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::case::{Family, Target};

    #[test]
    fn clean_events_follow_the_wire_format() {
        let (bytes, _) = encode_clean("audio-chunk", json!({"rate": 16000}), &[1, 2, 3]);
        let newline = bytes.iter().position(|&b| b == b'\n').unwrap();
        let header: Value = serde_json::from_slice(&bytes[..newline]).unwrap();
        let data_len = header["data_length"].as_u64().unwrap() as usize;
        assert_eq!(header["payload_length"], 3);
        assert_eq!(bytes.len(), newline + 1 + data_len + 3);
    }

    #[test]
    fn cases_have_events() {
        for i in 0..200 {
            let mut g = Gen::for_case(41, i);
            let mut case = Case::new(i, Family::Wyoming, Target::Wyoming);
            wyoming(&mut g, &mut case);
            assert!(!case.labels.is_empty() && case.bytes_len() > 0, "{}", case.describe());
        }
    }
}
