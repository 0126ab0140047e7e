//! Measures the voice on this machine (not a test): session load, synthesis of a ~2 s
//! sentence (median of 5), time to the first audio frame of a two-sentence reply, RSS.
//!
//! `cargo run --release -p alicia-stage-tts --example measure -- [models_dir] [intra_threads]`

use std::time::{Duration, Instant};

use alicia_speech::{Frame, FrameMeta, SpeechFrame};
use alicia_stage_tts::{PiperConfig, OUTPUT_FORMAT};

const SENTENCE: &str = "Turning on the kitchen lights in the living room.";
const REPLY: &str = "Turning on the kitchen lights. The living room stays as it is.";

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let models = args.next().unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../models").to_owned());
    let threads: usize = args.next().map(|t| t.parse()).transpose()?.unwrap_or(1);

    let mut config = PiperConfig::from_models_dir(&models);
    config.intra_threads = threads;
    // Every call must run the model.
    config.cache_sentences = 0;
    println!("rss before load: {}", rss());

    let started = Instant::now();
    let mut stage = config.build()?;
    println!("session load (library + environment + session + warm-up word): {:?}", started.elapsed());

    let started = Instant::now();
    let warm = stage.synthesize("Ready.")?;
    println!(
        "first synthesis after load ({:?} of audio): {:?}",
        OUTPUT_FORMAT.duration_of(warm.len()),
        started.elapsed()
    );

    let mut times = Vec::new();
    let mut audio = Duration::ZERO;
    let cpu_before = thread_cpu();
    for _ in 0..5 {
        let started = Instant::now();
        let pcm = stage.synthesize(SENTENCE)?;
        times.push(started.elapsed());
        audio = OUTPUT_FORMAT.duration_of(pcm.len());
    }
    let cpu = (thread_cpu() - cpu_before) / 5;
    times.sort();
    println!("synthesis of {audio:.2?} sentence, median of 5: {:?} (min {:?}, max {:?})", times[2], times[0], times[4]);
    // Wall time above depends on what else runs; CPU time of this thread does not
    // (with one intra-op thread the model runs on the calling thread).
    println!("  cpu time per synthesis on this thread (mean of 5): {cpu:?}");

    let mut firsts = Vec::new();
    for seq in 0..5 {
        let started = Instant::now();
        let mut first = None;
        stage.speak(Frame::text(FrameMeta::new("m", "kitchen", seq), REPLY), |_| {
            first.get_or_insert_with(|| started.elapsed());
            Ok(())
        })?;
        firsts.push((first.unwrap_or_default(), started.elapsed()));
    }
    firsts.sort();
    println!("two-sentence reply, median of 5: first audio frame {:?}, whole reply {:?}", firsts[2].0, firsts[2].1);
    println!("threads {threads}; rss now: {}", rss());
    Ok(())
}

fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|line| line.starts_with("VmRSS") || line.starts_with("VmHWM"))
        .map(|line| line.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(" (peak ")
        + ")"
}

/// User + system time of the calling thread, from /proc (clock ticks of 10 ms).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    Duration::from_millis(ticks * 10)
}
