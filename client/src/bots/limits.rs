//! RLIMIT_NOFILE: raise the soft limit to the hard limit and say plainly
//! when even that is not enough for the planned connections.

/// File descriptors a process needs beyond its sockets (stdio, epoll,
/// eventfds, runtime threads...).
pub const FD_OVERHEAD: u64 = 64;

/// What we got: (soft limit now, hard limit).
pub fn raise_nofile() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return (0, 0);
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// A warning when `conns` sockets per process will not fit in `soft`.
pub fn check(conns: u64, soft: u64, hard: u64, workers: usize) -> Option<String> {
    if conns + FD_OVERHEAD <= soft {
        return None;
    }
    let per = soft.saturating_sub(FD_OVERHEAD).max(1);
    let need_workers = (conns * workers as u64).div_ceil(per);
    Some(format!(
        "{conns} connections per process need {} file descriptors but RLIMIT_NOFILE is {soft} (hard {hard}): \
         connections past ~{per} will fail with EMFILE; use --workers {need_workers} (or raise the hard limit)",
        conns + FD_OVERHEAD
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_and_check() {
        let (soft, hard) = raise_nofile();
        assert!(soft > 0 && soft <= hard);
        assert_eq!(check(100, 20_000, 20_000, 1), None);
        let w = check(30_000, 20_000, 20_000, 1).expect("too many");
        assert!(w.contains("--workers 2"), "{w}");
    }
}
