//! Socket state straight from the kernel: Linux TCP_INFO, the send/receive
//! queues (SIOCOUTQ/SIOCINQ), buffer sizes, keepalive and TCP_USER_TIMEOUT.
//!
//! TCP_INFO is read into a zeroed byte buffer and decoded by offset. The
//! kernel says how many bytes it filled in; a field beyond that length is
//! `None` ("unavailable") rather than a made-up zero, so an older kernel shows
//! honestly what it does not report.

use std::io;
use std::os::fd::RawFd;

/// Raw getsockopt into a byte buffer; returns the length the kernel wrote.
fn getsockopt_bytes(fd: RawFd, level: i32, name: i32, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: buf is valid for len bytes; the kernel writes at most len bytes
    // and updates len.
    let rc = unsafe { libc::getsockopt(fd, level, name, buf.as_mut_ptr().cast(), &mut len) };
    if rc == 0 {
        Ok(len as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// getsockopt for an `int` option.
pub fn getsockopt_int(fd: RawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut buf = [0u8; 4];
    getsockopt_bytes(fd, level, name, &mut buf)?;
    Ok(i32::from_ne_bytes(buf))
}

/// setsockopt for an `int` option.
pub fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: value lives for the call; size matches.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn ioctl_int(fd: RawFd, req: libc::c_ulong) -> io::Result<u32> {
    let mut v: libc::c_int = 0;
    // SAFETY: these ioctls write one int.
    let rc = unsafe { libc::ioctl(fd, req as _, &mut v) };
    if rc == 0 {
        Ok(v.max(0) as u32)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Bytes in the kernel send queue not yet acknowledged by the peer (SIOCOUTQ).
pub fn send_queue(fd: RawFd) -> io::Result<u32> {
    ioctl_int(fd, libc::TIOCOUTQ)
}

/// Bytes in the kernel receive queue not yet read by us (SIOCINQ).
pub fn recv_queue(fd: RawFd) -> io::Result<u32> {
    ioctl_int(fd, libc::FIONREAD)
}

/// Name of a Linux TCP state number (`tcpi_state`).
pub fn tcp_state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "UNKNOWN",
    }
}

/// Linux `struct tcp_info`, decoded by offset. Fields after `total_retrans`
/// were added in later kernels and are `None` when not reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpInfo {
    /// How many bytes the kernel filled in.
    pub len: usize,
    pub state: u8,
    pub ca_state: u8,
    pub retransmits: u8,
    pub probes: u8,
    pub backoff: u8,
    pub options: u8,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub rto_us: u32,
    pub ato_us: u32,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    pub unacked: u32,
    pub sacked: u32,
    pub lost: u32,
    pub retrans: u32,
    pub last_data_sent_ms: u32,
    pub last_data_recv_ms: u32,
    pub last_ack_recv_ms: u32,
    pub pmtu: u32,
    pub rcv_ssthresh: u32,
    pub rtt_us: u32,
    pub rttvar_us: u32,
    pub snd_ssthresh: u32,
    pub snd_cwnd: u32,
    pub advmss: u32,
    pub reordering: u32,
    pub rcv_rtt_us: u32,
    pub rcv_space: u32,
    pub total_retrans: u32,
    pub pacing_rate: Option<u64>,
    pub bytes_acked: Option<u64>,
    pub bytes_received: Option<u64>,
    pub segs_out: Option<u32>,
    pub segs_in: Option<u32>,
    pub notsent_bytes: Option<u32>,
    pub min_rtt_us: Option<u32>,
    pub delivery_rate: Option<u64>,
    pub busy_time_us: Option<u64>,
    pub rwnd_limited_us: Option<u64>,
    pub sndbuf_limited_us: Option<u64>,
    pub bytes_sent: Option<u64>,
    pub bytes_retrans: Option<u64>,
    /// Peer's advertised receive window, after scaling (Linux 6.2+).
    pub snd_wnd: Option<u32>,
    /// Our advertised receive window, after scaling (Linux 6.2+).
    pub rcv_wnd: Option<u32>,
}

/// Size of the buffer we hand the kernel: larger than any struct tcp_info.
const TCP_INFO_BUF: usize = 512;

impl TcpInfo {
    /// Decode the bytes the kernel returned (`len` of them valid).
    pub fn decode(buf: &[u8]) -> TcpInfo {
        let len = buf.len();
        let u8_at = |o: usize| buf.get(o).copied().unwrap_or(0);
        let u32_at = |o: usize| -> Option<u32> {
            buf.get(o..o + 4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        let u64_at = |o: usize| -> Option<u64> {
            buf.get(o..o + 8).map(|b| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::from_ne_bytes(a)
            })
        };
        let r = |o: usize| u32_at(o).unwrap_or(0);
        TcpInfo {
            len,
            state: u8_at(0),
            ca_state: u8_at(1),
            retransmits: u8_at(2),
            probes: u8_at(3),
            backoff: u8_at(4),
            options: u8_at(5),
            snd_wscale: u8_at(6) & 0x0F,
            rcv_wscale: u8_at(6) >> 4,
            rto_us: r(8),
            ato_us: r(12),
            snd_mss: r(16),
            rcv_mss: r(20),
            unacked: r(24),
            sacked: r(28),
            lost: r(32),
            retrans: r(36),
            // 40: fackets
            last_data_sent_ms: r(44),
            // 48: last_ack_sent (never set by Linux)
            last_data_recv_ms: r(52),
            last_ack_recv_ms: r(56),
            pmtu: r(60),
            rcv_ssthresh: r(64),
            rtt_us: r(68),
            rttvar_us: r(72),
            snd_ssthresh: r(76),
            snd_cwnd: r(80),
            advmss: r(84),
            reordering: r(88),
            rcv_rtt_us: r(92),
            rcv_space: r(96),
            total_retrans: r(100),
            pacing_rate: u64_at(104),
            // 112: max_pacing_rate
            bytes_acked: u64_at(120),
            bytes_received: u64_at(128),
            segs_out: u32_at(136),
            segs_in: u32_at(140),
            notsent_bytes: u32_at(144),
            min_rtt_us: u32_at(148),
            // 152: data_segs_in, 156: data_segs_out
            delivery_rate: u64_at(160),
            busy_time_us: u64_at(168),
            rwnd_limited_us: u64_at(176),
            sndbuf_limited_us: u64_at(184),
            // 192: delivered, 196: delivered_ce
            bytes_sent: u64_at(200),
            bytes_retrans: u64_at(208),
            // 216: dsack_dups, 220: reord_seen, 224: rcv_ooopack
            snd_wnd: u32_at(228),
            rcv_wnd: u32_at(232),
        }
    }

    /// The state name (`ESTABLISHED`, `CLOSE_WAIT`, ...).
    pub fn state_name(&self) -> &'static str {
        tcp_state_name(self.state)
    }
}

/// Read TCP_INFO for a TCP socket.
pub fn tcp_info(fd: RawFd) -> io::Result<TcpInfo> {
    let mut buf = [0u8; TCP_INFO_BUF];
    let n = getsockopt_bytes(fd, libc::IPPROTO_TCP, libc::TCP_INFO, &mut buf)?;
    Ok(TcpInfo::decode(&buf[..n.min(TCP_INFO_BUF)]))
}

/// Keepalive and user-timeout settings: when will the kernel declare a
/// silent peer dead?
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeepaliveSettings {
    pub enabled: bool,
    pub idle_secs: u32,
    pub interval_secs: u32,
    pub count: u32,
    /// TCP_USER_TIMEOUT in ms; 0 = kernel default (retransmission limits).
    pub user_timeout_ms: u32,
}

impl KeepaliveSettings {
    /// Seconds of silence after which keepalive gives up (ETIMEDOUT), if on.
    pub fn dead_after_secs(&self) -> Option<u32> {
        self.enabled
            .then(|| self.idle_secs + self.interval_secs * self.count)
    }
}

/// Read keepalive settings of a TCP socket.
pub fn keepalive(fd: RawFd) -> io::Result<KeepaliveSettings> {
    Ok(KeepaliveSettings {
        enabled: getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE)? != 0,
        idle_secs: getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE)?.max(0) as u32,
        interval_secs: getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL)?.max(0) as u32,
        count: getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT)?.max(0) as u32,
        user_timeout_ms: getsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT)?.max(0)
            as u32,
    })
}

