//! A process's memory as the kernel counts it (`/proc/PID/status`): resident set now
//! (VmRSS), its high-water mark (VmHWM), sampled peaks, and waiting for the resident set
//! to settle instead of sleeping a guessed time.

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Resident memory of a process, in KiB as /proc reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Memory {
    pub rss_kb: u64,
    /// Highest resident set since the process started.
    pub hwm_kb: u64,
}

impl Memory {
    pub fn of(pid: u32) -> Option<Memory> {
        parse_status(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
    }
}

fn parse_status(status: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some(Memory { rss_kb: field("VmRSS:")?, hwm_kb: field("VmHWM:")? })
}

pub fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// How the resident set was judged settled.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Settled {
    pub rss_kb: u64,
    /// False when it was still moving at the deadline (the value is the last sample).
    pub settled: bool,
    pub waited_s: f64,
}

/// Samples VmRSS every `every` and returns once the last `window` of samples stays within
/// `tolerance_kb` of each other (allocators return memory lazily, so right after a burst
/// the resident set still moves), or at `timeout`.
pub fn wait_until_stable(pid: u32, every: Duration, window: Duration, tolerance_kb: u64, timeout: Duration) -> Settled {
    let start = Instant::now();
    let keep = (window.as_secs_f64() / every.as_secs_f64()).ceil().max(2.0) as usize;
    let mut recent: Vec<u64> = Vec::with_capacity(keep + 1);
    loop {
        let Some(m) = Memory::of(pid) else {
            return Settled { rss_kb: 0, settled: false, waited_s: start.elapsed().as_secs_f64() };
        };
        recent.push(m.rss_kb);
        if recent.len() > keep {
            recent.remove(0);
        }
        let spread = recent.iter().max().unwrap_or(&0) - recent.iter().min().unwrap_or(&0);
        let waited_s = start.elapsed().as_secs_f64();
        if recent.len() == keep && spread <= tolerance_kb {
            return Settled { rss_kb: m.rss_kb, settled: true, waited_s };
        }
        if start.elapsed() >= timeout {
            return Settled { rss_kb: m.rss_kb, settled: false, waited_s };
        }
        std::thread::sleep(every);
    }
}

/// Samples a process's VmRSS on a thread of its own and keeps the highest value, for
/// peaks inside one phase (VmHWM only knows the peak since the process started).
pub struct PeakSampler {
    peak_kb: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PeakSampler {
    pub fn start(pid: u32, every: Duration) -> PeakSampler {
        let peak_kb = Arc::new(AtomicU64::new(Memory::of(pid).map_or(0, |m| m.rss_kb)));
        let stop = Arc::new(AtomicBool::new(false));
        let (peak, halt) = (peak_kb.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Acquire) {
                match Memory::of(pid) {
                    Some(m) => peak.fetch_max(m.rss_kb, Ordering::AcqRel),
                    None => return,
                };
                std::thread::sleep(every);
            }
        });
        PeakSampler { peak_kb, stop, thread: Some(thread) }
    }

    /// Highest sample so far.
    pub fn peak_kb(&self) -> u64 {
        self.peak_kb.load(Ordering::Acquire)
    }

    /// Stops sampling and returns the highest sample.
    pub fn finish(mut self) -> u64 {
        self.halt();
        self.peak_kb()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PeakSampler {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    4096 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_status(status), Some(Memory { rss_kb: 2048, hwm_kb: 4096 }));
        assert_eq!(parse_status("Name:\tkernel thread\n"), None);
        let own = Memory::of(std::process::id()).unwrap();
        assert!(own.rss_kb > 0 && own.hwm_kb >= own.rss_kb);
    }

    #[test]
    fn an_idle_process_settles_and_its_peak_is_sampled() {
        let pid = std::process::id();
        let s = wait_until_stable(
            pid,
            Duration::from_millis(10),
            Duration::from_millis(50),
            64 * 1024,
            Duration::from_secs(5),
        );
        assert!(s.settled && s.rss_kb > 0, "{s:?}");
        let sampler = PeakSampler::start(pid, Duration::from_millis(5));
        let ballast = std::hint::black_box(vec![1u8; 64 << 20]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while sampler.peak_kb() < s.rss_kb + (32 << 10) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(sampler.finish() >= s.rss_kb + (32 << 10), "64 MiB touched must show in the peak");
        drop(ballast);
    }
}
