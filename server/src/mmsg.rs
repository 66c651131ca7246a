//! Batched datagram send: one `sendmmsg(2)` carries up to [`BATCH`]
//! datagrams to one destination (what a UDP member has queued), instead of
//! one `sendto` each; and where the kernel has UDP GSO (`UDP_SEGMENT`,
//! Linux 4.18), each run of equal-sized datagrams in it travels the stack
//! as one buffer that is cut into datagrams at the end (on loopback, at
//! the receiving socket). GSO only merges datagrams to the *same*
//! destination, so it helps a member whose writer found several queued,
//! not the fan-out of one message to many members. Without GSO (an old
//! kernel, `udp.gso = false`, or a destination the kernel refused a GSO
//! send to) every datagram is its own message.
//!
//! Whether GSO may be used is decided twice: once per process (the kernel
//! has `UDP_SEGMENT` and the config allows it) and once per destination
//! (each UDP member's writer keeps its own flag): a refusal for one path
//! (e.g. EINVAL when a segment does not fit that route's MTU, EIO through
//! an IPsec route) turns GSO off for that member only.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, Ordering};

use bytes::Bytes;
use socket2::SockAddr;

/// Most datagrams per `sendmmsg` (the arrays live on the stack).
pub const BATCH: usize = 64;
/// Most segments in one GSO send (the kernel's UDP_MAX_SEGMENTS is 64 on
/// older kernels, 128 since 5.x).
const MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO send: the UDP length field (65,535) less the UDP
/// and the largest IP header.
const MAX_GSO_BYTES: usize = 65_535 - 8 - 40;

/// Whether this process may use GSO: unknown until the first writer probes
/// it, then on or off (off: the kernel has no `UDP_SEGMENT`, or
/// `udp.gso = false`).
static GSO: AtomicU8 = AtomicU8::new(GSO_UNKNOWN);
const GSO_UNKNOWN: u8 = 0;
const GSO_ON: u8 = 1;
const GSO_OFF: u8 = 2;

/// Whether GSO is in use (probes once: `getsockopt(UDP_SEGMENT)` succeeds
/// only on kernels that have it).
pub fn gso_enabled(sock: &impl AsRawFd) -> bool {
    match GSO.load(Ordering::Relaxed) {
        GSO_ON => true,
        GSO_OFF => false,
        _ => {
            let ok = sockchat_shared::sockopt::getsockopt_int(
                sock.as_raw_fd(),
                libc::SOL_UDP,
                libc::UDP_SEGMENT,
            )
            .is_ok();
            GSO.store(if ok { GSO_ON } else { GSO_OFF }, Ordering::Relaxed);
            ok
        }
    }
}

/// Turn GSO off for the rest of the process (`udp.gso = false`).
pub fn disable_gso() {
    GSO.store(GSO_OFF, Ordering::Relaxed);
}

/// Group the front of a batch into GSO sends: each run is datagrams of one
/// length, optionally ending with one shorter datagram (the kernel allows a
/// short last segment), at most [`MAX_SEGMENTS`] and [`MAX_GSO_BYTES`].
/// Returns the number of datagrams in each send; with `gso` false, every
/// datagram is its own send.
pub fn runs(lens: impl IntoIterator<Item = usize>, gso: bool, out: &mut Vec<usize>) {
    out.clear();
    let mut cur: Option<(usize, usize, bool)> = None; // (segment size, count, closed)
    for len in lens {
        if let Some((size, count, closed)) = cur.as_mut() {
            let fits = gso
                && !*closed
                && len <= *size
                && *count < MAX_SEGMENTS
                && (*count + 1) * *size <= MAX_GSO_BYTES;
            if fits {
                *count += 1;
                // A shorter datagram can only be the last segment.
                *closed = len < *size;
                continue;
            }
            out.push(*count);
        }
        cur = Some((len, 1, len == 0));
    }
    if let Some((_, count, _)) = cur {
        out.push(count);
    }
}

