//! What the kernel still keeps of a TCP connection after our `close()`:
//! the TIME_WAIT (or FIN_WAIT2, LAST_ACK...) socket and its remaining
//! timer, asked of the kernel with `sock_diag` (netlink `inet_diag`, what
//! `ss -tno` uses; no privilege needed). `getsockopt(TCP_INFO)` cannot
//! tell: once the fd is closed the socket it reads is gone, and what
//! remains is a kernel-internal one only sock_diag sees.
//!
//! A small hand-written request rather than `netlink-packet-sock-diag`:
//! that crate decodes a TIME_WAIT socket's timer as `Timer::TimeWait`
//! without its remaining time, which is the number shown here. The
//! request is one exact lookup (`SOCK_DIAG_BY_FAMILY` without
//! `NLM_F_DUMP`) by the 4-tuple: one small answer, never a dump.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use sockchat_shared::sockopt::tcp_state_name;

/// linux/sock_diag.h
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// sizeof(struct nlmsghdr)
const NLMSG_HDR: usize = 16;
/// sizeof(struct inet_diag_req_v2)
const REQ_LEN: usize = 56;
/// sizeof(struct inet_diag_msg)
const MSG_LEN: usize = 72;
/// How long the kernel may take to answer (it answers in microseconds).
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// The kernel's socket for a connection, as `ss` would show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSocket {
    /// `TIME_WAIT`, `FIN_WAIT2`, `LAST_ACK`, `ESTABLISHED`...
    pub state: &'static str,
    /// Which timer runs (`timewait`, `on` = retransmission, `keepalive`
    /// (also FIN_WAIT2's), `persist` = zero-window probe), as `ss -o`
    /// names them.
    pub timer: Option<&'static str>,
    /// What is left of that timer.
    pub expires: Option<Duration>,
}

/// idiag_timer, as `ss` names it.
fn timer_name(t: u8) -> Option<&'static str> {
    match t {
        1 => Some("on"),
        2 => Some("keepalive"),
        3 => Some("timewait"),
        4 => Some("persist"),
        _ => None,
    }
}

