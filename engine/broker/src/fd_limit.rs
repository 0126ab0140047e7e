//! File descriptors: every connection is one, and the soft limit a process starts with
//! (often 1,024) is far below what `max_connections` may ask for. At start the soft
//! limit is raised to the hard one, and a `max_connections` the process could never
//! reach is refused with a message saying what to change.

/// Descriptors kept for everything that is not a client: listeners, the io rings and
/// epoll instances, log files, the models, sockets still in their handshake.
pub(crate) const SPARE: u64 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft limit to the hard limit; returns the limits now in force.
pub(crate) fn raise() -> std::io::Result<FdLimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    Ok(FdLimit { soft: limit.rlim_cur, hard: limit.rlim_max })
}

/// Whether `max_connections` fits the limit, with the spare.
pub(crate) fn check(max_connections: usize, limit: FdLimit) -> Result<(), String> {
    let needed = max_connections as u64 + SPARE;
    if needed > limit.soft {
        return Err(format!(
            "limits.max_connections = {max_connections} needs {needed} file descriptors, but this process may open \
             {} (hard limit {}): lower limits.max_connections or raise the limit (ulimit -n, LimitNOFILE=)",
            limit.soft, limit.hard
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = raise().unwrap();
        assert_eq!(limit.soft, limit.hard);
    }

    #[test]
    fn a_limit_too_small_is_refused_with_what_to_change() {
        let limit = FdLimit { soft: 1024, hard: 1024 };
        assert!(check(700, limit).is_ok());
        let message = check(1000, limit).unwrap_err();
        assert!(message.contains("needs 1256 file descriptors") && message.contains("ulimit"), "{message}");
    }
}
