//! Declaring a pipeline, checking it, and wiring it.
//!
//! The config is the builder (as in vector): declare sources and stages, list each
//! stage's inputs by name (`"mic"`, `"vad"`, or `"router.tts"` for a named output),
//! then [`TopologyConfig::build`] validates everything at once and wires the edges
//! sink-first.

use std::sync::Arc;

use crate::edge::{edge, EdgeSender, EdgeShared, WhenFull};
use crate::frame::Domain;
use crate::kill::KillSwitch;
use crate::outputs::{DeliveryMode, OutputPort, Outputs};
use crate::stage::{ErrorSink, Execution, Stage, StageErrorReport, StageHints};
use crate::stage_loop::StageRunner;
use crate::telemetry::{StageCounters, StageMetrics};
use crate::validate::{plan, Plan, ValidationErrors};

/// A pipeline under construction. Each stage is held as a `Box<dyn Stage>`: a new
/// stage type needs no forwarding code anywhere, and a call through the box costs
/// nothing next to a frame's work.
pub struct TopologyConfig<D: Domain> {
    pub(crate) sources: Vec<String>,
    pub(crate) stages: Vec<StageConfig<D>>,
    error_sink: Option<ErrorSink<D>>,
}

/// One stage of a [`TopologyConfig`]: where it reads from and how its input edge
/// behaves.
pub struct StageConfig<D: Domain> {
    pub(crate) id: String,
    pub(crate) stage: Box<dyn Stage<D>>,
    pub(crate) inputs: Vec<String>,
    pub(crate) input_capacity: Option<usize>,
    pub(crate) when_full: WhenFull,
}

impl<D: Domain> StageConfig<D> {
    /// Reads from a source, a stage's first output (`"vad"`), or a stage's named
    /// output (`"router.tts"`).
    pub fn input(&mut self, name: impl Into<String>) -> &mut Self {
        self.inputs.push(name.into());
        self
    }

    /// Overrides [`StageHints::input_capacity`].
    pub fn capacity(&mut self, frames: usize) -> &mut Self {
        self.input_capacity = Some(frames);
        self
    }

    pub fn when_full(&mut self, policy: WhenFull) -> &mut Self {
        self.when_full = policy;
        self
    }
}

impl<D: Domain> std::fmt::Debug for TopologyConfig<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologyConfig")
            .field("sources", &self.sources)
            .field("stages", &self.stages.iter().map(|s| (&s.id, &s.inputs)).collect::<Vec<_>>())
            .finish()
    }
}

impl<D: Domain> Default for TopologyConfig<D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: Domain> TopologyConfig<D> {
    pub fn new() -> Self {
        Self { sources: Vec::new(), stages: Vec::new(), error_sink: None }
    }

    /// Declares an entry point: after `run`, [`crate::RunningTopology::source`] hands
    /// out senders that feed the one stage listing it as input.
    pub fn source(&mut self, name: impl Into<String>) -> &mut Self {
        self.sources.push(name.into());
        self
    }

    /// Declares a stage under a unique id (also its metric label and thread name).
    pub fn stage(&mut self, id: impl Into<String>, stage: impl Stage<D>) -> &mut StageConfig<D> {
        self.boxed_stage(id, Box::new(stage))
    }

    /// [`TopologyConfig::stage`] for a stage already boxed (one of several kinds
    /// chosen at run time), without boxing it twice.
    pub fn boxed_stage(&mut self, id: impl Into<String>, stage: Box<dyn Stage<D>>) -> &mut StageConfig<D> {
        self.stages.push(StageConfig {
            id: id.into(),
            stage,
            inputs: Vec::new(),
            input_capacity: None,
            when_full: WhenFull::default(),
        });
        let last = self.stages.len() - 1;
        &mut self.stages[last]
    }

    /// Where per-frame and fatal stage errors go (besides logs and metrics).
    pub fn on_error(&mut self, sink: impl Fn(&StageErrorReport<D>) + Send + Sync + 'static) -> &mut Self {
        self.error_sink = Some(Arc::new(sink));
        self
    }

    /// Checks the whole declaration and reports every problem, not just the first.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        plan(self).map(drop)
    }

    /// Validates, then creates every edge, sink first, so each producer is wired to
    /// inputs that already exist. Metric handles are created here, once per stage
    /// and edge.
    pub fn build(self) -> Result<Topology<D>, ValidationErrors> {
        let plan = plan(&self)?;
        Ok(wire(self, plan))
    }
}

/// A validated, wired pipeline that has not started yet.
pub struct Topology<D: Domain> {
    /// Sink first, so starting in this order readies readers before writers.
    pub(crate) runners: Vec<StageRunner<D>>,
    pub(crate) sources: Vec<(Arc<str>, EdgeSender<D>)>,
    pub(crate) edges: Vec<Arc<EdgeShared>>,
    pub(crate) kill: KillSwitch,
}

