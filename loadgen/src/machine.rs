//! What the host is and how busy processes keep it, read from `/proc`.
//!
//! On a 2-core machine the load tool and the broker share the CPU, so every result
//! carries the cores each of them used during the measured window: a load tool near a
//! full core would be measuring itself, not the broker.

use std::fs;
use std::process::Command;

use serde::Serialize;

/// /proc reports CPU time in USER_HZ, which Linux fixes at 100 on every architecture.
const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_mb: Option<u64>,
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| format!("Linux {}", k.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_string());
        let memory_mb = fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb / 1024)
        });
        Machine {
            nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model,
            kernel,
            memory_mb,
        }
    }
}

/// User + system CPU seconds used so far by `pid` (this process if `None`), all threads.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    parse_cpu_seconds(&fs::read_to_string(path).ok()?)
}

/// Busy CPU seconds of the whole machine (all cores) from the `cpu` line of /proc/stat:
/// user, nice, system, irq, softirq and steal.
pub fn host_busy_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    parse_host_busy(stat.lines().next()?)
}

fn parse_host_busy(line: &str) -> Option<f64> {
    let v: Vec<u64> = line.strip_prefix("cpu ")?.split_whitespace().map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).copied().unwrap_or(0);
    Some(busy as f64 / USER_HZ)
}

/// Fields 14 and 15 of `/proc/PID/stat`; the command name (field 2) may hold spaces, so
/// counting starts after its closing parenthesis.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// `git rev-parse --short HEAD` of the working directory's checkout, else of the package
/// cargo runs this from, else of the checkout this binary was built from.
pub fn git_commit() -> Option<String> {
    let run_from = std::env::var("CARGO_MANIFEST_DIR").ok();
    let dirs = [Some("."), run_from.as_deref(), Some(env!("CARGO_MANIFEST_DIR"))];
    let commit = dirs.into_iter().flatten().find_map(|dir| {
        let out = Command::new("git").args(["-C", dir, "rev-parse", "--short", "HEAD"]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    commit
}

/// The command line as typed, quoted where a shell would need it.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@".contains(c)) {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_spaces_in_the_name() {
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert!(cpu_seconds(None).is_some());
        assert_eq!(parse_host_busy("cpu  100 5 50 1000 7 3 2 40 0 0"), Some(2.0));
        assert!(host_busy_seconds().is_some());
    }
}
