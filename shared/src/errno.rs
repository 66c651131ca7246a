//! Errno classification: symbolic names, short descriptions and one-line
//! explanations of what the errno means for a socket, for the event log.
//!
//! Our own table rather than `strerror`: the text must be stable across libcs
//! and say what the kernel did to *this socket*, not just the generic phrase.

/// (number, symbolic name, short description) for the errnos a socket
/// program meets. Numbers are Linux's (x86_64, aarch64).
const TABLE: &[(i32, &str, &str)] = &[
    (libc::EPERM, "EPERM", "operation not permitted"),
    (libc::ENOENT, "ENOENT", "no such file or directory"),
    (libc::EINTR, "EINTR", "interrupted system call"),
    (libc::EIO, "EIO", "input/output error"),
    (libc::EBADF, "EBADF", "bad file descriptor"),
    (libc::EAGAIN, "EAGAIN", "resource temporarily unavailable"),
    (libc::ENOMEM, "ENOMEM", "out of memory"),
    (libc::EACCES, "EACCES", "permission denied"),
    (libc::EFAULT, "EFAULT", "bad address"),
    (libc::EINVAL, "EINVAL", "invalid argument"),
    (libc::ENFILE, "ENFILE", "too many open files in system"),
    (libc::EMFILE, "EMFILE", "too many open files"),
    (libc::EPIPE, "EPIPE", "broken pipe"),
    (libc::ENOTSOCK, "ENOTSOCK", "socket operation on non-socket"),
    (
        libc::EDESTADDRREQ,
        "EDESTADDRREQ",
        "destination address required",
    ),
    (libc::EMSGSIZE, "EMSGSIZE", "message too long"),
    (libc::ENOPROTOOPT, "ENOPROTOOPT", "protocol not available"),
    (
        libc::EPROTONOSUPPORT,
        "EPROTONOSUPPORT",
        "protocol not supported",
    ),
    (libc::EOPNOTSUPP, "EOPNOTSUPP", "operation not supported"),
    (
        libc::EAFNOSUPPORT,
        "EAFNOSUPPORT",
        "address family not supported",
    ),
    (libc::EADDRINUSE, "EADDRINUSE", "address already in use"),
    (
        libc::EADDRNOTAVAIL,
        "EADDRNOTAVAIL",
        "cannot assign requested address",
    ),
    (libc::ENETDOWN, "ENETDOWN", "network is down"),
    (libc::ENETUNREACH, "ENETUNREACH", "network is unreachable"),
    (
        libc::ENETRESET,
        "ENETRESET",
        "network dropped connection on reset",
    ),
    (
        libc::ECONNABORTED,
        "ECONNABORTED",
        "software caused connection abort",
    ),
    (libc::ECONNRESET, "ECONNRESET", "connection reset by peer"),
    (libc::ENOBUFS, "ENOBUFS", "no buffer space available"),
    (libc::ENOSPC, "ENOSPC", "no space left on device"),
    (libc::EISCONN, "EISCONN", "socket is already connected"),
    (libc::ENOTCONN, "ENOTCONN", "socket is not connected"),
    (
        libc::ESHUTDOWN,
        "ESHUTDOWN",
        "cannot send after socket shutdown",
    ),
    (libc::ETIMEDOUT, "ETIMEDOUT", "timed out"),
    (libc::ECONNREFUSED, "ECONNREFUSED", "connection refused"),
    (libc::EHOSTDOWN, "EHOSTDOWN", "host is down"),
    (libc::EHOSTUNREACH, "EHOSTUNREACH", "no route to host"),
    (libc::EALREADY, "EALREADY", "operation already in progress"),
    (
        libc::EINPROGRESS,
        "EINPROGRESS",
        "operation now in progress",
    ),
];

