//! Test stages and a metrics recorder shared by the unit tests.
//!
//! `TestStage` is one stage type whose variants are the behaviours the tests need.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use crate::{Domain, Execution, Stage, StageError, StageHints};

/// The frames the runtime's tests move: a stand-in for a real domain.
#[derive(Clone, Debug)]
pub(crate) struct Test;

impl Domain for Test {
    type Payload = TestPayload;
    type Meta = ();
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TestPayload {
    Text(String),
    /// 16 kHz mono s16le, shared as `Bytes`.
    Audio(Bytes),
    Message {
        topic: String,
        body: Bytes,
    },
    EndOfStream,
}

pub(crate) type Frame = crate::Frame<Test>;
pub(crate) type FrameMeta = crate::FrameMeta<()>;
pub(crate) type Outputs = crate::Outputs<Test>;
pub(crate) type TopologyConfig = crate::TopologyConfig<Test>;

impl Frame {
    pub(crate) fn text(meta: FrameMeta, text: impl Into<String>) -> Self {
        Self::new(meta, TestPayload::Text(text.into()))
    }

    /// A handle on the audio bytes, if this is audio; no copy.
    pub(crate) fn pcm(&self) -> Option<Bytes> {
        match &self.payload {
            TestPayload::Audio(pcm) => Some(pcm.clone()),
            _ => None,
        }
    }
}

/// Long enough for a loaded CI box; only reached when a test is already broken.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub(crate) enum Event {
    Frame(Frame),
    Flush,
}

pub(crate) enum TestStage {
    /// Forwards every frame.
    Pass(Execution),
    /// Fails on one sequence number, per-frame or fatally, and forwards the rest.
    Faulty { bad_seq: u64, fatal: bool },
    /// Panics on one sequence number.
    Panics { at_seq: u64 },
    /// Records what reaches it. With a gate, each `process` first reports the frame
    /// and then parks until the gate's sender is dropped: a sink the test stalls.
    Sink { events: flume::Sender<Event>, gate: Option<flume::Receiver<()>>, execution: Execution },
}

impl TestStage {
    pub(crate) fn sink(events: flume::Sender<Event>) -> Self {
        Self::Sink { events, gate: None, execution: Execution::Blocking }
    }

    pub(crate) fn stalled_sink(events: flume::Sender<Event>, gate: flume::Receiver<()>) -> Self {
        Self::Sink { events, gate: Some(gate), execution: Execution::Blocking }
    }
}

impl Stage<Test> for TestStage {
    fn name(&self) -> &'static str {
        match self {
            Self::Pass(_) => "pass",
            Self::Faulty { .. } => "faulty",
            Self::Panics { .. } => "panics",
            Self::Sink { .. } => "sink",
        }
    }

    fn process(&mut self, frame: Frame, out: &mut Outputs) -> Result<(), StageError> {
        match self {
            Self::Pass(_) => out.push(frame),
            Self::Faulty { bad_seq, fatal } if frame.meta.seq == *bad_seq => {
                let cause = format!("refusing frame {bad_seq}");
                Err(if *fatal { StageError::fatal("bad_frame", cause) } else { StageError::frame("bad_frame", cause) })
            }
            Self::Faulty { .. } => out.push(frame),
            Self::Panics { at_seq } => {
                assert_ne!(frame.meta.seq, *at_seq, "test stage panics on purpose");
                out.push(frame)
            }
            Self::Sink { events, gate, .. } => {
                let _ = events.send(Event::Frame(frame));
                if let Some(gate) = gate {
                    // Err once the test drops the sender: released for good.
                    let _ = gate.recv();
                }
                Ok(())
            }
        }
    }

    fn flush(&mut self, _out: &mut Outputs) -> Result<(), StageError> {
        if let Self::Sink { events, .. } = self {
            let _ = events.send(Event::Flush);
        }
        Ok(())
    }

    fn hints(&self) -> StageHints {
        match self {
            Self::Pass(Execution::Blocking) => StageHints::blocking(4),
            Self::Pass(Execution::Async) | Self::Faulty { .. } | Self::Panics { .. } => StageHints::asynchronous(4),
            Self::Sink { execution, .. } => StageHints { input_capacity: 4, execution: *execution, outputs: &[] },
        }
    }
}

pub(crate) fn text(seq: u64) -> Frame {
    Frame::text(FrameMeta::new("session", "kitchen", seq), format!("frame {seq}"))
}

/// 20 ms of 16 kHz mono s16le.
pub(crate) fn audio(seq: u64) -> Frame {
    Frame::new(FrameMeta::new("session", "kitchen", seq), TestPayload::Audio(Bytes::from(vec![seq as u8; 640])))
}

/// Waits for the next event, failing the test instead of hanging it.
pub(crate) async fn next_event(events: &flume::Receiver<Event>) -> Event {
    tokio::time::timeout(PATIENCE, events.recv_async())
        .await
        .expect("timed out waiting for a stage event")
        .expect("every event sender dropped")
}

/// Sequence numbers of the frames recorded, and whether a flush followed them.
pub(crate) fn seqs_and_flush(events: &flume::Receiver<Event>) -> (Vec<u64>, bool) {
    let mut seqs = Vec::new();
    let mut flushed = false;
    for event in events.try_iter() {
        match event {
            Event::Frame(frame) => {
                assert!(!flushed, "frame {} after flush", frame.meta.seq);
                seqs.push(frame.meta.seq);
            }
            Event::Flush => flushed = true,
        }
    }
    (seqs, flushed)
}

/// Records every metric as `name{label=value,...}`. Installed globally once for the
/// test binary, since stages record from their own threads; tests that read it use
/// stage ids no other test uses.
#[derive(Clone, Default)]
pub(crate) struct TestRecorder(Arc<Mutex<BTreeMap<String, Arc<Cell>>>>);

#[derive(Default)]
pub(crate) struct Cell {
    value: AtomicU64,
    observations: AtomicU64,
}

impl metrics::CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.value.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.value.store(value, Ordering::Relaxed);
    }
}

impl metrics::GaugeFn for Cell {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, value: f64) {
        self.value.store(value as u64, Ordering::Relaxed);
        self.observations.fetch_add(1, Ordering::Relaxed);
    }
}

impl metrics::HistogramFn for Cell {
    fn record(&self, _: f64) {
        self.observations.fetch_add(1, Ordering::Relaxed);
    }
}

impl TestRecorder {
    pub(crate) fn global() -> &'static TestRecorder {
        static RECORDER: OnceLock<TestRecorder> = OnceLock::new();
        RECORDER.get_or_init(|| {
            let recorder = TestRecorder::default();
            metrics::set_global_recorder(recorder.clone()).expect("no other recorder in unit tests");
            recorder
        })
    }

    fn cell(&self, key: &Key) -> Arc<Cell> {
        let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let mut cells = self.0.lock().unwrap();
        cells.entry(name).or_default().clone()
    }

    /// Counter or gauge value.
    pub(crate) fn value(&self, name: &str) -> u64 {
        self.0.lock().unwrap().get(name).map_or(0, |c| c.value.load(Ordering::Relaxed))
    }

    /// Histogram samples or gauge sets.
    pub(crate) fn observations(&self, name: &str) -> u64 {
        self.0.lock().unwrap().get(name).map_or(0, |c| c.observations.load(Ordering::Relaxed))
    }

    pub(crate) fn keys(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}
