//! [`TokenBucket`]: a rate as a plain value, and [`ClientRate`], the pair of them a
//! connection keeps for messages/s and bytes/s.

use std::time::{Duration, Instant};

/// `amount` tokens every `period`, up to `burst` saved. A plain `Copy` value: no lock, no
/// allocation; the owner (one connection's thread, or a map entry under a lock) updates it.
///
/// The arithmetic is exact integers: the level is kept in units of 1/`period_ns` of a
/// token, so `elapsed_ns × amount` units are added per refill with no rounding, and no
/// sequence of calls can admit more than `burst + amount × elapsed / period` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens per period; 0 means unlimited.
    amount: u64,
    period_ns: u64,
    burst: u64,
    /// Credit, in 1/`period_ns` tokens.
    level: u128,
    /// When `level` was last brought up to date; `None` until first used (full).
    last: Option<Instant>,
}

impl TokenBucket {
    /// A bucket that admits everything.
    pub const fn unlimited() -> Self {
        TokenBucket { amount: 0, period_ns: 0, burst: 0, level: 0, last: None }
    }

    /// `amount` tokens per `period`, holding up to `burst` (0: one period's worth). A zero
    /// amount or period is unlimited. Starts full.
    pub fn new(amount: u64, period: Duration, burst: u64) -> Self {
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        if amount == 0 || period_ns == 0 {
            return Self::unlimited();
        }
        let burst = if burst == 0 { amount } else { burst };
        TokenBucket { amount, period_ns, burst, level: burst as u128 * period_ns as u128, last: None }
    }

    /// `rate` tokens per second, up to `burst` at once (0: one second's worth).
    pub fn per_second(rate: u64, burst: u64) -> Self {
        Self::new(rate, Duration::from_secs(1), burst)
    }

    /// `rate` tokens per minute (the seeds' `max_requests_per_minute`), up to `burst`.
    pub fn per_minute(rate: u64, burst: u64) -> Self {
        Self::new(rate, Duration::from_secs(60), burst)
    }

    pub fn is_unlimited(&self) -> bool {
        self.amount == 0
    }

    /// The most tokens that can ever be taken at once (0 when unlimited).
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Takes `n` tokens if they are there. A `now` older than the last call (clocks read
    /// on different threads) counts as no time passed, never as time running backwards.
    pub fn try_take(&mut self, n: u64, now: Instant) -> bool {
        if self.is_unlimited() {
            return true;
        }
        let (level, at) = self.level_at(now);
        self.level = level;
        self.last = Some(at);
        let need = n as u128 * self.period_ns as u128;
        if need <= level {
            self.level = level - need;
            true
        } else {
            false
        }
    }

    /// How long from `now` until `n` tokens could be taken: zero if they are there now,
    /// `None` if never (`n` is more than the burst).
    pub fn retry_after(&self, n: u64, now: Instant) -> Option<Duration> {
        if self.is_unlimited() {
            return Some(Duration::ZERO);
        }
        if n > self.burst {
            return None;
        }
        let (level, at) = self.level_at(now);
        let need = n as u128 * self.period_ns as u128;
        let ahead = at.saturating_duration_since(now);
        if need <= level {
            return Some(ahead);
        }
        let wait_ns = (need - level).div_ceil(self.amount as u128);
        Some(ahead.saturating_add(Duration::from_nanos(u64::try_from(wait_ns).unwrap_or(u64::MAX))))
    }

    /// True when the bucket is back to its burst: forgetting it then loses nothing, which
    /// is what lets keyed limiters evict it.
    pub fn is_full(&self, now: Instant) -> bool {
        self.is_unlimited() || self.level_at(now).0 >= self.capacity()
    }

    fn capacity(&self) -> u128 {
        self.burst as u128 * self.period_ns as u128
    }

    /// The level refilled up to `now` (or up to the last update, if `now` is older), and
    /// the instant it is valid at.
    fn level_at(&self, now: Instant) -> (u128, Instant) {
        match self.last {
            None => (self.capacity(), now),
            Some(last) if now <= last => (self.level, last),
            Some(last) => {
                let added = (now - last).as_nanos().saturating_mul(self.amount as u128);
                (self.level.saturating_add(added).min(self.capacity()), now)
            }
        }
    }
}

impl Default for TokenBucket {
    fn default() -> Self {
        Self::unlimited()
    }
}

/// Which of a connection's rates a message broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateExceeded {
    Messages,
    Bytes,
}

