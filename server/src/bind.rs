//! Binding: one TCP listener (socket2: SO_REUSEADDR, IPV6_V6ONLY, buffer
//! sizes, backlog, and the options every accepted socket inherits:
//! TCP_NODELAY, keepalive, TCP_USER_TIMEOUT) and one UDP socket per
//! listen address, and the whole listen set: the TCP listeners, then a UDP
//! socket on the port each of them got. With `--listen 127.0.0.1:0` the
//! kernel picks the TCP port without looking at UDP, so another process may
//! already hold that port for UDP (EADDRINUSE): then the set is dropped and
//! bound again on fresh ports, a bounded number of times.
//!
//! **Invariant:** a [`Bound`] always has UDP on exactly the ports its TCP
//! listeners have (when UDP is enabled); both `main` and [`crate::start`]
//! bind through [`bind_listen_set`].

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

use tracing::{debug, info};

use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;
use tracing::warn;

use crate::config::Settings;

/// How many times the set is bound again after a UDP port collision. Each
/// attempt gets a fresh ephemeral port, so a repeated collision means the
/// host is out of ports rather than unlucky.
pub const MAX_BIND_ATTEMPTS: usize = 50;

/// The bound TCP listeners and the UDP sockets on the same ports.
#[derive(Debug)]
pub struct Bound {
    pub tcp: Vec<TcpListener>,
    /// Empty when `udp.enabled` is false.
    pub udp: Vec<UdpSocket>,
}

/// Bind the configured TCP listeners and UDP on the same ports, retrying
/// with fresh ports when a port-0 address collides on UDP.
pub fn bind_listen_set(s: &Settings) -> Result<Bound, BindError> {
    bind_listen_set_with(s, MAX_BIND_ATTEMPTS, bind_tcp_all)
}

