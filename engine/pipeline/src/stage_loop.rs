//! The loop the runtime runs around every stage: receive, measure, apply the error
//! policy, and shut down — on a dedicated thread or as a tokio task, with the same
//! rules for both.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::edge::EdgeReceiver;
use crate::frame::{Domain, Frame, FrameMeta};
use crate::kill::KillSwitch;
use crate::outputs::Outputs;
use crate::stage::{ErrorSink, Execution, Stage, StageError, StageErrorReport};
use crate::telemetry::{StageCounters, StageMetrics};

/// Longest an async stage's `process` may run before it holds up other tasks on the
/// worker (quickwit uses the same budget).
pub(crate) const ASYNC_BUDGET: Duration = Duration::from_micros(500);

/// How a stage loop ended.
#[derive(Debug)]
pub(crate) enum StageExit {
    /// Inputs closed, queue drained, flushed, outputs closed.
    Drained,
    /// The kill switch tripped, or a downstream stage went away because of it.
    Aborted,
    Failed(StageError),
}

enum Received<D: Domain> {
    Frame(Frame<D>),
    Closed,
    Killed,
}

enum Step {
    Continue,
    Stop(StageExit),
}

/// One stage with everything its loop needs; consumed by running it.
pub(crate) struct StageRunner<D: Domain> {
    pub(crate) id: Arc<str>,
    pub(crate) stage: Box<dyn Stage<D>>,
    pub(crate) execution: Execution,
    pub(crate) input: EdgeReceiver<D>,
    pub(crate) outputs: Outputs<D>,
    pub(crate) metrics: StageMetrics,
    pub(crate) counters: Arc<StageCounters>,
    pub(crate) kill: KillSwitch,
    pub(crate) errors: Option<ErrorSink<D>>,
    pub(crate) warned_over_budget: bool,
}

impl<D: Domain> StageRunner<D> {
    /// The loop of an [`Execution::Blocking`] stage, on its own thread.
    pub(crate) fn run_blocking(mut self) -> StageExit {
        loop {
            if self.kill.is_tripped() {
                return StageExit::Aborted;
            }
            if self.input.rx.is_empty() {
                match self.idle() {
                    // One piece done: look at the input before another.
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(error) => {
                        if let Step::Stop(exit) = self.settle(Err(error), None) {
                            return exit;
                        }
                    }
                }
            }
            let frame = match self.recv_blocking() {
                Received::Frame(frame) => frame,
                Received::Closed => break,
                Received::Killed => return StageExit::Aborted,
            };
            let meta = frame.meta.clone();
            let result = self.process(frame);
            if let Step::Stop(exit) = self.settle(result, Some(meta)) {
                return exit;
            }
        }
        if let Some(exit) = self.aborted_while_closing() {
            return exit;
        }
        let result = self.stage.flush(&mut self.outputs);
        match self.settle(result, None) {
            Step::Stop(exit) => exit,
            Step::Continue => StageExit::Drained,
        }
    }

    /// The loop of an [`Execution::Async`] stage.
    pub(crate) async fn run_async(mut self) -> StageExit {
        loop {
            if self.kill.is_tripped() {
                return StageExit::Aborted;
            }
            let frame = match self.recv_async().await {
                Received::Frame(frame) => frame,
                Received::Closed => break,
                Received::Killed => return StageExit::Aborted,
            };
            let meta = frame.meta.clone();
            let result = self.process(frame);
            let result = self.deliver_async(result).await;
            if let Step::Stop(exit) = self.settle(result, Some(meta)) {
                return exit;
            }
            // flume futures that are ready at once never yield; without this a busy
            // stage could keep its worker from every other task.
            tokio::task::coop::consume_budget().await;
        }
        if let Some(exit) = self.aborted_while_closing() {
            return exit;
        }
        let result = self.stage.flush(&mut self.outputs);
        let result = self.deliver_async(result).await;
        match self.settle(result, None) {
            Step::Stop(exit) => exit,
            Step::Continue => StageExit::Drained,
        }
    }

