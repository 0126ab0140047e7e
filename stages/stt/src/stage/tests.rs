//! The stage with the real Whisper tiny.en model on speech synthesised at test time.

use alicia_speech::SpeechFrame;
use std::time::Duration;

use alicia_pipeline::DEFAULT_OUTPUT;

use super::*;
use crate::testing::{exclusive, model, samples, speech};
use crate::Transcript;

const KITCHEN: &str = "turn on the kitchen lights";
const GARAGE: &str = "open the garage door";

fn stage() -> WhisperStage {
    WhisperStage::load(model(), 2).unwrap()
}

fn outputs() -> Outputs {
    Outputs::detached(&[DEFAULT_OUTPUT])
}

fn audio(session: &str, seq: u64, pcm: Bytes) -> Frame {
    Frame::audio(FrameMeta::new(session, "kitchen", seq), pcm, AudioFormat::PCM16_MONO_16K)
}

fn end(session: &str, seq: u64) -> Frame {
    Frame::end_of_stream(FrameMeta::new(session, "kitchen", seq))
}

/// 20 ms zero-copy frames of `pcm`, as a satellite would send them.
fn frames(session: &str, pcm: &Bytes) -> Vec<Frame> {
    let chunk = AudioChunk::new(pcm.clone(), AudioFormat::PCM16_MONO_16K);
    chunk.chunks(Duration::from_millis(20)).enumerate().map(|(seq, c)| audio(session, seq as u64, c.pcm)).collect()
}

/// Each of `words` is in `text` exactly once: heard, and not repeated by a decoder
/// that lost track of the end of the audio.
fn says(text: &str, words: &[&str]) -> bool {
    let text = text.to_lowercase();
    words.iter().all(|word| text.matches(word).count() == 1)
}

/// (session, transcript or None for an end of stream) of each pushed frame.
fn pushed(out: &mut Outputs) -> Vec<(String, Option<Transcript>)> {
    out.take_pushed()
        .into_iter()
        .map(|(port, frame)| {
            assert_eq!(port, DEFAULT_OUTPUT);
            let transcript = match frame.payload {
                Payload::EndOfStream => None,
                Payload::Transcript(transcript) => Some(transcript),
                other => panic!("not a transcript: {other:?}"),
            };
            (frame.meta.session_id.to_string(), transcript)
        })
        .collect()
}

#[test]
fn transcribes_speech_synthesised_by_espeak() {
    let _model = exclusive();
    let pcm = speech(KITCHEN);
    let mut stt = WhisperStt::load(model(), 2).unwrap();
    let transcript = stt.transcribe(&samples(&pcm)).unwrap();
    assert!(says(&transcript.text, &["kitchen", "light"]), "{transcript:?}");
    assert!(transcript.confidence > 0.5 && transcript.confidence <= 1.0, "{transcript:?}");
    assert_eq!(transcript.language, "en");
}

#[test]
fn interleaved_sessions_each_get_their_own_transcript() {
    let _model = exclusive();
    let mut stage = stage();
    let mut out = outputs();
    let (kitchen, garage) = (frames("a", &speech(KITCHEN)), frames("b", &speech(GARAGE)));
    let mut kitchen = kitchen.into_iter();
    let mut garage = garage.into_iter();
    loop {
        let (a, b) = (kitchen.next(), garage.next());
        if a.is_none() && b.is_none() {
            break;
        }
        for frame in a.into_iter().chain(b) {
            stage.process(frame, &mut out).unwrap();
        }
    }
    assert!(out.take_pushed().is_empty(), "nothing is emitted before the end of an utterance");

    stage.process(end("b", 1_000), &mut out).unwrap();
    stage.process(end("a", 1_000), &mut out).unwrap();
    let pushed = pushed(&mut out);
    let sessions: Vec<&str> = pushed.iter().map(|(session, _)| session.as_str()).collect();
    assert_eq!(sessions, ["b", "b", "a", "a"]);
    let (garage, kitchen) = (pushed[0].1.as_ref().unwrap(), pushed[2].1.as_ref().unwrap());
    assert!(says(&garage.text, &["garage", "door"]), "{garage:?}");
    assert!(says(&kitchen.text, &["kitchen", "light"]), "{kitchen:?}");
    assert!(pushed[1].1.is_none() && pushed[3].1.is_none(), "each transcript is followed by the end of stream");
}

