//! The voice's two components under supervision: `voice-pipeline` (the stages and the
//! bus tasks around them) and `wyoming` (the Wyoming listener). Each runs inside a
//! task that waits for its death (a stage thread that panics or fails, a task that
//! ends; the accept loop that ends), reports it down with the cause, rebuilds it (the
//! pipeline on the models already loaded, the listener on the same address) and
//! reports it up. Neither holds client state the engine cannot rebuild: a session in
//! flight is lost with the pipeline, as if its satellite had been cut off.
//!
//! New `[voice]` settings (a config update, SIGHUP) rebuild the pipeline the same way,
//! on purpose: the running one stops taking audio and drains, then one with the new
//! settings takes its place on the models already loaded (never two on the bus at
//! once). A request being spoken at that moment is lost, as with a failure; the
//! Wyoming listener is not touched.
//!
//! With the `fault-injection` feature (tests only) [`Voice::inject_fault`] kills
//! either on purpose; nothing a client sends can.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alicia_broker::BusHandle;
use alicia_supervisor::Component;
use alicia_voice_bus::{Transcriber, VoiceModels, VoiceService, VoiceSettings};
use alicia_wyoming::{SpeechBackend, WyomingConfig, WyomingServer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Before a restart. Doubled each time a component dies soon after its last start, so
/// a component that cannot stay up does not spin.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Up this long, a component's next death is treated as a first one.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// The running voice: both components, each in its supervising task.
pub struct Voice {
    wyoming_addr: SocketAddr,
    stop: CancellationToken,
    pipeline: JoinHandle<()>,
    wyoming: JoinHandle<()>,
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    faults: Faults,
}

impl Voice {
    pub(crate) fn new(
        pipeline: Supervised<VoiceService>,
        wyoming: Supervised<WyomingServer>,
        rebuild: PipelineParts,
        listener: ListenerParts,
    ) -> Voice {
        let stop = CancellationToken::new();
        let faults = Faults::default();
        let wyoming_addr = wyoming.running.addr();
        let pipeline = tokio::spawn(supervise_pipeline(pipeline, rebuild, faults.clone(), stop.clone()));
        let wyoming = tokio::spawn(supervise_wyoming(wyoming, listener, faults.clone(), stop.clone()));
        Voice { wyoming_addr, stop, pipeline, wyoming, faults }
    }

    /// Where the Wyoming server listens (the same address across restarts).
    pub fn wyoming_addr(&self) -> SocketAddr {
        self.wyoming_addr
    }

    /// Kills `component` (`voice-pipeline` or `wyoming`) as a bug would; false for
    /// another name. For tests of the supervision.
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&self, component: &str) -> bool {
        match component {
            PIPELINE => self.faults.pipeline.notify_one(),
            WYOMING => self.faults.wyoming.notify_one(),
            _ => return false,
        }
        true
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.wyoming.await;
        let _ = self.pipeline.await;
    }
}

pub(crate) const PIPELINE: &str = "voice-pipeline";
pub(crate) const WYOMING: &str = "wyoming";

/// A running part and its handle on the supervisor.
pub(crate) struct Supervised<T> {
    pub running: T,
    pub component: Component,
}

/// What rebuilding the pipeline takes.
pub(crate) struct PipelineParts {
    /// The settings to run with; a new value rebuilds the pipeline with it.
    pub settings: tokio::sync::watch::Receiver<VoiceSettings>,
    pub models: VoiceModels,
    pub bus: BusHandle,
    pub transcriber: Transcriber,
}

/// What rebinding the listener takes.
pub(crate) struct ListenerParts {
    pub backend: Arc<dyn SpeechBackend>,
    pub config: WyomingConfig,
}

/// Fault requests from [`Voice::inject_fault`]; never fire without the feature.
#[derive(Clone, Default)]
struct Faults {
    #[cfg(feature = "fault-injection")]
    pipeline: Arc<tokio::sync::Notify>,
    #[cfg(feature = "fault-injection")]
    wyoming: Arc<tokio::sync::Notify>,
}

impl Faults {
    async fn for_pipeline(&self) {
        #[cfg(feature = "fault-injection")]
        self.pipeline.notified().await;
        #[cfg(not(feature = "fault-injection"))]
        std::future::pending::<()>().await;
    }

    async fn for_wyoming(&self) {
        #[cfg(feature = "fault-injection")]
        self.wyoming.notified().await;
        #[cfg(not(feature = "fault-injection"))]
        std::future::pending::<()>().await;
    }
}

/// The wait before the next restart of something that was started at `started`.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self { next: FIRST_BACKOFF }
    }

    /// The delay for a death now, of a component started at `started`.
    fn after_death(&mut self, started: Instant) -> Duration {
        if started.elapsed() >= STABLE_AFTER {
            self.next = FIRST_BACKOFF;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        delay
    }
}