impl<D: Domain> std::fmt::Debug for Topology<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("stages", &self.runners.iter().map(|r| &r.id).collect::<Vec<_>>())
            .field("sources", &self.sources.iter().map(|(name, _)| name).collect::<Vec<_>>())
            .finish()
    }
}

impl<D: Domain> Topology<D> {
    /// The switch that aborts this pipeline; usable before and after `run`.
    pub fn kill_switch(&self) -> KillSwitch {
        self.kill.clone()
    }
}

fn wire<D: Domain>(config: TopologyConfig<D>, plan: Plan) -> Topology<D> {
    let Plan { hints, capacities, consumers, source_targets, order } = plan;
    let kill = KillSwitch::new();
    let mut stages: Vec<Option<StageConfig<D>>> = config.stages.into_iter().map(Some).collect();
    // The builder's own handle on each input edge; dropped when wiring ends so that
    // only producers keep edges open.
    let mut inputs: Vec<Option<EdgeSender<D>>> = vec![None; stages.len()];
    let mut runners = Vec::with_capacity(stages.len());
    let mut edges = Vec::with_capacity(stages.len());

    for &index in order.iter().rev() {
        let Some(declared) = stages[index].take() else {
            debug_assert!(false, "stage {index} appears twice in the topological order");
            continue;
        };
        let id: Arc<str> = Arc::from(declared.id);
        let hints: StageHints = hints[index];
        let (sender, receiver) = edge(id.clone(), capacities[index], declared.when_full);
        edges.push(receiver.shared().clone());

        let ports = hints
            .outputs
            .iter()
            .zip(&consumers[index])
            .map(|(name, readers)| OutputPort {
                name,
                edges: readers
                    .iter()
                    .filter_map(|&reader| {
                        // Readers come later in topological order, so exist already.
                        debug_assert!(inputs[reader].is_some(), "reader {reader} not wired yet");
                        inputs[reader].clone()
                    })
                    .collect(),
            })
            .collect();
        inputs[index] = Some(sender);

        let counters = Arc::new(StageCounters::default());
        let mode = match hints.execution {
            Execution::Blocking => DeliveryMode::Immediate,
            Execution::Async => DeliveryMode::Deferred,
        };
        runners.push(StageRunner {
            outputs: Outputs::new(&id, ports, mode, counters.clone()),
            metrics: StageMetrics::new(&id),
            id,
            stage: declared.stage,
            execution: hints.execution,
            input: receiver,
            counters,
            kill: kill.clone(),
            errors: config.error_sink.clone(),
            warned_over_budget: false,
        });
    }

    let sources = config
        .sources
        .into_iter()
        .zip(source_targets)
        .filter_map(|(name, target)| Some((Arc::from(name), inputs[target].clone()?)))
        .collect();
    Topology { runners, sources, edges, kill }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use proptest::prelude::*;
    use tokio::runtime::{Handle, Runtime};

    use crate::testing::{audio, next_event, seqs_and_flush, text, Event, TestRecorder, TestStage};
    use crate::testing::{Frame, FrameMeta, TestPayload as Payload, TopologyConfig};
    use crate::{Delivery, Execution, WhenFull, METRIC_NAMES};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn audio_reaches_every_sink_without_a_copy() {
        let (left_tx, left) = flume::unbounded();
        let (right_tx, right) = flume::unbounded();
        let mut config = TopologyConfig::new();
        config.source("mic");
        config.stage("a", TestStage::Pass(Execution::Async)).input("mic");
        config.stage("b", TestStage::Pass(Execution::Blocking)).input("a");
        // b's one output fans out to two readers.
        config.stage("left", TestStage::sink(left_tx)).input("b");
        config.stage("right", TestStage::sink(right_tx)).input("b");
        let running = config.build().unwrap().run(&Handle::current()).unwrap();

        let frame = audio(0);
        let sent = frame.pcm().unwrap();
        running.source("mic").unwrap().send_async(frame).await.unwrap();
        for events in [&left, &right] {
            let Event::Frame(got) = next_event(events).await else { panic!("flush before frame") };
            let pcm = got.pcm().unwrap();
            assert_eq!(pcm.as_ptr(), sent.as_ptr(), "same backing buffer");
            assert_eq!(pcm.len(), 640);
        }
        running.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drop_newest_drops_exactly_the_overflow_and_counts_it() {
        const CAPACITY: usize = 3;
        const OFFERED: u64 = 10;
        let recorder = TestRecorder::global();
        let (events_tx, events) = flume::unbounded();
        let (release, gate) = flume::bounded::<()>(0);
        let mut config = TopologyConfig::new();
        config.source("mic");
        config
            .stage("live_speaker", TestStage::stalled_sink(events_tx, gate))
            .input("mic")
            .capacity(CAPACITY)
            .when_full(WhenFull::DropNewest);
        let running = config.build().unwrap().run(&Handle::current()).unwrap();
        let mic = running.source("mic").unwrap();
        mic.send_async(audio(0)).await.unwrap();
        next_event(&events).await; // parked on frame 0 with an empty queue

        let mut deliveries = Vec::new();
        for seq in 1..=OFFERED {
            // Never waits, even from a task: the frame is queued or dropped.
            deliveries.push(mic.send_async(audio(seq)).await.unwrap());
        }
        let dropped = OFFERED - CAPACITY as u64;
        assert_eq!(deliveries.iter().filter(|d| **d == Delivery::Dropped).count() as u64, dropped);
        assert_eq!(mic.dropped(), dropped);
        assert_eq!(running.edge_stats("live_speaker").unwrap().dropped, dropped);
        assert_eq!(recorder.value("alicia_edge_frames_dropped_total{edge=live_speaker}"), dropped);

        drop(release);
        drop(mic);
        running.shutdown().await.unwrap();
        // The oldest frames were kept, the newest dropped.
        assert_eq!(seqs_and_flush(&events), ((1..=CAPACITY as u64).collect(), true));
    }

    #[test]
    fn recorded_metrics_use_only_contract_names_and_bounded_labels() {
        let recorder = TestRecorder::global();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (events_tx, _events) = flume::unbounded();
        let mut config = TopologyConfig::new();
        config.source("mic");
        config.stage("labels", TestStage::Pass(Execution::Blocking)).input("mic");
        config.stage("labels_sink", TestStage::sink(events_tx)).input("labels");
        let running = config.build().unwrap().run(runtime.handle()).unwrap();
        running.source("mic").unwrap().send(text(0)).unwrap();
        running.shutdown_blocking().unwrap();

        let keys = recorder.keys();
        assert!(keys.iter().any(|k| k == "alicia_edge_queue_depth{edge=labels}"), "{keys:?}");
        for key in keys {
            let (name, labels) = key.split_once('{').unwrap();
            assert!(METRIC_NAMES.contains(&name), "{key}: not in the contract");
            for label in labels.trim_end_matches('}').split(',').filter(|l| !l.is_empty()) {
                let (label, _) = label.split_once('=').unwrap();
                assert!(matches!(label, "stage" | "edge" | "error_type"), "{key}: unbounded label {label}");
            }
        }
    }

    fn runtime() -> &'static Runtime {
        static RUNTIME: OnceLock<Runtime> = OnceLock::new();
        RUNTIME.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap())
    }

    fn payload() -> impl Strategy<Value = Payload> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64).prop_map(|pcm| { Payload::Audio(pcm.into()) }),
            "[a-z ]{0,12}".prop_map(Payload::Text),
            ("[a-z/]{1,12}", prop::collection::vec(any::<u8>(), 0..16))
                .prop_map(|(topic, body)| Payload::Message { topic, body: body.into() }),
            Just(Payload::EndOfStream),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Any frames through any chain of pass-through stages, with any capacities
        /// and any mix of blocking and async stages, arrive complete and in order.
        #[test]
        fn a_chain_of_pass_through_stages_keeps_every_frame_in_order(
            chain in prop::collection::vec((1usize..4, any::<bool>()), 1..5),
            payloads in prop::collection::vec(payload(), 0..48),
        ) {
            let (events_tx, events) = flume::unbounded();
            let mut config = TopologyConfig::new();
            config.source("mic");
            let mut upstream = "mic".to_owned();
            for (index, (capacity, blocking)) in chain.iter().enumerate() {
                let execution = if *blocking { Execution::Blocking } else { Execution::Async };
                let id = format!("pass{index}");
                config.stage(id.clone(), TestStage::Pass(execution)).input(upstream).capacity(*capacity);
                upstream = id;
            }
            config.stage("sink", TestStage::sink(events_tx)).input(upstream).capacity(1);
            let running = config.build().unwrap().run(runtime().handle()).unwrap();

            let mic = running.source("mic").unwrap();
            for (seq, payload) in payloads.iter().enumerate() {
                let frame = Frame::new(FrameMeta::new("s", "site", seq as u64), payload.clone());
                prop_assert_eq!(mic.send(frame).unwrap(), Delivery::Queued);
            }
            drop(mic);
            running.shutdown_blocking().unwrap();

            let mut received = Vec::new();
            let mut flushed = false;
            for event in events.try_iter() {
                match event {
                    Event::Frame(frame) => received.push((frame.meta.seq, frame.payload)),
                    Event::Flush => flushed = true,
                }
            }
            let expected: Vec<_> = payloads.into_iter().enumerate().map(|(seq, p)| (seq as u64, p)).collect();
            prop_assert_eq!(received, expected);
            prop_assert!(flushed);
        }
    }
}