#[test]
fn audio_reaches_the_stage_without_a_copy() {
    let _model = exclusive();
    let mut stage = stage();
    let mut out = outputs();
    let pcm = speech(KITCHEN);
    let frames = frames("a", &pcm);
    let sent: Vec<*const u8> = frames.iter().map(|f| f.pcm().unwrap().as_ptr()).collect();
    for frame in frames {
        stage.process(frame, &mut out).unwrap();
    }
    let buffered: Vec<*const u8> = stage.buffered(&"a".into()).iter().map(|b| b.as_ptr()).collect();
    assert_eq!(buffered, sent);
    assert_eq!(buffered[0], pcm.as_ptr(), "the first chunk is the start of the original buffer");

    stage.process(end("a", 999), &mut out).unwrap();
    assert!(says(&pushed(&mut out)[0].1.as_ref().unwrap().text, &["kitchen"]));
    assert!(stage.buffered(&"a".into()).is_empty());
}

#[test]
fn an_empty_utterance_is_a_per_frame_error() {
    let _model = exclusive();
    let mut stage = stage();
    let mut out = outputs();
    let err = stage.process(end("a", 0), &mut out).unwrap_err();
    assert_eq!((err.error_type(), err.is_fatal()), ("empty_utterance", false));
    assert!(err.to_string().contains("no audio"), "{err}");

    stage.process(audio("b", 0, Bytes::new()), &mut out).unwrap();
    let err = stage.process(end("b", 1), &mut out).unwrap_err();
    assert_eq!((err.error_type(), err.is_fatal()), ("empty_utterance", false));
    assert!(out.take_pushed().is_empty());

    // The stage carries on; a very short utterance is padded, not skipped.
    let short = speech("stop");
    assert!(short.len() < 2 * 16_000, "under a second: {} bytes", short.len());
    stage.process(audio("c", 0, short), &mut out).unwrap();
    stage.process(end("c", 1), &mut out).unwrap();
    let pushed = pushed(&mut out);
    assert!(says(&pushed[0].1.as_ref().unwrap().text, &["stop"]), "{pushed:?}");
}

#[test]
fn wrong_sample_formats_are_refused_per_frame() {
    let _model = exclusive();
    let mut stage = stage();
    let mut out = outputs();
    let formats = [
        AudioFormat { sample_rate: 22_050, channels: 1, sample_width: 2 },
        AudioFormat { sample_rate: 16_000, channels: 2, sample_width: 2 },
        AudioFormat { sample_rate: 16_000, channels: 1, sample_width: 4 },
    ];
    for format in formats {
        let frame = Frame::audio(FrameMeta::new("a", "kitchen", 0), Bytes::from(vec![0u8; 640]), format);
        let err = stage.process(frame, &mut out).unwrap_err();
        assert_eq!((err.error_type(), err.is_fatal()), ("unsupported_audio_format", false), "{format:?}");
    }
    let err = stage.process(audio("a", 1, Bytes::from(vec![0u8; 641])), &mut out).unwrap_err();
    assert_eq!((err.error_type(), err.is_fatal()), ("bad_audio", false));
    assert!(stage.buffered(&"a".into()).is_empty(), "refused frames are not buffered");

    let too_long = Bytes::from(vec![0u8; WhisperStage::MAX_BYTES + 2]);
    let err = stage.process(audio("a", 2, too_long), &mut out).unwrap_err();
    assert_eq!(err.error_type(), "utterance_too_long");
}

#[test]
fn shutdown_transcribes_unfinished_utterances_and_text_passes_through() {
    let _model = exclusive();
    let mut stage = stage();
    let mut out = outputs();
    stage.process(Frame::text(FrameMeta::new("t", "kitchen", 0), "hello"), &mut out).unwrap();
    for frame in frames("a", &speech(GARAGE)) {
        stage.process(frame, &mut out).unwrap();
    }
    stage.flush(&mut out).unwrap();
    let pushed = out.take_pushed();
    assert_eq!(pushed[0].1.payload, Payload::Text("hello".into()));
    let Payload::Transcript(transcript) = &pushed[1].1.payload else { panic!("{:?}", pushed[1]) };
    assert!(says(&transcript.text, &["garage"]), "{transcript:?}");
    assert!(pushed[2].1.is_end_of_stream());
}

