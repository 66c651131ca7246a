//! The capture itself: an `AF_PACKET` socket that receives only the TCP
//! segments it is asked for (a classic BPF filter in the kernel, truncated
//! to the headers), read on its own thread into memory. Two users: the
//! lab captures one port on one interface and keeps the whole trace
//! ([`open_port`], [`Sniffer::run`] with [`Keep::First`]); the client's wire view
//! captures one connection on every interface and keeps the newest
//! packets ([`open_conn`], [`Keep::Last`]).
//!
//! Why these choices: `SOCK_DGRAM` gives the IP packet without the
//! loopback's dummy Ethernet header; on `lo`, bound to ETH_P_IP (not
//! ETH_P_ALL), it sees each segment once, arriving (the transmit tap feeds
//! only ETH_P_ALL sockets, which would see every segment twice there); on a
//! namespace's veth, or on every interface (the client's), it is bound to
//! ETH_P_ALL to see both directions, and the copy leaving `lo` is skipped;
//! the filter is attached before the socket is bound so no other traffic
//! is ever queued; the kernel timestamps each packet (`SIOCGSTAMPNS`), so a
//! loaded machine does not skew the times.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes kept per packet: the IPv4 header and the TCP header with options
/// (at most 60 + 60) fit; payloads are not needed and not kept.
pub const SNAPLEN: u32 = 128;
/// What a capture keeps when more packets come than it may hold (a
/// memory bound either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The first N (the lab: a trace from its SYN); more are counted as
    /// dropped, so an incomplete trace is known.
    First(usize),
    /// The newest N, a ring (the client's live view, drained often); the
    /// oldest are evicted and counted.
    Last(usize),
}
/// The reader wakes this often to see whether it should stop.
const POLL: Duration = Duration::from_millis(20);
/// Loopback segments are up to 64 KiB and the kernel charges the whole
/// buffer to the capture socket even when truncated: make room.
const CAPTURE_RCVBUF: usize = 16 * 1024 * 1024;

/// One captured packet: kernel receive time, original length, the first
/// [`SNAPLEN`] bytes of the IP packet.
#[derive(Debug, Clone)]
pub struct RawPacket {
    pub ts: Duration,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// What the reader thread fills.
#[derive(Default)]
struct Store {
    packets: std::collections::VecDeque<RawPacket>,
    over_limit: u64,
    error: Option<String>,
}

pub const LOOPBACK: &str = "lo";

/// A running capture; [`Sniffer::stop`] ends it and returns the packets.
pub struct Sniffer {
    fd: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    store: Arc<Mutex<Store>>,
    thread: Option<JoinHandle<()>>,
}

/// What a stopped capture holds.
pub struct Captured {
    pub packets: Vec<RawPacket>,
    /// Packets the kernel or the memory bound dropped (0 = complete).
    pub dropped: u64,
    pub error: Option<String>,
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(())
    }
}

/// How to grant the capability a capture needs, for the messages that say
/// why there are no packets.
pub fn grant_hint() -> String {
    format!(
        "sudo setcap cap_net_raw+ep {}",
        std::env::current_exe()
            .map_or("$(command -v sockchat)".into(), |p| p.display().to_string())
    )
}

/// Can this process open a packet socket? `Err` says why not (EPERM
/// without CAP_NET_RAW). `Ok`: a socket to keep open for the whole run,
/// which has turned the kernel's packet timestamps on. The kernel enables
/// them system-wide lazily (a deferred static key) when the first socket
/// asks: asked here, the first scenario's first packets are stamped too.
pub fn available() -> io::Result<OwnedFd> {
    let fd = open_socket()?;
    let _ = kernel_stamp(fd.as_raw_fd());
    wait_stamps_on(Duration::from_secs(2));
    Ok(fd)
}

