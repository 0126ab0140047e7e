//! The stage on synthetic audio: sine bursts at speaking levels over low noise.

use std::time::Duration;

use alicia_pipeline::DEFAULT_OUTPUT;
use alicia_speech::{AudioFormat, SpeechFrame};
use bytes::Bytes;

use super::*;

mod empty;
mod pauses;

const RATE: usize = 16_000;
const NOISE_DBFS: f32 = -60.0;
const VOICE_DBFS: f32 = -22.0;
const FRAME_MS: usize = 20;
/// The default `pause_ms`.
const PAUSE_MS: usize = 40;

/// A reproducible signal, built sample by sample.
struct Signal {
    samples: Vec<f32>,
    seed: u64,
}

impl Signal {
    fn new() -> Self {
        Self { samples: Vec::new(), seed: 0x2545_f491_4f6c_dd1d }
    }

    /// Uniform noise at `dbfs` RMS.
    fn noise(mut self, ms: usize, dbfs: f32) -> Self {
        let amplitude = full_scale(dbfs) * 3f32.sqrt();
        for _ in 0..ms * RATE / 1_000 {
            let r = next_random(&mut self.seed);
            self.samples.push(amplitude * r);
        }
        self
    }

    /// A sine at `dbfs` RMS over the background noise: a stand-in for a word.
    fn tone(mut self, ms: usize, hz: f32, dbfs: f32) -> Self {
        let amplitude = full_scale(dbfs) * 2f32.sqrt();
        let noise = full_scale(NOISE_DBFS) * 3f32.sqrt();
        for n in 0..ms * RATE / 1_000 {
            let phase = std::f32::consts::TAU * hz * n as f32 / RATE as f32;
            let r = next_random(&mut self.seed);
            self.samples.push(amplitude * phase.sin() + noise * r);
        }
        self
    }

    fn pcm(&self) -> Bytes {
        let pcm: Vec<u8> =
            self.samples.iter().flat_map(|s| (s.round().clamp(-32_768.0, 32_767.0) as i16).to_le_bytes()).collect();
        Bytes::from(pcm)
    }
}

fn full_scale(dbfs: f32) -> f32 {
    32_768.0 * 10f32.powf(dbfs / 20.0)
}

fn next_random(seed: &mut u64) -> f32 {
    // xorshift64*: plenty for noise, no dependency.
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    let bits = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
    bits as f32 / (1u64 << 23) as f32 - 1.0
}

fn ms_to_bytes(ms: usize) -> usize {
    ms * RATE / 1_000 * 2
}

/// Zero-copy frames of `ms` each (the last may be shorter).
fn frames(session: &str, pcm: &Bytes, ms: usize) -> Vec<Frame> {
    let step = ms_to_bytes(ms);
    (0..pcm.len())
        .step_by(step)
        .enumerate()
        .map(|(seq, start)| {
            let meta = FrameMeta::new(session, "kitchen", seq as u64);
            Frame::audio(meta, pcm.slice(start..(start + step).min(pcm.len())), AudioFormat::PCM16_MONO_16K)
        })
        .collect()
}

fn stop(session: &str, seq: u64) -> Frame {
    Frame::end_of_stream(FrameMeta::new(session, "kitchen", seq))
}

/// What came out after each input frame.
#[derive(Default)]
struct Run {
    /// (index of the input frame that let it out, frame)
    out: Vec<(usize, Frame)>,
    errors: Vec<(usize, &'static str)>,
}

impl Run {
    fn audio(&self, session: &str) -> Vec<&Frame> {
        self.out
            .iter()
            .map(|(_, f)| f)
            .filter(|f| f.meta.session_id.as_str() == session && f.as_audio().is_some())
            .collect()
    }

    /// Indexes of the input frames after which `session`'s pauses came out.
    fn pauses(&self, session: &str) -> Vec<usize> {
        let pauses = self.out.iter().filter(|(_, f)| f.meta.session_id.as_str() == session);
        pauses.filter(|(_, f)| matches!(f.payload, Payload::Pause(_))).map(|(i, _)| *i).collect()
    }

