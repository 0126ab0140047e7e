//! Whisper on recorded human speech (read sentences, card names, phone prompts; see
//! `tests/speech/SOURCES.md`): no decoding may loop, and short prompts that greedy
//! decoding with a shortened window used to loop on come back as said.

use crate::decoding::repeats_back_to_back;
use crate::testing::{exclusive, model, recorded_speech};
use crate::WhisperStt;

#[test]
fn recorded_human_speech_is_transcribed_without_loops() {
    let _one_at_a_time = exclusive();
    let mut stt = WhisperStt::load(model(), 2).unwrap();
    let mut report = String::new();
    let mut looped = Vec::new();
    for clip in recorded_speech() {
        let heard = stt.transcribe(&clip.samples).unwrap().text;
        report.push_str(&format!("{:<28} said {:?}\n{:<28} heard {:?}\n", clip.id, clip.transcript, "", heard));
        let (said, heard_words) = (clip.transcript.split_whitespace().count(), heard.split_whitespace().count());
        // A loop repeats a phrase back to back, or runs on far past what was said.
        if repeats_back_to_back(&heard) || heard_words > said + 4 {
            looped.push(clip.id.clone());
        }
    }
    eprintln!("{report}");
    assert!(looped.is_empty(), "decodings that looped: {looped:?}\n{report}");
    // Greedy decoding on the tight window looped on each of these ("6, 6, 6, ...").
    for (id, said) in [("prompt-six", "6"), ("goforward", "go forward 10 meters"), ("cards-004", "5 5")] {
        let line = report.lines().skip_while(|l| !l.starts_with(id)).nth(1).unwrap().to_lowercase();
        let heard = line.split('"').nth(1).unwrap().replace("six", "6").replace("five", "5").replace("ten", "10");
        let words: String = heard.chars().filter(|c| c.is_alphanumeric() || *c == ' ').collect();
        assert_eq!(words.trim(), said, "{id}: {line}");
    }
}
