//! The stage inside a running topology: its own blocking thread, bounded edges, errors
//! reported through the engine's error sink.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use alicia_pipeline::Execution;
use alicia_speech::{Speech, SpeechFrame, TopologyConfig};

use super::*;
use crate::testing::{exclusive, model, speech};

/// Hands every frame it reads to the test.
struct Collect(mpsc::Sender<Frame>);

impl Stage<Speech> for Collect {
    fn name(&self) -> &'static str {
        "collect"
    }

    fn hints(&self) -> StageHints {
        StageHints::blocking(8).sink()
    }

    fn process(&mut self, frame: Frame, _out: &mut Outputs) -> Result<(), StageError> {
        let _ = self.0.send(frame);
        Ok(())
    }
}

#[test]
fn a_topology_turns_an_utterance_into_a_transcript_and_reports_empty_ones() {
    let _model = exclusive();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let stage = WhisperStage::load(model(), 2).unwrap();
    assert_eq!(stage.hints().execution, Execution::Blocking);

    let (seen, frames) = mpsc::channel();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let mut config = TopologyConfig::new();
    config.source("audio");
    config.stage("stt", stage).input("audio");
    config.stage("collect", Collect(seen)).input("stt");
    let reported = Arc::clone(&errors);
    config.on_error(move |report| {
        reported.lock().unwrap().push((report.stage.to_string(), report.error.error_type()));
    });
    let running = config.build().unwrap().run(runtime.handle()).unwrap();

    let audio_in = running.source("audio").unwrap();
    let pcm = AudioChunk::new(speech("open the garage door"), AudioFormat::PCM16_MONO_16K);
    for (seq, chunk) in pcm.chunks(Duration::from_millis(20)).enumerate() {
        audio_in.send(Frame::new(FrameMeta::new("a", "garage", seq as u64), Payload::Audio(chunk))).unwrap();
    }
    audio_in.send(Frame::end_of_stream(FrameMeta::new("empty", "garage", 0))).unwrap();
    audio_in.send(Frame::end_of_stream(FrameMeta::new("a", "garage", 9_999))).unwrap();
    drop(audio_in);
    running.shutdown_blocking().unwrap();

    let frames: Vec<Frame> = frames.try_iter().collect();
    assert_eq!(frames.len(), 2, "{frames:?}");
    let Payload::Transcript(transcript) = &frames[0].payload else { panic!("{:?}", frames[0]) };
    assert!(transcript.text.to_lowercase().contains("garage"), "{transcript:?}");
    assert_eq!((frames[0].meta.session_id.as_str(), frames[0].meta.seq), ("a", 9_999));
    assert!(frames[1].is_end_of_stream());
    assert_eq!(*errors.lock().unwrap(), [("stt".to_owned(), "empty_utterance")]);
}