/// Everything we can learn about a TCP socket in one poll.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpSnapshot {
    pub info: Option<TcpInfo>,
    /// SIOCOUTQ: bytes sent but not yet acked (plus not yet sent).
    pub send_queue: Option<u32>,
    /// SIOCINQ: bytes received but not yet read by the application.
    pub recv_queue: Option<u32>,
    pub sndbuf: Option<u32>,
    pub rcvbuf: Option<u32>,
    pub keepalive: Option<KeepaliveSettings>,
}

/// Poll everything; a failing getsockopt/ioctl leaves that field `None`.
pub fn tcp_snapshot(fd: RawFd) -> TcpSnapshot {
    TcpSnapshot {
        info: tcp_info(fd).ok(),
        send_queue: send_queue(fd).ok(),
        recv_queue: recv_queue(fd).ok(),
        sndbuf: getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF)
            .ok()
            .map(|v| v.max(0) as u32),
        rcvbuf: getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF)
            .ok()
            .map(|v| v.max(0) as u32),
        keepalive: keepalive(fd).ok(),
    }
}

impl TcpSnapshot {
    /// Ordered key/value pairs, for the SockInfo message and JSON output.
    /// Unavailable fields are reported as `n/a`, never invented.
    pub fn to_fields(&self) -> Vec<(String, String)> {
        fn opt<T: ToString>(v: Option<T>) -> String {
            v.map(|x| x.to_string()).unwrap_or_else(|| "n/a".into())
        }
        let mut f: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: String| f.push((k.to_string(), v));
        match &self.info {
            Some(i) => {
                put("tcpi_state", i.state_name().to_string());
                put("rtt_us", i.rtt_us.to_string());
                put("rttvar_us", i.rttvar_us.to_string());
                put("cwnd", i.snd_cwnd.to_string());
                put("ssthresh", i.snd_ssthresh.to_string());
                put("mss", i.snd_mss.to_string());
                put("unacked", i.unacked.to_string());
                put("retransmits", i.retransmits.to_string());
                put("total_retrans", i.total_retrans.to_string());
                put("bytes_acked", opt(i.bytes_acked));
                put("bytes_received", opt(i.bytes_received));
                put("notsent_bytes", opt(i.notsent_bytes));
                put("peer_rwnd", opt(i.snd_wnd));
                put("our_rwnd", opt(i.rcv_wnd));
                put("rcv_space", i.rcv_space.to_string());
            }
            None => put("tcpi_state", "n/a".into()),
        }
        put("send_queue", opt(self.send_queue));
        put("recv_queue", opt(self.recv_queue));
        put("sndbuf", opt(self.sndbuf));
        put("rcvbuf", opt(self.rcvbuf));
        if let Some(k) = &self.keepalive {
            put(
                "keepalive",
                if k.enabled {
                    format!("{}s+{}x{}s", k.idle_secs, k.count, k.interval_secs)
                } else {
                    "off".into()
                },
            );
            put("user_timeout_ms", k.user_timeout_ms.to_string());
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn short_buffer_means_unavailable() {
        let i = TcpInfo::decode(&[1u8; 104]);
        assert_eq!(i.len, 104);
        assert_eq!(i.state, 1);
        assert!(i.bytes_acked.is_none());
        assert!(i.snd_wnd.is_none());
    }

    /// Real sockets on loopback: the kernel's view of an established pair.
    #[test]
    fn loopback_tcp_info_and_queues() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut c = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (mut s, _) = l.accept().expect("accept");
        c.write_all(b"hello").expect("write");
        // Give loopback a moment to deliver, then the receive queue holds 5.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while recv_queue(s.as_raw_fd()).expect("inq") < 5 {
            assert!(std::time::Instant::now() < deadline, "data never arrived");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let snap = tcp_snapshot(s.as_raw_fd());
        let info = snap.info.clone().expect("tcp_info");
        assert_eq!(info.state_name(), "ESTABLISHED");
        assert!(info.snd_mss > 0);
        assert_eq!(snap.recv_queue, Some(5));
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("read");
        assert_eq!(recv_queue(s.as_raw_fd()).expect("inq"), 0);
        // Peer closes: our side goes to CLOSE_WAIT.
        drop(c);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let st = tcp_info(s.as_raw_fd()).expect("tcp_info").state_name();
            if st == "CLOSE_WAIT" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "state stayed {st}");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(snap.to_fields().iter().any(|(k, _)| k == "rtt_us"));
    }