/// [`bind_listen_set`] with the TCP step supplied by the caller (tests make
/// the first TCP choice land on a port whose UDP side they hold). After
/// `attempts` collisions the last EADDRINUSE is returned.
pub fn bind_listen_set_with(
    s: &Settings,
    attempts: usize,
    mut bind_tcp: impl FnMut(&Settings) -> Result<Vec<TcpListener>, BindError>,
) -> Result<Bound, BindError> {
    let mut attempt = 1;
    loop {
        let tcp = bind_tcp(s)?;
        match bind_udp_all(s, &tcp) {
            Ok(udp) => return Ok(Bound { tcp, udp }),
            Err(e) if attempt < attempts && port_was_chosen_by_kernel(s, &e) => {
                // Dropping `tcp` here closes the listeners (nothing was
                // accepted yet) so the next attempt starts clean.
                debug!(addr = %e.addr, attempt, "udp port already in use; binding again on fresh ports");
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A listener (TCP) or its UDP socket could not be bound.
#[derive(Debug, Error)]
#[error("cannot listen on {addr} ({transport}): {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    /// "tcp" or "udp".
    pub transport: &'static str,
    pub source: io::Error,
}

/// Bind one TCP listener with the configured socket options.
pub fn bind_tcp(addr: SocketAddr, s: &Settings) -> io::Result<TcpListener> {
    let c = &s.config.server;
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // "[::]:7878" must not also grab IPv4: "0.0.0.0:7878" is its own
        // listener, and with dual-stack the second bind would fail.
        sock.set_only_v6(true)?;
    }
    // Restart without waiting out TIME_WAIT from the previous run.
    sock.set_reuse_address(c.reuse_address)?;
    // Several processes on one port: the kernel hashes each new connection
    // to one of the listeners.
    if c.reuse_port {
        sock.set_reuse_port(true)?;
    }
    // Accepted sockets inherit the buffer sizes; the receive buffer must be
    // set before listen() for the window scale to match it.
    if c.send_buffer > 0 {
        sock.set_send_buffer_size(c.send_buffer as usize)?;
    }
    if c.recv_buffer > 0 {
        sock.set_recv_buffer_size(c.recv_buffer as usize)?;
    }
    // Accepted sockets inherit these from the listener (Linux copies the
    // listener's socket when a connection is accepted): set once here, not
    // five setsockopt calls per connection (issue 10's churn).
    sock.set_tcp_nodelay(c.nodelay)?;
    if c.keepalive {
        // The values are at least 1 (config validation).
        let ka = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(c.keepalive_idle_secs.into()))
            .with_interval(Duration::from_secs(c.keepalive_interval_secs.into()))
            .with_retries(c.keepalive_count);
        sock.set_tcp_keepalive(&ka)?;
    }
    if c.user_timeout_ms > 0 {
        sock.set_tcp_user_timeout(Some(Duration::from_millis(c.user_timeout_ms.into())))?;
    }
    sock.bind(&addr.into())?;
    sock.listen(c.backlog.min(i32::MAX as u32) as i32)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// Bind every configured address. An IPv6 address that cannot be bound
/// (IPv6 disabled on this host) is skipped with a warning when another
/// address was bound.
pub fn bind_tcp_all(s: &Settings) -> Result<Vec<TcpListener>, BindError> {
    let mut out = Vec::new();
    let mut v6_failures = Vec::new();
    for &addr in &s.listen {
        match bind_tcp(addr, s) {
            Ok(l) => out.push(l),
            Err(e)
                if addr.is_ipv6()
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                    ) =>
            {
                v6_failures.push(BindError {
                    addr,
                    transport: "tcp",
                    source: e,
                })
            }
            Err(source) => {
                return Err(BindError {
                    addr,
                    transport: "tcp",
                    source,
                });
            }
        }
    }
    if out.is_empty() && !v6_failures.is_empty() {
        return Err(v6_failures.swap_remove(0));
    }
    for e in v6_failures {
        warn!(addr = %e.addr, error = %e.source, "IPv6 listener skipped");
    }
    Ok(out)
}

/// Bind one UDP socket (IPV6_V6ONLY like the TCP listener; SO_RCVBUF from
/// `udp.recv_buffer`, else `server.recv_buffer`, logged with what the
/// kernel made of it). No SO_REUSEADDR: on UDP it would let a second
/// server silently share the port.
pub fn bind_udp(addr: SocketAddr, s: &Settings) -> io::Result<UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    let c = &s.config.server;
    // With --reuse-port a client's datagrams keep going to one process (the
    // kernel hashes the address pair), whose session they belong to.
    if c.reuse_port {
        sock.set_reuse_port(true)?;
    }
    let want = match s.config.udp.recv_buffer {
        0 => c.recv_buffer as usize,
        n => n,
    };
    if want > 0 {
        let r = set_udp_recv_buffer(&sock, want)?;
        info!(
            %addr,
            requested = r.requested,
            effective = r.effective,
            rmem_max = r.rmem_max.map_or_else(|| "unknown".to_string(), |m| m.to_string()),
            via = r.via.name(),
            "udp receive buffer (SO_RCVBUF: the kernel doubles the request for its overhead \
             and caps it at net.core.rmem_max unless set with SO_RCVBUFFORCE)"
        );
    }
    if c.send_buffer > 0 {
        sock.set_send_buffer_size(c.send_buffer as usize)?;
    }
    sock.bind(&addr.into())?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// How the UDP receive buffer was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcvbufVia {
    /// SO_RCVBUF: the request was within `net.core.rmem_max`.
    Rcvbuf,
    /// SO_RCVBUFFORCE (CAP_NET_ADMIN): above `rmem_max`, and allowed.
    Force,
    /// Above `rmem_max`, SO_RCVBUFFORCE refused (not root): SO_RCVBUF,
    /// which the kernel capped at `rmem_max`.
    Capped,
}