    /// An input that closed because an upstream stage failed is not a drain: the
    /// failing stage trips the switch before dropping its outputs, so this sees it.
    fn aborted_while_closing(&self) -> Option<StageExit> {
        self.kill.is_tripped().then_some(StageExit::Aborted)
    }

    fn recv_blocking(&mut self) -> Received<D> {
        // The common case under load: a frame is already queued, no need to park.
        match self.input.rx.try_recv() {
            Ok(frame) => return Received::Frame(frame),
            Err(flume::TryRecvError::Disconnected) => return Received::Closed,
            Err(flume::TryRecvError::Empty) => self.input.sample_empty(),
        }
        flume::Selector::new()
            .recv(&self.input.rx, |received| match received {
                Ok(frame) => Received::Frame(frame),
                Err(flume::RecvError::Disconnected) => Received::Closed,
            })
            .recv(self.kill.signal(), |_| Received::Killed)
            .wait()
    }

    async fn recv_async(&mut self) -> Received<D> {
        match self.input.rx.try_recv() {
            Ok(frame) => return Received::Frame(frame),
            Err(flume::TryRecvError::Disconnected) => return Received::Closed,
            Err(flume::TryRecvError::Empty) => self.input.sample_empty(),
        }
        tokio::select! {
            biased;
            () = self.kill.tripped() => Received::Killed,
            received = self.input.rx.recv_async() => match received {
                Ok(frame) => Received::Frame(frame),
                Err(flume::RecvError::Disconnected) => Received::Closed,
            },
        }
    }

    /// Runs the stage's idle work; a piece of it done is timed like a `process` call.
    fn idle(&mut self) -> Result<bool, StageError> {
        let start = Instant::now();
        let result = self.stage.idle(&mut self.outputs);
        if !matches!(result, Ok(false)) {
            let elapsed = start.elapsed().saturating_sub(self.outputs.take_blocked());
            self.metrics.process_seconds.record(elapsed.as_secs_f64());
        }
        result
    }

    /// Runs `process` with the per-frame bookkeeping every stage gets.
    fn process(&mut self, frame: Frame<D>) -> Result<(), StageError> {
        self.metrics.received.increment(1);
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        self.input.sample_depth();

        let start = Instant::now();
        let result = self.stage.process(frame, &mut self.outputs);
        let elapsed = start.elapsed().saturating_sub(self.outputs.take_blocked());
        self.metrics.process_seconds.record(elapsed.as_secs_f64());

        if self.execution == Execution::Async && elapsed > ASYNC_BUDGET && !self.warned_over_budget {
            self.warned_over_budget = true;
            tracing::warn!(
                stage = %self.id,
                kind = self.stage.name(),
                elapsed_us = elapsed.as_micros() as u64,
                budget_us = ASYNC_BUDGET.as_micros() as u64,
                "async stage ran over budget; make it a blocking stage"
            );
        }
        result
    }

    /// Async stages deliver after `process`: what it pushed before a per-frame error
    /// still goes out (it was valid output), what it pushed before a fatal one does
    /// not (the pipeline is stopping).
    async fn deliver_async(&mut self, result: Result<(), StageError>) -> Result<(), StageError> {
        if matches!(&result, Err(err) if err.is_fatal()) {
            self.outputs.discard_pending();
            return result;
        }
        let delivered = self.outputs.deliver_pending().await;
        result.and(delivered)
    }

    /// The error policy: count and report; a fatal error trips the kill switch before
    /// this stage's outputs close, so downstream aborts rather than flushing.
    fn settle(&mut self, result: Result<(), StageError>, frame: Option<FrameMeta<D::Meta>>) -> Step {
        let error = match result {
            Ok(()) => return Step::Continue,
            Err(error) => error,
        };
        if self.outputs.is_closed() {
            // A downstream stage stopped without draining us first: only an abort or
            // a failure elsewhere does that, and that one is reported by its owner.
            self.kill.trip();
            return Step::Stop(StageExit::Aborted);
        }
        self.metrics.error(error.error_type()).increment(1);
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let report = StageErrorReport { stage: self.id.clone(), kind: self.stage.name(), error, frame };
        log_report(&report);
        if let Some(sink) = &self.errors {
            sink(&report);
        }
        if report.error.is_fatal() {
            self.kill.trip_because(format!("stage {} failed: {}", self.id, report.error));
            Step::Stop(StageExit::Failed(report.error))
        } else {
            Step::Continue
        }
    }
}

