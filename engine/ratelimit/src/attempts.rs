//! [`AttemptLimiter`]: connection attempts per source address, in bounded memory.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::{counter, Counter};
use parking_lot::Mutex;

use crate::TokenBucket;

/// How many attempts an address gets, and how many addresses are remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptLimiterConfig {
    /// Attempts per minute per address; 0 is unlimited.
    pub per_minute: u32,
    /// Attempts an idle address may make at once; 0 means `per_minute`.
    pub burst: u32,
    /// Addresses remembered at most (~100 bytes each); 0 remembers none, i.e. no limit.
    pub max_tracked: usize,
    /// Loopback (127.0.0.0/8, ::1) is never limited: in-house tools and health checks.
    pub exempt_loopback: bool,
    /// IPv6 sources are grouped by this prefix (64: one household or host), because one
    /// client can hold a whole /64 and would otherwise have 2^64 budgets. 128 disables it.
    pub ipv6_prefix_len: u8,
}

impl Default for AttemptLimiterConfig {
    fn default() -> Self {
        AttemptLimiterConfig {
            per_minute: 60,
            burst: 0,
            max_tracked: 10_000,
            exempt_loopback: true,
            ipv6_prefix_len: 64,
        }
    }
}

/// Lock stripes, so doors asking at once rarely wait on each other and an eviction sweep
/// holds up only a sixteenth of the table.
const SHARDS: usize = 16;

/// A full shard sweeps out idle addresses at most this often; in between, a new address
/// is untracked. Without it a flood of new addresses would make every attempt a full scan.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// At most `per_minute` attempts per minute from one source address (a token bucket per
/// address, so the budget refills smoothly rather than at minute boundaries).
///
/// Memory is bounded by `max_tracked`. When the table is full, addresses whose bucket has
/// refilled are forgotten first — losslessly, as a full bucket is what a new address gets.
/// If every remembered address is still active, a new address is **admitted untracked**
/// and counted in [`AttemptLimiter::overflow`]. The alternative, refusing addresses we
/// cannot track, would let anyone with enough source addresses (an IPv6 block, a botnet)
/// fill the table and lock every legitimate device out of the house; admitting them
/// merely degrades to the connection cap, which still holds, while the addresses already
/// tracked (the ones that were hammering) stay limited.
#[derive(Debug)]
pub struct AttemptLimiter {
    config: AttemptLimiterConfig,
    template: TokenBucket,
    shard_capacity: usize,
    shards: Box<[Mutex<Shard>]>,
    hasher: std::hash::RandomState,
    overflow: AtomicU64,
    overflow_total: Counter,
}

#[derive(Debug, Default)]
struct Shard {
    buckets: HashMap<IpAddr, TokenBucket>,
    last_sweep: Option<Instant>,
}

impl AttemptLimiter {
    pub fn new(config: AttemptLimiterConfig) -> Self {
        let template = TokenBucket::per_minute(config.per_minute.into(), config.burst.into());
        let shard_count = SHARDS.min(config.max_tracked).max(1);
        AttemptLimiter {
            template,
            shard_capacity: config.max_tracked.div_ceil(shard_count),
            shards: (0..shard_count).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: std::hash::RandomState::new(),
            overflow: AtomicU64::new(0),
            overflow_total: counter!("alicia_ratelimit_attempts_untracked_total"),
            config,
        }
    }

    /// One attempt from `addr`: `Ok` to go ahead, or `Err(retry_after)` when the address
    /// is over its budget.
    pub fn attempt(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.template.is_unlimited() {
            return Ok(());
        }
        let addr = canonical(addr);
        if self.config.exempt_loopback && addr.is_loopback() {
            return Ok(());
        }
        let key = grouped(addr, self.config.ipv6_prefix_len);
        let shard = &self.shards[self.hasher.hash_one(key) as usize % self.shards.len()];
        let mut shard = shard.lock();
        if let Some(bucket) = shard.buckets.get_mut(&key) {
            return if bucket.try_take(1, now) {
                Ok(())
            } else {
                Err(bucket.retry_after(1, now).unwrap_or(Duration::MAX))
            };
        }
        if shard.buckets.len() >= self.shard_capacity && !shard.sweep(now) {
            drop(shard);
            self.overflow.fetch_add(1, Ordering::Relaxed);
            self.overflow_total.increment(1);
            return Ok(());
        }
        let mut bucket = self.template;
        // A fresh bucket holds at least one token, so the first attempt always passes.
        let admitted = bucket.try_take(1, now);
        shard.buckets.insert(key, bucket);
        if admitted {
            Ok(())
        } else {
            Err(bucket.retry_after(1, now).unwrap_or(Duration::MAX))
        }
    }

    /// Addresses currently remembered.
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().buckets.len()).sum()
    }

    /// Attempts admitted untracked because the table was full of active addresses.
    pub fn overflow(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }
}