#[test]
fn a_pause_gets_a_provisional_transcript_that_the_end_reuses_if_nothing_followed() {
    let _model = exclusive();
    let mut stage = stage();
    let mut out = outputs();
    let pause = |session: &str| Frame::new(FrameMeta::new(session, "kitchen", 0), Payload::Pause(PauseSignal::new()));

    // Speech, a pause, the end: one transcription, sent twice (provisional, final).
    for frame in frames("a", &speech(KITCHEN)) {
        stage.process(frame, &mut out).unwrap();
    }
    stage.process(pause("a"), &mut out).unwrap();
    assert!(out.take_pushed().is_empty(), "the guess waits for an empty queue");
    assert!(stage.idle(&mut out).unwrap());
    assert!(!stage.idle(&mut out).unwrap(), "one guess per pause");
    stage.process(end("a", 500), &mut out).unwrap();
    let frames_out: Vec<Frame> = out.take_pushed().into_iter().map(|(_, f)| f).collect();
    let [Payload::Transcript(early), Payload::Transcript(last), Payload::EndOfStream] =
        [&frames_out[0].payload, &frames_out[1].payload, &frames_out[2].payload]
    else {
        panic!("{frames_out:?}")
    };
    assert!(early.is_provisional() && !last.is_provisional());
    assert_eq!(early.text, last.text);
    assert!(says(&last.text, &["kitchen", "light"]), "{last:?}");
    let timeline = frames_out[1].meta.domain.timeline();
    assert!(timeline.speculative && timeline.transcribed.is_some());
    assert_eq!(stage.stats(), SttStats { transcribed: 1, provisional: 1, reused: 1, given_up: 0, yielded: 0 });

    // Speech, a pause, more speech, the end: the early guess is not the answer.
    let (first, rest) = (speech("turn on the"), speech(KITCHEN));
    for frame in frames("b", &first) {
        stage.process(frame, &mut out).unwrap();
    }
    stage.process(pause("b"), &mut out).unwrap();
    assert!(stage.idle(&mut out).unwrap());
    for frame in frames("b", &rest) {
        stage.process(frame, &mut out).unwrap();
    }
    stage.process(end("b", 900), &mut out).unwrap();
    let heard = pushed(&mut out);
    assert_eq!(heard.len(), 3, "{heard:?}");
    let last = heard[1].1.as_ref().unwrap();
    assert!(!last.is_provisional() && says(&last.text, &["kitchen"]), "{last:?}");
    assert_eq!(stage.stats(), SttStats { transcribed: 2, provisional: 2, reused: 1, given_up: 0, yielded: 0 });
}

#[test]
fn a_pause_the_user_talked_through_is_not_transcribed_and_a_run_can_be_given_up() {
    let _model = exclusive();
    let mut stage = stage();
    let mut out = outputs();
    let speech = speech(KITCHEN);
    for frame in frames("a", &speech) {
        stage.process(frame, &mut out).unwrap();
    }
    let over = PauseSignal::new();
    over.resume();
    stage.process(Frame::new(FrameMeta::new("a", "kitchen", 0), Payload::Pause(over)), &mut out).unwrap();
    assert!(stage.idle(&mut out).unwrap());
    assert!(out.take_pushed().is_empty(), "no guess for a pause already over");
    assert_eq!((stage.stats().provisional, stage.stats().given_up), (0, 1));

    // Whisper itself stops when the flag is set: here before it starts, so at its first look.
    let chunks = [speech];
    let give_up = std::sync::atomic::AtomicBool::new(true);
    let err = stage.stt().transcribe_s16le_unless(&chunks, &give_up).unwrap_err();
    assert!(matches!(err, SttError::GivenUp), "{err}");
    let give_up = std::sync::atomic::AtomicBool::new(false);
    let transcript = stage.stt().transcribe_s16le_unless(&chunks, &give_up).unwrap();
    assert!(says(&transcript.text, &["kitchen"]), "{transcript:?}");
}