fn log_report<D: Domain>(report: &StageErrorReport<D>) {
    let (session, seq) = match &report.frame {
        Some(meta) => (meta.session_id.as_str(), meta.seq),
        None => ("", 0),
    };
    if report.error.is_fatal() {
        tracing::error!(
            stage = %report.stage,
            kind = report.kind,
            error_type = report.error.error_type(),
            session,
            seq,
            error = %report.error,
            "stage failed; stopping the pipeline"
        );
    } else {
        // Debug, not warn: a misbehaving client can cause one of these per frame, and
        // the error sink is where they are meant to surface.
        tracing::debug!(
            stage = %report.stage,
            kind = report.kind,
            error_type = report.error.error_type(),
            session,
            seq,
            error = %report.error,
            "frame dropped"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::runtime::Handle;

    use crate::testing::{next_event, seqs_and_flush, text, Event, TestRecorder, TestStage};
    use crate::testing::{Frame, FrameMeta, Outputs, Test, TestPayload, TopologyConfig};
    use crate::{PipelineError, RunningTopology};

    type Reports = Arc<Mutex<Vec<(String, Option<u64>)>>>;

    /// mic → `id` → `{id}_sink`; ids are unique per test so metrics do not mix.
    fn pipeline(id: &str, stage: TestStage) -> (RunningTopology<Test>, flume::Receiver<Event>, Reports) {
        TestRecorder::global();
        let (events_tx, events) = flume::unbounded();
        let reports = Reports::default();
        let mut config = TopologyConfig::new();
        config.source("mic");
        config.stage(id, stage).input("mic");
        config.stage(format!("{id}_sink"), TestStage::sink(events_tx)).input(id);
        config.on_error({
            let reports = reports.clone();
            move |report| {
                let seq = report.frame.as_ref().map(|meta| meta.seq);
                let label = format!("{}/{}", report.stage, report.error.error_type());
                reports.lock().unwrap().push((label, seq));
            }
        });
        let running = config.build().unwrap().run(&Handle::current()).unwrap();
        (running, events, reports)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_per_frame_error_drops_only_that_frame_and_is_counted_and_reported() {
        let recorder = TestRecorder::global();
        let (running, events, reports) = pipeline("per_frame", TestStage::Faulty { bad_seq: 1, fatal: false });
        let mic = running.source("mic").unwrap();
        for seq in 0..3 {
            mic.send_async(text(seq)).await.unwrap();
        }
        // Frames stay in order, so once 2 arrives, 1 has been handled.
        for expected in [0, 2] {
            let Event::Frame(frame) = next_event(&events).await else { panic!("early flush") };
            assert_eq!(frame.meta.seq, expected);
        }
        // `sent` counts after the send returns, which may be after the sink has the
        // frame; the metric checked after shutdown covers it.
        let stats = running.stage_stats("per_frame").unwrap();
        assert_eq!((stats.received, stats.errors), (3, 1));
        assert_eq!(*reports.lock().unwrap(), [("per_frame/bad_frame".to_owned(), Some(1))]);

        drop(mic);
        running.shutdown().await.unwrap();
        assert_eq!(seqs_and_flush(&events), (vec![], true));
        assert_eq!(recorder.value("alicia_stage_errors_total{stage=per_frame,error_type=bad_frame}"), 1);
        assert_eq!(recorder.value("alicia_stage_frames_received_total{stage=per_frame}"), 3);
        assert_eq!(recorder.value("alicia_stage_frames_sent_total{stage=per_frame}"), 2);
        assert_eq!(recorder.observations("alicia_stage_process_seconds{stage=per_frame}"), 3);
        assert_eq!(recorder.value("alicia_stage_frames_received_total{stage=per_frame_sink}"), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fatal_error_stops_the_pipeline_and_join_returns_it() {
        let (running, events, reports) = pipeline("fatal", TestStage::Faulty { bad_seq: 1, fatal: true });
        let mic = running.source("mic").unwrap();
        mic.send_async(text(0)).await.unwrap();
        mic.send_async(text(1)).await.unwrap();
        // Whatever follows is refused or discarded; the source stays open on purpose:
        // a fatal error must not wait for the inputs to close.
        let _ = mic.send_async(text(2)).await;

        let err = running.shutdown().await.unwrap_err();
        assert_eq!(err.error_type(), "stage_failed");
        let PipelineError::Stage { stage, error } = &err else { panic!("{err}") };
        assert_eq!(&**stage, "fatal");
        assert!(error.is_fatal());
        assert_eq!(error.error_type(), "bad_frame");
        assert_eq!(err.to_string(), "stage fatal failed: stage stopped (bad_frame): refusing frame 1");

        let (seqs, flushed) = seqs_and_flush(&events);
        assert!(seqs.iter().all(|&seq| seq == 0), "{seqs:?}");
        assert!(!flushed, "downstream of a failure aborts, it does not flush");
        assert_eq!(*reports.lock().unwrap(), [("fatal/bad_frame".to_owned(), Some(1))]);
        assert!(mic.send_async(text(3)).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_stage_stops_the_pipeline_and_is_reported() {
        let (running, _events, _reports) = pipeline("panics", TestStage::Panics { at_seq: 0 });
        let mic = running.source("mic").unwrap();
        let kill = running.kill_switch();
        mic.send_async(text(0)).await.unwrap();
        // The switch says why before anyone joins the pipeline: what a supervisor sees.
        kill.tripped().await;
        let cause = kill.cause().unwrap();
        assert!(
            cause.starts_with("stage panics panicked: assertion `left != right` failed: test stage panics on purpose"),
            "{cause}"
        );
        let err = running.shutdown().await.unwrap_err();
        assert!(matches!(&err, PipelineError::Panicked { stage, .. } if &**stage == "panics"), "{err}");
        assert_eq!(err.to_string(), cause);
        drop(mic);
    }

    /// Keeps frames saying "later" for its idle time; logs what it does, in order.
    struct Deferring {
        log: Arc<Mutex<Vec<String>>>,
        later: Vec<u64>,
        /// Held by the first frame until the test has queued the rest.
        gate: Option<std::sync::mpsc::Receiver<()>>,
    }

    impl crate::Stage<Test> for Deferring {
        fn name(&self) -> &'static str {
            "deferring"
        }

        fn hints(&self) -> crate::StageHints {
            crate::StageHints::blocking(8).sink()
        }

        fn process(&mut self, frame: Frame, _: &mut Outputs) -> Result<(), crate::StageError> {
            if let Some(gate) = self.gate.take() {
                gate.recv().unwrap();
            }
            match &frame.payload {
                TestPayload::Text(text) if text == "later" => self.later.push(frame.meta.seq),
                _ => self.log.lock().unwrap().push(format!("frame {}", frame.meta.seq)),
            }
            Ok(())
        }

        fn idle(&mut self, _: &mut Outputs) -> Result<bool, crate::StageError> {
            let Some(seq) = self.later.pop() else { return Ok(false) };
            self.log.lock().unwrap().push(format!("idle {seq}"));
            Ok(true)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_work_waits_for_every_queued_frame() {
        let (open, gate) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut config = TopologyConfig::new();
        config.source("mic");
        config.stage("deferring", Deferring { log: log.clone(), later: Vec::new(), gate: Some(gate) }).input("mic");
        let running = config.build().unwrap().run(&Handle::current()).unwrap();
        let mic = running.source("mic").unwrap();
        let frame = |seq, text: &str| Frame::text(FrameMeta::new("s", "kitchen", seq), text);
        mic.send_async(frame(0, "later")).await.unwrap();
        mic.send_async(frame(1, "now")).await.unwrap();
        mic.send_async(frame(2, "now")).await.unwrap();
        open.send(()).unwrap();
        drop(mic);
        running.shutdown().await.unwrap();
        assert_eq!(*log.lock().unwrap(), ["frame 1", "frame 2", "idle 0"]);
    }
}
