//! The spoken requests: phrases with the command each should cause, synthesised at run
//! time with espeak-ng and sox, and the word error rate of what the engine heard.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// 16 kHz mono s16le.
pub const BYTES_PER_SECOND: usize = 32_000;
/// 20 ms frames.
pub const FRAME_BYTES: usize = 640;
/// Low-level noise after the speech, longer than the VAD's hangover (250 ms by default),
/// so the hangover, not the stop, ends the utterance.
const TAIL_MS: usize = 400;

/// The device command a phrase should cause, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub device: String,
    pub action: &'static str,
    pub value: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Phrase {
    pub text: String,
    pub expected: Option<Expected>,
}

/// The phrasing the matcher does not understand, answered "Sorry, I didn't catch that."
pub const NOT_UNDERSTOOD: &str = "tell me a joke about the weather";

/// Phrases for `site` (a timer is for the site's speaker; its command goes to the
/// engine's timers, on `alicia/voice/timer/command`, with the length in seconds).
pub fn phrases(speaker: &str) -> Vec<Phrase> {
    let cmd = |device: &str, action: &'static str, value: Option<i64>| {
        Some(Expected { device: device.to_string(), action, value })
    };
    let p = |text: &str, expected| Phrase { text: text.to_string(), expected };
    // Several phrasings of each intent, interleaved so that a satellite's few requests
    // cover different intents.
    vec![
        p("turn on the kitchen lights", cmd("kitchen_lights", "turn_on", None)),
        p("switch off the bedroom lamp", cmd("bedroom_lamp", "turn_off", None)),
        // Words the matcher does not understand: answered "Sorry, I didn't catch that."
        // as fast as an understood request (no unfinished hangover).
        p(NOT_UNDERSTOOD, None),
        p("set the living room lamp to fifty percent", cmd("living_room_lamp", "set_brightness", Some(50))),
        p("what time is it", None),
        p("set a timer for five minutes", cmd(speaker, "set_timer", Some(300))),
        p("turn off the hallway lights", cmd("hallway_lights", "turn_off", None)),
        p("please switch on the bedside light", cmd("bedroom_lamp", "turn_on", None)),
        p("set the bedroom lamp to twenty percent", cmd("bedroom_lamp", "set_brightness", Some(20))),
        p("what's the time", None),
        p("set the volume to thirty percent", cmd(speaker, "set_volume", Some(30))),
        p("switch off the living room lamp", cmd("living_room_lamp", "turn_off", None)),
        p("could you turn on the hallway lights", cmd("hallway_lights", "turn_on", None)),
        p("set a timer for ten minutes", cmd(speaker, "set_timer", Some(600))),
        p("set the kitchen lights to eighty percent", cmd("kitchen_lights", "set_brightness", Some(80))),
    ]
}

/// `text` spoken by espeak-ng as 16 kHz mono s16le (via sox), plus the quiet tail,
/// padded to whole frames.
pub fn synthesise(text: &str) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let (wav, raw) = (dir.path().join("speech.wav"), dir.path().join("speech.raw"));
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .context("run espeak-ng (apt-get install espeak-ng)")?;
    if !status.success() {
        bail!("espeak-ng failed for {text:?}: {status}");
    }
    let status = Command::new("sox")
        .arg(&wav)
        .args(["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw"])
        .arg(&raw)
        .status()
        .context("run sox (apt-get install sox)")?;
    if !status.success() {
        bail!("sox failed for {text:?}: {status}");
    }
    Ok(with_quiet_tail(std::fs::read(&raw)?))
}

/// `pcm` followed by the quiet tail (±8 LSB pseudo-random noise, about -72 dBFS: room
/// noise, not digital silence), padded to whole frames.
pub fn with_quiet_tail(mut pcm: Vec<u8>) -> Vec<u8> {
    let mut state: u32 = 0x1234_5678;
    for _ in 0..TAIL_MS * BYTES_PER_SECOND / 1000 / 2 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let sample = (state % 17) as i16 - 8;
        pcm.extend_from_slice(&sample.to_le_bytes());
    }
    pcm.resize(pcm.len().div_ceil(FRAME_BYTES) * FRAME_BYTES, 0);
    pcm
}

/// Frames up to and including the last one with speech in it (RMS above 100, about
/// -50 dBFS): what the satellite has sent when the user stopped talking. espeak's
/// silence is digital zero and the noise tail is ±8 LSB (-72 dBFS), so this is 22 dB
/// clear of both, and low enough to keep a final plosive's release ("lamp": -37 to
/// -41 dBFS for 100 ms after the closure), which is speech the user is still making.
pub fn voiced_frames(pcm: &[u8]) -> usize {
    let loud = |frame: &[u8]| {
        let samples = frame.chunks_exact(2).map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])));
        let (sum, n) = samples.fold((0.0, 0usize), |(s, n), x| (s + x * x, n + 1));
        n > 0 && (sum / n as f64).sqrt() > 100.0
    };
    pcm.chunks(FRAME_BYTES).rposition(loud).map_or(pcm.len().div_ceil(FRAME_BYTES), |i| i + 1)
}

pub(super) fn number_word(n: u64) -> Option<String> {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    match n {
        0..=19 => Some(ONES[n as usize].to_string()),
        20..=99 if n.is_multiple_of(10) => Some(TENS[(n / 10) as usize].to_string()),
        20..=99 => Some(format!("{} {}", TENS[(n / 10) as usize], ONES[(n % 10) as usize])),
        100 => Some("one hundred".into()),
        _ => None,
    }
}

/// Lowercase words without punctuation; `50%` → `fifty percent`, digits → words, and
/// the titles Whisper abbreviates spelled out (`Mr.` → `mister`), as the reference
/// decoder's own English normaliser does.
pub fn normalise(text: &str) -> Vec<String> {
    let spaced: String = text
        .to_lowercase()
        .replace('%', " percent ")
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '\'' { c } else { ' ' })
        .collect();
    let mut words = Vec::new();
    for w in spaced.split_whitespace() {
        let w = w.trim_matches('\'');
        let title = match w {
            "mr" => Some("mister"),
            "mrs" => Some("missus"),
            "dr" => Some("doctor"),
            _ => None,
        };
        match w.parse::<u64>().ok().and_then(number_word).or(title.map(str::to_string)) {
            Some(spoken) => words.extend(spoken.split(' ').map(str::to_string)),
            None if !w.is_empty() => words.push(w.to_string()),
            None => {}
        }
    }
    words
}

/// Word-level Levenshtein distance between reference and hypothesis.
pub fn word_errors(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut row = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            row[j + 1] = (prev[j] + usize::from(r != h)).min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[hypothesis.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_error_rate_normalises_case_punctuation_and_numbers() {
        let r = normalise("set the living room lamp to fifty percent");
        assert_eq!(word_errors(&r, &normalise("Set the living room lamp to 50%.")), 0);
        assert_eq!(word_errors(&r, &normalise("set the living lamp to fifteen percent")), 2);
        assert_eq!(word_errors(&normalise("a b"), &[]), 2);
        assert_eq!(normalise("It's 5 minutes"), vec!["it's", "five", "minutes"]);
        assert_eq!(normalise("Mr. John Dashwood"), vec!["mister", "john", "dashwood"]);
        let mut pcm: Vec<u8> =
            (0..320 * 3).flat_map(|i| (if i % 2 == 0 { 4000i16 } else { -4000 }).to_le_bytes()).collect();
        pcm.extend(vec![0u8; FRAME_BYTES * 5]);
        assert_eq!(voiced_frames(&pcm), 3);
    }
}
