//! End of speech for the voice pipeline: an energy detector per session that forwards
//! an utterance's audio frames untouched and closes the utterance with an end of
//! stream once the speaker has been quiet for the hangover.
//!
//! Each session's audio is cut into fixed windows (20 ms); a window is speech when its
//! RMS level (dBFS) is at least `threshold_db` above the session's noise floor, a low
//! percentile of its recent window levels. Speech that adds up to `min_speech_ms` starts
//! the utterance, which goes downstream with `pre_roll_ms` of the audio before it;
//! `hangover_ms` of silence, the client's stop or `max_utterance_ms` ends it. While a
//! session waits for speech the stage holds only its pre-roll, as `Bytes` handles on
//! the frames that came in: ten minutes of silence cost no more than 200 ms.
//!
//! # Layout
//!
//! | file | what lives there |
//! |---|---|
//! | `config.rs` | [`VadConfig`], the builder: thresholds, hangover, pre-roll, limits |
//! | `stage.rs` | [`VadStage`]: the [`alicia_pipeline::Stage`], sessions, stop, eviction, flush |
//! | `session.rs` | one session's state machine: waiting with a pre-roll, speaking, ended |
//! | `level.rs` | fixed windows over any frame sizes, dBFS, the adaptive noise floor |
//! | `error.rs` | [`VadError`] and its stable `error_type` labels |

mod config;
mod error;
mod level;
mod session;
mod stage;

pub use config::{VadConfig, FORMAT};
pub use error::VadError;
pub use stage::{VadStage, VadStats};