    /// Index of the input frame after which `session`'s end of stream came out.
    fn end_after(&self, session: &str) -> Option<usize> {
        let mut ends = self.out.iter().filter(|(_, f)| f.meta.session_id.as_str() == session && f.is_end_of_stream());
        let first = ends.next().map(|(i, _)| *i);
        assert!(ends.next().is_none(), "{session} ended twice");
        first
    }
}

/// Feeds `input`, with each pause judged a finished request as soon as it comes out,
/// as if the stages downstream were instant.
fn run(stage: &mut VadStage, input: impl IntoIterator<Item = Frame>) -> Run {
    run_judging(stage, input, Some(true))
}

/// Feeds `input`; each pause is judged `verdict` as it comes out (`None`: never).
fn run_judging(stage: &mut VadStage, input: impl IntoIterator<Item = Frame>, verdict: Option<bool>) -> Run {
    let mut out = Outputs::detached(&[DEFAULT_OUTPUT]);
    let mut run = Run::default();
    for (index, frame) in input.into_iter().enumerate() {
        if let Err(err) = stage.process(frame, &mut out) {
            assert!(!err.is_fatal(), "{err}");
            run.errors.push((index, err.error_type()));
        }
        run.out.extend(out.take_pushed().into_iter().map(|(port, frame)| {
            assert_eq!(port, DEFAULT_OUTPUT);
            if let (Payload::Pause(pause), Some(finished)) = (&frame.payload, verdict) {
                pause.judge(finished);
            }
            (index, frame)
        }));
    }
    run
}

/// The knobs these tests are written for, fixed here so tuning the defaults does not
/// move them.
fn config() -> VadConfig {
    VadConfig { hangover_ms: 300, unfinished_hangover_ms: 700, pause_ms: PAUSE_MS as u32, ..VadConfig::default() }
}

fn stage() -> VadStage {
    config().build().unwrap()
}

/// `forwarded` is `inputs[first..]` frame for frame, the first possibly cut at its
/// front, all without a copy.
fn assert_same_buffers(forwarded: &[&Frame], inputs: &[Frame], first: usize) {
    for (n, (out, input)) in forwarded.iter().zip(&inputs[first..]).enumerate() {
        let (out, input) = (&out.as_audio().unwrap().pcm, &input.as_audio().unwrap().pcm);
        let tail = input.len() - out.len();
        assert!(n == 0 || tail == 0, "frame {n} was cut");
        assert_eq!(out.as_ptr(), input[tail..].as_ptr(), "frame {n} was copied");
    }
}

#[test]
fn a_spoken_phrase_ends_one_hangover_after_the_last_word() {
    // 600 ms of room noise, three "words" with short gaps, then silence.
    let signal = Signal::new()
        .noise(600, NOISE_DBFS)
        .tone(300, 220.0, VOICE_DBFS)
        .noise(120, NOISE_DBFS)
        .tone(400, 330.0, VOICE_DBFS - 6.0)
        .noise(200, NOISE_DBFS)
        .tone(260, 180.0, VOICE_DBFS)
        .noise(1_500, NOISE_DBFS);
    let pcm = signal.pcm();
    let input = frames("s1", &pcm, FRAME_MS);
    let mut stage = stage();
    let result = run(&mut stage, input.clone());
    assert!(result.errors.is_empty(), "{:?}", result.errors);

    let speech_end_ms = 600 + 300 + 120 + 400 + 200 + 260;
    let end = result.end_after("s1").expect("end of speech");
    let end_ms = (end + 1) * FRAME_MS;
    assert!(end_ms >= speech_end_ms + 300, "ended {end_ms} ms, before the hangover");
    assert!(end_ms <= speech_end_ms + 300 + FRAME_MS, "ended {end_ms} ms, speech ended {speech_end_ms} ms");

    // The utterance starts with 200 ms of pre-roll before the onset at 600 ms and runs
    // up to the pause 80 ms into the silence (what came after it was held, then
    // dropped at the end): the inputs, not copies.
    let audio = result.audio("s1");
    let first = (600 - 200) / FRAME_MS;
    assert_eq!(audio.len(), (speech_end_ms + PAUSE_MS) / FRAME_MS - first);
    assert_same_buffers(&audio, &input, first);
    // The gaps between the words (120 and 200 ms) are pauses too, talked through.
    let pauses = [600 + 300 + PAUSE_MS, 600 + 300 + 120 + 400 + PAUSE_MS, speech_end_ms + PAUSE_MS];
    assert_eq!(result.pauses("s1"), pauses.map(|ms| ms / FRAME_MS - 1));
    assert_eq!(stage.stats().resumed_after_pause, 2);
    assert!(audio.iter().all(|f| f.meta.seq >= first as u64));
    let eos = result.out.last().unwrap();
    assert!(eos.1.is_end_of_stream() && eos.1.meta.seq == end as u64 + 1);
    assert_eq!(stage.stats().ended_by_silence, 1);
    assert_eq!(stage.buffered_bytes(), 0);
}

#[test]
fn the_end_is_found_whatever_the_frame_size() {
    let pcm = Signal::new().noise(500, NOISE_DBFS).tone(700, 250.0, VOICE_DBFS).noise(2_000, NOISE_DBFS).pcm();
    for frame_ms in [5, 10, 32, 64, 250, 1_000] {
        let input = frames("s1", &pcm, frame_ms);
        let result = run(&mut stage(), input.clone());
        let end = result.end_after("s1").unwrap_or_else(|| panic!("{frame_ms} ms frames: no end"));
        let end_ms = ((end + 1) * frame_ms).min(3_200);
        assert!((1_500..=1_500 + frame_ms).contains(&end_ms), "{frame_ms} ms frames: ended at {end_ms} ms");
        let audio = result.audio("s1");
        let forwarded: usize = audio.iter().map(|f| f.as_audio().unwrap().pcm.len()).sum();
        assert!(forwarded >= ms_to_bytes(700 + PAUSE_MS), "{frame_ms} ms frames: {forwarded} bytes forwarded");
        assert_same_buffers(&audio, &input, audio[0].meta.seq as usize);
    }
}

#[test]
fn speech_at_the_very_start_is_heard() {
    let pcm = Signal::new().tone(500, 300.0, VOICE_DBFS).noise(600, NOISE_DBFS).pcm();
    let result = run(&mut stage(), frames("s1", &pcm, FRAME_MS));
    assert_eq!(result.end_after("s1"), Some((500 + 300) / FRAME_MS - 1));
    assert_eq!(result.audio("s1").len(), (500 + PAUSE_MS) / FRAME_MS, "all of it, from the first frame");
}

#[test]
fn a_click_is_not_speech_and_a_stop_then_reports_no_speech() {
    let pcm = Signal::new().noise(400, NOISE_DBFS).tone(40, 1_000.0, -10.0).noise(800, NOISE_DBFS).pcm();
    let mut input = frames("s1", &pcm, FRAME_MS);
    input.push(stop("s1", input.len() as u64));
    let mut stage = stage();
    let result = run(&mut stage, input.clone());
    assert!(result.out.is_empty(), "{} frames came out", result.out.len());
    assert_eq!(result.errors, [(input.len() - 1, "no_speech")]);
    assert_eq!(stage.open_sessions(), 0);
    assert!(stage.buffered_bytes() == 0);
}

#[test]
fn the_clients_stop_ends_an_utterance_in_progress() {
    let pcm = Signal::new().noise(300, NOISE_DBFS).tone(600, 200.0, VOICE_DBFS).pcm();
    let mut input = frames("s1", &pcm, FRAME_MS);
    let seq = input.len() as u64;
    input.push(stop("s1", seq));
    let mut stage = stage();
    let result = run(&mut stage, input.clone());
    assert!(result.errors.is_empty());
    let (after, eos) = result.out.last().unwrap();
    assert!(eos.is_end_of_stream() && eos.meta.seq == seq && *after == input.len() - 1);
    assert_eq!(result.audio("s1").len(), (200 + 600) / FRAME_MS);
    assert_eq!((stage.stats().ended_by_stop, stage.open_sessions()), (1, 0));

    // A stop for a session never heard of, or a second stop, is "no_speech".
    let again = run(&mut stage, [stop("s1", seq + 1)]);
    assert_eq!(again.errors, [(0, "no_speech")]);
}

#[test]
fn interleaved_sessions_do_not_mix() {
    let kitchen = Signal::new().noise(300, NOISE_DBFS).tone(500, 220.0, VOICE_DBFS).noise(1_400, NOISE_DBFS).pcm();
    let bedroom = Signal::new().noise(900, -55.0).tone(700, 440.0, -28.0).noise(600, -55.0).pcm();
    let (a, b) = (frames("kitchen-1", &kitchen, FRAME_MS), frames("bedroom-1", &bedroom, FRAME_MS));
    let mut input = Vec::new();
    for (x, y) in a.iter().zip(&b) {
        input.push(x.clone());
        input.push(y.clone());
    }
    let result = run(&mut stage(), input);
    assert!(result.errors.is_empty(), "{:?}", result.errors);

    // Each session's utterance is its own frames, in order, ended at its own time.
    let kitchen_out = result.audio("kitchen-1");
    assert_same_buffers(&kitchen_out, &a, (300 - 200) / FRAME_MS);
    assert_eq!(kitchen_out.len(), (200 + 500 + PAUSE_MS) / FRAME_MS);
    let bedroom_out = result.audio("bedroom-1");
    assert_same_buffers(&bedroom_out, &b, (900 - 200) / FRAME_MS);
    assert_eq!(bedroom_out.len(), (200 + 700 + PAUSE_MS) / FRAME_MS);
    assert_eq!(result.end_after("kitchen-1"), Some(2 * ((300 + 500 + 300) / FRAME_MS - 1)));
    assert_eq!(result.end_after("bedroom-1"), Some(2 * ((900 + 700 + 300) / FRAME_MS - 1) + 1));
    // Plus, for each, a pause and an end of stream.
    assert_eq!(result.out.len(), kitchen_out.len() + bedroom_out.len() + 4);
}

#[test]
fn the_pre_roll_is_a_slice_of_the_frames_that_came_in() {
    // 30 ms frames do not divide 200 ms: the oldest pre-roll frame is cut, not copied.
    let pcm = Signal::new().noise(900, NOISE_DBFS).tone(400, 260.0, VOICE_DBFS).noise(900, NOISE_DBFS).pcm();
    let input = frames("s1", &pcm, 30);
    let mut stage = stage();
    let mut out = Outputs::detached(&[DEFAULT_OUTPUT]);
    let mut forwarded = Vec::new();
    for frame in input.iter().cloned() {
        stage.process(frame, &mut out).unwrap();
        // Waiting: the pre-roll and a candidate; in a pause nobody judges here: the
        // silence of the longer hangover.
        assert!(stage.buffered_bytes() <= ms_to_bytes(700 + 30), "{}", stage.buffered_bytes());
        forwarded.extend(out.take_pushed().into_iter().map(|(_, f)| f));
    }
    let audio: Vec<&Frame> = forwarded.iter().filter(|f| f.as_audio().is_some()).collect();
    let first = audio[0].meta.seq as usize;
    assert_same_buffers(&audio, &input, first);
    let onset = ms_to_bytes(900);
    let start = first * ms_to_bytes(30) + (ms_to_bytes(30) - audio[0].as_audio().unwrap().pcm.len());
    assert_eq!(onset - start, ms_to_bytes(200), "exactly the pre-roll before the onset");
    assert!(forwarded.last().unwrap().is_end_of_stream());
}

#[test]
fn ten_minutes_of_silence_give_one_no_speech_and_hold_only_the_pre_roll() {
    let mut stage = stage();
    let mut out = Outputs::detached(&[DEFAULT_OUTPUT]);
    let mut errors = Vec::new();
    let mut seed = 7u64;
    let frame_samples = RATE * FRAME_MS / 1_000;
    let frames = 10 * 60 * 1_000 / FRAME_MS;
    for seq in 0..frames {
        // Generated one frame at a time: the test holds no more audio than the stage.
        let level = if seq % 500 < 50 { 0.0 } else { full_scale(-65.0) * 3f32.sqrt() };
        let pcm: Vec<u8> =
            (0..frame_samples).flat_map(|_| ((level * next_random(&mut seed)) as i16).to_le_bytes()).collect();
        let frame = Frame::audio(FrameMeta::new("idle", "hallway", seq as u64), Bytes::from(pcm), FORMAT);
        if let Err(err) = stage.process(frame, &mut out) {
            errors.push((seq, err.error_type()));
        }
        assert!(stage.buffered_bytes() <= ms_to_bytes(200), "frame {seq}: {} bytes held", stage.buffered_bytes());
        assert_eq!(stage.open_sessions(), 1);
    }
    assert_eq!(errors, [(10_000 / FRAME_MS - 1, "no_speech")]);
    assert_eq!(stage.buffered_bytes(), 0);
    assert_eq!(stage.stats().dropped_frames, (frames - 10_000 / FRAME_MS) as u64);
    stage.process(stop("idle", frames as u64), &mut out).unwrap();
    assert!(out.take_pushed().is_empty());
    assert_eq!(stage.open_sessions(), 0);
}

#[test]
fn an_utterance_is_cut_at_its_longest() {
    let pcm = Signal::new().noise(200, NOISE_DBFS).tone(20_000, 200.0, VOICE_DBFS).pcm();
    let input = frames("s1", &pcm, FRAME_MS);
    let mut stage = stage();
    let result = run(&mut stage, input.clone());
    let audio = result.audio("s1");
    let forwarded: usize = audio.iter().map(|f| f.as_audio().unwrap().pcm.len()).sum();
    assert_eq!(forwarded, ms_to_bytes(15_000));
    let end = result.end_after("s1").unwrap();
    assert_eq!(end, 15_000 / FRAME_MS - 1, "the pre-roll counts towards the length");
    assert_eq!(stage.stats().ended_by_length, 1);
    assert_eq!(stage.stats().dropped_frames, (input.len() - end - 1) as u64);
}

#[test]
fn a_wrong_format_is_reported_once_per_session() {
    let pcm = Signal::new().tone(200, 300.0, VOICE_DBFS).pcm();
    let stereo = AudioFormat { sample_rate: 48_000, channels: 2, sample_width: 2 };
    let meta = |seq| FrameMeta::new("s1", "kitchen", seq);
    let mut input: Vec<Frame> = (0..5).map(|seq| Frame::audio(meta(seq), pcm.clone(), stereo)).collect();
    input.push(stop("s1", 5));
    input.push(Frame::audio(FrameMeta::new("s2", "kitchen", 0), pcm.slice(0..641), FORMAT));
    let mut stage = stage();
    let result = run(&mut stage, input);
    assert_eq!(result.errors, [(0, "unsupported_audio_format"), (6, "bad_audio")]);
    assert!(result.out.is_empty());
    assert_eq!(stage.stats().dropped_frames, 4);
    assert_eq!((stage.open_sessions(), stage.buffered_bytes()), (1, 0));

    let err = VadError::UnsupportedFormat { format: stereo };
    assert_eq!(err.to_string(), "vad takes s16le mono 16 kHz audio, got 48000 Hz, 2 channel(s), 2-byte samples");
}

#[test]
fn a_bad_frame_mid_utterance_closes_it_downstream() {
    let pcm = Signal::new().noise(200, NOISE_DBFS).tone(400, 200.0, VOICE_DBFS).pcm();
    let mut input = frames("s1", &pcm, FRAME_MS);
    input.push(Frame::audio(FrameMeta::new("s1", "kitchen", 99), pcm.slice(0..3), FORMAT));
    let result = run(&mut stage(), input);
    assert_eq!(result.errors, [(30, "bad_audio")]);
    assert_eq!(result.end_after("s1"), Some(30));
}

#[test]
fn shutdown_ends_the_utterances_still_flowing() {
    let speaking = Signal::new().noise(200, NOISE_DBFS).tone(400, 200.0, VOICE_DBFS).pcm();
    let waiting = Signal::new().noise(400, NOISE_DBFS).pcm();
    let mut stage = stage();
    let mut input = frames("b-speaking", &speaking, FRAME_MS);
    input.extend(frames("a-waiting", &waiting, FRAME_MS));
    input.extend(frames("c-speaking", &speaking, FRAME_MS));
    run(&mut stage, input);
    let mut out = Outputs::detached(&[DEFAULT_OUTPUT]);
    stage.flush(&mut out).unwrap();
    let ended: Vec<_> = out
        .take_pushed()
        .into_iter()
        .map(|(_, f)| {
            assert!(f.is_end_of_stream());
            f.meta.session_id.to_string()
        })
        .collect();
    assert_eq!(ended, ["b-speaking", "c-speaking"]);
    assert_eq!(stage.open_sessions(), 0);
}

#[test]
fn past_max_sessions_the_least_recent_is_evicted_and_closed() {
    let mut stage = VadConfig { max_sessions: 2, ..config() }.build().unwrap();
    let speech = Signal::new().tone(300, 200.0, VOICE_DBFS).pcm();
    let mut input = frames("old", &speech, FRAME_MS);
    input.extend(frames("middle", &speech, FRAME_MS));
    input.extend(frames("new", &speech, FRAME_MS));
    let result = run(&mut stage, input);
    assert_eq!(result.end_after("old"), Some(30), "evicted while speaking: closed downstream");
    assert_eq!(stage.open_sessions(), 2);
    assert_eq!(stage.stats().evicted_sessions, 1);
}

#[test]
fn text_and_messages_pass_through() {
    let text = Frame::text(FrameMeta::new("s1", "kitchen", 0), "hello");
    let result = run(&mut stage(), [text]);
    assert!(matches!(&result.out[0].1.payload, Payload::Text(t) if t == "hello"));
    assert_eq!(stage().name(), "vad");
    assert_eq!(stage().hints(), StageHints::asynchronous(64));
    assert_eq!(FORMAT.duration_of(ms_to_bytes(200)), Duration::from_millis(200));
}