impl RcvbufVia {
    pub fn name(self) -> &'static str {
        match self {
            RcvbufVia::Rcvbuf => "SO_RCVBUF",
            RcvbufVia::Force => "SO_RCVBUFFORCE",
            RcvbufVia::Capped => "SO_RCVBUF (capped at rmem_max: SO_RCVBUFFORCE not permitted)",
        }
    }
}

/// What [`set_udp_recv_buffer`] asked for and what the kernel gave.
#[derive(Debug, Clone, Copy)]
pub struct RcvbufReport {
    pub requested: usize,
    /// `getsockopt(SO_RCVBUF)` afterwards: twice what was granted.
    pub effective: usize,
    /// `/proc/sys/net/core/rmem_max`, if readable.
    pub rmem_max: Option<usize>,
    pub via: RcvbufVia,
}

/// Set a socket's receive buffer to `want` bytes: SO_RCVBUF when that is
/// within `net.core.rmem_max`, else SO_RCVBUFFORCE (root), falling back to
/// the capped SO_RCVBUF when that is refused (EPERM).
pub fn set_udp_recv_buffer(sock: &Socket, want: usize) -> io::Result<RcvbufReport> {
    use std::os::fd::AsRawFd;
    let rmem_max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|t| t.trim().parse::<usize>().ok());
    let fd = sock.as_raw_fd();
    let val = want.min(i32::MAX as usize / 2) as i32;
    let via = if rmem_max.is_some_and(|m| want > m) {
        match sockchat_shared::sockopt::setsockopt_int(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            val,
        ) {
            Ok(()) => RcvbufVia::Force,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                sock.set_recv_buffer_size(val as usize)?;
                RcvbufVia::Capped
            }
            Err(e) => return Err(e),
        }
    } else {
        sock.set_recv_buffer_size(val as usize)?;
        RcvbufVia::Rcvbuf
    };
    Ok(RcvbufReport {
        requested: want,
        effective: sock.recv_buffer_size()?,
        rmem_max,
        via,
    })
}