/// The first request only *schedules* turning the stamps on (a work item
/// patches the kernel's code); until it has run, packets arrive unstamped
/// and get the time they are read instead, which put a `--only` run's
/// packets after its system calls. Wait (bounded; best effort) until a
/// datagram over loopback carries its arrival time: read 10 ms after it
/// arrived, its stamp is that much older than the read.
fn wait_stamps_on(limit: Duration) {
    let Ok(rx) = std::net::UdpSocket::bind("127.0.0.1:0") else {
        return;
    };
    let Ok(tx) = std::net::UdpSocket::bind("127.0.0.1:0") else {
        return;
    };
    let (Ok(to), Ok(())) = (rx.local_addr(), rx.set_read_timeout(Some(POLL))) else {
        return;
    };
    let deadline = std::time::Instant::now() + limit;
    let mut buf = [0u8; 8];
    while std::time::Instant::now() < deadline {
        if tx.send_to(b"stamp", to).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
        let before = wall_clock();
        if rx.recv(&mut buf).is_err() {
            continue;
        }
        if kernel_stamp(rx.as_raw_fd()).is_some_and(|ts| ts + Duration::from_millis(5) <= before) {
            return;
        }
    }
}

/// `socket(AF_PACKET, SOCK_DGRAM, 0)`: protocol 0 receives nothing until
/// `bind` names a protocol, so the filter can be attached first.
fn open_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(fd, "socket(AF_PACKET)")?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Classic BPF: accept IPv4 TCP whose source or destination port is
/// `port` (first fragments only), cut to [`SNAPLEN`] bytes; drop the rest
/// (ARP and IPv6 included: the first test is the frame's protocol).
/// Offsets are from the IP header (SOCK_DGRAM has no link header).
fn port_filter(port: u16) -> [libc::sock_filter; 13] {
    let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let p = u32::from(port);
    [
        ins(0x28, 0, 0, 0xffff_f000), // 0: ldh [SKF_AD_OFF + SKF_AD_PROTOCOL]
        ins(0x15, 0, 10, 0x0800),     // 1: jeq #ETH_P_IP else drop
        ins(0x30, 0, 0, 9),           // 2: ldb [9]            IP protocol
        ins(0x15, 0, 8, 6),           // 3: jeq #6 (TCP) else drop
        ins(0x28, 0, 0, 6),           // 4: ldh [6]            flags, fragment offset
        ins(0x45, 6, 0, 0x1fff),      // 5: jset #0x1fff (not first fragment) -> drop
        ins(0xb1, 0, 0, 0),           // 6: ldxb 4*([0]&0xf)   IP header length
        ins(0x48, 0, 0, 0),           // 7: ldh [x+0]          source port
        ins(0x15, 2, 0, p),           // 8: jeq port -> accept
        ins(0x48, 0, 0, 2),           // 9: ldh [x+2]          destination port
        ins(0x15, 0, 1, p),           // 10: jeq port -> accept else drop
        ins(0x06, 0, 0, SNAPLEN),     // 11: accept, truncated
        ins(0x06, 0, 0, 0),           // 12: drop
    ]
}

/// Classic BPF: accept the TCP segments of one connection, IPv4 (first
/// fragments) or IPv6 (TCP right after the fixed header), whose ports are
/// `a` and `b` in either direction, cut to [`SNAPLEN`]; drop the rest.
fn conn_filter(a: u16, b: u16) -> [libc::sock_filter; 21] {
    let ins = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let (a, b) = (u32::from(a), u32::from(b));
    // Jumps count the instructions skipped after the current one.
    [
        ins(0x28, 0, 0, 0xffff_f000), // 0: ldh [SKF_AD_OFF + SKF_AD_PROTOCOL]
        ins(0x15, 0, 6, 0x0800),      // 1: jeq #ETH_P_IP else 8
        ins(0x30, 0, 0, 9),           // 2: ldb [9]            IP protocol
        ins(0x15, 0, 16, 6),          // 3: jeq #6 (TCP) else drop
        ins(0x28, 0, 0, 6),           // 4: ldh [6]            flags, fragment offset
        ins(0x45, 14, 0, 0x1fff),     // 5: jset #0x1fff (not first fragment) -> drop
        ins(0xb1, 0, 0, 0),           // 6: ldxb 4*([0]&0xf)   IP header length
        ins(0x05, 0, 0, 4),           // 7: ja 12
        ins(0x15, 0, 11, 0x86dd),     // 8: jeq #ETH_P_IPV6 else drop
        ins(0x30, 0, 0, 6),           // 9: ldb [6]            next header
        ins(0x15, 0, 9, 6),           // 10: jeq #6 (TCP) else drop
        ins(0x01, 0, 0, 40),          // 11: ldx #40           fixed IPv6 header
        ins(0x48, 0, 0, 0),           // 12: ldh [x+0]         source port
        ins(0x15, 0, 2, a),           // 13: jeq a else 16
        ins(0x48, 0, 0, 2),           // 14: ldh [x+2]         destination port
        ins(0x15, 3, 4, b),           // 15: jeq b -> accept else drop
        ins(0x15, 0, 3, b),           // 16: jeq b else drop   (A: source port)
        ins(0x48, 0, 0, 2),           // 17: ldh [x+2]
        ins(0x15, 0, 1, a),           // 18: jeq a -> accept else drop
        ins(0x06, 0, 0, SNAPLEN),     // 19: accept, truncated
        ins(0x06, 0, 0, 0),           // 20: drop
    ]
}

