//! Recorded human speech (`tests/speech/corpus.tsv`, fetched by `make speech-corpus`)
//! sent one clip at a time to the engine's `alicia/voice/stt/request` (a base64 WAV in
//! the envelope, the seeds' text entry point for speech-to-text): word error rate,
//! decodings that loop, and the time from request to transcript; beside the reference
//! decoder's transcripts of the same clips with the same weights (`--reference`, from
//! `make speech-reference`: faster-whisper), judged by the same rules.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use alicia_envelope::{Destination, Envelope, MessageType};
use anyhow::{bail, Context, Result};
use base64::Engine as _;
use bytes::BytesMut;
use serde::Serialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::speech::{normalise, word_errors};
use super::{CONNECT_TIMEOUT, KEEP_ALIVE};
use crate::{connection, wire};

/// One clip's result: the engine's transcript, and the reference decoder's if given.
#[derive(Debug, Clone, Serialize)]
pub struct Heard {
    pub id: String,
    pub said: String,
    pub words: usize,
    pub engine: Transcribed,
    pub reference: Option<Transcribed>,
}

/// One decoder's transcript of a clip, judged.
#[derive(Debug, Clone, Serialize)]
pub struct Transcribed {
    pub heard: String,
    pub errors: usize,
    /// The transcript repeats a phrase back to back or runs far past what was said.
    pub looped: bool,
    pub ms: f64,
}

impl Transcribed {
    fn judged(said: &str, heard: String, ms: f64) -> Transcribed {
        let (reference, hypothesis) = (normalise(said), normalise(&heard));
        Transcribed {
            errors: word_errors(&reference, &hypothesis),
            looped: looped(&hypothesis, reference.len()),
            heard,
            ms,
        }
    }
}

/// The reference decoder's transcripts (`make speech-reference`): id → (ms, text).
pub fn reference(path: &Path) -> Result<HashMap<String, (f64, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: run `make speech-reference` first", path.display()))?;
    let mut transcripts = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let mut fields = line.splitn(3, '\t');
        let (Some(id), Some(ms), Some(heard)) = (fields.next(), fields.next(), fields.next()) else {
            bail!("{}: bad line {line:?}", path.display())
        };
        let ms = ms.parse().with_context(|| format!("{}: bad milliseconds in {line:?}", path.display()))?;
        transcripts.insert(id.to_string(), (ms, heard.to_string()));
    }
    Ok(transcripts)
}

/// The corpus' clips, as listed in `DIR/corpus.tsv`: (id, transcript, WAV bytes).
pub fn clips(dir: &Path) -> Result<Vec<(String, String, Vec<u8>)>> {
    let manifest = dir.join("corpus.tsv");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("{}: run `make speech-corpus` first", manifest.display()))?;
    let mut clips = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [id, _source, _member, transcript] = fields[..] else { bail!("{}: bad line {line:?}", manifest.display()) };
        let wav = dir.join(format!("{id}.wav"));
        let bytes = std::fs::read(&wav).with_context(|| format!("read {}", wav.display()))?;
        clips.push((id.to_string(), transcript.to_string(), bytes));
    }
    Ok(clips)
}

/// Sends each clip and waits for its transcript (or error), one at a time.
pub async fn transcribe_all(
    mqtt: SocketAddr,
    clips: &[(String, String, Vec<u8>)],
    reference: &HashMap<String, (f64, String)>,
) -> Result<Vec<Heard>> {
    let id = format!("loadgen-recorded-{}", std::process::id());
    let mut conn = connection::connect(mqtt, &id, KEEP_ALIVE, CONNECT_TIMEOUT).await?;
    for filter in ["alicia/voice/stt/response", "alicia/voice/stt/error"] {
        connection::subscribe(&mut conn, filter, 0, CONNECT_TIMEOUT).await?;
    }
    let mut results = Vec::new();
    for (clip, said, wav) in clips {
        let audio = base64::engine::general_purpose::STANDARD.encode(wav);
        let request = Envelope::new(
            id.as_str(),
            Destination::Service("stt_service".into()),
            MessageType::Request,
            json!({ "audio_data": audio }),
        );
        let payload = request.encode();
        let mut out = BytesMut::with_capacity(payload.len() + 64);
        wire::encode_publish_head(&mut out, b"alicia/voice/stt/request", 0, 0, payload.len());
        out.extend_from_slice(&payload);
        let sent = Instant::now();
        conn.stream.write_all(&out).await.context("publish alicia/voice/stt/request")?;
        let heard = tokio::time::timeout(Duration::from_secs(60), answer(&mut conn, request.message_id))
            .await
            .with_context(|| format!("{clip}: no transcript within 60 s"))??;
        let ms = sent.elapsed().as_secs_f64() * 1_000.0;
        results.push(Heard {
            id: clip.clone(),
            said: said.clone(),
            words: normalise(said).len(),
            engine: Transcribed::judged(said, heard, ms),
            reference: reference.get(clip).map(|(ms, heard)| Transcribed::judged(said, heard.clone(), *ms)),
        });
    }
    Ok(results)
}