/// Whether a failed GSO send means "not on this path" rather than a
/// datagram's own fate: EINVAL (a segment plus headers larger than the
/// route's MTU, too many segments, checksums off), EIO (no checksum
/// offload on the route, e.g. through IPsec), ENOPROTOOPT/EOPNOTSUPP.
fn gso_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// Send the front of `dgrams` (at most [`BATCH`]) to `to` with one
/// `sendmmsg`, runs of equal-sized datagrams as one GSO message each while
/// `*gso` (this destination's flag, starting at [`gso_enabled`]). Returns
/// how many datagrams the kernel took (at least one), or the error of the
/// first message (`WouldBlock` when the socket buffer is full). An error
/// on a later message ends the batch early; the next call, which starts
/// with that message's first datagram, reports it. A GSO send the kernel
/// refuses (see `gso_refused`) clears `*gso`, so this destination gets one
/// datagram per message from now on, and is sent again without it.
pub fn send_to(
    sock: &impl AsRawFd,
    to: &SockAddr,
    dgrams: &[Bytes],
    gso: &mut bool,
) -> io::Result<usize> {
    match send_batch(sock, to, dgrams, *gso) {
        Err(e) if *gso && gso_refused(&e) => {
            tracing::info!(
                peer = ?to.as_socket(),
                error = %e,
                "UDP GSO refused by the kernel for this destination; one datagram per message to it from now on"
            );
            *gso = false;
            send_batch(sock, to, dgrams, false)
        }
        r => r,
    }
}

/// A control buffer for one `UDP_SEGMENT` cmsg, aligned for `cmsghdr`.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Control([u8; 32]);

