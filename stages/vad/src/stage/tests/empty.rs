//! Frames without audio, as a misbehaving client sends them: they cost nothing to hold.

use super::*;
use alicia_speech::SpeechFrame;

#[test]
fn empty_frames_are_not_held_waiting_or_speaking() {
    let mut stage = stage();
    let mut out = Outputs::detached(&[DEFAULT_OUTPUT]);
    let empty = |seq: u64| Frame::audio(FrameMeta::new("s", "kitchen", seq), Bytes::new(), FORMAT);
    // Waiting for speech: a million empty frames hold nothing.
    for seq in 0..1_000_000 {
        stage.process(empty(seq), &mut out).unwrap();
    }
    assert_eq!((stage.held_frames(), stage.open_sessions()), (0, 0), "not even a session");
    assert_eq!(stage.stats().empty_frames, 1_000_000);

    // Speaking, inside a pause (where frames are held): still nothing more.
    let speech = Signal::new().noise(300, NOISE_DBFS).tone(400, 220.0, VOICE_DBFS).noise(100, NOISE_DBFS).pcm();
    let spoken = run(&mut stage, frames("s", &speech, FRAME_MS));
    assert_eq!(spoken.pauses("s").len(), 1, "the trailing quiet is a pause");
    let held = stage.held_frames();
    for seq in 0..100_000 {
        stage.process(empty(seq), &mut out).unwrap();
    }
    assert_eq!(stage.held_frames(), held);
    assert!(out.take_pushed().iter().all(|(_, frame)| !frame.is_end_of_stream()), "empty frames end nothing");
}
