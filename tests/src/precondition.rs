//! Preconditions of tests that need something of the host (root, tmux, `ip`,
//! IPv6 loopback): one rule for all of them, so a skip cannot hide in CI.
//!
//! - Under CI (the environment variable `CI` is set and not `""`, `"0"` or
//!   `"false"`; CI services set `CI=true`) a missing precondition **panics**
//!   with its reason: the test fails, it does not pass silently.
//! - Locally it prints `SKIPPED: <reason>` to stderr and the test returns.
//!
//! Use the [`require!`](crate::require!) macro at the top of a test (it
//! returns from the enclosing function or `async` block), or [`require`]
//! where the test must go on differently.

use std::path::Path;

/// True when running under CI (see the module comment for the rule).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// True when `ok`. Otherwise: under CI panic with `reason`; locally print
/// `SKIPPED: reason` and return false (the caller returns).
#[track_caller]
pub fn require(ok: bool, reason: &str) -> bool {
    require_with(in_ci(), ok, reason)
}

/// [`require`] with the CI decision passed in (so the rule is unit-tested
/// without touching the process environment).
#[track_caller]
fn require_with(ci: bool, ok: bool, reason: &str) -> bool {
    if ok {
        return true;
    }
    if ci {
        panic!(
            "precondition missing under CI (CI is set, so this is a failure, not a skip): {reason}"
        );
    }
    eprintln!("SKIPPED: {reason}");
    false
}

/// `require!(cond, "reason {}", x)`: return from the test (or `async`
/// block) when `cond` is false, after [`require`] has printed or panicked.
#[macro_export]
macro_rules! require {
    ($ok:expr, $($reason:tt)+) => {
        if !$crate::require($ok, &format!($($reason)+)) {
            return;
        }
    };
}

/// True when the effective user is root (network namespaces need
/// CAP_NET_ADMIN; the CI job runs as root).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when `program` is an executable file in one of `$PATH`'s directories.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        let p: &Path = &dir.join(program);
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// True when a socket can be bound on the IPv6 loopback `::1` (TCP and UDP).
pub fn have_ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok() && std::net::UdpSocket::bind("[::1]:0").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_met_precondition_runs_the_test_everywhere() {
        assert!(require_with(true, true, "x"));
        assert!(require_with(false, true, "x"));
    }

    #[test]
    fn a_missing_precondition_skips_locally() {
        assert!(!require_with(false, false, "no tmux"));
    }

    #[test]
    #[should_panic(expected = "no tmux")]
    fn a_missing_precondition_fails_under_ci() {
        require_with(true, false, "no tmux");
    }

    #[test]
    fn path_lookup_finds_sh_and_not_nonsense() {
        assert!(on_path("sh"));
        assert!(!on_path("sockchat-no-such-program"));
    }
}