/// The text of the response (or the error) correlated with `request`.
async fn answer(conn: &mut connection::Conn, request: uuid::Uuid) -> Result<String> {
    loop {
        while let Some((packet, used)) = wire::decode(&conn.rbuf)? {
            let found = match packet {
                wire::Packet::Publish(p) => {
                    let e = Envelope::decode(p.payload).ok().filter(|e| e.correlation_id() == Some(request));
                    e.map(|e| {
                        let data = &e.payload.data;
                        match data["text"].as_str() {
                            Some(text) => text.to_string(),
                            None => format!("[error {}]", data["error_type"].as_str().unwrap_or("?")),
                        }
                    })
                }
                _ => None,
            };
            bytes::Buf::advance(&mut conn.rbuf, used);
            if let Some(text) = found {
                return Ok(text);
            }
        }
        if conn.read_more().await? == 0 {
            bail!("the engine closed the connection");
        }
    }
}

/// A phrase of two or more words twice in a row, a word three times, or far more
/// words than were said: how a decoder caught in a loop reads.
pub(super) fn looped(words: &[String], said: usize) -> bool {
    let repeats = (1..=8).any(|n| {
        let times = if n == 1 { 3 } else { 2 };
        (0..words.len()).any(|at| {
            at + times * n <= words.len()
                && (1..times).all(|k| words[at..at + n] == words[at + k * n..at + (k + 1) * n])
        })
    });
    repeats || words.len() > said + 4
}

