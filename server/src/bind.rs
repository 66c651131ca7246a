//! Binding the whole listen set: the TCP listeners, then a UDP socket on the
//! port each of them got. With `--listen 127.0.0.1:0` the kernel picks the
//! TCP port without looking at UDP, so another process may already hold
//! that port for UDP (EADDRINUSE): then the set is dropped and bound again
//! on fresh ports, a bounded number of times.
//!
//! **Invariant:** a [`Bound`] always has UDP on exactly the ports its TCP
//! listeners have (when UDP is enabled); both `main` and [`crate::start`]
//! bind through [`bind_listen_set`].

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use tracing::debug;

use crate::config::Settings;
use crate::listener::{self, BindError};
use crate::udp;

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
    bind_listen_set_with(s, MAX_BIND_ATTEMPTS, listener::bind_all)
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
        match udp::bind_all(s, &tcp) {
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

    /// A TCP step whose first call binds TCP on `port` (whose UDP side the
    /// test holds), then behaves like the real one.
    fn collide_first(
        port: u16,
        calls: &mut usize,
    ) -> impl FnMut(&Settings) -> Result<Vec<TcpListener>, BindError> + '_ {
        move |s| {
            *calls += 1;
            if *calls == 1 {
                let addr: SocketAddr = ([127, 0, 0, 1], port).into();
                let l = listener::bind_tcp(addr, s).map_err(|source| BindError {
                    addr,
                    transport: "tcp",
                    source,
                })?;
                Ok(vec![l])
            } else {
                listener::bind_all(s)
            }
        }
    }

    #[test]
    fn udp_collision_on_port_0_binds_again_on_fresh_ports() {
        // Hold a UDP port so the first TCP choice collides on UDP.
        let held = UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = held.local_addr().expect("addr").port();
        let s = settings("127.0.0.1:0");
        let mut calls = 0;
        let b = bind_listen_set_with(&s, MAX_BIND_ATTEMPTS, collide_first(port, &mut calls))
            .expect("bound after retry");
        assert_eq!(calls, 2, "one collision, one retry");
        let t = b.tcp[0].local_addr().expect("tcp addr");
        let u = b.udp[0].local_addr().expect("udp addr");
        assert_ne!(t.port(), port, "the colliding port was given up");
        assert_eq!(t, u, "UDP on the port TCP got");
    }

    #[test]
    fn collision_error_is_returned_when_attempts_run_out() {
        let held = UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = held.local_addr().expect("addr").port();
        let s = settings("127.0.0.1:0");
        let mut calls = 0;
        let e = bind_listen_set_with(&s, 1, collide_first(port, &mut calls))
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
            listener::bind_all(s)
        })
        .expect_err("port is taken for udp");
        assert_eq!(calls, 1);
        assert_eq!(e.source.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(e.addr.port(), port);
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