/// Bind a UDP socket on the address (and so the port) of every bound TCP
/// listener: with `--listen 127.0.0.1:0` UDP gets the port TCP got.
/// Empty when `udp.enabled` is false. Use [`crate::bind::bind_listen_set`],
/// which retries when that port is already taken for UDP.
pub fn bind_udp_all(s: &Settings, tcp: &[TcpListener]) -> Result<Vec<UdpSocket>, BindError> {
    if !s.config.udp.enabled {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for l in tcp {
        let addr = l.local_addr().map_err(|source| BindError {
            addr: ([0, 0, 0, 0], 0).into(),
            transport: "tcp",
            source,
        })?;
        let u = bind_udp(addr, s).map_err(|source| BindError {
            addr,
            transport: "udp",
            source,
        })?;
        out.push(u);
    }
    Ok(out)
}

/// The UDP bind failed with EADDRINUSE on an address that was configured
/// with port 0: the collision is the kernel's choice, not the user's, so
/// another port is as good.
fn port_was_chosen_by_kernel(s: &Settings, e: &BindError) -> bool {
    e.source.kind() == io::ErrorKind::AddrInUse && configured_with_port_0(&s.listen, e.addr)
}

fn configured_with_port_0(listen: &[SocketAddr], bound: SocketAddr) -> bool {
    listen.iter().any(|a| a.port() == 0 && a.ip() == bound.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(listen: &str) -> Settings {
        Settings::with_listen(listen.parse().expect("addr"))
    }

    /// A TCP listener on a kernel-chosen port whose UDP side the test holds:
    /// the collision `bind_listen_set_with` must survive. Built from a TCP
    /// port that is already ours (binding TCP on a held UDP port instead can
    /// meet a TCP socket of another process there: EADDRINUSE on the TCP
    /// side, a flaky test).
    fn colliding_pair() -> (TcpListener, UdpSocket) {
        let s = settings("127.0.0.1:0");
        let mut last = None;
        for _ in 0..100 {
            let l = bind_tcp(([127, 0, 0, 1], 0).into(), &s).expect("tcp on port 0");
            let port = l.local_addr().expect("addr").port();
            match UdpSocket::bind(("127.0.0.1", port)) {
                Ok(u) => return (l, u),
                Err(e) => last = Some(e),
            }
        }
        panic!("no port free for both TCP and UDP in 100 tries: {last:?}");
    }

    /// The listener's accept queue is `server.backlog`, 4096 by default (as
    /// far as `net.core.somaxconn` allows): a churn of short connections
    /// fills a 1024-deep queue with ones already closed, and every SYN past
    /// it waits 1 s (issue 10's churn). The kernel reports a listening
    /// socket's queue limit in `tcpi_sacked`.
    #[test]
    fn the_listen_queue_is_the_configured_backlog() {
        use std::os::fd::AsRawFd;
        let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .expect("somaxconn")
            .trim()
            .parse()
            .expect("a number");
        let s = settings("127.0.0.1:0");
        assert_eq!(s.config.server.backlog, 4096);
        let l = bind_tcp(([127, 0, 0, 1], 0).into(), &s).expect("tcp on port 0");
        let info = sockchat_shared::sockopt::tcp_info(l.as_raw_fd()).expect("tcp_info");
        assert_eq!(info.sacked, 4096.min(somaxconn), "the listen queue's limit");
    }

    /// A TCP step whose first call returns `first` (a listener whose UDP
    /// port is held), then behaves like the real one.
    fn collide_first(
        first: TcpListener,
        calls: &mut usize,
    ) -> impl FnMut(&Settings) -> Result<Vec<TcpListener>, BindError> + '_ {
        let mut first = Some(first);
        move |s| {
            *calls += 1;
            match first.take() {
                Some(l) => Ok(vec![l]),
                None => bind_tcp_all(s),
            }
        }
    }

    #[test]
    fn udp_collision_on_port_0_binds_again_on_fresh_ports() {
        // The first TCP choice collides on UDP: its port's UDP side is held.
        let (first, _held) = colliding_pair();
        let port = first.local_addr().expect("addr").port();
        let s = settings("127.0.0.1:0");
        let mut calls = 0;
        let b = bind_listen_set_with(&s, MAX_BIND_ATTEMPTS, collide_first(first, &mut calls))
            .expect("bound after retry");
        assert_eq!(calls, 2, "one collision, one retry");
        let t = b.tcp[0].local_addr().expect("tcp addr");
        let u = b.udp[0].local_addr().expect("udp addr");
        assert_ne!(t.port(), port, "the colliding port was given up");
        assert_eq!(t, u, "UDP on the port TCP got");
    }

    #[test]
    fn collision_error_is_returned_when_attempts_run_out() {
        let (first, _held) = colliding_pair();
        let port = first.local_addr().expect("addr").port();
        let s = settings("127.0.0.1:0");
        let mut calls = 0;
        let e = bind_listen_set_with(&s, 1, collide_first(first, &mut calls))
            .expect_err("no attempts left");
        assert_eq!(calls, 1);
        assert_eq!(e.source.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(e.addr.port(), port);
        assert_eq!(e.transport, "udp");
        assert!(e.to_string().contains("(udp)"), "{e}");
    }

    #[test]
    fn explicit_port_collision_is_not_retried() {
        // The user asked for this port: binding elsewhere would be wrong.
        let held = UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = held.local_addr().expect("addr").port();
        let s = settings(&format!("127.0.0.1:{port}"));
        let mut calls = 0;
        let e = bind_listen_set_with(&s, MAX_BIND_ATTEMPTS, |s| {
            calls += 1;
            bind_tcp_all(s)
        })
        .expect_err("port is taken for udp");
        assert_eq!(calls, 1);
        assert_eq!(e.source.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(e.addr.port(), port);
    }

    /// The kernel doubles the request; above rmem_max root gets it through
    /// SO_RCVBUFFORCE and anyone else the cap, and the report says which.
    #[test]
    fn udp_recv_buffer_is_set_and_reported() {
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .expect("rmem_max")
            .trim()
            .parse()
            .expect("number");
        let small = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("socket");
        let r = set_udp_recv_buffer(&small, 65536).expect("set");
        if rmem_max >= 65536 {
            assert_eq!(r.via, RcvbufVia::Rcvbuf);
            assert_eq!(r.effective, 2 * 65536, "the kernel doubles it");
        }
        let big = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("socket");
        let want = rmem_max + 65536;
        let r = set_udp_recv_buffer(&big, want).expect("set");
        assert_eq!(r.rmem_max, Some(rmem_max));
        match r.via {
            RcvbufVia::Force => assert_eq!(r.effective, 2 * want),
            RcvbufVia::Capped => assert_eq!(r.effective, 2 * rmem_max),
            RcvbufVia::Rcvbuf => panic!("above rmem_max must not be a plain SO_RCVBUF: {r:?}"),
        }
    }

    #[test]
    fn udp_socket_gets_the_configured_buffer() {
        let mut s = settings("127.0.0.1:0");
        s.config.udp.recv_buffer = 8192;
        let u = bind_udp("127.0.0.1:0".parse().expect("addr"), &s).expect("bind");
        assert_eq!(
            socket2::SockRef::from(&u).recv_buffer_size().expect("get"),
            16384
        );
    }

    /// One connection accepted from a listener bound with `s`: the server
    /// side's socket (the client's is returned too, to keep it open).
    fn accept_one(s: &Settings) -> (std::net::TcpStream, std::net::TcpStream) {
        let l = bind_tcp("127.0.0.1:0".parse().expect("addr"), s).expect("bind");
        let client = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        l.set_nonblocking(false).expect("blocking");
        let (accepted, _) = l.accept().expect("accept");
        (accepted, client)
    }

    /// The socket options are set once, on the listener: an accepted
    /// socket must have them all (the accept path no longer sets any).
    #[test]
    fn accepted_sockets_inherit_the_listeners_options() {
        let mut s = settings("127.0.0.1:0");
        let c = &mut s.config.server;
        c.nodelay = true;
        c.keepalive = true;
        c.keepalive_idle_secs = 61;
        c.keepalive_interval_secs = 11;
        c.keepalive_count = 6;
        c.user_timeout_ms = 12_345;
        let (accepted, _client) = accept_one(&s);
        let a = socket2::SockRef::from(&accepted);
        assert!(a.tcp_nodelay().expect("nodelay"), "TCP_NODELAY");
        assert!(a.keepalive().expect("keepalive"), "SO_KEEPALIVE");
        assert_eq!(
            a.tcp_keepalive_time().expect("idle"),
            Duration::from_secs(61)
        );
        assert_eq!(
            a.tcp_keepalive_interval().expect("intvl"),
            Duration::from_secs(11)
        );
        assert_eq!(a.tcp_keepalive_retries().expect("cnt"), 6);
        assert_eq!(
            a.tcp_user_timeout().expect("user timeout"),
            Some(Duration::from_millis(12_345))
        );

        // And nothing extra when keepalive is off.
        let c = &mut s.config.server;
        c.keepalive = false;
        c.nodelay = false;
        c.user_timeout_ms = 0;
        let (accepted, _client) = accept_one(&s);
        let a = socket2::SockRef::from(&accepted);
        assert!(!a.tcp_nodelay().expect("nodelay"));
        assert!(!a.keepalive().expect("keepalive"));
        assert_eq!(a.tcp_user_timeout().expect("user timeout"), None);
    }

    #[test]
    fn udp_disabled_binds_tcp_only() {
        let mut s = settings("127.0.0.1:0");
        s.config.udp.enabled = false;
        let b = bind_listen_set(&s).expect("bound");
        assert_eq!(b.tcp.len(), 1);
        assert!(b.udp.is_empty());
    }
}
