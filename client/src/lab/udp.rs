//! UDP has no connection to lose: a vanished peer produces no signal at
//! all, unless the socket is *connected*, in which case an ICMP
//! port-unreachable coming back is reported as ECONNREFUSED on a later call.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use super::outcome::{Outcome, code_of};

/// How long we wait for an answer before declaring the peer gone.
const RECV_TIMEOUT: Duration = Duration::from_millis(800);

fn scenario(
    name: &'static str,
    expected: &str,
    f: impl FnOnce() -> anyhow::Result<Outcome>,
) -> Outcome {
    f().unwrap_or_else(|e| Outcome::setup_failed(name, expected, &e))
}

pub fn peer_gone() -> Outcome {
    scenario("udp-peer-gone", "idle-timeout", || {
        let us = UdpSocket::bind("127.0.0.1:0")?;
        let peer = UdpSocket::bind("127.0.0.1:0")?;
        let peer_addr = peer.local_addr()?;
        us.set_read_timeout(Some(RECV_TIMEOUT))?;
        peer.set_read_timeout(Some(RECV_TIMEOUT))?;
        // A live exchange first: the "session" works.
        us.send_to(b"ping", peer_addr)?;
        let mut buf = [0u8; 64];
        let (_, from) = peer.recv_from(&mut buf)?;
        peer.send_to(b"pong", from)?;
        us.recv_from(&mut buf)?;
        drop(peer); // the peer is gone; it tells nobody
        let sent = us.send_to(b"ping", peer_addr);
        let t = Instant::now();
        let r = us.recv_from(&mut buf);
        let waited = t.elapsed();
        let (obs, errno) = match &r {
            Ok((n, a)) => (format!("datagram ({n} bytes from {a})"), None),
            // Our own receive timeout (EAGAIN) is the only thing that ever
            // happens: in the vocabulary that is the session's idle timeout.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                ("idle-timeout".to_string(), Some(libc::EAGAIN))
            }
            Err(e) => code_of(e),
        };
        Ok(Outcome::judge(
            "udp-peer-gone",
            "peer socket closed; we send_to() and wait",
            obs,
            errno,
            "idle-timeout",
            Some(libc::EAGAIN),
            sent.is_ok(),
            "UDP has no FIN or RST: the send succeeds, and an unconnected socket is never told about ICMP errors; only our own timeout notices",
        )
        .with_details(vec![
            format!("send_to after the peer left: {}", match &sent { Ok(n) => format!("ok, {n} bytes"), Err(e) => e.to_string() }),
            format!("recv_from with SO_RCVTIMEO {RECV_TIMEOUT:?}: nothing for {waited:?}, then EAGAIN"),
        ]))
    })
}

pub fn connected_refused() -> Outcome {
    scenario("udp-refused", "refused", || {
        let dead = UdpSocket::bind("127.0.0.1:0")?.local_addr()?; // free again
        let us = UdpSocket::bind("127.0.0.1:0")?;
        us.connect(dead)?;
        us.set_read_timeout(Some(RECV_TIMEOUT))?;
        let sent = us.send(b"anyone?");
        let mut buf = [0u8; 64];
        let r = us.recv(&mut buf);
        let (obs, errno) = match &r {
            Ok(n) => (format!("datagram ({n} bytes)"), None),
            Err(e) => code_of(e),
        };
        Ok(Outcome::judge(
            "udp-refused",
            format!("connect() UDP to {dead} (nothing there), send(), recv()"),
            obs,
            errno,
            "refused",
            Some(libc::ECONNREFUSED),
            sent.is_ok(),
            "the send succeeds; the kernel's ICMP port-unreachable reply is queued as an error on the connected socket and the next recv() returns ECONNREFUSED",
        )
        .with_details(vec![format!(
            "send: {}",
            match &sent {
                Ok(n) => format!("ok, {n} bytes"),
                Err(e) => e.to_string(),
            }
        )]))
    })
}