/// Winsock's code for the same condition (seed 003): (Linux errno, Windows
/// name, Windows number), from Microsoft's "Windows Sockets Error Codes".
/// Only real equivalents: EAGAIN is WSAEWOULDBLOCK (also what a
/// non-blocking connect returns there, where Linux says EINPROGRESS), and
/// EPIPE has none (Windows reports a write into a reset connection as
/// WSAECONNRESET and one after shutdown as WSAESHUTDOWN).
const WINDOWS: &[(i32, &str, u32)] = &[
    (libc::EINTR, "WSAEINTR", 10004),
    (libc::EBADF, "WSAEBADF", 10009),
    (libc::EACCES, "WSAEACCES", 10013),
    (libc::EFAULT, "WSAEFAULT", 10014),
    (libc::EINVAL, "WSAEINVAL", 10022),
    (libc::EMFILE, "WSAEMFILE", 10024),
    (libc::EAGAIN, "WSAEWOULDBLOCK", 10035),
    (libc::EALREADY, "WSAEALREADY", 10037),
    (libc::ENOTSOCK, "WSAENOTSOCK", 10038),
    (libc::EDESTADDRREQ, "WSAEDESTADDRREQ", 10039),
    (libc::EMSGSIZE, "WSAEMSGSIZE", 10040),
    (libc::ENOPROTOOPT, "WSAENOPROTOOPT", 10042),
    (libc::EPROTONOSUPPORT, "WSAEPROTONOSUPPORT", 10043),
    (libc::EOPNOTSUPP, "WSAEOPNOTSUPP", 10045),
    (libc::EAFNOSUPPORT, "WSAEAFNOSUPPORT", 10047),
    (libc::EADDRINUSE, "WSAEADDRINUSE", 10048),
    (libc::EADDRNOTAVAIL, "WSAEADDRNOTAVAIL", 10049),
    (libc::ENETDOWN, "WSAENETDOWN", 10050),
    (libc::ENETUNREACH, "WSAENETUNREACH", 10051),
    (libc::ENETRESET, "WSAENETRESET", 10052),
    (libc::ECONNABORTED, "WSAECONNABORTED", 10053),
    (libc::ECONNRESET, "WSAECONNRESET", 10054),
    (libc::ENOBUFS, "WSAENOBUFS", 10055),
    (libc::EISCONN, "WSAEISCONN", 10056),
    (libc::ENOTCONN, "WSAENOTCONN", 10057),
    (libc::ESHUTDOWN, "WSAESHUTDOWN", 10058),
    (libc::ETIMEDOUT, "WSAETIMEDOUT", 10060),
    (libc::ECONNREFUSED, "WSAECONNREFUSED", 10061),
    (libc::EHOSTDOWN, "WSAEHOSTDOWN", 10064),
    (libc::EHOSTUNREACH, "WSAEHOSTUNREACH", 10065),
];

/// Winsock's name and number for a Linux errno (`ECONNRESET` ->
/// `("WSAECONNRESET", 10054)`), if it has one.
pub fn windows(errno: i32) -> Option<(&'static str, u32)> {
    WINDOWS
        .iter()
        .find(|(n, _, _)| *n == errno)
        .map(|&(_, name, code)| (name, code))
}

/// `ECONNRESET 104 — Windows: WSAECONNRESET 10054`, or the Linux part
/// alone when Windows has no such code.
pub fn with_windows(errno: i32) -> String {
    match windows(errno) {
        Some((w, c)) => format!("{} {errno} — Windows: {w} {c}", name(errno)),
        None => format!("{} {errno}", name(errno)),
    }
}

/// Where Windows and Linux report the same situation differently, one
/// line (seed 003's claims), else `None`.
pub fn windows_note(errno: i32) -> Option<&'static str> {
    match errno {
        libc::ECONNABORTED => Some(
            "Windows gives WSAECONNABORTED 10053 when its own stack aborts an established connection, typically after its data retransmissions time out (a pulled cable while sending); Linux reports that same situation as ETIMEDOUT 110, and ECONNABORTED 103 only when a local socket is aborted (`ss -K`) or from accept()",
        ),
        libc::ETIMEDOUT => Some(
            "for a connection whose data retransmissions time out, Windows usually reports WSAECONNABORTED 10053 (WSAETIMEDOUT 10060 is mostly a connect that got no answer); Linux says ETIMEDOUT 110 in both cases",
        ),
        libc::EPIPE => Some(
            "Windows has no EPIPE for sockets: a write after the peer's RST fails with WSAECONNRESET 10054, one after our own shutdown with WSAESHUTDOWN 10058; there is no SIGPIPE",
        ),
        libc::EAGAIN => Some(
            "Windows calls it WSAEWOULDBLOCK 10035, and a timed-out blocking recv/send (SO_RCVTIMEO/SO_SNDTIMEO) fails with WSAETIMEDOUT 10060 there, not with the would-block code",
        ),
        libc::ECONNRESET => Some(
            "the same RST on both systems; Windows also reports 10054 on a UDP socket after an ICMP port unreachable, where Linux gives ECONNREFUSED 111 on a connected UDP socket",
        ),
        _ => None,
    }
}

/// The symbolic name of an errno (`ECONNRESET`), or `E<number>` if unknown.
pub fn name(errno: i32) -> String {
    TABLE
        .iter()
        .find(|(n, _, _)| *n == errno)
        .map(|(_, s, _)| (*s).to_string())
        .unwrap_or_else(|| format!("E{errno}"))
}