async fn supervise_pipeline(
    pipeline: Supervised<VoiceService>,
    mut parts: PipelineParts,
    faults: Faults,
    stop: CancellationToken,
) {
    let Supervised { mut running, component } = pipeline;
    let (mut backoff, mut started) = (Backoff::new(), Instant::now());
    let mut settings_open = true;
    loop {
        let died = tokio::select! {
            cause = running.died() => Some(cause),
            changed = parts.settings.changed(), if settings_open => {
                // Closed only when the engine lets go of it: nothing more will come.
                settings_open = changed.is_ok();
                if !settings_open {
                    continue;
                }
                None
            }
            () = faults.for_pipeline() => {
                #[cfg(feature = "fault-injection")]
                running.inject_fault().await;
                continue;
            }
            () = stop.cancelled() => return running.shutdown().await,
        };
        let (changed_settings, mut down) = (died.is_none(), died.is_some());
        let mut delay = match died {
            Some(cause) => {
                component.down(cause);
                let delay = backoff.after_death(started);
                running.abandon().await;
                delay
            }
            None => {
                running.shutdown().await;
                Duration::ZERO
            }
        };
        // A dead pipeline is rebuilt with the latest settings too.
        let settings = parts.settings.borrow_and_update().clone();
        running = loop {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => return,
            }
            let transcriber = Arc::clone(&parts.transcriber);
            match VoiceService::start(&settings, &parts.models, &parts.bus, transcriber).await {
                Ok(service) => break service,
                Err(e) => {
                    let cause = format!("the voice pipeline could not be rebuilt: {e:#}");
                    tracing::error!(error = cause, "trying again");
                    if !down {
                        component.down(cause);
                        down = true;
                    }
                    delay = backoff.after_death(Instant::now());
                }
            }
        };
        record_settings(&settings);
        started = Instant::now();
        if changed_settings {
            tracing::info!("voice pipeline rebuilt with new settings");
        }
        if down {
            component.up();
        }
    }
}

/// The VAD's silences of the pipeline now running, by kind (`hangover`, `unfinished`,
/// `pause`): what a settings change put in force, once the pipeline is rebuilt.
pub(crate) fn record_settings(settings: &VoiceSettings) {
    for (kind, ms) in [
        ("hangover", settings.vad.hangover_ms),
        ("unfinished", settings.vad.unfinished_hangover_ms),
        ("pause", settings.vad.pause_ms),
    ] {
        metrics::gauge!(VAD_SILENCE_SECONDS, "kind" => kind).set(f64::from(ms) / 1000.0);
    }
}

/// Gauge: the running pipeline's VAD silences, in seconds.
pub(crate) const VAD_SILENCE_SECONDS: &str = "alicia_voice_vad_silence_seconds";

async fn supervise_wyoming(
    mut wyoming: Supervised<WyomingServer>,
    parts: ListenerParts,
    faults: Faults,
    stop: CancellationToken,
) {
    let addr = wyoming.running.addr();
    let (mut backoff, mut started) = (Backoff::new(), Instant::now());
    loop {
        let cause = tokio::select! {
            cause = wyoming.running.stopped() => cause,
            () = faults.for_wyoming() => {
                #[cfg(feature = "fault-injection")]
                wyoming.running.inject_fault();
                continue;
            }
            () = stop.cancelled() => return wyoming.running.shutdown().await,
        };
        wyoming.component.down(cause);
        let mut delay = backoff.after_death(started);
        wyoming.running = loop {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => return,
            }
            match WyomingServer::bind(addr, Arc::clone(&parts.backend), parts.config.clone()).await {
                Ok(server) => break server,
                Err(e) => {
                    tracing::error!(error = %e, "the wyoming listener could not be rebound; trying again");
                    delay = backoff.after_death(Instant::now());
                }
            }
        };
        started = Instant::now();
        wyoming.component.up();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_that_cannot_stay_up_waits_longer_each_time() {
        let mut backoff = Backoff::new();
        let just_now = Instant::now();
        let delays: Vec<Duration> = (0..10).map(|_| backoff.after_death(just_now)).collect();
        assert_eq!(delays[..3], [FIRST_BACKOFF, FIRST_BACKOFF * 2, FIRST_BACKOFF * 4]);
        assert_eq!(*delays.last().unwrap(), MAX_BACKOFF);
        let long_ago = Instant::now().checked_sub(STABLE_AFTER).unwrap();
        assert_eq!(backoff.after_death(long_ago), FIRST_BACKOFF, "a stable component starts over");
    }
}
