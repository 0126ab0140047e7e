//! The recorded clips through the live pipeline: streamed in real time at one site, as a
//! satellite would, so the VAD, the prompted Whisper on its sized window and the
//! matcher hear people, not espeak-ng. None of the clips asks the home for anything,
//! so the right outcome of each is a reply and no device command.

use std::fmt::Write as _;

use super::recorded::looped;
use super::satellite::Utterance;
use super::speech::normalise;
use super::summary::latencies;
use crate::report::{self, ms};

/// The markdown section: one line of totals, then the clips that went wrong.
pub fn markdown(spoken: &[Utterance]) -> String {
    let mut md = String::from("### Through the live pipeline\n\n");
    md.push_str(
        "The same clips, each streamed in real time as 20 ms frames at the first site (`alicia/voice/audio/{site}/…`, \
         the quiet tail after it), one after another: the VAD ends each, the pipeline's Whisper (prompted with the \
         home's names, its window sized to the words) transcribes it, the matcher answers. No clip asks the home for \
         anything, so intent is right when a reply came and no device command did. Latency as in the results above \
         (end of speech → first reply audio).\n\n",
    );
    let (errors, words): (usize, usize) =
        spoken.iter().map(|u| (u.word_errors, u.reference_words)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let loops = spoken
        .iter()
        .filter(|u| looped(&normalise(u.transcript.as_deref().unwrap_or_default()), u.reference_words))
        .count();
    let right = spoken.iter().filter(|u| u.intent_ok).count();
    let latency = latencies(spoken.iter());
    let share = |n: usize| if spoken.is_empty() { 0.0 } else { 100.0 * n as f64 / spoken.len() as f64 };
    let row = vec![
        spoken.len().to_string(),
        words.to_string(),
        format!("{:.1}%", if words == 0 { 0.0 } else { 100.0 * errors as f64 / words as f64 }),
        loops.to_string(),
        format!("{:.0}%", share(right)),
        spoken.iter().filter(|u| u.first_audio_ms.is_some()).count().to_string(),
        ms(latency.p50_ms),
        ms(latency.p95_ms),
    ];
    let headers = ["clips", "words", "WER", "loops", "intent (no command)", "replies", "p50 ms", "p95 ms"];
    md += &report::markdown_table(&headers, &[row], true);
    let wrong: Vec<&Utterance> = spoken.iter().filter(|u| !u.intent_ok || !u.errors.is_empty()).collect();
    if !wrong.is_empty() {
        md.push_str("\nClips whose outcome was wrong:\n\n");
        for u in wrong {
            let commands: Vec<String> = u.commands.iter().map(|c| format!("{}:{}", c.device, c.action)).collect();
            let _ = writeln!(
                md,
                "- {}: heard {:?}, commands {commands:?}, reply ended {}{}",
                u.session_id,
                u.transcript.as_deref().unwrap_or("-"),
                u.reply_ended,
                if u.errors.is_empty() { String::new() } else { format!(", errors {:?}", u.errors) }
            );
        }
    }
    md
}