fn setsockopt<T>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: &T,
    what: &str,
) -> io::Result<()> {
    // SAFETY: v points to a valid T for the call; the size matches.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    check(rc, what)
}

/// The lab's packet socket: IPv4 TCP port `port` on `iface`, filter
/// attached, bound. Call it inside the namespace that owns `iface`.
pub fn open_port(port: u16, iface: &str) -> io::Result<OwnedFd> {
    let ifindex = if_index(iface)?;
    let proto = if iface == LOOPBACK {
        libc::ETH_P_IP
    } else {
        libc::ETH_P_ALL
    };
    open_filtered(&port_filter(port), proto, ifindex)
}

/// The client's packet socket: the TCP segments between ports `local` and
/// `peer`, on every interface (the connection may use any), both ways.
pub fn open_conn(local: u16, peer: u16) -> io::Result<OwnedFd> {
    open_filtered(&conn_filter(local, peer), libc::ETH_P_ALL, 0)
}

/// `prog` attached, a big receive buffer, the poll timeout, kernel stamps
/// on, then bound to `proto` on interface `ifindex` (0: all).
fn open_filtered(
    prog: &[libc::sock_filter],
    proto: libc::c_int,
    ifindex: libc::c_int,
) -> io::Result<OwnedFd> {
    let fd = open_socket()?;
    let raw = fd.as_raw_fd();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    setsockopt(
        raw,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &fprog,
        "SO_ATTACH_FILTER",
    )?;
    let size = CAPTURE_RCVBUF as libc::c_int;
    // FORCE needs CAP_NET_ADMIN; the plain option is capped by rmem_max.
    if setsockopt(
        raw,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        &size,
        "SO_RCVBUFFORCE",
    )
    .is_err()
    {
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, &size, "SO_RCVBUF")?;
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: POLL.as_micros() as libc::suseconds_t,
    };
    setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv, "SO_RCVTIMEO")?;
    // Kernel timestamps from the first packet on: the first SIOCGSTAMPNS
    // turns them on (SOCK_TIMESTAMP; it answers ENOENT, nothing received
    // yet), and from then on each receive records its packet's stamp for
    // the next SIOCGSTAMPNS. (SO_TIMESTAMPNS would move the stamp into a
    // control message that recvfrom drops, and the ioctl would fail.)
    let _ = kernel_stamp(raw);
    // SAFETY: zeroed sockaddr_ll is a valid starting value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    // On lo, ETH_P_IP: each segment once (arriving). Elsewhere (a veth,
    // every interface) ETH_P_ALL, the only way to see what this host sends
    // as well.
    sll.sll_protocol = (proto as u16).to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: sll is a valid sockaddr_ll of the given size.
    let rc = unsafe {
        libc::bind(
            raw,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    check(rc, "bind(AF_PACKET)")?;
    Ok(fd)
}

pub fn if_index(name: &str) -> io::Result<libc::c_int> {
    let c =
        std::ffi::CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {name}"),
        ));
    }
    Ok(i as libc::c_int)
}

impl Sniffer {
    /// Read packet socket `fd` (from [`open_port`] or [`open_conn`]) on a
    /// thread of its own, keeping what `keep` says. `skip_out_of`: the
    /// index of `lo` when the socket sees both directions there, whose
    /// outgoing copies are skipped (the same segment also arrives).
    pub fn run(fd: OwnedFd, keep: Keep, skip_out_of: Option<libc::c_int>) -> io::Result<Sniffer> {
        let fd = Arc::new(fd);
        let stop = Arc::new(AtomicBool::new(false));
        let store = Arc::new(Mutex::new(Store::default()));
        let thread = {
            let (fd, stop, store) = (fd.clone(), stop.clone(), store.clone());
            std::thread::Builder::new()
                .name("wire-capture".into())
                .spawn(move || read_loop(fd.as_raw_fd(), keep, skip_out_of, &stop, &store))?
        };
        Ok(Sniffer {
            fd,
            stop,
            store,
            thread: Some(thread),
        })
    }

