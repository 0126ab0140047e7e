//! What one frame costs the stage, against the 500 µs budget of an async stage:
//! `cargo run --release -p alicia-stage-vad --example vad_cost`.
//!
//! Feeds 20 ms frames of a 3 s scene (noise, a tone burst, noise) through many
//! sessions and prints the mean and worst `process` time.

use std::time::{Duration, Instant};

use alicia_pipeline::{Stage, DEFAULT_OUTPUT};
use alicia_speech::{Frame, FrameMeta, Outputs, SpeechFrame};
use alicia_stage_vad::{VadStage, FORMAT};
use bytes::Bytes;

fn scene() -> Bytes {
    let mut seed = 1u64;
    let samples = (0..48_000).map(|n| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let noise = ((seed >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 100.0;
        let tone = if (8_000..24_000).contains(&n) { 3_000.0 * (n as f32 * 0.1).sin() } else { 0.0 };
        (noise + tone) as i16
    });
    Bytes::from(samples.flat_map(i16::to_le_bytes).collect::<Vec<u8>>())
}

fn main() {
    let pcm = scene();
    let mut stage = VadStage::with_defaults();
    let mut out = Outputs::detached(&[DEFAULT_OUTPUT]);
    let (mut total, mut worst, mut frames) = (Duration::ZERO, Duration::ZERO, 0u32);
    for round in 0..200 {
        let session = format!("s{round}");
        for (seq, start) in (0..pcm.len()).step_by(640).enumerate() {
            let frame = Frame::audio(
                FrameMeta::new(session.as_str(), "kitchen", seq as u64),
                pcm.slice(start..start + 640),
                FORMAT,
            );
            let began = Instant::now();
            let _ = stage.process(frame, &mut out);
            let spent = began.elapsed();
            out.take_pushed();
            total += spent;
            worst = worst.max(spent);
            frames += 1;
        }
        let _ = stage.process(Frame::end_of_stream(FrameMeta::new(session.as_str(), "kitchen", 0)), &mut out);
        out.take_pushed();
    }
    println!("{frames} frames of 20 ms: mean {:?}, worst {:?} per frame (budget 500 µs)", total / frames, worst);
}
