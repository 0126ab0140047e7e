//! One stage hop: 20 ms PCM frames (640 bytes, 16 kHz mono s16le) through
//! source → pass-through → sink, with both stages on dedicated threads or both as
//! tokio tasks. Throughput is frames per second through the whole hop, including the
//! runtime's receive, metrics and delivery; the audio itself is shared, never copied.

use std::hint::black_box;
use std::sync::mpsc;

use alicia_pipeline::{Execution, Stage, StageError, StageHints};
use alicia_speech::{
    AudioFormat, EdgeSender, Frame, FrameMeta, Outputs, RunningTopology, Speech, SpeechFrame, TopologyConfig,
};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Frames per measured batch; the sink acknowledges each full batch.
const BATCH: u64 = 1_000;
/// Edge capacity in front of each stage.
const CAPACITY: usize = 64;

/// Forwards every frame.
struct Pass(Execution);

impl Stage<Speech> for Pass {
    fn name(&self) -> &'static str {
        "pass"
    }

    fn process(&mut self, frame: Frame, out: &mut Outputs) -> Result<(), StageError> {
        out.push(frame)
    }

    fn hints(&self) -> StageHints {
        match self.0 {
            Execution::Blocking => StageHints::blocking(CAPACITY),
            Execution::Async => StageHints::asynchronous(CAPACITY),
        }
    }
}

/// Counts frames and says when each batch is complete.
struct Sink {
    execution: Execution,
    seen: u64,
    batch_done: mpsc::SyncSender<()>,
}

impl Stage<Speech> for Sink {
    fn name(&self) -> &'static str {
        "sink"
    }

    fn process(&mut self, frame: Frame, _out: &mut Outputs) -> Result<(), StageError> {
        black_box(frame.pcm());
        self.seen += 1;
        if self.seen.is_multiple_of(BATCH) {
            let _ = self.batch_done.send(());
        }
        Ok(())
    }

    fn hints(&self) -> StageHints {
        match self.execution {
            Execution::Blocking => StageHints::blocking(CAPACITY).sink(),
            Execution::Async => StageHints::asynchronous(CAPACITY).sink(),
        }
    }
}

fn start(execution: Execution, runtime: &tokio::runtime::Runtime) -> (RunningTopology, mpsc::Receiver<()>) {
    let (batch_done, batches) = mpsc::sync_channel(1);
    let mut config = TopologyConfig::new();
    config.source("mic");
    config.stage("pass", Pass(execution)).input("mic");
    config.stage("sink", Sink { execution, seen: 0, batch_done }).input("pass");
    let running = config.build().expect("valid topology").run(runtime.handle()).expect("started");
    (running, batches)
}

/// Sends one batch from the bench thread and waits until the sink has all of it.
fn one_batch(mic: &EdgeSender, template: &Frame, batches: &mpsc::Receiver<()>) {
    for seq in 0..BATCH {
        let mut frame = template.clone();
        frame.meta.seq = seq;
        mic.send(frame).expect("pipeline running");
    }
    batches.recv().expect("sink running");
}

fn stage_hop(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("tokio runtime");
    let template = Frame::audio(
        FrameMeta::new("bench-session", "kitchen", 0),
        Bytes::from(vec![0u8; 640]),
        AudioFormat::PCM16_MONO_16K,
    );

    let mut group = c.benchmark_group("stage_hop_640b_pcm");
    group.throughput(Throughput::Elements(BATCH));
    for (name, execution) in [("blocking", Execution::Blocking), ("async", Execution::Async)] {
        let (running, batches) = start(execution, &runtime);
        let mic = running.source("mic").expect("declared source");
        group.bench_function(name, |b| b.iter(|| one_batch(&mic, &template, &batches)));
        drop(mic);
        runtime.block_on(running.shutdown()).expect("clean shutdown");
    }
    group.finish();
}

criterion_group!(benches, stage_hop);
criterion_main!(benches);