fn send_batch(
    sock: &impl AsRawFd,
    to: &SockAddr,
    dgrams: &[Bytes],
    gso: bool,
) -> io::Result<usize> {
    let dgrams = &dgrams[..dgrams.len().min(BATCH)];
    if dgrams.is_empty() {
        return Ok(0);
    }
    let mut counts = Vec::with_capacity(8);
    runs(dgrams.iter().map(Bytes::len), gso, &mut counts);
    // SAFETY: all-zero iovec, mmsghdr and control buffers are valid values
    // (null pointers, zero lengths); the ones used are filled in below.
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let mut ctl = [Control([0; 32]); BATCH];
    for (i, d) in dgrams.iter().enumerate() {
        iov[i] = libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        };
    }
    let iov_ptr = iov.as_mut_ptr();
    let mut first = 0;
    for (m, &count) in counts.iter().enumerate() {
        let h = &mut hdrs[m].msg_hdr;
        h.msg_name = to.as_ptr() as *mut libc::c_void;
        h.msg_namelen = to.len();
        // SAFETY: first + count <= dgrams.len() <= BATCH, inside the array.
        h.msg_iov = unsafe { iov_ptr.add(first) };
        h.msg_iovlen = count as _;
        if count > 1 {
            let seg = dgrams[first].len() as u16;
            // SAFETY: the control buffer is 32 bytes, 8-aligned, enough for
            // CMSG_SPACE(2) (24 on 64-bit); CMSG_FIRSTHDR of a msghdr whose
            // control length covers one header returns its start.
            unsafe {
                h.msg_control = ctl[m].0.as_mut_ptr().cast();
                h.msg_controllen = libc::CMSG_SPACE(2) as _;
                let c = libc::CMSG_FIRSTHDR(h);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = libc::UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
            }
        }
        first += count;
    }
    // SAFETY: hdrs[..counts.len()] point at iov, the datagrams, the
    // control buffers and `to`, all alive and unmoved for the duration of
    // the call; the kernel reads them and writes only `msg_len` in hdrs.
    let r = unsafe {
        libc::sendmmsg(
            sock.as_raw_fd(),
            hdrs.as_mut_ptr(),
            counts.len() as libc::c_uint,
            0,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(counts.iter().take(r as usize).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn runs_of(lens: &[usize], gso: bool) -> Vec<usize> {
        let mut out = Vec::new();
        runs(lens.iter().copied(), gso, &mut out);
        out
    }

    #[test]
    fn runs_are_equal_sizes_with_a_shorter_last() {
        assert_eq!(runs_of(&[100, 100, 100], true), vec![3]);
        assert_eq!(runs_of(&[100, 100, 60, 100], true), vec![3, 1]);
        assert_eq!(runs_of(&[60, 100, 100], true), vec![1, 2]);
        assert_eq!(runs_of(&[100, 100, 100], false), vec![1, 1, 1]);
        assert_eq!(runs_of(&[], true), Vec::<usize>::new());
        // Never more than MAX_SEGMENTS, nor more bytes than one UDP length.
        assert_eq!(runs_of(&[10; 70], true), vec![MAX_SEGMENTS, 6]);
        assert_eq!(runs_of(&[1400; 50], true), vec![46, 4]);
    }

    /// A batch reaches the peer whole, in order, one datagram each, with
    /// and without GSO (a receiver without UDP_GRO gets the segments as
    /// separate datagrams).
    #[test]
    fn a_batch_arrives_in_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = SockAddr::from(rx.local_addr().expect("addr"));
        // Equal sizes (merged by GSO), a shorter one, odd sizes.
        let dgrams: Vec<Bytes> = (0..BATCH + 3)
            .map(|i| match i % 20 {
                19 => Bytes::from(format!("short{i}")),
                13 => Bytes::from(format!("a longer datagram {i:040}")),
                _ => Bytes::from(format!("dgram-{i:04}")),
            })
            .collect();
        for gso in [true, false] {
            let mut flag = gso && gso_enabled(&tx);
            let mut sent = 0;
            let mut calls = 0;
            while sent < dgrams.len() {
                let n = send_to(&tx, &to, &dgrams[sent..], &mut flag).expect("sendmmsg");
                assert!((1..=BATCH).contains(&n));
                sent += n;
                calls += 1;
            }
            assert_eq!(calls, 2, "{BATCH} per call");
            let mut buf = [0u8; 128];
            for d in &dgrams {
                let n = rx.recv(&mut buf).expect("recv");
                assert_eq!(&buf[..n], &d[..], "gso {gso}");
            }
        }
        assert_eq!(send_to(&tx, &to, &[], &mut true).expect("empty"), 0);
    }

    /// A GSO send the kernel refuses for a path is sent again one datagram
    /// per message, and only that destination's flag goes off. (Refused
    /// here by `SO_NO_CHECK`: a socket without UDP checksums cannot use
    /// GSO, EINVAL, as a route whose MTU a segment does not fit.)
    #[test]
    fn a_refused_gso_send_falls_back_for_that_destination() {
        use std::os::fd::AsRawFd;
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        if !gso_enabled(&tx) {
            return; // a kernel without UDP_SEGMENT: nothing to refuse
        }
        sockchat_shared::sockopt::setsockopt_int(
            tx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NO_CHECK,
            1,
        )
        .expect("SO_NO_CHECK");
        let to = SockAddr::from(rx.local_addr().expect("addr"));
        let dgrams: Vec<Bytes> = (0..10)
            .map(|i| Bytes::from(format!("same-size-{i}")))
            .collect();
        let mut flag = true;
        let n = send_to(&tx, &to, &dgrams, &mut flag).expect("sent without GSO");
        assert_eq!(n, dgrams.len());
        assert!(
            !flag,
            "the refused destination sends without GSO from now on"
        );
        assert!(
            gso_enabled(&tx),
            "the process-wide GSO stays on for the others"
        );
        let mut buf = [0u8; 64];
        for d in &dgrams {
            let n = rx.recv(&mut buf).expect("recv");
            assert_eq!(&buf[..n], &d[..]);
        }
    }
}