impl Shard {
    /// Forgets the addresses whose budget has refilled; true if that made room.
    fn sweep(&mut self, now: Instant) -> bool {
        if self.last_sweep.is_some_and(|at| now.saturating_duration_since(at) < SWEEP_INTERVAL) {
            return false;
        }
        self.last_sweep = Some(now);
        let before = self.buckets.len();
        self.buckets.retain(|_, bucket| !bucket.is_full(now));
        self.buckets.len() < before
    }
}

/// A dual-stack socket reports IPv4 peers as `::ffff:a.b.c.d`; they are the IPv4 address.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    }
}

fn grouped(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => {
            let bits = u32::from(prefix_len.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn limiter(per_minute: u32, max_tracked: usize) -> AttemptLimiter {
        AttemptLimiter::new(AttemptLimiterConfig { per_minute, max_tracked, ..AttemptLimiterConfig::default() })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_gets_its_budget_per_minute_and_others_are_unaffected() {
        let t0 = Instant::now();
        let limiter = limiter(6, 100);
        for _ in 0..6 {
            assert_eq!(limiter.attempt(ip("192.0.2.1"), t0), Ok(()));
        }
        assert_eq!(limiter.attempt(ip("192.0.2.1"), t0), Err(10 * SEC));
        assert_eq!(limiter.attempt(ip("192.0.2.2"), t0), Ok(()));
        assert_eq!(limiter.attempt(ip("192.0.2.1"), t0 + 10 * SEC), Ok(()));
        assert_eq!(limiter.attempt(ip("192.0.2.1"), t0 + 10 * SEC), Err(10 * SEC));
    }

    #[test]
    fn loopback_is_exempt_only_when_configured() {
        let t0 = Instant::now();
        let exempt = limiter(1, 100);
        for addr in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!((0..5).all(|_| exempt.attempt(ip(addr), t0).is_ok()), "{addr}");
        }
        let strict = AttemptLimiter::new(AttemptLimiterConfig {
            per_minute: 1,
            exempt_loopback: false,
            ..AttemptLimiterConfig::default()
        });
        assert!(strict.attempt(ip("127.0.0.1"), t0).is_ok());
        assert!(strict.attempt(ip("127.0.0.1"), t0).is_err());
    }

    #[test]
    fn ipv4_mapped_and_one_ipv6_64_share_a_budget() {
        let t0 = Instant::now();
        let limiter = limiter(1, 100);
        assert!(limiter.attempt(ip("198.51.100.7"), t0).is_ok());
        assert!(limiter.attempt(ip("::ffff:198.51.100.7"), t0).is_err());
        assert!(limiter.attempt(ip("2001:db8:1:2::1"), t0).is_ok());
        assert!(limiter.attempt(ip("2001:db8:1:2:ffff::9"), t0).is_err());
        assert!(limiter.attempt(ip("2001:db8:1:3::1"), t0).is_ok());
    }

    #[test]
    fn a_full_table_forgets_idle_addresses_then_admits_untracked() {
        let t0 = Instant::now();
        let limiter = limiter(1, 16);
        for n in 0..16u8 {
            let _ = limiter.attempt(IpAddr::from([10, 0, 0, n]), t0);
        }
        let tracked = limiter.tracked();
        assert!(tracked <= 16);
        // Flooding with new addresses: never refused, never more remembered.
        for n in 0..=255u8 {
            assert!(limiter.attempt(IpAddr::from([10, 0, 1, n]), t0).is_ok());
        }
        assert!(limiter.tracked() <= 16);
        assert!(limiter.overflow() > 0);
        // The addresses tracked before the flood are still limited.
        let still_limited =
            (0..16u8).filter(|&n| limiter.attempt(IpAddr::from([10, 0, 0, n]), t0 + SEC).is_err()).count();
        assert_eq!(still_limited, tracked);
        // A minute later every bucket has refilled: a sweep makes room for new addresses.
        let later = t0 + 61 * SEC;
        let before = limiter.overflow();
        for n in 0..=255u8 {
            assert!(limiter.attempt(IpAddr::from([10, 0, 2, n]), later).is_ok());
        }
        assert!(limiter.overflow() - before < 256, "a sweep made room for some");
        assert!(limiter.tracked() <= 16);
    }

    #[test]
    fn zero_budget_or_zero_tracking_limits_nothing() {
        let t0 = Instant::now();
        let unlimited = limiter(0, 100);
        assert!((0..100).all(|_| unlimited.attempt(ip("192.0.2.1"), t0).is_ok()));
        let untracked = limiter(1, 0);
        assert!((0..100).all(|_| untracked.attempt(ip("192.0.2.1"), t0).is_ok()));
        assert_eq!(untracked.tracked(), 0);
    }

    #[test]
    fn threads_share_one_budget() {
        let t0 = Instant::now();
        let limiter = limiter(100, 1000);
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..100).filter(|_| limiter.attempt(ip("203.0.113.5"), t0).is_ok()).count()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 100);
    }
}
