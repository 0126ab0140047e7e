//! The voice plane's one-shot requests: the seeds' `alicia/voice/stt/request` with a
//! base64 WAV in `payload.data.audio_data` (WAV headers whose chunk sizes lie, formats
//! out of line, base64 that is not), and `alicia/voice/tts/request` with odd texts and
//! sites.

use serde_json::{json, Value};

use super::case::Case;
use super::envelopes;
use super::gen::Gen;
use super::mqtt_cases::{ending, level, send};
use super::mqtt_packets::{connect, plain_publish, plain_subscribe};
use super::voice_audio::pcm;

/// Standard base64 with padding (RFC 4648 §4).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A RIFF/WAVE file: 16 kHz mono 16-bit PCM mostly, else with a field or a chunk size
/// that lies or a format the engine does not take.
fn wav(gen: &mut Gen) -> (Vec<u8>, String) {
    let len = *gen.pick(&[0usize, 1, 640, 32_000, 160_000]);
    let samples = pcm(gen, len);
    let (mut tag, mut channels, mut rate, mut bits, mut fmt_len) = (1u16, 1u16, 16_000u32, 16u16, 16u32);
    let mut data_len = samples.len() as u32;
    let mut label = format!("{len} B PCM");
    match gen.weighted(&[50, 10, 10, 8, 8, 6, 4, 4]) {
        0 => {}
        1 => {
            (tag, channels, rate, bits) = *gen.pick(&[
                (3, 1, 16_000, 32),
                (1, 2, 16_000, 16),
                (1, 1, 44_100, 16),
                (1, 1, 16_000, 8),
                (0xfffe, 1, 16_000, 16),
                (1, 0, 0, 0),
            ]);
            label.push_str(&format!(", format {tag} {channels} ch {rate} Hz {bits} bit"));
        }
        2 => {
            data_len = *gen.pick(&[u32::MAX, u32::MAX - 7, data_len + 1, data_len.saturating_mul(2).max(1)]);
            label.push_str(&format!(", data size says {data_len}"));
        }
        3 => {
            fmt_len = *gen.pick(&[0u32, 8, 15, 18, u32::MAX]);
            label.push_str(&format!(", fmt size says {fmt_len}"));
        }
        4 => label.push_str(", an odd-sized chunk before the data"),
        5 => label.push_str(", no fmt chunk"),
        6 => label.push_str(", RIFX"),
        _ => label.push_str(", truncated"),
    }
    let mut out = Vec::with_capacity(64 + samples.len());
    out.extend_from_slice(if label.ends_with("RIFX") { b"RIFX" } else { b"RIFF" });
    out.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    if !label.ends_with("no fmt chunk") {
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&fmt_len.to_le_bytes());
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&rate.wrapping_mul(u32::from(bits / 8) * u32::from(channels)).to_le_bytes());
        out.extend_from_slice(&(bits / 8 * channels).to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
    }
    if label.ends_with("before the data") {
        out.extend_from_slice(b"LIST");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(b"abc"); // odd: a pad byte should follow, and does not
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(&samples);
    if label.ends_with("truncated") {
        let cut = gen.below(out.len());
        out.truncate(cut);
    }
    (out, label)
}

fn audio_field(gen: &mut Gen) -> (Value, String) {
    let (file, label) = wav(gen);
    match gen.weighted(&[75, 8, 6, 5, 3, 3]) {
        0 => (json!(base64(&file)), label),
        1 => (json!(format!("{}!!", base64(&file))), format!("{label}, not base64")),
        2 => (json!(format!("data:audio/wav;base64,{}", base64(&file))), format!("{label}, as a data URL")),
        3 => {
            let mut text = base64(&file);
            text.truncate(text.len().saturating_sub(gen.range(1, 3)));
            (json!(text), format!("{label}, padding cut"))
        }
        4 => (json!([1, 2, 3]), "audio_data an array".into()),
        _ => (Value::Null, "audio_data null".into()),
    }
}

fn tts_text(gen: &mut Gen) -> Value {
    match gen.weighted(&[40, 15, 10, 10, 10, 5, 10]) {
        0 => json!("Dinner is ready."),
        1 => json!(gen.unicode()),
        2 => json!("\u{feff}"),
        3 => json!("x".repeat(*gen.pick(&[999usize, 1_000, 1_001]))),
        4 => json!(" "),
        5 => json!(42),
        _ => json!("... !!! ???"),
    }
}

/// A client asking the voice for a transcript or for speech.
pub(crate) fn voice_requests(gen: &mut Gen, case: &mut Case) {
    let level = level(gen);
    let (bytes, label) = connect(gen, level, false);
    send(gen, case, label, bytes);
    if gen.chance(30) {
        let bytes = plain_subscribe(level, 1, &["alicia/voice/stt/+", "alicia/voice/tts/+"], 0);
        send(gen, case, "SUBSCRIBE stt and tts answers".into(), bytes);
    }
    for i in 0..gen.range(1, 3) {
        let (topic, data, what) = if gen.chance(55) {
            let (audio, what) = audio_field(gen);
            let key = *gen.pick(&["audio_data", "audio_data", "audio"]);
            ("alicia/voice/stt/request", json!({ key: audio, "site_id": "kitchen" }), format!("stt request: {what}"))
        } else {
            let site = gen.pick(&[json!("kitchen"), json!("garage"), json!(""), json!(7), Value::Null]).clone();
            let text = tts_text(gen);
            let what = format!("tts request: text {}, site {site}", short(&text.to_string()));
            ("alicia/voice/tts/request", json!({"text": text, "site_id": site}), what)
        };
        let payload = serde_json::to_vec(&envelopes::valid(gen, data)).expect("serialises");
        let bytes = plain_publish(level, topic.as_bytes(), 1, 10 + i as u16, false, &payload);
        send(gen, case, format!("{what} ({} B)", payload.len()), bytes);
    }
    case.ending = ending(gen);
}

fn short(s: &str) -> String {
    s.chars().take(30).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::case::{Family, Target};

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (plain, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn plain_wavs_have_the_canonical_header() {
        let mut found = false;
        for i in 0..100 {
            let mut g = Gen::for_case(51, i);
            let (file, label) = wav(&mut g);
            if label.ends_with("B PCM") {
                found = true;
                assert_eq!(&file[..4], b"RIFF");
                assert_eq!(&file[8..16], b"WAVEfmt ");
                assert_eq!(u32::from_le_bytes(file[40..44].try_into().unwrap()) as usize, file.len() - 44);
            }
        }
        assert!(found);
        let mut g = Gen::for_case(52, 0);
        let mut case = Case::new(0, Family::VoiceRequests, Target::Mqtt);
        voice_requests(&mut g, &mut case);
        assert!(case.labels.iter().any(|l| l.contains("request")), "{}", case.describe());
    }
}