/// The kernel's socket for the TCP connection `local` -> `peer`, if it
/// still has one (`Ok(None)`: gone, as after an RST or a completed close).
pub fn lookup(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<KernelSocket>> {
    let fd = open()?;
    let req = request(local, peer)?;
    // SAFETY: zeroed sockaddr_nl is valid; pid 0 is the kernel.
    let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    to.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: req and to are valid for the sizes given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            req.as_ptr().cast(),
            req.len(),
            0,
            (&to as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 8192];
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    parse(&buf[..n as usize])
}

fn open() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: ANSWER_WITHIN.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: tv is a valid timeval for SO_RCVTIMEO.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// nlmsghdr + inet_diag_req_v2 for the exact socket `local` -> `peer`.
/// Ports and addresses in network order, as the kernel keeps them.
fn request(local: SocketAddr, peer: SocketAddr) -> io::Result<[u8; NLMSG_HDR + REQ_LEN]> {
    let family = match (local.ip(), peer.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "local and peer addresses of different families",
            ));
        }
    };
    let mut m = [0u8; NLMSG_HDR + REQ_LEN];
    m[0..4].copy_from_slice(&((NLMSG_HDR + REQ_LEN) as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m[8..12].copy_from_slice(&1u32.to_ne_bytes()); // seq
    let r = &mut m[NLMSG_HDR..];
    r[0] = family as u8;
    r[1] = libc::IPPROTO_TCP as u8;
    // r[2] extensions: none; r[3] pad.
    r[4..8].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
    let id = &mut r[8..];
    id[0..2].copy_from_slice(&local.port().to_be_bytes());
    id[2..4].copy_from_slice(&peer.port().to_be_bytes());
    put_addr(&mut id[4..20], local.ip());
    put_addr(&mut id[20..36], peer.ip());
    // id[36..40] interface: any. Cookie INET_DIAG_NOCOOKIE: not checked.
    id[40..48].copy_from_slice(&[0xff; 8]);
    Ok(m)
}

fn put_addr(to: &mut [u8], ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => to[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => to[..16].copy_from_slice(&a.octets()),
    }
}

/// The kernel's answer: an inet_diag_msg, or NLMSG_ERROR (ENOENT: no such
/// socket). Lengths are checked before any field is read.
fn parse(b: &[u8]) -> io::Result<Option<KernelSocket>> {
    let short = || io::Error::new(io::ErrorKind::InvalidData, "short sock_diag answer");
    if b.len() < NLMSG_HDR {
        return Err(short());
    }
    let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
    let kind = u16_at(4);
    if kind == libc::NLMSG_ERROR as u16 {
        let e = b
            .get(NLMSG_HDR..NLMSG_HDR + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map(i32::from_ne_bytes)
            .ok_or_else(short)?;
        return match -e {
            0 => Ok(None),
            libc::ENOENT => Ok(None),
            errno => Err(io::Error::from_raw_os_error(errno)),
        };
    }
    if kind != SOCK_DIAG_BY_FAMILY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected netlink message type {kind}"),
        ));
    }
    let m = b.get(NLMSG_HDR..NLMSG_HDR + MSG_LEN).ok_or_else(short)?;
    let timer = timer_name(m[2]);
    // After family, state, timer, retrans (4) and the socket id (48).
    let expires = u32::from_ne_bytes([m[52], m[53], m[54], m[55]]);
    Ok(Some(KernelSocket {
        state: tcp_state_name(m[1]),
        timer,
        expires: timer.map(|_| Duration::from_millis(u64::from(expires))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_is_inet_diag_req_v2() {
        let l: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let p: SocketAddr = "127.0.0.2:7878".parse().expect("addr");
        let m = request(l, p).expect("same family");
        assert_eq!(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]), 72);
        let id = &m[NLMSG_HDR + 8..];
        assert_eq!(&id[0..2], &40000u16.to_be_bytes());
        assert_eq!(&id[2..4], &7878u16.to_be_bytes());
        assert_eq!(&id[4..8], &[127, 0, 0, 1]);
        assert_eq!(&id[20..24], &[127, 0, 0, 2]);
        let six: SocketAddr = "[::1]:1".parse().expect("addr");
        assert!(request(l, six).is_err());
    }

    #[test]
    fn hostile_answers_are_errors_not_panics() {
        assert!(parse(&[]).is_err());
        let mut hdr = [0u8; NLMSG_HDR];
        hdr[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        assert!(parse(&hdr).is_err());
        hdr[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        assert!(parse(&hdr).is_err());
        let mut enoent = hdr.to_vec();
        enoent.extend_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(parse(&enoent).ok(), Some(None));
    }

    /// A real close on loopback leaves TIME_WAIT on the side that closed
    /// first, with the kernel's 60 s timer running.
    #[test]
    fn time_wait_after_a_real_close() {
        use std::io::Read;
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let c = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (mut s, _) = l.accept().expect("accept");
        let (local, peer) = (c.local_addr().expect("addr"), c.peer_addr().expect("addr"));
        let live = lookup(local, peer).expect("sock_diag").expect("socket");
        assert_eq!(live.state, "ESTABLISHED");
        drop(c); // our FIN first
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).expect("read"), 0);
        drop(s); // theirs: ours goes TIME_WAIT
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let k = loop {
            let k = lookup(local, peer).expect("sock_diag");
            if k.as_ref().is_some_and(|k| k.state == "TIME_WAIT")
                || std::time::Instant::now() > deadline
            {
                break k;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let k = k.expect("a TIME_WAIT socket");
        assert_eq!(k.state, "TIME_WAIT");
        assert_eq!(k.timer, Some("timewait"));
        let left = k.expires.expect("timer");
        assert!(
            left > Duration::from_secs(50) && left <= Duration::from_secs(60),
            "{left:?}"
        );
    }
}
