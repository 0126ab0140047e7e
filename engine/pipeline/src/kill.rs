//! The one switch that aborts a running pipeline.
//!
//! Graceful shutdown needs no switch (closing the sources drains the pipeline);
//! this is for "stop now": a fatal stage error, a panic, or the operator.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Cheap to clone; every clone trips the same switch. Tripping is permanent, and the
/// first failure that tripped it is kept as its cause.
#[derive(Clone, Debug)]
pub struct KillSwitch {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tripped: AtomicBool,
    // Nothing is ever sent: dropping this sender disconnects `signal`, which wakes
    // every waiter at once, whether it waits from a thread or a task.
    trigger: Mutex<Option<flume::Sender<Infallible>>>,
    signal: flume::Receiver<Infallible>,
    cause: Mutex<Option<String>>,
}

impl Default for KillSwitch {
    fn default() -> Self {
        Self::new()
    }
}

impl KillSwitch {
    pub fn new() -> Self {
        let (trigger, signal) = flume::bounded(1);
        let inner = Inner {
            tripped: AtomicBool::new(false),
            trigger: Mutex::new(Some(trigger)),
            signal,
            cause: Mutex::new(None),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Stops every stage at its next frame boundary. Idempotent.
    pub fn trip(&self) {
        if !self.inner.tripped.swap(true, Ordering::AcqRel) {
            // A poisoned lock only means another thread panicked mid-trip; the sender
            // inside is still there to drop.
            let mut trigger = self.inner.trigger.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            trigger.take();
        }
    }

    /// Trips the switch for a failure; the first failure is kept as the cause.
    pub fn trip_because(&self, cause: impl Into<String>) {
        {
            let mut kept = self.inner.cause.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            kept.get_or_insert_with(|| cause.into());
        }
        self.trip();
    }

    /// Why a failure tripped the switch; `None` if it is untripped or was only aborted.
    pub fn cause(&self) -> Option<String> {
        self.inner.cause.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn is_tripped(&self) -> bool {
        self.inner.tripped.load(Ordering::Acquire)
    }

    /// Resolves once the switch is tripped.
    pub async fn tripped(&self) {
        let _ = self.inner.signal.recv_async().await;
    }

    /// The channel that disconnects when tripped, for `flume::Selector`.
    pub(crate) fn signal(&self) -> &flume::Receiver<Infallible> {
        &self.inner.signal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tripping_wakes_a_blocked_thread_and_is_idempotent() {
        let kill = KillSwitch::new();
        let waiter = {
            let kill = kill.clone();
            std::thread::spawn(move || kill.signal().recv().is_err())
        };
        assert!(!kill.is_tripped());
        kill.trip();
        kill.trip();
        assert!(kill.is_tripped());
        assert!(waiter.join().unwrap());
        assert_eq!(kill.cause(), None, "an abort has no cause");
    }

    #[test]
    fn the_first_failure_is_the_cause() {
        let kill = KillSwitch::new();
        kill.trip_because("stage stt panicked: boom");
        kill.trip_because("stage tts failed: later");
        assert!(kill.is_tripped());
        assert_eq!(kill.cause().as_deref(), Some("stage stt panicked: boom"));
    }

    #[tokio::test]
    async fn tripping_wakes_a_task() {
        let kill = KillSwitch::new();
        let waiter = tokio::spawn({
            let kill = kill.clone();
            async move { kill.tripped().await }
        });
        kill.trip();
        waiter.await.unwrap();
    }
}