impl RateExceeded {
    /// A short stable label for metrics and the audit log.
    pub fn as_label(self) -> &'static str {
        match self {
            RateExceeded::Messages => "message_rate",
            RateExceeded::Bytes => "byte_rate",
        }
    }
}

/// One connection's messages/s and bytes/s, kept by the thread that reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientRate {
    pub messages: TokenBucket,
    pub bytes: TokenBucket,
}

impl ClientRate {
    /// Messages and bytes per second with their bursts (0 rate: unlimited; 0 burst: one
    /// second's worth).
    pub fn per_second(messages: u64, message_burst: u64, bytes: u64, byte_burst: u64) -> Self {
        ClientRate {
            messages: TokenBucket::per_second(messages, message_burst),
            bytes: TokenBucket::per_second(bytes, byte_burst),
        }
    }

    /// Admits one message of `len` bytes, or takes nothing from either bucket.
    ///
    /// A message larger than the byte burst would otherwise be refused forever however
    /// slowly it was sent; it is admitted when the byte bucket is full and empties it, so
    /// it costs a full burst and the next bytes wait a full refill. The message size limit,
    /// not this, is what caps one message.
    pub fn admit(&mut self, len: u64, now: Instant) -> Result<(), RateExceeded> {
        let mut messages = self.messages;
        let mut bytes = self.bytes;
        if !messages.try_take(1, now) {
            return Err(RateExceeded::Messages);
        }
        let cost = if bytes.is_unlimited() { len } else { len.min(bytes.burst()) };
        if !bytes.try_take(cost, now) {
            return Err(RateExceeded::Bytes);
        }
        self.messages = messages;
        self.bytes = bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_full_bucket_gives_its_burst_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::per_second(10, 3);
        assert!((0..3).all(|_| bucket.try_take(1, t0)));
        assert!(!bucket.try_take(1, t0));
        assert_eq!(bucket.retry_after(1, t0), Some(100 * MS));
        assert!(!bucket.try_take(1, t0 + 99 * MS));
        assert!(bucket.try_take(1, t0 + 100 * MS));
        // A long idle refills only up to the burst.
        assert!(bucket.is_full(t0 + Duration::from_secs(3600)));
        assert!((0..3).all(|_| bucket.try_take(1, t0 + Duration::from_secs(3600))));
        assert!(!bucket.try_take(1, t0 + Duration::from_secs(3600)));
    }

    #[test]
    fn fractional_rates_per_minute_do_not_drift() {
        let t0 = Instant::now();
        // 7 per minute: one every 8.571428… s, never a whole number of nanoseconds. A burst
        // of 2 keeps the bucket from ever being full between takes, so no credit is capped
        // away and all of it must add up.
        let mut bucket = TokenBucket::per_minute(7, 2);
        let mut admitted = 0;
        for ms in 0..=600_000u32 {
            if bucket.try_take(1, t0 + ms * MS) {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 2 + 70);
    }

    #[test]
    fn zero_rate_is_unlimited_and_zero_burst_is_one_periods_worth() {
        let t0 = Instant::now();
        let mut free = TokenBucket::per_second(0, 5);
        assert!(free.try_take(u64::MAX, t0));
        assert_eq!(free.retry_after(u64::MAX, t0), Some(Duration::ZERO));
        let bucket = TokenBucket::per_second(50, 0);
        assert_eq!(bucket.burst(), 50);
        assert_eq!(bucket.retry_after(51, t0), None);
    }

    #[test]
    fn an_older_now_is_no_time_passing() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::per_second(1, 1);
        assert!(bucket.try_take(1, t0 + Duration::from_secs(10)));
        assert!(!bucket.try_take(1, t0));
        assert_eq!(bucket.retry_after(1, t0), Some(Duration::from_secs(11)));
        assert!(bucket.try_take(1, t0 + Duration::from_secs(11)));
    }

