//! Transcription latency of one short utterance: espeak-ng speech, resampled by sox,
//! transcribed 5 times after a warm-up; prints the median.
//!
//! `cargo run --release -p alicia-stage-stt --example stt_latency -- [MODEL] [THREADS] ["TEXT"]`

use std::process::Command;
use std::time::{Duration, Instant};

use alicia_stage_stt::{WhisperStt, SAMPLE_RATE};
use anyhow::{ensure, Context};

const RUNS: usize = 5;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let model = args.next().unwrap_or_else(|| "models/whisper/ggml-tiny.en-q8_0.bin".into());
    let threads: usize = args.next().map_or(Ok(2), |t| t.parse()).context("THREADS")?;
    let text = args.next().unwrap_or_else(|| "please turn on the kitchen lights".into());

    let pcm = speak(&text)?;
    let seconds = pcm.len() as f64 / f64::from(SAMPLE_RATE);
    let started = Instant::now();
    let mut stt = WhisperStt::load(&model, threads)?;
    println!("model {model} loaded in {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
    println!("utterance {text:?}: {seconds:.2} s, {threads} threads");

    let warm_up = stt.transcribe(&pcm)?;
    println!("transcript {:?} (confidence {:.2})", warm_up.text, warm_up.confidence);
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            stt.transcribe(&pcm).map(|_| started.elapsed())
        })
        .collect::<Result<_, _>>()?;
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "latency over {RUNS} runs: median {:.0} ms (min {:.0}, max {:.0}); real-time factor {:.3}",
        ms(times[RUNS / 2]),
        ms(times[0]),
        ms(times[RUNS - 1]),
        times[RUNS / 2].as_secs_f64() / seconds
    );
    Ok(())
}

/// `text` through espeak-ng (en-us, 150 wpm) and sox, as 16 kHz mono samples.
fn speak(text: &str) -> anyhow::Result<Vec<i16>> {
    let dir = tempfile::tempdir()?;
    let (wav, raw) = (dir.path().join("speech.wav"), dir.path().join("speech.raw"));
    let espeak = Command::new("espeak-ng").args(["-v", "en-us", "-s", "150", "-w"]).arg(&wav).arg(text).status()?;
    ensure!(espeak.success(), "espeak-ng failed: {espeak}");
    let sox = Command::new("sox")
        .arg(&wav)
        .args(["-t", "raw", "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", "-L"])
        .arg(&raw)
        .status()?;
    ensure!(sox.success(), "sox failed: {sox}");
    Ok(std::fs::read(&raw)?.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect())
}
