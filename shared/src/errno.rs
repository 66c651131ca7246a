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
}
