//! Batched datagram send: one `sendmmsg(2)` carries up to [`BATCH`]
//! datagrams to one destination (what a UDP member has queued), instead of
//! one `sendto` each.

use std::io;
use std::os::fd::AsRawFd;

use bytes::Bytes;
use socket2::SockAddr;

/// Most datagrams per `sendmmsg` (the arrays live on the stack).
pub const BATCH: usize = 64;

/// Send the front of `dgrams` (at most [`BATCH`]) to `to` with one
/// `sendmmsg`. Returns how many the kernel took (at least one), or the
/// error of the first one (`WouldBlock` when the socket buffer is full).
/// An error on a later datagram ends the batch early; the next call, which
/// starts with that datagram, reports it.
pub fn send_to(sock: &impl AsRawFd, to: &SockAddr, dgrams: &[Bytes]) -> io::Result<usize> {
    let n = dgrams.len().min(BATCH);
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: all-zero iovec and mmsghdr are valid values (null pointers,
    // zero lengths); the ones used are filled in below.
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (i, d) in dgrams.iter().take(n).enumerate() {
        iov[i] = libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        };
    }
    let iov_ptr = iov.as_mut_ptr();
    for (i, h) in hdrs.iter_mut().take(n).enumerate() {
        h.msg_hdr.msg_name = to.as_ptr() as *mut libc::c_void;
        h.msg_hdr.msg_namelen = to.len();
        // SAFETY: i < n <= BATCH, inside the array.
        h.msg_hdr.msg_iov = unsafe { iov_ptr.add(i) };
        h.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: hdrs[..n] point at iov[..n], at the datagrams and at `to`,
    // all alive and unmoved for the duration of the call; the kernel reads
    // them and writes only `msg_len` in hdrs.
    let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// A batch reaches the peer whole, in order, one datagram each.
    #[test]
    fn a_batch_arrives_in_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = SockAddr::from(rx.local_addr().expect("addr"));
        let dgrams: Vec<Bytes> = (0..BATCH + 3)
            .map(|i| Bytes::from(format!("d{i}")))
            .collect();
        let mut sent = 0;
        while sent < dgrams.len() {
            let n = send_to(&tx, &to, &dgrams[sent..]).expect("sendmmsg");
            assert!((1..=BATCH).contains(&n));
            sent += n;
        }
        let mut buf = [0u8; 64];
        for d in &dgrams {
            let n = rx.recv(&mut buf).expect("recv");
            assert_eq!(&buf[..n], &d[..]);
        }
        assert_eq!(send_to(&tx, &to, &[]).expect("empty"), 0);
    }
}