    /// The packets so far (the capture keeps running).
    pub fn snapshot(&self) -> Vec<RawPacket> {
        self.store
            .lock()
            .map(|s| s.packets.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Take the packets held now, and how many were evicted or dropped
    /// since the last take (the capture keeps running), and the reader's
    /// error if it stopped.
    pub fn take(&self) -> (Vec<RawPacket>, u64, Option<String>) {
        self.store
            .lock()
            .map(|mut s| {
                let p = s.packets.drain(..).collect();
                (p, std::mem::take(&mut s.over_limit), s.error.clone())
            })
            .unwrap_or_default()
    }

    /// Stop the reader and return everything it captured.
    pub fn stop(mut self) -> Captured {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let kernel_drops = packet_drops(self.fd.as_raw_fd());
        let mut s = self
            .store
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        if let Err(e) = &kernel_drops {
            s.error
                .get_or_insert_with(|| format!("PACKET_STATISTICS: {e}"));
        }
        Captured {
            packets: s.packets.into(),
            dropped: s.over_limit + kernel_drops.unwrap_or(0),
            error: s.error,
        }
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Packets the kernel dropped for lack of buffer (PACKET_STATISTICS).
fn packet_drops(fd: RawFd) -> io::Result<u64> {
    // SAFETY: zeroed tpacket_stats is valid; len is its size.
    let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: st and len are valid out-pointers of the right size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    check(rc, "getsockopt")?;
    Ok(u64::from(st.tp_drops))
}

fn read_loop(
    fd: RawFd,
    keep: Keep,
    skip_out_of: Option<libc::c_int>,
    stop: &AtomicBool,
    store: &Mutex<Store>,
) {
    let mut buf = [0u8; SNAPLEN as usize];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: zeroed sockaddr_ll is valid; recvfrom fills at most len.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut alen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // MSG_TRUNC: return the packet's real length, not what fit.
        // SAFETY: buf, sll and alen are valid for the sizes given.
        let n = unsafe {
            libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut alen,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => continue,
                _ => {
                    if let Ok(mut s) = store.lock() {
                        s.error = Some(format!("recvfrom: {e}"));
                    }
                    return;
                }
            }
        }
        // A copy leaving lo (only ETH_P_ALL sockets get them): the same
        // segment also arrives as PACKET_HOST.
        if skip_out_of == Some(sll.sll_ifindex) && sll.sll_pkttype == libc::PACKET_OUTGOING {
            continue;
        }
        let ts = stamp(fd);
        let kept = (n as usize).min(buf.len());
        if let Ok(mut s) = store.lock() {
            let p = RawPacket {
                ts,
                orig_len: n as u32,
                data: buf[..kept].to_vec(),
            };
            match keep {
                Keep::First(max) if s.packets.len() >= max => s.over_limit += 1,
                Keep::Last(max) if s.packets.len() >= max => {
                    s.packets.pop_front();
                    s.packets.push_back(p);
                    s.over_limit += 1;
                }
                _ => s.packets.push_back(p),
            }
        }
    }
}

/// `SIOCGSTAMPNS` from linux/sockios.h (libc does not export it): the
/// receive time of the last packet read, as a timespec.
const SIOCGSTAMPNS: libc::c_ulong = 0x8907;

/// The kernel's receive time of the last packet read, or now if unknown.
fn stamp(fd: RawFd) -> Duration {
    kernel_stamp(fd).unwrap_or_else(wall_clock)
}

/// SIOCGSTAMPNS: the receive time of the last packet read.
fn kernel_stamp(fd: RawFd) -> Option<Duration> {
    // SAFETY: zeroed timespec is valid; SIOCGSTAMPNS writes one.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: ts is a valid out-pointer for SIOCGSTAMPNS.
    let rc = unsafe { libc::ioctl(fd, SIOCGSTAMPNS as _, &mut ts) };
    (rc == 0 && ts.tv_sec > 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// CLOCK_REALTIME, the clock packet timestamps use.
pub fn wall_clock() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
