//! Starting a built topology and stopping it.
//!
//! Graceful shutdown flows with the data: dropping the source senders closes the first
//! edges; each stage drains its queue, flushes, and drops its outputs, which closes the
//! next edges. Abort is the kill switch: every stage stops at its next frame boundary.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::edge::{EdgeSender, EdgeShared, EdgeStats};
use crate::frame::Domain;
use crate::kill::KillSwitch;
use crate::stage::{Execution, StageError};
use crate::stage_loop::{StageExit, StageRunner};
use crate::telemetry::{StageCounters, StageStats};
use crate::topology::Topology;

/// Why a pipeline stopped other than by draining or by request.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("stage {stage} failed: {error}")]
    Stage { stage: Arc<str>, error: StageError },
    #[error("stage {stage} panicked: {message}")]
    Panicked { stage: Arc<str>, message: String },
    #[error("stage {stage} was cancelled: its tokio runtime shut down")]
    Cancelled { stage: Arc<str> },
    #[error("cannot start a thread for stage {stage}: {error}")]
    Spawn { stage: Arc<str>, error: std::io::Error },
}

impl PipelineError {
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Stage { .. } => "stage_failed",
            Self::Panicked { .. } => "stage_panicked",
            Self::Cancelled { .. } => "stage_cancelled",
            Self::Spawn { .. } => "spawn_failed",
        }
    }
}

/// Sent by every stage when its loop ends, however it ends.
struct StageDone {
    result: Result<(), PipelineError>,
}

/// Reports a stage's end from `Drop`, so a panic or a cancelled task is reported too,
/// and trips the kill switch for them since the stage can no longer drain.
struct ExitReporter {
    stage: Arc<str>,
    kill: KillSwitch,
    done: flume::Sender<StageDone>,
    exit: Option<Exit>,
}

/// How a stage's loop ended, a panic included.
enum Exit {
    Loop(StageExit),
    Panicked(String),
}

impl Drop for ExitReporter {
    fn drop(&mut self) {
        let stage = self.stage.clone();
        let result = match self.exit.take() {
            Some(Exit::Loop(StageExit::Drained | StageExit::Aborted)) => Ok(()),
            Some(Exit::Loop(StageExit::Failed(error))) => Err(PipelineError::Stage { stage, error }),
            Some(Exit::Panicked(message)) => Err(PipelineError::Panicked { stage, message }),
            None => Err(PipelineError::Cancelled { stage }),
        };
        if let Err(error) = &result {
            self.kill.trip_because(error.to_string());
        }
        // The receiver only goes away with the RunningTopology, when nobody listens.
        let _ = self.done.send(StageDone { result });
    }
}

impl<D: Domain> Topology<D> {
    /// Starts every stage, sink first: blocking stages on threads named
    /// `stage-<id>`, async stages as tasks on `runtime`.
    pub fn run(self, runtime: &tokio::runtime::Handle) -> Result<RunningTopology<D>, PipelineError> {
        let (done_tx, done_rx) = flume::unbounded();
        let stages: Vec<_> = self.runners.iter().map(|r| (r.id.clone(), r.counters.clone())).collect();
        let mut threads = Vec::new();
        for runner in self.runners {
            let reporter =
                ExitReporter { stage: runner.id.clone(), kill: self.kill.clone(), done: done_tx.clone(), exit: None };
            match runner.execution {
                Execution::Async => {
                    runtime.spawn(run_task(runner, reporter));
                }
                Execution::Blocking => {
                    let stage = runner.id.clone();
                    let spawned = std::thread::Builder::new()
                        .name(format!("stage-{stage}"))
                        .spawn(move || run_thread(runner, reporter));
                    match spawned {
                        Ok(thread) => threads.push(thread),
                        Err(error) => {
                            // Started stages see the switch and stop; the rest are
                            // dropped unstarted.
                            self.kill.trip();
                            return Err(PipelineError::Spawn { stage, error });
                        }
                    }
                }
            }
        }
        Ok(RunningTopology {
            sources: self.sources,
            stages,
            edges: self.edges,
            kill: self.kill,
            done: done_rx,
            threads,
        })
    }
}

fn run_thread<D: Domain>(runner: StageRunner<D>, mut reporter: ExitReporter) {
    // Caught here, after the panic hook has printed it, so the message reaches the
    // report (and the kill switch's cause) instead of dying with the thread.
    reporter.exit = Some(match std::panic::catch_unwind(AssertUnwindSafe(|| runner.run_blocking())) {
        Ok(exit) => Exit::Loop(exit),
        Err(payload) => Exit::Panicked(panic_message(payload.as_ref())),
    });
}

async fn run_task<D: Domain>(runner: StageRunner<D>, mut reporter: ExitReporter) {
    reporter.exit = Some(match CatchUnwind(Box::pin(runner.run_async())).await {
        Ok(exit) => Exit::Loop(exit),
        Err(payload) => Exit::Panicked(panic_message(payload.as_ref())),
    });
}

/// A future whose panics come out as `Err(payload)`, as `catch_unwind` does for calls.
struct CatchUnwind<F>(Pin<Box<F>>);

