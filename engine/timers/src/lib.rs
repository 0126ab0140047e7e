//! The engine's timers. A timer is set by voice ("set a pizza timer for 10 minutes")
//! or by any client, as a command on `alicia/voice/timer/command`; it is kept in the
//! durable store, so it survives a restart, and when it is due the engine says so on
//! the site's speaker through `alicia/voice/tts/request`. The matcher reads the running
//! timers ([`TimerBook`] implements [`alicia_stage_intent::RunningTimers`]) to answer
//! "how much time is left?".
//!
//! # Layout
//!
//! | file | what lives there |
//! |---|---|
//! | `book.rs` | [`TimerBook`]: the running timers, kept in the store; set, cancel, pause, resume, due |
//! | `service.rs` | [`TimerService`]: the commands in, the events and the spoken rings out |
//!
//! # On the bus
//!
//! - in: `alicia/voice/timer/command`, an envelope whose `data` is
//!   `{"action": "set_timer", "device_id": SPEAKER, "value": SECONDS, "name": NAME?}` or
//!   `{"action": "cancel_timer" | "pause_timer" | "resume_timer", "device_id": SPEAKER,
//!   "name": NAME?}` (without a name: every timer of the site), with the site in
//!   `data.site_id` or in the metadata (`site_id`) as the voice sends it.
//! - out: `alicia/voice/timer/event` (`started`, `cancelled`, `paused`, `resumed`,
//!   `finished`, each with the timer: `remaining_ms`, and `paused` while it is), `alicia/voice/tts/request` when one rings, `alicia/voice/timer/error` for a
//!   command that cannot be carried out.

mod book;
mod service;

pub use book::{Timer, TimerBook, MAX_TIMERS, MAX_TIMER_SECONDS};
pub use service::{TimerService, TIMER_ERROR_TOPIC, TIMER_EVENT_TOPIC};
