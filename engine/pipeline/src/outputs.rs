//! The named outputs a stage writes to.
//!
//! A stage pushes frames to a port by name; the runtime hands each frame to every edge
//! connected to that port (fan-out clones the frame: cheap when its payload shares
//! its buffers, as the voice's audio `Bytes` do). How and when delivery
//! happens depends on where the stage runs:
//!
//! - blocking stages deliver on `push`, on their own thread, so a TTS stage's first
//!   sentence reaches the speaker while the second is still being synthesised;
//! - async stages queue on `push` and the runtime delivers with `send_async` after
//!   `process` returns, because `process` is sync and must not block a worker.

// Send errors hand the frame back, as flume's and std's channel errors do; boxing it
// would allocate on every full edge.
#![allow(clippy::result_large_err)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::Counter;

use crate::edge::{EdgeSender, FastPath, SendError};
use crate::frame::{Domain, Frame};
use crate::stage::StageError;
use crate::telemetry::{StageCounters, StageMetrics};

/// One named output and the edges it feeds.
pub(crate) struct OutputPort<D: Domain> {
    pub(crate) name: &'static str,
    pub(crate) edges: Vec<EdgeSender<D>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeliveryMode {
    Immediate,
    Deferred,
}

/// Handed to [`crate::Stage::process`] and [`crate::Stage::flush`].
pub struct Outputs<D: Domain> {
    ports: Vec<OutputPort<D>>,
    mode: DeliveryMode,
    // Deferred mode: frames pushed during this call, with their port index.
    pending: Vec<(usize, Frame<D>)>,
    // Set once a downstream stage has gone: the pipeline is being torn down.
    closed: bool,
    // Immediate mode: time spent waiting for room during this call, so the process
    // histogram measures the stage and not its downstream.
    blocked: Duration,
    sent_metric: Counter,
    counters: Arc<StageCounters>,
}

impl<D: Domain> std::fmt::Debug for Outputs<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field("ports", &self.port_names().collect::<Vec<_>>())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl<D: Domain> Outputs<D> {
    pub(crate) fn new(
        stage: &str,
        ports: Vec<OutputPort<D>>,
        mode: DeliveryMode,
        counters: Arc<StageCounters>,
    ) -> Self {
        Self {
            ports,
            mode,
            pending: Vec::new(),
            closed: false,
            blocked: Duration::ZERO,
            sent_metric: StageMetrics::sent(stage),
            counters,
        }
    }

    /// Outputs connected to nothing, for unit-testing a stage's `process` without a
    /// topology: pushed frames stay here until [`take_pushed`](Self::take_pushed).
    pub fn detached(ports: &'static [&'static str]) -> Self {
        let ports = ports.iter().map(|name| OutputPort { name, edges: Vec::new() }).collect();
        Self {
            ports,
            mode: DeliveryMode::Deferred,
            pending: Vec::new(),
            closed: false,
            blocked: Duration::ZERO,
            sent_metric: Counter::noop(),
            counters: Arc::default(),
        }
    }

    /// Frames pushed and not yet delivered, with their port; only detached outputs
    /// keep any between calls.
    pub fn take_pushed(&mut self) -> Vec<(&'static str, Frame<D>)> {
        let ports = &self.ports;
        self.pending.drain(..).map(|(port, frame)| (ports[port].name, frame)).collect()
    }