#[test]
fn a_running_guess_gives_way_to_another_sessions_end_of_speech_and_runs_after_it() {
    let _model = exclusive();
    let ends = EndsAhead::new();
    let mut stage = stage().with_ends_ahead(ends.clone());
    let mut out = outputs();
    for frame in frames("a", &speech(KITCHEN)).into_iter().chain(frames("b", &speech(GARAGE))) {
        stage.process(frame, &mut out).unwrap();
    }
    stage.process(Frame::new(FrameMeta::new("a", "kitchen", 0), Payload::Pause(PauseSignal::new())), &mut out).unwrap();

    // b's end is on its way: a's guess stops at Whisper's first look and waits.
    ends.sent();
    assert!(stage.idle(&mut out).unwrap());
    assert!(out.take_pushed().is_empty(), "the guess gave way");
    assert_eq!((stage.stats().yielded, stage.stats().provisional), (1, 0));
    stage.process(end("b", 500), &mut out).unwrap();
    assert_eq!(ends.waiting(), 0);
    let heard = pushed(&mut out);
    assert!(says(heard[0].1.as_ref().unwrap().text.as_str(), &["garage"]), "{heard:?}");

    // Then a's guess runs, first in line.
    assert!(stage.idle(&mut out).unwrap());
    let guessed = pushed(&mut out);
    assert!(guessed[0].1.as_ref().is_some_and(|t| t.is_provisional() && says(&t.text, &["kitchen"])), "{guessed:?}");
    assert!(!stage.idle(&mut out).unwrap());

    // A count that never comes down (an end lost on its way) costs a guess at most
    // three restarts: the fourth runs to its end.
    stage.process(Frame::new(FrameMeta::new("a", "kitchen", 1), Payload::Pause(PauseSignal::new())), &mut out).unwrap();
    for frame in frames("a", &speech("please")) {
        stage.process(frame, &mut out).unwrap();
    }
    ends.sent();
    for _ in 0..3 {
        assert!(stage.idle(&mut out).unwrap());
        assert!(out.take_pushed().is_empty());
    }
    assert!(stage.idle(&mut out).unwrap());
    assert_eq!(pushed(&mut out).len(), 1, "the last try is not stopped");
    assert_eq!(stage.stats().yielded, 4);
}

#[test]
fn an_end_of_stream_queued_behind_a_pause_is_answered_without_the_guess() {
    let _model = exclusive();
    let mut stage = stage();
    let mut out = outputs();
    for frame in frames("a", &speech(KITCHEN)) {
        stage.process(frame, &mut out).unwrap();
    }
    let pause = PauseSignal::new();
    stage.process(Frame::new(FrameMeta::new("a", "kitchen", 0), Payload::Pause(pause)), &mut out).unwrap();
    // The end came before the stage was idle: it is transcribed once, and the guess dropped.
    stage.process(end("a", 500), &mut out).unwrap();
    assert!(!stage.idle(&mut out).unwrap(), "no guess left");
    let heard = pushed(&mut out);
    assert_eq!(heard.len(), 2, "{heard:?}");
    assert!(!heard[0].1.as_ref().unwrap().is_provisional());
    assert_eq!(stage.stats(), SttStats { transcribed: 1, provisional: 0, reused: 0, given_up: 0, yielded: 0 });
}

#[test]
fn tiny_frames_are_copied_together_and_ordinary_ones_are_not_copied() {
    let meta = FrameMeta::new("a", "kitchen", 0);
    let mut tiny = Utterance::new(&meta);
    let mut sent = Vec::new();
    for i in 0..100_000u32 {
        let sample = (i as i16).to_le_bytes();
        sent.extend_from_slice(&sample);
        tiny.keep(&Bytes::copy_from_slice(&sample));
    }
    let chunks = tiny.audio().to_vec();
    assert!(chunks.len() <= 16 + 200_000 / 4096 + 1, "{} pieces hold 100,000 two-byte frames", chunks.len());
    assert_eq!(chunks.concat(), sent, "in order, nothing lost");
    assert_eq!(tiny.bytes, 200_000);

    // 20 ms frames, the last one short, stay the frames' own buffers.
    let pcm = Bytes::from(vec![7u8; 640 * 10 + 100]);
    let mut ordinary = Utterance::new(&meta);
    let frames: Vec<Bytes> = (0..pcm.len()).step_by(640).map(|at| pcm.slice(at..(at + 640).min(pcm.len()))).collect();
    frames.iter().for_each(|frame| ordinary.keep(frame));
    let kept: Vec<*const u8> = ordinary.audio().iter().map(|chunk| chunk.as_ptr()).collect();
    assert_eq!(kept, frames.iter().map(|frame| frame.as_ptr()).collect::<Vec<_>>());
}
