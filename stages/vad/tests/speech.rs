//! The stage on real speech: espeak-ng says a command, sox makes it 16 kHz mono s16le,
//! and the test lays it over low room noise.

use std::path::Path;
use std::process::Command;

use alicia_pipeline::{Stage, DEFAULT_OUTPUT};
use alicia_speech::{Frame, FrameMeta, Outputs, Payload, SpeechFrame};
use alicia_stage_vad::{VadConfig, VadStage, FORMAT};
use bytes::Bytes;

const RATE: usize = 16_000;
const FRAME_MS: usize = 20;
/// The default `hangover_ms`.
const HANGOVER_MS: usize = 250;
/// Peak of uniform noise at -60 dBFS RMS (RMS of uniform noise is peak / sqrt 3).
const NOISE_AMPLITUDE: f32 = 32_768.0 * 0.001 * 1.732_050_8;

/// `text` spoken by espeak-ng (en-us), as 16 kHz samples.
fn speech(text: &str) -> Vec<i16> {
    let dir = std::env::temp_dir().join(format!("alicia-vad-speech-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (wav, raw) = (dir.join("speech.wav"), dir.join("speech.raw"));
    run(Command::new("espeak-ng").args(["-v", "en-us", "-w"]).arg(&wav).arg(text));
    run(Command::new("sox")
        .arg(&wav)
        .args(["-t", "raw", "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", "-L"])
        .arg(&raw));
    let bytes = std::fs::read(&raw).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

fn run(command: &mut Command) {
    let program = Path::new(command.get_program()).display().to_string();
    let output = command.output().unwrap_or_else(|err| panic!("{program} (Debian package espeak-ng / sox): {err}"));
    assert!(output.status.success(), "{program}: {}", String::from_utf8_lossy(&output.stderr));
}

/// Where the speech is, in ms: the first and last 10 ms blocks louder than -50 dBFS
/// (espeak's own pauses are digital silence, ~-95 dBFS).
fn speech_span(samples: &[i16]) -> (usize, usize) {
    let loud: Vec<usize> = samples
        .chunks(RATE / 100)
        .enumerate()
        .filter(|(_, block)| {
            let mean_square = block.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / block.len() as f64;
            10.0 * (mean_square / 32_768f64.powi(2)).log10() > -50.0
        })
        .map(|(i, _)| i * 10)
        .collect();
    (loud[0], loud[loud.len() - 1] + 10)
}

/// `lead_ms` of noise, the speech scaled by `gain` over the same noise, `tail_ms` of
/// noise; the noise is uniform at about -60 dBFS RMS.
fn scene(speech: &[i16], gain: f32, lead_ms: usize, tail_ms: usize) -> Bytes {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ((seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * NOISE_AMPLITUDE
    };
    let lead = lead_ms * RATE / 1_000;
    let tail = tail_ms * RATE / 1_000;
    let samples = (0..lead)
        .map(|_| 0.0)
        .chain(speech.iter().map(|&s| f32::from(s) * gain))
        .chain((0..tail).map(|_| 0.0))
        .map(|s| (s + noise()).round().clamp(-32_768.0, 32_767.0) as i16);
    Bytes::from(samples.flat_map(i16::to_le_bytes).collect::<Vec<u8>>())
}

struct Heard {
    /// ms of input fed when the end of stream came out.
    end_ms: usize,
    /// ms into the input where the forwarded audio starts.
    start_ms: f64,
    /// ms into the input where the forwarded audio ends.
    stop_ms: f64,
    forwarded_bytes: usize,
}

fn listen(stage: &mut VadStage, pcm: &Bytes) -> Heard {
    let step = FORMAT.bytes_for(std::time::Duration::from_millis(FRAME_MS as u64));
    let mut out = Outputs::detached(&[DEFAULT_OUTPUT]);
    let mut forwarded = Vec::new();
    for (seq, start) in (0..pcm.len()).step_by(step).enumerate() {
        let input = pcm.slice(start..(start + step).min(pcm.len()));
        stage.process(Frame::audio(FrameMeta::new("s1", "kitchen", seq as u64), input, FORMAT), &mut out).unwrap();
        for (_, frame) in out.take_pushed() {
            if frame.is_end_of_stream() {
                let first: &Bytes = &forwarded[0];
                // Zero copy: every forwarded buffer points into the input.
                let offset = first.as_ptr() as usize - pcm.as_ptr() as usize;
                let last: &Bytes = forwarded.last().expect("audio");
                let stop = last.as_ptr() as usize + last.len() - pcm.as_ptr() as usize;
                return Heard {
                    end_ms: (seq + 1) * FRAME_MS,
                    start_ms: offset as f64 / 32.0,
                    stop_ms: stop as f64 / 32.0,
                    forwarded_bytes: forwarded.iter().map(Bytes::len).sum(),
                };
            }
            if let Payload::Pause(pause) = &frame.payload {
                // As the stages downstream would, hearing a finished request.
                pause.judge(true);
                continue;
            }
            let audio = frame.pcm().expect("audio before the end of stream");
            let offset = audio.as_ptr() as usize - pcm.as_ptr() as usize;
            assert!(offset + audio.len() <= pcm.len(), "a forwarded frame is not a view of the input");
            forwarded.push(audio);
        }
    }
    panic!("no end of speech in {} ms of audio", pcm.len() / 32);
}

#[test]
fn the_end_of_a_spoken_command_is_found_within_the_hangover() {
    let speech = speech("turn on the kitchen lights");
    for (gain, what) in [(1.0, "close"), (0.3, "across the room")] {
        let pcm = scene(&speech, gain, 700, 1_500);
        let (start, end) = speech_span(&speech);
        let (start, end) = (start + 700, end + 700);
        let mut stage = VadConfig::default().build().unwrap();
        let heard = listen(&mut stage, &pcm);
        eprintln!(
            "{what}: speech {start}..{end} ms, forwarded from {} ms, end of stream at {} ms",
            heard.start_ms, heard.end_ms
        );
        assert!(heard.end_ms > end, "{what}: ended at {} ms, inside the speech (ends {end} ms)", heard.end_ms);
        assert!(
            heard.end_ms <= end + HANGOVER_MS + FRAME_MS,
            "{what}: ended at {} ms, speech ended at {end} ms",
            heard.end_ms
        );
        assert!(heard.start_ms <= start as f64 - 100.0, "{what}: onset at {start} ms clipped ({})", heard.start_ms);
        // One run of the input, no gaps, holding all the speech; the silence after the
        // last pause was held and dropped.
        assert_eq!(heard.forwarded_bytes, (heard.stop_ms - heard.start_ms) as usize * 32);
        assert!(heard.stop_ms >= end as f64, "{what}: forwarded audio stops at {} ms", heard.stop_ms);
        assert_eq!(stage.stats().ended_by_silence, 1);
    }
}