type PanicPayload = Box<dyn std::any::Any + Send>;

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, PanicPayload>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(message), _) => (*message).to_owned(),
        (_, Some(message)) => message.clone(),
        _ => "a panic without a message".to_owned(),
    }
}

/// A started pipeline. Dropping it without [`shutdown`](Self::shutdown) lets the
/// pipeline drain in the background once every source sender is gone.
pub struct RunningTopology<D: Domain> {
    sources: Vec<(Arc<str>, EdgeSender<D>)>,
    stages: Vec<(Arc<str>, Arc<StageCounters>)>,
    edges: Vec<Arc<EdgeShared>>,
    kill: KillSwitch,
    done: flume::Receiver<StageDone>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl<D: Domain> std::fmt::Debug for RunningTopology<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningTopology")
            .field("stages", &self.stages.iter().map(|(id, _)| id).collect::<Vec<_>>())
            .field("sources", &self.sources.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .field("aborted", &self.kill.is_tripped())
            .finish()
    }
}

impl<D: Domain> RunningTopology<D> {
    /// A sender into the named source. Every clone keeps the pipeline's input open:
    /// graceful shutdown completes once all of them are dropped.
    pub fn source(&self, name: &str) -> Option<EdgeSender<D>> {
        self.sources.iter().find(|(known, _)| **known == *name).map(|(_, sender)| sender.clone())
    }

    pub fn stage_stats(&self, stage: &str) -> Option<StageStats> {
        self.stages.iter().find(|(id, _)| **id == *stage).map(|(_, counters)| counters.snapshot())
    }

    /// Stats of the edge in front of `stage` (edges are named after their reader).
    pub fn edge_stats(&self, stage: &str) -> Option<EdgeStats> {
        self.edges.iter().find(|edge| **edge.name() == *stage).map(|edge| edge.stats())
    }

    pub fn kill_switch(&self) -> KillSwitch {
        self.kill.clone()
    }

    /// Stops every stage at its next frame boundary; queued frames are discarded and
    /// `flush` is not called. Follow with [`shutdown`](Self::shutdown) to wait.
    pub fn abort(&self) {
        self.kill.trip();
    }

    /// Closes this handle's sources and waits until every stage has drained, flushed
    /// and stopped (or stopped on abort). Returns the first failure, if any; an
    /// abort alone is not one. Wrap in a timeout and [`abort`](Self::abort) on expiry
    /// if a stage might hang.
    pub async fn shutdown(self) -> Result<(), PipelineError> {
        let (done, _threads) = self.close_sources();
        let mut first_error = None;
        while let Ok(stage) = done.recv_async().await {
            keep_first(&mut first_error, stage.result);
        }
        first_error.map_or(Ok(()), Err)
    }

    /// [`shutdown`](Self::shutdown) for synchronous callers; blocks the thread, so
    /// never call it on a tokio worker.
    pub fn shutdown_blocking(self) -> Result<(), PipelineError> {
        let (done, threads) = self.close_sources();
        let mut first_error = None;
        while let Ok(stage) = done.recv() {
            keep_first(&mut first_error, stage.result);
        }
        for thread in threads {
            // A panic was already reported through the stage's ExitReporter.
            let _ = thread.join();
        }
        first_error.map_or(Ok(()), Err)
    }

    fn close_sources(self) -> (flume::Receiver<StageDone>, Vec<std::thread::JoinHandle<()>>) {
        // `done` disconnects once every stage's reporter has been dropped.
        let Self { done, threads, .. } = self;
        (done, threads)
    }
}