/// The errno number for a symbolic name (`ECONNRESET` -> 104).
pub fn from_name(name: &str) -> Option<i32> {
    if let Some(n) = TABLE.iter().find(|(_, s, _)| *s == name) {
        return Some(n.0);
    }
    name.strip_prefix('E')?.parse().ok()
}

/// A short description (`connection reset by peer`).
pub fn describe(errno: i32) -> String {
    TABLE
        .iter()
        .find(|(n, _, _)| *n == errno)
        .map(|(_, _, d)| (*d).to_string())
        .unwrap_or_else(|| std::io::Error::from_raw_os_error(errno).to_string())
}

/// What this errno means for a socket, in one line, for the event log.
/// `syscall` is where it came from (`read`, `write`, `connect`, `recv`...).
pub fn explain(syscall: &str, errno: i32) -> &'static str {
    match (syscall, errno) {
        (_, libc::ECONNRESET) => {
            "peer sent RST: it closed with unread data, used SO_LINGER 0, or the connection was unknown to it"
        }
        ("write" | "send" | "sendto", libc::EPIPE) => {
            "peer already closed; the first write after its close succeeds and draws an RST, the next one fails"
        }
        (_, libc::EPIPE) => "the connection is already shut down for writing",
        (_, libc::ETIMEDOUT) => {
            "the kernel gave up: keepalive probes or unacknowledged data got no answer (silent peer or pulled cable)"
        }
        ("recv" | "read" | "recvfrom", libc::ECONNREFUSED) => {
            "an ICMP port-unreachable came back for a datagram we sent: nothing listens on that port"
        }
        (_, libc::ECONNREFUSED) => {
            "the peer answered our SYN with RST: nothing listens on that port"
        }
        (_, libc::EHOSTUNREACH) => "no route to the host (or ARP/neighbour discovery failed)",
        (_, libc::ENETUNREACH) => "no route to that network",
        (_, libc::EADDRNOTAVAIL) => {
            "no local address/port could be assigned (ephemeral ports exhausted?)"
        }
        (_, libc::EADDRINUSE) => "another socket already uses that address and port",
        (_, libc::EMFILE) => "this process hit its file-descriptor limit (RLIMIT_NOFILE)",
        (_, libc::ENFILE) => "the whole system hit its file limit",
        (_, libc::EAGAIN) => "nothing to do right now: the socket would block",
        (_, libc::ENOBUFS) => "the kernel ran out of buffer space for this send",
        (_, libc::EMSGSIZE) => "the datagram is larger than the socket or path allows",
        (_, libc::ENOTCONN) => "the socket is not connected",
        (_, libc::ECONNABORTED) => "the connection was aborted before it was accepted",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(name(104), "ECONNRESET");
        assert_eq!(name(32), "EPIPE");
        assert_eq!(name(110), "ETIMEDOUT");
        assert_eq!(name(111), "ECONNREFUSED");
        assert_eq!(name(99), "EADDRNOTAVAIL");
        assert_eq!(name(9999), "E9999");
        assert_eq!(from_name("ECONNRESET"), Some(104));
        assert_eq!(from_name("E9999"), Some(9999));
        assert_eq!(from_name("nonsense"), None);
        assert_eq!(describe(113), "no route to host");
        assert!(explain("write", libc::EPIPE).contains("first write"));
    }

    /// Every arm of `explain` is reachable and says something of its own:
    /// the syscall decides between the two EPIPE and the two ECONNREFUSED
    /// lines, and an errno without a line gets none.
    #[test]
    fn explain_has_one_line_per_situation() {
        let cases = [
            ("read", libc::ECONNRESET),
            ("write", libc::EPIPE),
            ("send", libc::EPIPE),
            ("sendto", libc::EPIPE),
            ("shutdown", libc::EPIPE),
            ("read", libc::ETIMEDOUT),
            ("recv", libc::ECONNREFUSED),
            ("read", libc::ECONNREFUSED),
            ("recvfrom", libc::ECONNREFUSED),
            ("connect", libc::ECONNREFUSED),
            ("connect", libc::EHOSTUNREACH),
            ("connect", libc::ENETUNREACH),
            ("connect", libc::EADDRNOTAVAIL),
            ("bind", libc::EADDRINUSE),
            ("accept", libc::EMFILE),
            ("accept", libc::ENFILE),
            ("read", libc::EAGAIN),
            ("sendto", libc::ENOBUFS),
            ("sendto", libc::EMSGSIZE),
            ("write", libc::ENOTCONN),
            ("accept", libc::ECONNABORTED),
        ];
        let lines: Vec<&str> = cases.iter().map(|&(c, e)| explain(c, e)).collect();
        for (i, ((c, e), l)) in cases.iter().zip(&lines).enumerate() {
            assert!(!l.is_empty(), "{c} {}: no line", name(*e));
            // Same line only for the syscalls one arm groups together.
            let same: Vec<usize> = (0..i).filter(|&j| lines[j] == *l).collect();
            let grouped = matches!((*c, *e), ("send" | "sendto", libc::EPIPE))
                || matches!((*c, *e), ("read" | "recvfrom", libc::ECONNREFUSED));
            assert_eq!(same.is_empty(), !grouped, "{c} {}: {l}", name(*e));
        }
        assert!(explain("write", libc::EPIPE).contains("first write"));
        assert!(explain("shutdown", libc::EPIPE).contains("shut down"));
        assert!(explain("recv", libc::ECONNREFUSED).contains("ICMP"));
        assert!(explain("connect", libc::ECONNREFUSED).contains("SYN"));
        assert!(explain("read", libc::ECONNRESET).contains("RST"));
        assert!(explain("accept", libc::EMFILE).contains("RLIMIT_NOFILE"));
        assert_eq!(explain("read", libc::EIO), "");
        assert_eq!(explain("read", 9999), "");
    }

    /// The five situations Windows reports differently each have their own
    /// note, naming the Windows code; the rest have none.
    #[test]
    fn windows_notes_only_where_the_systems_differ() {
        let noted = [
            (libc::ECONNABORTED, "10053"),
            (libc::ETIMEDOUT, "10060"),
            (libc::EPIPE, "10058"),
            (libc::EAGAIN, "10035"),
            (libc::ECONNRESET, "UDP"),
        ];
        let mut seen = Vec::new();
        for (e, word) in noted {
            let n = windows_note(e).unwrap_or_else(|| panic!("{}: no note", name(e)));
            assert!(n.contains(word), "{}: {n}", name(e));
            assert!(!seen.contains(&n), "{}: same note twice", name(e));
            seen.push(n);
        }
        for e in [libc::EINTR, libc::ECONNREFUSED, libc::EMFILE, 0, 9999] {
            assert_eq!(windows_note(e), None, "{}", name(e));
        }
    }

    /// Names and descriptions come from the table for every entry; unknown
    /// numbers fall back to `E<n>` and the OS's text.
    #[test]
    fn table_lookups_both_ways() {
        for &(n, s, d) in TABLE {
            assert_eq!(name(n), s);
            assert_eq!(from_name(s), Some(n));
            assert_eq!(describe(n), d);
        }
        assert!(describe(9999).contains("9999"), "{}", describe(9999));
        assert_eq!(from_name("E"), None);
        assert_eq!(from_name("X104"), None);
        assert_eq!(from_name("E104"), Some(104));
    }

    #[test]
    fn windows_codes_beside_linux_errnos() {
        assert_eq!(
            with_windows(libc::ECONNRESET),
            "ECONNRESET 104 — Windows: WSAECONNRESET 10054"
        );
        assert_eq!(
            windows(libc::ECONNABORTED),
            Some(("WSAECONNABORTED", 10053))
        );
        assert_eq!(
            windows(libc::ECONNREFUSED),
            Some(("WSAECONNREFUSED", 10061))
        );
        assert_eq!(windows(libc::ETIMEDOUT), Some(("WSAETIMEDOUT", 10060)));
        assert_eq!(windows(libc::EAGAIN), Some(("WSAEWOULDBLOCK", 10035)));
        assert_eq!(windows(libc::EPIPE), None);
        assert_eq!(with_windows(libc::EPIPE), "EPIPE 32");
        assert!(windows_note(libc::ECONNABORTED).is_some_and(|n| n.contains("10053")));
        // Every Windows code names an errno of the table, and each once.
        for (i, (n, w, c)) in WINDOWS.iter().enumerate() {
            assert!(
                TABLE.iter().any(|(t, _, _)| t == n),
                "{w}: errno {n} not in TABLE"
            );
            if *n != libc::EAGAIN {
                assert_eq!(*w, format!("WSA{}", name(*n)), "{w} vs {}", name(*n));
            }
            assert!((10004..=10065).contains(c), "{w} {c}");
            assert!(WINDOWS[..i].iter().all(|(m, _, _)| m != n), "{w} twice");
        }
    }
}