    pub fn port_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.ports.iter().map(|port| port.name)
    }

    /// Sends `frame` on the stage's first output.
    pub fn push(&mut self, frame: Frame<D>) -> Result<(), StageError> {
        if self.ports.is_empty() {
            return Err(StageError::frame("no_output", "a sink stage pushed a frame"));
        }
        self.push_index(0, frame)
    }

    /// Sends `frame` on the output named `port`.
    pub fn push_to(&mut self, port: &str, frame: Frame<D>) -> Result<(), StageError> {
        match self.ports.iter().position(|known| known.name == port) {
            Some(index) => self.push_index(index, frame),
            None => Err(StageError::frame(
                "unknown_output",
                format!("no output named {port:?}; declare it in StageHints::outputs"),
            )),
        }
    }

    fn push_index(&mut self, port: usize, frame: Frame<D>) -> Result<(), StageError> {
        if self.closed {
            return Err(output_closed::<D>(None));
        }
        match self.mode {
            DeliveryMode::Deferred => {
                self.pending.push((port, frame));
                Ok(())
            }
            DeliveryMode::Immediate => self.deliver_blocking(port, frame),
        }
    }

    fn deliver_blocking(&mut self, port: usize, frame: Frame<D>) -> Result<(), StageError> {
        let sent = send_all_blocking(&self.ports[port].edges, frame, &mut self.blocked);
        self.settle(sent)
    }

    /// Async stages: delivers what `process` or `flush` pushed, in order.
    pub(crate) async fn deliver_pending(&mut self) -> Result<(), StageError> {
        // Taken out so `self` stays borrowable; put back to keep its allocation.
        let mut pending = std::mem::take(&mut self.pending);
        let mut outcome = Ok(());
        for (port, frame) in pending.drain(..) {
            let sent = send_all_async(&self.ports[port].edges, frame).await;
            outcome = self.settle(sent);
            if outcome.is_err() {
                break;
            }
        }
        pending.clear();
        self.pending = pending;
        outcome
    }

    /// Counts a frame handed to every edge of its port, or records that the pipeline
    /// is coming down.
    fn settle(&mut self, sent: Result<(), SendError<D>>) -> Result<(), StageError> {
        match sent {
            Ok(()) => {
                self.sent_metric.increment(1);
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(err) => {
                self.closed = true;
                Err(output_closed(Some(err)))
            }
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Time spent blocked on full edges since the last call.
    pub(crate) fn take_blocked(&mut self) -> Duration {
        std::mem::take(&mut self.blocked)
    }

    /// Drops queued frames after a failed `process`: they belong to the failed
    /// attempt only if the error is fatal.
    pub(crate) fn discard_pending(&mut self) {
        self.pending.clear();
    }
}

fn output_closed<D: Domain>(cause: Option<SendError<D>>) -> StageError {
    match cause {
        Some(err) => StageError::fatal("output_closed", err),
        None => StageError::fatal("output_closed", "a downstream stage has stopped"),
    }
}

/// Fan-out clones the frame for all but the last edge, which gets the original.
fn send_all_blocking<D: Domain>(
    edges: &[EdgeSender<D>],
    frame: Frame<D>,
    blocked: &mut Duration,
) -> Result<(), SendError<D>> {
    let Some((last, rest)) = edges.split_last() else {
        return Ok(());
    };
    for edge in rest {
        send_blocking(edge, frame.clone(), blocked)?;
    }
    send_blocking(last, frame, blocked)
}

async fn send_all_async<D: Domain>(edges: &[EdgeSender<D>], frame: Frame<D>) -> Result<(), SendError<D>> {
    let Some((last, rest)) = edges.split_last() else {
        return Ok(());
    };
    for edge in rest {
        edge.send_async(frame.clone()).await?;
    }
    last.send_async(frame).await.map(drop)
}

fn send_blocking<D: Domain>(edge: &EdgeSender<D>, frame: Frame<D>, blocked: &mut Duration) -> Result<(), SendError<D>> {
    match edge.fast_path(frame) {
        FastPath::Done(_) => Ok(()),
        FastPath::MustWait(frame) => {
            // Only the slow path pays for a clock read.
            let start = Instant::now();
            let sent = edge.send(frame).map(drop);
            *blocked += start.elapsed();
            sent
        }
        FastPath::Closed(frame) => Err(edge.closed(frame)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::text;

    #[test]
    fn detached_outputs_let_a_stage_be_tested_alone() {
        let mut out = Outputs::detached(&["command", "tts"]);
        out.push(text(0)).unwrap();
        out.push_to("tts", text(1)).unwrap();
        let err = out.push_to("speaker", text(2)).unwrap_err();
        assert_eq!((err.error_type(), err.is_fatal()), ("unknown_output", false));
        let pushed: Vec<_> = out.take_pushed().into_iter().map(|(port, frame)| (port, frame.meta.seq)).collect();
        assert_eq!(pushed, [("command", 0), ("tts", 1)]);
        assert!(out.take_pushed().is_empty());
    }

    #[test]
    fn a_sink_pushing_is_a_per_frame_error() {
        let mut out = Outputs::detached(&[]);
        let err = out.push(text(0)).unwrap_err();
        assert_eq!((err.error_type(), err.is_fatal()), ("no_output", false));
    }
}
