//! The 16-byte probe at the front of every payload: send time and sequence number.
//!
//! Publishers and subscribers run in one process, so one monotonic `Instant` epoch is a
//! shared clock and latency is a plain subtraction, immune to wall-clock steps.

use std::sync::OnceLock;
use std::time::Instant;

pub const PROBE_LEN: usize = 16;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The process-wide epoch; the first call fixes it.
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds from the epoch to `t` (0 if `t` is earlier).
pub fn nanos(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_nanos() as u64
}

pub fn write(out: &mut [u8; PROBE_LEN], sent_ns: u64, seq: u64) {
    out[..8].copy_from_slice(&sent_ns.to_be_bytes());
    out[8..].copy_from_slice(&seq.to_be_bytes());
}

/// `(sent_ns, seq)`, or `None` if the payload is too short to carry a probe.
pub fn read(payload: &[u8]) -> Option<(u64, u64)> {
    let head = payload.get(..PROBE_LEN)?;
    let sent = u64::from_be_bytes(head[..8].try_into().ok()?);
    let seq = u64::from_be_bytes(head[8..].try_into().ok()?);
    Some((sent, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut buf = [0u8; PROBE_LEN];
        write(&mut buf, 123_456_789, 42);
        assert_eq!(read(&buf), Some((123_456_789, 42)));
        assert_eq!(read(&buf[..15]), None);
        assert!(nanos(epoch()) == 0 && nanos(Instant::now()) >= nanos(epoch()));
    }
}
