//! The stage runtime of the Alicia bus: stages that pass [`Frame`]s over bounded
//! edges, with one loop around every stage so each is measured, fails and shuts down
//! the same way. The runtime knows nothing of what flows: a [`Domain`] names the
//! payload and what its frames' meta carries (the voice's is `alicia-speech`).
//!
//! # Layout
//!
//! | file | what lives there |
//! |---|---|
//! | `frame.rs` | [`Frame`], [`FrameMeta`] (session, site, seq, ingress, the domain's meta), [`Domain`] |
//! | `stage.rs` | the [`Stage`] trait, [`StageHints`], [`StageError`] and how errors are reported |
//! | `edge.rs` | bounded edges on flume: [`EdgeSender`], [`WhenFull`], drop counting |
//! | `outputs.rs` | [`Outputs`]: a stage's named output ports and their fan-out |
//! | `topology.rs` | [`TopologyConfig`] (the builder) and the sink-first wiring |
//! | `validate.rs` | checks a declaration and reports every [`ValidationError`] at once |
//! | `stage_loop.rs` | the loop run around each stage, blocking thread or tokio task |
//! | `running.rs` | [`RunningTopology`]: sources, stats, shutdown and abort |
//! | `kill.rs` | [`KillSwitch`], the one abort for a pipeline |
//! | `telemetry.rs` | the metric names and per-stage handles |
//!
//! # Use
//!
//! ```
//! use std::sync::mpsc;
//! use alicia_pipeline::{Domain, Frame, FrameMeta, Outputs, Stage, StageError, StageHints, TopologyConfig};
//!
//! /// Frames of text, with nothing added to their meta.
//! #[derive(Clone, Debug)]
//! struct Texts;
//!
//! impl Domain for Texts {
//!     type Payload = String;
//!     type Meta = ();
//! }
//!
//! /// Upper-cases every text.
//! struct Shout;
//!
//! impl Stage<Texts> for Shout {
//!     fn name(&self) -> &'static str {
//!         "shout"
//!     }
//!
//!     fn hints(&self) -> StageHints {
//!         StageHints::asynchronous(8)
//!     }
//!
//!     fn process(&mut self, frame: Frame<Texts>, out: &mut Outputs<Texts>) -> Result<(), StageError> {
//!         let loud = frame.derive(frame.payload.to_uppercase());
//!         out.push(loud)
//!     }
//! }
//!
//! /// Hands every text it reads to the test.
//! struct Collect(mpsc::Sender<String>);
//!
//! impl Stage<Texts> for Collect {
//!     fn name(&self) -> &'static str {
//!         "collect"
//!     }
//!
//!     fn hints(&self) -> StageHints {
//!         StageHints::blocking(8).sink()
//!     }
//!
//!     fn process(&mut self, frame: Frame<Texts>, _out: &mut Outputs<Texts>) -> Result<(), StageError> {
//!         let _ = self.0.send(frame.payload);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (seen, texts) = mpsc::channel();
//! let mut config = TopologyConfig::new();
//! config.source("text");
//! config.stage("shout", Shout).input("text");
//! config.stage("collect", Collect(seen)).input("shout");
//!
//! let running = config.build()?.run(&tokio::runtime::Handle::current())?;
//! let text_in = running.source("text").expect("declared above");
//! text_in.send_async(Frame::new(FrameMeta::new("s1", "kitchen", 0), "lights on".to_string())).await?;
//! drop(text_in);
//! running.shutdown().await?;
//! assert_eq!(texts.recv()?, "LIGHTS ON");
//! # Ok(())
//! # }
//! ```

mod edge;
mod frame;
mod kill;
mod outputs;
mod running;
mod stage;
mod stage_loop;
mod telemetry;
mod topology;
mod validate;

#[cfg(test)]
mod testing;

pub use edge::{Delivery, EdgeSender, EdgeStats, SendError, TrySendError, WhenFull};
pub use frame::{Domain, Frame, FrameMeta, SessionId, SiteId};
pub use kill::KillSwitch;
pub use outputs::Outputs;
pub use running::{PipelineError, RunningTopology};
pub use stage::{BoxError, ErrorSink, Execution, Stage, StageError, StageErrorReport, StageHints, DEFAULT_OUTPUT};
pub use telemetry::{describe_metrics, StageStats, METRIC_NAMES};
pub use topology::{StageConfig, Topology, TopologyConfig};
pub use validate::{ValidationError, ValidationErrors};
