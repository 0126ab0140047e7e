//! Pauses: what the stage announces when speech stops, what it holds, and how the
//! verdict of the stages downstream sets the hangover.

use alicia_speech::PauseSignal;

use super::*;

#[test]
fn a_pause_the_user_talks_through_is_released_downstream_after_all() {
    // A 160 ms gap between words: past the pause, short of the hangover.
    let pcm = Signal::new()
        .noise(400, NOISE_DBFS)
        .tone(400, 220.0, VOICE_DBFS)
        .noise(160, NOISE_DBFS)
        .tone(300, 330.0, VOICE_DBFS)
        .noise(600, NOISE_DBFS)
        .pcm();
    let input = frames("s1", &pcm, FRAME_MS);
    let mut stage = stage();
    let result = run(&mut stage, input.clone());
    let first_pause = (400 + 400 + PAUSE_MS) / FRAME_MS - 1;
    let second_pause = (400 + 400 + 160 + 300 + PAUSE_MS) / FRAME_MS - 1;
    assert_eq!(result.pauses("s1"), [first_pause, second_pause]);
    // The gap's held frames went out when the second word began, in order, uncopied:
    // the utterance is every frame from the pre-roll to the second pause.
    let audio = result.audio("s1");
    assert_same_buffers(&audio, &input, (400 - 200) / FRAME_MS);
    assert_eq!(audio.len(), second_pause + 1 - (400 - 200) / FRAME_MS);
    let at_gap: Vec<usize> =
        result.out.iter().map(|(i, _)| *i).filter(|i| *i > first_pause && *i < second_pause).collect();
    assert!(at_gap.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!((stage.stats().pauses, stage.stats().resumed_after_pause), (2, 1));
    // The stages working on the first pause can tell it is over; the last one ended it.
    let signals: Vec<&PauseSignal> = result
        .out
        .iter()
        .filter_map(|(_, f)| match &f.payload {
            Payload::Pause(signal) => Some(signal),
            _ => None,
        })
        .collect();
    assert_eq!(signals.iter().map(|s| s.is_over()).collect::<Vec<_>>(), [true, false]);
    assert_eq!(result.end_after("s1"), Some((400 + 400 + 160 + 300 + 300) / FRAME_MS - 1));
}

#[test]
fn at_the_end_downstream_has_exactly_the_audio_it_had_at_the_last_pause() {
    let pcm = Signal::new().noise(300, NOISE_DBFS).tone(600, 250.0, VOICE_DBFS).noise(800, NOISE_DBFS).pcm();
    let mut input = frames("s1", &pcm, FRAME_MS);
    // Frames 20 ms apart in time, so the stamps can be told apart.
    let t0 = input[0].meta.ingress;
    for (n, frame) in input.iter_mut().enumerate() {
        frame.meta.ingress = t0 + Duration::from_millis((n * FRAME_MS) as u64);
    }
    let result = run(&mut stage(), input.clone());
    let kinds: Vec<&str> = result.out.iter().map(|(_, f)| f.payload.kind()).collect();
    let pause = kinds.iter().position(|k| *k == "pause").expect("a pause");
    assert!(kinds[..pause].iter().all(|k| *k == "audio"));
    assert_eq!(&kinds[pause + 1..], ["end_of_stream"], "nothing between the pause and the end");

    let end = &result.out.last().unwrap().1;
    let last_speech = input[(300 + 600) / FRAME_MS - 1].meta.ingress;
    assert_eq!(end.meta.domain.timeline().speech_end, Some(last_speech), "the last frame with speech in it");
    assert!(end.meta.domain.timeline().endpoint.is_some());
}

#[test]
fn pause_ms_zero_forwards_the_whole_hangover_and_announces_no_pause() {
    let no_pauses = VadConfig { pause_ms: 0, ..config() };
    let pcm = Signal::new().noise(300, NOISE_DBFS).tone(500, 220.0, VOICE_DBFS).noise(600, NOISE_DBFS).pcm();
    let mut stage = no_pauses.build().unwrap();
    let result = run(&mut stage, frames("s1", &pcm, FRAME_MS));
    assert!(result.pauses("s1").is_empty());
    assert_eq!(result.audio("s1").len(), (200 + 500 + 300) / FRAME_MS);
    assert_eq!(stage.stats().pauses, 0);

    let too_long = VadConfig { pause_ms: 300, ..config() };
    let VadError::Config { problems } = too_long.validate().unwrap_err() else { panic!("not a config error") };
    assert_eq!(problems, ["pause_ms: must be 0 (off), or at least one window and less than hangover_ms"]);
}

#[test]
fn words_that_sound_unfinished_get_the_longer_hangover() {
    let pcm = Signal::new().noise(300, NOISE_DBFS).tone(600, 250.0, VOICE_DBFS).noise(1_200, NOISE_DBFS).pcm();
    let speech_end_ms = 300 + 600;
    for (verdict, hangover_ms, waited) in [(Some(true), 300, 0), (Some(false), 700, 1), (None, 700, 1)] {
        let mut stage = stage();
        let result = run_judging(&mut stage, frames("s1", &pcm, FRAME_MS), verdict);
        let end_ms = (result.end_after("s1").expect("an end") + 1) * FRAME_MS;
        assert!(
            (speech_end_ms + hangover_ms..=speech_end_ms + hangover_ms + FRAME_MS).contains(&end_ms),
            "{verdict:?}: ended at {end_ms} ms, speech ended at {speech_end_ms} ms"
        );
        assert_eq!(stage.stats().waited_past_hangover, waited, "{verdict:?}");
        // Either way the utterance is the speech up to its pause: the wait held silence.
        assert_eq!(result.audio("s1").len(), (200 + 600 + PAUSE_MS) / FRAME_MS, "{verdict:?}");
    }
}