/// The markdown section: totals by source, then every clip.
pub fn markdown(results: &[Heard]) -> String {
    let with_reference = results.iter().all(|h| h.reference.is_some());
    let mut md = String::from("## Recorded human speech\n\n");
    md.push_str(
        "Every clip of `tests/speech/corpus.tsv` (read sentences, card names, telephone prompts; people, not \
         synthesis: `tests/speech/SOURCES.md`), one at a time as a base64 WAV on `alicia/voice/stt/request` \
         (decoded as whole recordings are: Whisper's window at least `[voice.stt] recording_min_window_ms`, \
         20.48 s by default, where the live pipeline sizes it to the words); WER as above. A loop: a phrase of two or more words twice in a row, a word three times, or more than \
         four words past what was said. ms: request published → transcript received.\n\n",
    );
    if with_reference {
        md.push_str(
            "Beside it, the reference decoder: faster-whisper 1.2.1 (CTranslate2) with its defaults (beam 5, \
             temperature fallback, compression-ratio and log-probability thresholds), on the same tiny.en \
             weights (the CTranslate2 files the engine's ggml file is converted from, as float32), 2 threads, \
             in-process (its ms has no MQTT, base64 or WAV parsing in it); `make speech-reference`, run by \
             `make perf-voice` just before. Both judged by the same normalisation and loop rule.\n\n",
        );
        md.push_str(
            "| source | clips | words | engine WER | engine loops | faster-whisper WER | faster-whisper loops \
             | engine median ms | faster-whisper median ms |\n|:---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
    } else {
        md.push_str(
            "| source | clips | words | WER | loops | median ms | max ms |\n|:---|---:|---:|---:|---:|---:|---:|\n",
        );
    }
    let is_prompt = |h: &&Heard| h.id.starts_with("prompt-");
    let all: Vec<&Heard> = results.iter().collect();
    let (prompts, read): (Vec<&Heard>, Vec<&Heard>) = results.iter().partition(is_prompt);
    for (name, group) in [("all", all), ("pocketsphinx", read), ("asterisk", prompts)] {
        let words: usize = group.iter().map(|h| h.words).sum();
        let engine: Vec<&Transcribed> = group.iter().map(|h| &h.engine).collect();
        let (wer, loops, ms) = totals(&engine, words);
        if with_reference {
            let reference: Vec<&Transcribed> = group.iter().filter_map(|h| h.reference.as_ref()).collect();
            let (ref_wer, ref_loops, ref_ms) = totals(&reference, words);
            md.push_str(&format!(
                "| {name} | {} | {words} | {wer:.1}% | {loops} | {ref_wer:.1}% | {ref_loops} | {:.0} | {:.0} |\n",
                group.len(),
                super::summary::median(ms).unwrap_or(f64::NAN),
                super::summary::median(ref_ms).unwrap_or(f64::NAN),
            ));
        } else {
            md.push_str(&format!(
                "| {name} | {} | {words} | {wer:.1}% | {loops} | {:.0} | {:.0} |\n",
                group.len(),
                super::summary::median(ms.clone()).unwrap_or(f64::NAN),
                ms.iter().copied().fold(0.0, f64::max),
            ));
        }
    }
    let shown = |t: &Transcribed| format!("{}{}", t.heard, if t.looped { " (loop)" } else { "" });
    if with_reference {
        md.push_str("\n| clip | said | engine heard | errors | faster-whisper heard | errors |\n");
        md.push_str("|:---|:---|:---|---:|:---|---:|\n");
        for h in results {
            let reference = h.reference.as_ref().expect("checked above");
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                h.id,
                h.said,
                shown(&h.engine),
                h.engine.errors,
                shown(reference),
                reference.errors
            ));
        }
    } else {
        md.push_str("\n| clip | said | heard | errors | ms |\n|:---|:---|:---|---:|---:|\n");
        for h in results {
            let e = &h.engine;
            md.push_str(&format!("| {} | {} | {} | {} | {:.0} |\n", h.id, h.said, shown(e), e.errors, e.ms));
        }
    }
    md
}

/// WER in percent over `words` said, loops, and each clip's ms.
fn totals(transcripts: &[&Transcribed], words: usize) -> (f64, usize, Vec<f64>) {
    let errors: usize = transcripts.iter().map(|t| t.errors).sum();
    let wer = 100.0 * errors as f64 / words.max(1) as f64;
    (wer, transcripts.iter().filter(|t| t.looped).count(), transcripts.iter().map(|t| t.ms).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_are_told_from_speech() {
        let w = |s: &str| normalise(s);
        assert!(looped(&w("6, 6, 6, 6"), 1));
        assert!(looped(&w("call for reading. call for reading."), 2));
        assert!(!looped(&w("five five"), 2));
        assert!(!looped(&w("he was not an ill disposed young man"), 8));
        assert!(looped(&w("one two three four five six"), 1));
    }

    #[test]
    fn the_reference_decoder_is_judged_by_the_same_rules_beside_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faster-whisper.tsv");
        std::fs::write(&path, "# header\nprompt-six\t410\tSix.\n").unwrap();
        let transcripts = reference(&path).unwrap();
        assert_eq!(transcripts["prompt-six"], (410.0, "Six.".to_string()));
        let said = "six";
        let heard = Heard {
            id: "prompt-six".into(),
            said: said.into(),
            words: 1,
            engine: Transcribed::judged(said, "6, 6, 6, 6".into(), 120.0),
            reference: Some(Transcribed::judged(said, "Six.".into(), 410.0)),
        };
        assert!(heard.engine.looped && !heard.reference.as_ref().unwrap().looped);
        let md = markdown(&[heard]);
        assert!(md.contains("| all | 1 | 1 | 300.0% | 1 | 0.0% | 0 | 120 | 410 |"), "{md}");
        assert!(md.contains("| prompt-six | six | 6, 6, 6, 6 (loop) | 3 | Six. | 0 |"), "{md}");
        std::fs::write(&path, "prompt-six 410 Six.\n").unwrap();
        assert!(reference(&path).unwrap_err().to_string().contains("bad line"));
    }
}
