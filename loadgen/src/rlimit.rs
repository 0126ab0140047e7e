//! The open-file limit: thousands of held connections need as many descriptors in loadgen
//! and in the broker it starts, and children inherit the soft limit of their parent.

use anyhow::{bail, Result};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The open-file limit after [`raise_open_files`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OpenFiles {
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft limit on open files to the hard limit (a process may do that without
/// privileges) and returns both.
pub fn raise_open_files() -> Result<OpenFiles> {
    let current = getrlimit(Resource::Nofile);
    let hard = current.maximum.unwrap_or(u64::MAX);
    if current.current != Some(hard) {
        setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: current.maximum })?;
    }
    let now = getrlimit(Resource::Nofile);
    Ok(OpenFiles { soft: now.current.unwrap_or(u64::MAX), hard })
}

/// Fails early, with the numbers, when `needed` descriptors cannot be open at once.
pub fn ensure_open_files(needed: u64) -> Result<OpenFiles> {
    let limits = raise_open_files()?;
    if limits.soft < needed {
        bail!(
            "need about {needed} open files but the hard limit is {} (raise it with `ulimit -Hn` as root, \
             or ask for fewer connections)",
            limits.hard
        );
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_reaches_the_hard_limit() {
        let limits = raise_open_files().unwrap();
        assert_eq!(limits.soft, limits.hard);
        assert!(ensure_open_files(16).is_ok());
        assert!(ensure_open_files(u64::MAX).is_err());
    }
}