    /// A connected pair on 127.0.0.1: (client, accepted server side).
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let c = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (s, _) = l.accept().expect("accept");
        (c, s)
    }

    fn put_u32(buf: &mut [u8], off: usize, v: u32) {
        buf[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }

    fn put_u64(buf: &mut [u8], off: usize, v: u64) {
        buf[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }

    /// A struct tcp_info as Linux 6.2+ lays it out (236 bytes), each field
    /// holding a value made from its offset, the skipped ones holding junk.
    fn kernel_tcp_info() -> Vec<u8> {
        let mut b = vec![0xEEu8; 236];
        // state, ca_state, retransmits, probes, backoff, options, the window
        // scales (send 0xA, receive 0x7), then a byte of bit fields.
        b[..8].copy_from_slice(&[1, 4, 3, 2, 5, 7, 0x7A, 0]);
        // The u32 fields; the gaps (fackets at 40, ...) keep their 0xEE.
        for o in [
            8, 12, 16, 20, 24, 28, 32, 36, 44, 52, 56, 60, 64, 68, 72, 76, 80, 84, 88, 92, 96, 100,
            136, 140, 144, 148, 228, 232,
        ] {
            put_u32(&mut b, o, 1_000_000 + o as u32);
        }
        for o in [104, 120, 128, 160, 168, 176, 184, 200, 208] {
            put_u64(&mut b, o, (o as u64) << 40 | 0xABCD);
        }
        b
    }

    #[test]
    fn decode_reads_each_tcp_info_field_at_its_kernel_offset() {
        let i = TcpInfo::decode(&kernel_tcp_info());
        let u = |o: usize| 1_000_000 + o as u32;
        let w = |o: usize| Some((o as u64) << 40 | 0xABCD);
        let expected = TcpInfo {
            len: 236,
            state: 1,
            ca_state: 4,
            retransmits: 3,
            probes: 2,
            backoff: 5,
            options: 7,
            // Byte 6 holds both window scales: send in the low nibble.
            snd_wscale: 0xA,
            rcv_wscale: 0x7,
            rto_us: u(8),
            ato_us: u(12),
            snd_mss: u(16),
            rcv_mss: u(20),
            unacked: u(24),
            sacked: u(28),
            lost: u(32),
            retrans: u(36),
            last_data_sent_ms: u(44),
            last_data_recv_ms: u(52),
            last_ack_recv_ms: u(56),
            pmtu: u(60),
            rcv_ssthresh: u(64),
            rtt_us: u(68),
            rttvar_us: u(72),
            snd_ssthresh: u(76),
            snd_cwnd: u(80),
            advmss: u(84),
            reordering: u(88),
            rcv_rtt_us: u(92),
            rcv_space: u(96),
            total_retrans: u(100),
            pacing_rate: w(104),
            bytes_acked: w(120),
            bytes_received: w(128),
            segs_out: Some(u(136)),
            segs_in: Some(u(140)),
            notsent_bytes: Some(u(144)),
            min_rtt_us: Some(u(148)),
            delivery_rate: w(160),
            busy_time_us: w(168),
            rwnd_limited_us: w(176),
            sndbuf_limited_us: w(184),
            bytes_sent: w(200),
            bytes_retrans: w(208),
            snd_wnd: Some(u(228)),
            rcv_wnd: Some(u(232)),
        };
        assert_eq!(i, expected);
        assert_eq!(i.state_name(), "ESTABLISHED");
    }

    #[test]
    fn window_scales_share_byte_six_send_low_nibble_receive_high() {
        let mut b = vec![0u8; 8];
        for (byte, snd, rcv) in [(0x00, 0, 0), (0x0E, 14, 0), (0xE0, 0, 14), (0x97, 7, 9)] {
            b[6] = byte;
            let i = TcpInfo::decode(&b);
            assert_eq!(
                (i.snd_wscale, i.rcv_wscale),
                (snd, rcv),
                "byte 0x{byte:02x}"
            );
        }
    }

    #[test]
    fn a_field_past_the_kernels_length_is_unavailable_not_zero() {
        let full = kernel_tcp_info();
        // Cut just before the last byte of rcv_wnd: snd_wnd is there, rcv_wnd not.
        let i = TcpInfo::decode(&full[..235]);
        assert_eq!(i.len, 235);
        assert_eq!(i.snd_wnd, Some(1_000_228));
        assert_eq!(i.rcv_wnd, None);
        // An older kernel's 104 bytes: the base struct, every later field None.
        let i = TcpInfo::decode(&full[..104]);
        assert_eq!(i.total_retrans, 1_000_100);
        assert_eq!(
            (
                i.pacing_rate,
                i.bytes_acked,
                i.segs_out,
                i.min_rtt_us,
                i.bytes_retrans
            ),
            (None, None, None, None, None)
        );
        // Cut inside a u64: pacing_rate needs all 8 bytes.
        assert_eq!(TcpInfo::decode(&full[..111]).pacing_rate, None);
        assert_eq!(
            TcpInfo::decode(&full[..112]).pacing_rate,
            Some(104 << 40 | 0xABCD)
        );
        // Cut inside the base struct: missing u32s read as 0, u8s too.
        let i = TcpInfo::decode(&full[..10]);
        assert_eq!((i.state, i.rto_us, i.ato_us), (1, 0, 0));
        assert_eq!(TcpInfo::decode(&[]), TcpInfo::default());
    }

    #[test]
    fn state_names_for_every_linux_tcp_state_number() {
        let names = [
            (1, "ESTABLISHED"),
            (2, "SYN_SENT"),
            (3, "SYN_RECV"),
            (4, "FIN_WAIT1"),
            (5, "FIN_WAIT2"),
            (6, "TIME_WAIT"),
            (7, "CLOSE"),
            (8, "CLOSE_WAIT"),
            (9, "LAST_ACK"),
            (10, "LISTEN"),
            (11, "CLOSING"),
        ];
        for (n, name) in names {
            assert_eq!(tcp_state_name(n), name);
            let info = TcpInfo {
                state: n,
                ..TcpInfo::default()
            };
            assert_eq!(info.state_name(), name);
        }
        for n in [0, 12, 13, 255] {
            assert_eq!(tcp_state_name(n), "UNKNOWN");
        }
    }

    #[test]
    fn a_listening_socket_reports_listen() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let info = tcp_info(l.as_raw_fd()).expect("tcp_info");
        assert_eq!(info.state_name(), "LISTEN");
        assert!(info.len >= 104, "kernel filled {} bytes", info.len);
    }

    #[test]
    fn keepalive_dead_after_is_idle_plus_count_probes_at_interval() {
        let k = KeepaliveSettings {
            enabled: true,
            idle_secs: 600,
            interval_secs: 60,
            count: 5,
            user_timeout_ms: 0,
        };
        assert_eq!(k.dead_after_secs(), Some(900));
        let k2 = KeepaliveSettings {
            idle_secs: 30,
            interval_secs: 7,
            count: 3,
            ..k.clone()
        };
        assert_eq!(k2.dead_after_secs(), Some(51));
        let off = KeepaliveSettings {
            enabled: false,
            ..k
        };
        assert_eq!(off.dead_after_secs(), None);
    }

    /// Set each `(level, name, value)` on `fd`.
    fn set_all(fd: RawFd, opts: &[(i32, i32, i32)]) {
        for &(level, name, v) in opts {
            setsockopt_int(fd, level, name, v).expect("setsockopt");
        }
    }

    #[test]
    fn setsockopt_then_getsockopt_round_trips_on_a_real_socket() {
        let (c, _s) = pair();
        let fd = c.as_raw_fd();
        let opts = [
            (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 77),
            (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 13),
            (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 4),
            (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 12_345),
            (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        ];
        set_all(fd, &opts);
        for (level, name, v) in opts {
            assert_eq!(getsockopt_int(fd, level, name).expect("getsockopt"), v);
        }
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 0).expect("off");
        assert_eq!(
            getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE).expect("get"),
            0
        );
        // The kernel refuses an idle time of 0; a bad fd fails both ways.
        assert!(setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 0).is_err());
        assert!(setsockopt_int(-1, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1).is_err());
        assert!(getsockopt_int(-1, libc::SOL_SOCKET, libc::SO_KEEPALIVE).is_err());
    }

    #[test]
    fn keepalive_reads_back_what_was_set_on_a_real_socket() {
        let (c, _s) = pair();
        let fd = c.as_raw_fd();
        let off = keepalive(fd).expect("keepalive");
        assert!(!off.enabled);
        assert_eq!(off.dead_after_secs(), None);
        set_all(
            fd,
            &[
                (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
                (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 45),
                (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 6),
                (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3),
                (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 9_000),
            ],
        );
        let k = keepalive(fd).expect("keepalive");
        assert_eq!(
            k,
            KeepaliveSettings {
                enabled: true,
                idle_secs: 45,
                interval_secs: 6,
                count: 3,
                user_timeout_ms: 9_000,
            }
        );
        assert_eq!(k.dead_after_secs(), Some(63));
    }

    /// Poll `f` until it holds or 2 s pass.
    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !f() {
            assert!(
                std::time::Instant::now() < deadline,
                "{what} never happened"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn queue_ioctls_count_unsent_and_unread_bytes_on_a_real_socket() {
        let (mut c, mut s) = pair();
        // The peer never reads: write until the kernel takes no more.
        c.set_nonblocking(true).expect("nonblocking");
        let chunk = [0x5Au8; 16 * 1024];
        let mut written = 0usize;
        loop {
            match c.write(&chunk) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("write: {e}"),
            }
            assert!(written < 512 << 20, "the send buffer never filled");
        }
        wait_for("data reached the peer", || {
            recv_queue(s.as_raw_fd()).expect("inq") > 1
        });
        // Send queue first: it only shrinks as acks come, the peer's only grows.
        let outq = send_queue(c.as_raw_fd()).expect("outq") as usize;
        let inq = recv_queue(s.as_raw_fd()).expect("inq") as usize;
        assert!(outq > 1 && outq <= written, "outq {outq} of {written}");
        assert!(inq > 1 && inq <= written, "inq {inq} of {written}");
        // What the peer holds unread is no longer ours to send.
        assert!(outq + inq >= written, "outq {outq} + inq {inq} < {written}");
        let snap = tcp_snapshot(c.as_raw_fd());
        assert!(snap.send_queue.expect("snapshot outq") > 1);
        // Read it all: both queues drain to 0.
        let mut buf = vec![0u8; written];
        s.read_exact(&mut buf).expect("read");
        assert_eq!(recv_queue(s.as_raw_fd()).expect("inq"), 0);
        wait_for("send queue drained", || {
            send_queue(c.as_raw_fd()).expect("outq") == 0
        });
        // A bad fd is an error, not a count.
        assert!(send_queue(-1).is_err());
        assert!(recv_queue(-1).is_err());
    }

    #[test]
    fn snapshot_of_a_real_socket_has_its_buffers_and_keepalive() {
        let (c, _s) = pair();
        let fd = c.as_raw_fd();
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1).expect("keepalive on");
        let snap = tcp_snapshot(fd);
        let sndbuf = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF).expect("sndbuf");
        let rcvbuf = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF).expect("rcvbuf");
        assert!(sndbuf > 0 && rcvbuf > 0);
        assert_eq!(snap.sndbuf, Some(sndbuf as u32));
        assert_eq!(snap.rcvbuf, Some(rcvbuf as u32));
        assert_eq!(snap.keepalive, Some(keepalive(fd).expect("keepalive")));
        assert!(snap.keepalive.as_ref().is_some_and(|k| k.enabled));
        assert_eq!(snap.send_queue, Some(0));
        assert_eq!(snap.recv_queue, Some(0));
        assert_eq!(
            snap.info.as_ref().map(TcpInfo::state_name),
            Some("ESTABLISHED")
        );
    }

    #[test]
    fn snapshot_of_a_bad_fd_is_all_unavailable() {
        let snap = tcp_snapshot(-1);
        assert_eq!(snap, TcpSnapshot::default());
        let fields = snap.to_fields();
        let expected: Vec<(String, String)> = [
            ("tcpi_state", "n/a"),
            ("send_queue", "n/a"),
            ("recv_queue", "n/a"),
            ("sndbuf", "n/a"),
            ("rcvbuf", "n/a"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(fields, expected);
    }

    #[test]
    fn to_fields_labels_and_values_in_order() {
        let info = TcpInfo {
            state: 8,
            rtt_us: 111,
            rttvar_us: 22,
            snd_cwnd: 10,
            snd_ssthresh: 2_147_483_647,
            snd_mss: 65_483,
            unacked: 3,
            retransmits: 1,
            total_retrans: 9,
            bytes_acked: Some(12_345_678_901),
            bytes_received: None,
            notsent_bytes: Some(0),
            snd_wnd: Some(65_536),
            rcv_wnd: None,
            rcv_space: 14_600,
            ..TcpInfo::default()
        };
        let snap = TcpSnapshot {
            info: Some(info),
            send_queue: Some(42),
            recv_queue: None,
            sndbuf: Some(2_626_560),
            rcvbuf: Some(131_072),
            keepalive: Some(KeepaliveSettings {
                enabled: true,
                idle_secs: 600,
                interval_secs: 60,
                count: 5,
                user_timeout_ms: 30_000,
            }),
        };
        let expected: Vec<(String, String)> = [
            ("tcpi_state", "CLOSE_WAIT"),
            ("rtt_us", "111"),
            ("rttvar_us", "22"),
            ("cwnd", "10"),
            ("ssthresh", "2147483647"),
            ("mss", "65483"),
            ("unacked", "3"),
            ("retransmits", "1"),
            ("total_retrans", "9"),
            ("bytes_acked", "12345678901"),
            ("bytes_received", "n/a"),
            ("notsent_bytes", "0"),
            ("peer_rwnd", "65536"),
            ("our_rwnd", "n/a"),
            ("rcv_space", "14600"),
            ("send_queue", "42"),
            ("recv_queue", "n/a"),
            ("sndbuf", "2626560"),
            ("rcvbuf", "131072"),
            ("keepalive", "600s+5x60s"),
            ("user_timeout_ms", "30000"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(snap.to_fields(), expected);

        // Keepalive off reads "off", and its user timeout is still shown.
        let off = TcpSnapshot {
            keepalive: Some(KeepaliveSettings {
                enabled: false,
                ..KeepaliveSettings::default()
            }),
            ..TcpSnapshot::default()
        };
        let f = off.to_fields();
        assert_eq!(
            &f[f.len() - 2..],
            &[
                ("keepalive".to_string(), "off".to_string()),
                ("user_timeout_ms".to_string(), "0".to_string())
            ]
        );
    }
}