    #[test]
    fn client_rate_takes_from_both_or_neither() {
        let t0 = Instant::now();
        let mut rate = ClientRate::per_second(2, 2, 100, 100);
        assert_eq!(rate.admit(80, t0), Ok(()));
        assert_eq!(rate.admit(80, t0), Err(RateExceeded::Bytes));
        // The refused message took no message token.
        assert_eq!(rate.admit(20, t0), Ok(()));
        assert_eq!(rate.admit(0, t0), Err(RateExceeded::Messages));
        assert_eq!(RateExceeded::Bytes.as_label(), "byte_rate");
    }

    #[test]
    fn a_message_larger_than_the_byte_burst_passes_only_on_a_full_bucket() {
        let t0 = Instant::now();
        let mut rate = ClientRate::per_second(0, 0, 100, 100);
        assert_eq!(rate.admit(10_000, t0), Ok(()));
        assert_eq!(rate.admit(1, t0 + 500 * MS), Ok(()));
        assert_eq!(rate.admit(10_000, t0 + 500 * MS), Err(RateExceeded::Bytes));
        assert_eq!(rate.admit(10_000, t0 + 1500 * MS), Ok(()));
    }

    proptest! {
        /// Whatever the pattern of requests, no window of time [t1, t2] admits more than
        /// burst + rate × (t2 − t1) — from the start, and after any idle stretch.
        #[test]
        fn never_admits_more_than_burst_plus_rate_times_elapsed(
            amount in 1u64..1_000_000,
            period_ms in 1u64..120_000,
            burst in 1u64..10_000,
            steps in proptest::collection::vec((0u64..2_000_000_000, 0u64..12_000), 1..200),
        ) {
            let period = Duration::from_millis(period_ms);
            let mut bucket = TokenBucket::new(amount, period, burst);
            let t0 = Instant::now();
            let mut elapsed_ns: u128 = 0;
            // (time, tokens) of every admission.
            let mut admissions: Vec<(u128, u128)> = Vec::new();
            for (advance_ns, n) in steps {
                elapsed_ns += advance_ns as u128;
                if bucket.try_take(n, t0 + Duration::from_nanos(elapsed_ns as u64)) {
                    admissions.push((elapsed_ns, n as u128));
                }
            }
            for (i, &(start, _)) in admissions.iter().enumerate() {
                let mut admitted = 0;
                for &(end, n) in &admissions[i..] {
                    admitted += n;
                    let allowed = burst as u128 + (end - start) * amount as u128 / period.as_nanos();
                    prop_assert!(admitted <= allowed, "admitted {admitted} > allowed {allowed} in {}ns", end - start);
                }
            }
        }

        /// Waiting what `retry_after` says is always enough, and never more than needed.
        #[test]
        fn retry_after_is_exact(
            amount in 1u64..1_000_000,
            period_ms in 1u64..120_000,
            burst in 1u64..10_000,
            drain in 0u64..10_000,
            n in 1u64..10_000,
        ) {
            let t0 = Instant::now();
            let mut bucket = TokenBucket::new(amount, Duration::from_millis(period_ms), burst);
            bucket.try_take(drain.min(burst), t0);
            match bucket.retry_after(n, t0) {
                None => prop_assert!(n > burst),
                Some(wait) => {
                    if !wait.is_zero() {
                        prop_assert!(!bucket.clone().try_take(n, t0 + wait - Duration::from_nanos(1)));
                    }
                    prop_assert!(bucket.try_take(n, t0 + wait));
                }
            }
        }
    }
}
