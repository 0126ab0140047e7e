//! Time for the breaker: read and slept through a trait, so unit tests drive it by hand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Where a breaker reads the time and how a blocking caller waits.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
    fn sleep(&self, duration: Duration);
}

/// The real clock and `std::thread::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// A clock that moves only when told (or when someone sleeps on it), for tests.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Instant>>,
    slept: Arc<Mutex<Vec<Duration>>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self { now: Arc::new(Mutex::new(Instant::now())), slept: Arc::default() }
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        *self.now.lock() += by;
    }

    /// Every sleep asked of this clock so far, in order.
    pub fn slept(&self) -> Vec<Duration> {
        self.slept.lock().clone()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock()
    }

    fn sleep(&self, duration: Duration) {
        self.slept.lock().push(duration);
        self.advance(duration);
    }
}