fn keep_first(first: &mut Option<PipelineError>, result: Result<(), PipelineError>) {
    if let Err(error) = result {
        if first.is_none() {
            *first = Some(error);
        } else {
            tracing::debug!(error = %error, "further pipeline error after the first");
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::runtime::Handle;

    use crate::testing::TopologyConfig;
    use crate::testing::{next_event, seqs_and_flush, text, Event, TestStage};
    use crate::{Delivery, Execution, TrySendError};

    const A_CAPACITY: usize = 3;
    const SINK_CAPACITY: usize = 2;

    /// source → a → sink, with the sink parked inside `process`. Once nothing can
    /// move, the frames the source got accepted are exactly:
    ///
    /// - 1 inside the sink's `process` (parked on the gate),
    /// - SINK_CAPACITY queued on the sink's edge,
    /// - 1 held by `a`, waiting for room on the sink's edge,
    /// - A_CAPACITY queued on a's edge.
    const IN_FLIGHT: u64 = (1 + SINK_CAPACITY + 1 + A_CAPACITY) as u64;

    async fn in_flight_when_the_sink_stalls(a_execution: Execution) {
        let (events_tx, events) = flume::unbounded();
        let (release, gate) = flume::bounded::<()>(0);
        let mut config = TopologyConfig::new();
        config.source("mic");
        config.stage("a", TestStage::Pass(a_execution)).input("mic").capacity(A_CAPACITY);
        config.stage("sink", TestStage::stalled_sink(events_tx, gate)).input("a").capacity(SINK_CAPACITY);
        let running = config.build().unwrap().run(&Handle::current()).unwrap();
        let mic = running.source("mic").unwrap();

        // Park the sink on frame 0 before anything else flows, so that from here on
        // nothing downstream drains and no observation below can be stale.
        mic.try_send(text(0)).unwrap();
        let Event::Frame(first) = next_event(&events).await else { panic!("flush before any frame") };
        assert_eq!(first.meta.seq, 0);

        let mut accepted = 1;
        loop {
            // Once `a` waits for room on the parked sink's edge it waits for good, and
            // from then on only this loop changes a's queue. So a "full" seen *after*
            // observing that is final; one seen before may be `a` between frames.
            let a_is_stuck = running.edge_stats("sink").unwrap().blocked_senders == 1;
            match mic.try_send(text(accepted)) {
                Ok(Delivery::Queued) => accepted += 1,
                Ok(Delivery::Dropped) => panic!("a block edge dropped a frame"),
                Err(TrySendError::Full { .. }) if a_is_stuck => break,
                Err(TrySendError::Full { .. }) => tokio::task::yield_now().await,
                Err(err) => panic!("{err}"),
            }
        }

        assert_eq!(accepted, IN_FLIGHT);
        assert_eq!(mic.len(), A_CAPACITY, "a's edge is full");
        let a = running.stage_stats("a").unwrap();
        assert_eq!(a.received - a.sent, 1, "a holds one frame");
        assert_eq!(a.sent, 1 + SINK_CAPACITY as u64, "the sink took one and queued the rest");
        assert_eq!(running.stage_stats("sink").unwrap().received, 1);
        assert!(matches!(mic.try_send(text(accepted)), Err(TrySendError::Full { .. })));

        drop(release);
        drop(mic);
        running.shutdown().await.unwrap();
        let (seqs, flushed) = seqs_and_flush(&events);
        assert_eq!(seqs, (1..accepted).collect::<Vec<_>>(), "frame 0 was read above");
        assert!(flushed);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backpressure_counts_in_flight_frames_exactly_through_an_async_stage() {
        in_flight_when_the_sink_stalls(Execution::Async).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backpressure_counts_in_flight_frames_exactly_through_a_blocking_stage() {
        in_flight_when_the_sink_stalls(Execution::Blocking).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_delivers_queued_frames_then_flushes_then_returns() {
        let (events_tx, events) = flume::unbounded();
        let (release, gate) = flume::bounded::<()>(0);
        let mut config = TopologyConfig::new();
        config.source("mic");
        config.stage("a", TestStage::Pass(Execution::Async)).input("mic").capacity(8);
        config.stage("sink", TestStage::stalled_sink(events_tx, gate)).input("a").capacity(8);
        let running = config.build().unwrap().run(&Handle::current()).unwrap();
        let mic = running.source("mic").unwrap();
        for seq in 0..10 {
            mic.send_async(text(seq)).await.unwrap();
        }
        drop(mic);
        let Event::Frame(first) = next_event(&events).await else { panic!("flush before any frame") };
        assert_eq!(first.meta.seq, 0);

        // Shutdown starts while nine frames are still queued behind the parked sink.
        let shutdown = tokio::spawn(running.shutdown());
        drop(release);
        shutdown.await.unwrap().unwrap();
        let (seqs, flushed) = seqs_and_flush(&events);
        assert_eq!(seqs, (1..10).collect::<Vec<_>>());
        assert!(flushed, "flush runs after the last frame and before shutdown returns");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn abort_stops_without_draining_or_flushing() {
        let (events_tx, events) = flume::unbounded();
        let (release, gate) = flume::bounded::<()>(0);
        let mut config = TopologyConfig::new();
        config.source("mic");
        config.stage("a", TestStage::Pass(Execution::Blocking)).input("mic");
        config.stage("sink", TestStage::stalled_sink(events_tx, gate)).input("a");
        let running = config.build().unwrap().run(&Handle::current()).unwrap();
        let mic = running.source("mic").unwrap();
        mic.send_async(text(0)).await.unwrap();
        next_event(&events).await;
        mic.send_async(text(1)).await.unwrap();

        running.abort();
        drop(release);
        // The source may still be held elsewhere: abort does not wait for it.
        running.shutdown().await.unwrap();
        let (seqs, flushed) = seqs_and_flush(&events);
        assert!(seqs.is_empty(), "nothing after the abort: {seqs:?}");
        assert!(!flushed);
        assert!(mic.send_async(text(2)).await.is_err(), "the pipeline is gone");
    }

    #[test]
    fn shutdown_blocking_works_without_async_stages() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (events_tx, events) = flume::unbounded();
        let mut config = TopologyConfig::new();
        config.source("mic");
        config.stage("a", TestStage::Pass(Execution::Blocking)).input("mic");
        config.stage("sink", TestStage::sink(events_tx)).input("a");
        let running = config.build().unwrap().run(runtime.handle()).unwrap();
        let mic = running.source("mic").unwrap();
        for seq in 0..5 {
            mic.send(text(seq)).unwrap();
        }
        drop(mic);
        running.shutdown_blocking().unwrap();
        assert_eq!(seqs_and_flush(&events), ((0..5).collect(), true));
    }
}
