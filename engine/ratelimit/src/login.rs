//! [`LoginBackoff`]: failed logins per username, answered with a doubling wait.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::{counter, Counter};
use parking_lot::Mutex;

/// When back-off starts, how it grows, and how many usernames are remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginBackoffConfig {
    /// Consecutive failures allowed before the first wait (a typo or two is not an
    /// attack); 0 is taken as 1.
    pub free_failures: u32,
    /// The first wait; each further failure doubles it.
    pub base: Duration,
    /// The longest wait.
    pub max: Duration,
    /// A username with no failure for this long starts again from zero (never less than
    /// `max`).
    pub forget_after: Duration,
    /// Usernames remembered at most (~100 bytes each); 0 disables back-off.
    pub max_tracked: usize,
}

impl Default for LoginBackoffConfig {
    fn default() -> Self {
        LoginBackoffConfig {
            free_failures: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            forget_after: Duration::from_secs(15 * 60),
            max_tracked: 10_000,
        }
    }
}

/// Names longer than this are remembered by a keyed hash: a client chooses its username,
/// and 64 KiB names must not make the table 64 KiB an entry.
const MAX_STORED_NAME: usize = 64;

/// A cap on `max`: longer is a lockout, which this is not meant to be.
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// After `free_failures` consecutive failed logins for a username, its next login is
/// refused until a wait that starts at `base` and doubles per further failure, up to
/// `max`; a success clears it.
///
/// Keyed by username alone, an attacker can keep one user waiting up to `max` at a time
/// (the price of slowing a guesser spread over many addresses); the cap keeps that short,
/// and [`crate::AttemptLimiter`] bounds how fast any one address can try. When the table
/// is full, idle names go first, then the one whose last failure is oldest: evicting lets
/// a guesser who cycles through `max_tracked` other names reset a target, which costs them
/// that many failed logins per reset, whereas refusing new names would let them lock out
/// everyone.
#[derive(Debug)]
pub struct LoginBackoff {
    config: LoginBackoffConfig,
    users: Mutex<HashMap<UserKey, Failures>>,
    hasher: std::hash::RandomState,
    evicted: AtomicU64,
    evicted_total: Counter,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum UserKey {
    Name(Box<str>),
    Digest(u64),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

impl LoginBackoff {
    pub fn new(mut config: LoginBackoffConfig) -> Self {
        config.free_failures = config.free_failures.max(1);
        // Bounded so `now + wait` is always a representable instant.
        config.max = config.max.min(LONGEST_WAIT);
        config.base = config.base.min(config.max);
        config.forget_after = config.forget_after.max(config.max);
        LoginBackoff {
            config,
            users: Mutex::new(HashMap::new()),
            hasher: std::hash::RandomState::new(),
            evicted: AtomicU64::new(0),
            evicted_total: counter!("alicia_ratelimit_logins_evicted_total"),
        }
    }

    /// Before checking a password: `Err(retry_after)` while `user` is in back-off. Asked
    /// first so a guesser in back-off costs no password hashing either.
    pub fn check(&self, user: &str, now: Instant) -> Result<(), Duration> {
        let key = self.key(user);
        let users = self.users.lock();
        match users.get(&key).and_then(|f| f.blocked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// A failed login for `user`; returns the wait it now has to serve, if any.
    pub fn failed(&self, user: &str, now: Instant) -> Option<Duration> {
        if self.config.max_tracked == 0 {
            return None;
        }
        let key = self.key(user);
        let mut users = self.users.lock();
        if !users.contains_key(&key) && users.len() >= self.config.max_tracked {
            let evicted = self.make_room(&mut users, now);
            self.evicted.fetch_add(evicted, Ordering::Relaxed);
            self.evicted_total.increment(evicted);
        }
        let entry = users.entry(key).or_insert(Failures { count: 0, last: now, blocked_until: None });
        if self.is_stale(entry, now) {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = entry.last.max(now);
        let wait = self.wait_after(entry.count)?;
        entry.blocked_until = Some(now + wait);
        Some(wait)
    }

    /// A successful login for `user`: its failures are forgotten.
    pub fn succeeded(&self, user: &str) {
        let key = self.key(user);
        self.users.lock().remove(&key);
    }

    /// Usernames currently remembered.
    pub fn tracked(&self) -> usize {
        self.users.lock().len()
    }

    /// Usernames forgotten while still failing, to make room for new ones.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn key(&self, user: &str) -> UserKey {
        if user.len() <= MAX_STORED_NAME {
            UserKey::Name(user.into())
        } else {
            UserKey::Digest(self.hasher.hash_one(user))
        }
    }

    fn is_stale(&self, failures: &Failures, now: Instant) -> bool {
        now.saturating_duration_since(failures.last) >= self.config.forget_after
    }

    /// `None` below the threshold; then base, 2×base, 4×base … up to max.
    fn wait_after(&self, count: u32) -> Option<Duration> {
        let doublings = count.checked_sub(self.config.free_failures)?;
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        Some(self.config.base.saturating_mul(factor).min(self.config.max))
    }

    /// Forgets stale names, or else the one whose last failure is oldest (O(n): this
    /// runs only when the table is full, and a login already costs a password hash).
    /// Returns how many still-counting names went.
    fn make_room(&self, users: &mut HashMap<UserKey, Failures>, now: Instant) -> u64 {
        users.retain(|_, f| !self.is_stale(f, now));
        if users.len() < self.config.max_tracked {
            return 0;
        }
        let oldest = users.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| k.clone());
        match oldest {
            Some(key) => {
                users.remove(&key);
                1
            }
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn backoff(max_tracked: usize) -> LoginBackoff {
        LoginBackoff::new(LoginBackoffConfig {
            free_failures: 3,
            base: SEC,
            max: 8 * SEC,
            forget_after: 60 * SEC,
            max_tracked,
        })
    }

    #[test]
    fn waits_start_after_the_free_failures_and_double_up_to_max() {
        let t0 = Instant::now();
        let b = backoff(100);
        let mut t = t0;
        let mut waits = Vec::new();
        for _ in 0..7 {
            assert_eq!(b.check("bob", t), Ok(()));
            waits.push(b.failed("bob", t));
            t += waits.last().unwrap().unwrap_or(Duration::ZERO);
        }
        assert_eq!(waits, [None, None, Some(SEC), Some(2 * SEC), Some(4 * SEC), Some(8 * SEC), Some(8 * SEC)]);
        // In back-off: refused with the time left.
        assert_eq!(b.check("bob", t - 3 * SEC), Err(3 * SEC));
        assert_eq!(b.check("alice", t - 3 * SEC), Ok(()));
    }

    #[test]
    fn a_success_resets() {
        let t0 = Instant::now();
        let b = backoff(100);
        for _ in 0..3 {
            b.failed("bob", t0);
        }
        assert!(b.check("bob", t0).is_err());
        b.succeeded("bob");
        assert_eq!(b.check("bob", t0), Ok(()));
        assert_eq!(b.failed("bob", t0), None);
        assert_eq!(b.tracked(), 1);
    }

    #[test]
    fn failures_long_ago_are_forgotten() {
        let t0 = Instant::now();
        let b = backoff(100);
        b.failed("bob", t0);
        b.failed("bob", t0);
        assert_eq!(b.failed("bob", t0 + 60 * SEC), None, "the count started again");
        assert_eq!(b.failed("bob", t0 + 61 * SEC), None);
        assert_eq!(b.failed("bob", t0 + 62 * SEC), Some(SEC));
    }

    #[test]
    fn long_names_are_tracked_by_hash_and_told_apart() {
        let t0 = Instant::now();
        let b = backoff(100);
        let long_a = format!("{}a", "x".repeat(70_000));
        let long_b = format!("{}b", "x".repeat(70_000));
        for _ in 0..3 {
            b.failed(&long_a, t0);
        }
        assert!(b.check(&long_a, t0).is_err());
        assert_eq!(b.check(&long_b, t0), Ok(()));
        assert!(b.users.lock().keys().all(|k| matches!(k, UserKey::Digest(_))));
    }

    #[test]
    fn a_full_table_evicts_idle_names_first_then_the_oldest() {
        let t0 = Instant::now();
        let b = backoff(3);
        b.failed("idle", t0);
        b.failed("old", t0 + 30 * SEC);
        b.failed("new", t0 + 40 * SEC);
        // `idle` is 60 s quiet: forgotten without counting as an eviction.
        b.failed("fourth", t0 + 60 * SEC);
        assert_eq!((b.tracked(), b.evicted()), (3, 0));
        // Nothing idle: the oldest still-counting name goes.
        b.failed("fifth", t0 + 61 * SEC);
        assert_eq!((b.tracked(), b.evicted()), (3, 1));
        let users = b.users.lock();
        assert!(!users.contains_key(&UserKey::Name("old".into())));
        assert!(users.contains_key(&UserKey::Name("new".into())));
    }

    #[test]
    fn zero_tracking_disables_backoff() {
        let t0 = Instant::now();
        let b = backoff(0);
        assert!((0..10).all(|_| b.failed("bob", t0).is_none()));
        assert_eq!(b.check("bob", t0), Ok(()));
    }

    #[test]
    fn huge_counts_and_durations_do_not_overflow() {
        let t0 = Instant::now();
        let b = LoginBackoff::new(LoginBackoffConfig {
            free_failures: 1,
            base: Duration::MAX,
            max: Duration::MAX,
            forget_after: Duration::MAX,
            max_tracked: 1,
        });
        for _ in 0..100 {
            assert_eq!(b.failed("bob", t0), Some(LONGEST_WAIT));
        }
        assert_eq!(b.check("bob", t0), Err(LONGEST_WAIT));
    }
}
