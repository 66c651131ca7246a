//! The client's UDP transport (`sockchat --udp`): a *connected* UDP socket
//! to the server, the Hello/retry handshake, sequence numbers both ways,
//! RTT from our own pings, optional fault injection, and the numbers the
//! socket panel shows instead of TCP_INFO.
//!
//! [`UdpLink`] is the socket, its accounting and the handshake, used by the
//! client's UDP transport (`udp_transport.rs`, driven by the one session
//! driver) and by the UDP bots alike.
//!
//! Why connected: `connect(2)` on a UDP socket sends nothing, but it makes
//! the kernel filter datagrams to the server's address and, above all,
//! report ICMP errors for it. When nothing listens on the server port the
//! server host answers our datagram with ICMP port unreachable and our next
//! `recv` fails with ECONNREFUSED (111): the only sign UDP ever gives.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sockchat_shared::sockopt;
use sockchat_shared::udp::{
    self, EncodeError, FaultConfig, FaultInjector, FaultStats, SeqStats, SeqTracker, SeqVerdict,
    ServerBody, SplitMix64,
};
use sockchat_shared::{ClientMsg, ErrorCode, ServerMsg};
use thiserror::Error;
use tokio::net::UdpSocket;

/// How the UDP link behaves (flags and config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UdpOptions {
    /// Largest datagram we send or accept (header included).
    pub max_payload: usize,
    /// Faults injected into our outgoing datagrams (off by default).
    pub faults: FaultConfig,
    /// Seed for the fault injector (None: from the clock).
    pub seed: Option<u64>,
    /// SO_RCVBUF to ask for (0: the kernel's default).
    pub recv_buffer: usize,
}

impl Default for UdpOptions {
    fn default() -> Self {
        Self {
            max_payload: udp::DEFAULT_MAX_PAYLOAD,
            faults: FaultConfig::default(),
            seed: None,
            recv_buffer: 0,
        }
    }
}

/// Our own counters (the kernel keeps none for UDP that we could ask for,
/// except the drop count in /proc/net/udp).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UdpCounters {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Datagrams that were not sockchat datagrams (counted, dropped).
    pub malformed: u64,
    /// Duplicates suppressed (not shown twice).
    pub duplicates_suppressed: u64,
    /// sends that failed with EAGAIN/ENOBUFS (counted, not fatal).
    pub send_dropped: u64,
    /// Messages refused locally because they did not fit a datagram.
    pub too_large: u64,
    /// Hello datagrams sent (first + retries).
    pub hellos: u64,
}

/// One poll of the UDP socket for the socket panel.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UdpInfo {
    pub local: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
    pub counters: UdpCounters,
    /// Server→client direction, from the server's sequence numbers.
    pub rx: SeqStats,
    /// What our fault injector did (None when off).
    pub faults: Option<FaultStats>,
    /// Last and smoothed RTT from our Ping/Pong.
    pub rtt: Option<Duration>,
    pub srtt: Option<Duration>,
    pub rtt_min: Option<Duration>,
    /// Pings sent and pongs received (the difference were lost either way).
    pub pings: u64,
    pub pongs: u64,
    /// SO_RCVBUF / SO_SNDBUF as the kernel reports them (doubled: the kernel
    /// counts its bookkeeping overhead).
    pub rcvbuf: Option<i32>,
    pub sndbuf: Option<i32>,
    /// Bytes waiting in the receive queue (FIONREAD: the next datagram).
    pub rx_queue: Option<u32>,
    /// The kernel's drop counter for this socket (/proc/net/udp), e.g.
    /// receive buffer full. None if the kernel does not list the socket.
    pub kernel_drops: Option<u64>,
    pub max_payload: usize,
}

/// Why a message was not sent.
#[derive(Debug, Error)]
pub enum SendError {
    /// Refused locally, nothing sent.
    #[error("{0}")]
    TooLarge(#[from] EncodeError),
    /// The kernel refused the send (ECONNREFUSED from an earlier ICMP...).
    #[error("send: {0}")]
    Io(#[from] io::Error),
}

/// What [`UdpLink::recv`] produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A server message (duplicates are suppressed; Ping is answered).
    Msg(ServerMsg),
    /// The server does not know us (first contact, or it restarted):
    /// say Hello again with this cookie.
    Retry { cookie: u64 },
}

/// Why the handshake failed.
#[derive(Debug, Error)]
pub enum HandshakeError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    TooLarge(#[from] EncodeError),
    #[error("the server refused us: {text}")]
    Refused { code: ErrorCode, text: String },
    #[error(
        "no answer to {hellos} hello datagrams in {secs:.1} s (UDP has no handshake: silence is all we get)"
    )]
    NoAnswer { hellos: u64, secs: f64 },
}

/// What the server said in its Welcome, plus what came with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome {
    pub nick: String,
    pub room: String,
    pub server: String,
    /// Messages that arrived before the Welcome (the first Welcome was
    /// lost and the server repeated it), in arrival order, at most 256.
    pub early: Vec<ServerMsg>,
}

/// A connected UDP socket to a sockchat server and its accounting.
pub struct UdpLink {
    sock: UdpSocket,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    max: usize,
    /// Our next sequence number (per session, from 0).
    seq: u32,
    rx: SeqTracker,
    inj: Option<FaultInjector>,
    counters: UdpCounters,
    started: Instant,
    rtt: Option<Duration>,
    srtt: Option<Duration>,
    rtt_min: Option<Duration>,
    pings: u64,
    pongs: u64,
    cookie: Option<u64>,
    /// Receive buffer: one byte more than the largest datagram we accept,
    /// so an oversize datagram is seen as oversize (recv truncates it to
    /// `max + 1`) and rejected by length, never taken for a shorter one.
    /// Small, because every bot has one during its handshake.
    buf: Vec<u8>,
    out: Vec<Bytes>,
}

impl std::fmt::Debug for UdpLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpLink")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish()
    }
}

impl UdpLink {
    /// Bind an ephemeral port of the server's address family and connect
    /// the socket to `server` (nothing is sent yet).
    pub async fn connect(server: SocketAddr, opts: UdpOptions) -> io::Result<Self> {
        Self::connect_from(None, server, opts).await
    }

    /// [`UdpLink::connect`] from a chosen local address (`None`: any
    /// address of the server's family, an ephemeral port). The bots use
    /// it to spread over many source addresses.
    pub async fn connect_from(
        local: Option<SocketAddr>,
        server: SocketAddr,
        opts: UdpOptions,
    ) -> io::Result<Self> {
        let max = udp::check_max_payload(opts.max_payload)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let faults = opts
            .faults
            .check()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let bind: SocketAddr = match local {
            Some(a) => a,
            None if server.is_ipv4() => "0.0.0.0:0".parse().map_err(io::Error::other)?,
            None => "[::]:0".parse().map_err(io::Error::other)?,
        };
        let sock = UdpSocket::bind(bind).await?;
        if opts.recv_buffer > 0 {
            let s = socket2::SockRef::from(&sock);
            s.set_recv_buffer_size(opts.recv_buffer)?;
        }
        sock.connect(server).await?;
        let local = sock.local_addr()?;
        let inj = (!faults.is_off()).then(|| {
            let seed = opts
                .seed
                .unwrap_or_else(|| SplitMix64::from_time().next_u64());
            FaultInjector::new(faults, seed)
        });
        Ok(Self {
            sock,
            local,
            peer: server,
            max,
            seq: 0,
            rx: SeqTracker::expecting(0),
            inj,
            counters: UdpCounters::default(),
            started: Instant::now(),
            rtt: None,
            srtt: None,
            rtt_min: None,
            pings: 0,
            pongs: 0,
            cookie: None,
            buf: vec![0; max + 1],
            out: Vec::new(),
        })
    }

    pub fn max_payload(&self) -> usize {
        self.max
    }

    fn next_seq(&mut self) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }

    /// Send one datagram through the fault injector (if any).
    async fn send_datagram(&mut self, d: Bytes) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.out);
        match &mut self.inj {
            Some(inj) => inj.process(d, &mut out),
            None => out.push(d),
        }
        let r = self.send_all(&mut out).await;
        out.clear();
        self.out = out;
        r
    }

    async fn send_all(&mut self, out: &mut Vec<Bytes>) -> io::Result<()> {
        for d in out.drain(..) {
            match self.sock.send(&d).await {
                Ok(n) => {
                    self.counters.datagrams_out += 1;
                    self.counters.bytes_out += n as u64;
                }
                // The datagram is lost, as UDP allows; count it.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) => {
                    self.counters.send_dropped += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Release a datagram the fault injector held back for reordering.
    /// Call it on a short timer (it is cheap when nothing is held).
    pub async fn flush_faults(&mut self) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.out);
        if let Some(inj) = &mut self.inj {
            inj.flush(&mut out);
        }
        let r = self.send_all(&mut out).await;
        self.out = out;
        r
    }

    /// True when the fault injector holds a datagram back.
    pub fn holding(&self) -> bool {
        self.inj.as_ref().is_some_and(FaultInjector::holding)
    }

    /// Send one message as one datagram. A message that does not fit is
    /// refused with [`SendError::TooLarge`] and nothing is sent.
    pub async fn send(&mut self, msg: &ClientMsg) -> Result<(), SendError> {
        let d = match msg {
            ClientMsg::Hello { nick } => {
                let cookie = self.cookie;
                let seq = self.next_seq();
                self.counters.hellos += 1;
                udp::encode_hello(seq, nick, cookie, self.max)
            }
            _ => {
                // Check the size before taking a sequence number: a refused
                // message must not look like a lost datagram to the server.
                // Every datagram after the Hello carries the session token
                // (the cookie the Hello echoed): the server drops it without.
                udp::encode_in_session(self.seq, self.cookie, msg, self.max).inspect(|_| {
                    self.seq = self.seq.wrapping_add(1);
                })
            }
        };
        let d = d.inspect_err(|_| self.counters.too_large += 1)?;
        self.send_datagram(d).await?;
        Ok(())
    }

    /// Send a Ping whose token is the send time, so the Pong alone gives
    /// the RTT (no table of outstanding pings).
    pub async fn ping(&mut self) -> Result<(), SendError> {
        let token = self.started.elapsed().as_micros() as u64;
        self.pings += 1;
        self.send(&ClientMsg::Ping { token }).await
    }

    fn on_pong(&mut self, token: u64) -> Option<Duration> {
        let now = self.started.elapsed().as_micros() as u64;
        // A token from the future is not ours: ignore it.
        let rtt = Duration::from_micros(now.checked_sub(token)?);
        self.pongs += 1;
        self.rtt = Some(rtt);
        self.rtt_min = Some(self.rtt_min.map_or(rtt, |m| m.min(rtt)));
        // RFC 6298 smoothing: srtt = 7/8 srtt + 1/8 rtt.
        self.srtt = Some(self.srtt.map_or(rtt, |s| (s * 7 + rtt) / 8));
        Some(rtt)
    }

    /// The last RTT measured by a Pong.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// A retry came: the server has no session for us (first contact, or
    /// it restarted or timed us out). Remember the cookie for the next
    /// Hello, and expect the new session's numbering to start again at 0
    /// (otherwise its first datagrams would look like duplicates).
    pub fn new_session(&mut self, cookie: u64) {
        self.cookie = Some(cookie);
        self.rx = SeqTracker::expecting(0);
    }

    /// Wait for the next message from the server. Malformed datagrams and
    /// duplicates are counted and skipped; a server Ping is answered.
    /// Errors are the kernel's: ECONNREFUSED here means an ICMP port
    /// unreachable came back for something we sent.
    ///
    /// Cancel-safe: the only await is the socket's `recv`.
    pub async fn recv(&mut self) -> io::Result<Received> {
        loop {
            let n = self.sock.recv(&mut self.buf).await?;
            self.counters.datagrams_in += 1;
            self.counters.bytes_in += n as u64;
            let d = match udp::decode_server(&self.buf[..n], self.max) {
                Ok(d) => d,
                Err(e) => {
                    self.counters.malformed += 1;
                    tracing::debug!(error = %e, len = n, "malformed datagram dropped");
                    continue;
                }
            };
            let msg = match d.body {
                ServerBody::Retry { cookie } => return Ok(Received::Retry { cookie }),
                ServerBody::Msg(m) => m,
            };
            if self.rx.record(d.seq) == SeqVerdict::Duplicate {
                self.counters.duplicates_suppressed += 1;
                continue;
            }
            match &msg {
                ServerMsg::Pong { token } => {
                    self.on_pong(*token);
                }
                ServerMsg::Ping { token } => {
                    // Best effort, like everything on UDP.
                    let pong = ClientMsg::Pong { token: *token };
                    if let Err(SendError::Io(e)) = self.send(&pong).await {
                        return Err(e);
                    }
                }
                _ => {}
            }
            return Ok(Received::Msg(msg));
        }
    }

    /// Say Hello (padded, so the server's retry is never larger than our
    /// datagram) until the server welcomes us: answer a retry with the
    /// cookie at once, repeat the Hello after `every`, then twice as long
    /// each time up to 1 s (the server rate-limits retries per source
    /// address), give up at `limit`. The one handshake of the client and
    /// the bots.
    pub async fn handshake(
        &mut self,
        nick: &str,
        every: Duration,
        limit: Duration,
    ) -> Result<Welcome, HandshakeError> {
        let start = Instant::now();
        let hello = ClientMsg::Hello {
            nick: nick.to_owned(),
        };
        self.send(&hello).await.map_err(|e| match e {
            SendError::TooLarge(e) => HandshakeError::TooLarge(e),
            SendError::Io(e) => HandshakeError::Io(e),
        })?;
        let mut wait = every;
        let mut next = tokio::time::Instant::now() + wait;
        let mut early = Vec::new();
        loop {
            if start.elapsed() >= limit {
                return Err(HandshakeError::NoAnswer {
                    hellos: self.counters.hellos,
                    secs: start.elapsed().as_secs_f64(),
                });
            }
            let until = next.min(tokio::time::Instant::from_std(start + limit));
            let got = tokio::select! {
                r = self.recv() => Some(r?),
                _ = tokio::time::sleep_until(until) => None,
            };
            let resend = match got {
                None => true,
                Some(Received::Retry { cookie }) => {
                    self.new_session(cookie);
                    true
                }
                Some(Received::Msg(ServerMsg::Welcome { nick, room, server })) => {
                    return Ok(Welcome {
                        nick,
                        room,
                        server,
                        early,
                    });
                }
                Some(Received::Msg(ServerMsg::Error { code, text })) => {
                    return Err(HandshakeError::Refused { code, text });
                }
                Some(Received::Msg(ServerMsg::Bye { reason })) => {
                    return Err(HandshakeError::Refused {
                        code: ErrorCode::Other(0),
                        text: reason.to_string(),
                    });
                }
                Some(Received::Msg(m)) => {
                    if early.len() < 256
                        && !matches!(m, ServerMsg::Ping { .. } | ServerMsg::Pong { .. })
                    {
                        early.push(m);
                    }
                    false
                }
            };
            if resend {
                self.send(&hello).await.map_err(|e| match e {
                    SendError::TooLarge(e) => HandshakeError::TooLarge(e),
                    SendError::Io(e) => HandshakeError::Io(e),
                })?;
                wait = (wait * 2).min(Duration::from_secs(1)).max(every);
                next = tokio::time::Instant::now() + wait;
            }
        }
    }

    /// The numbers for the socket panel: our counters, the sequence
    /// accounting, RTT, buffer sizes and the kernel's drop counter.
    pub fn info(&self) -> UdpInfo {
        let fd = self.sock.as_raw_fd();
        UdpInfo {
            local: Some(self.local),
            peer: Some(self.peer),
            counters: self.counters,
            rx: self.rx.stats(),
            faults: self.inj.as_ref().map(FaultInjector::stats),
            rtt: self.rtt,
            srtt: self.srtt,
            rtt_min: self.rtt_min,
            pings: self.pings,
            pongs: self.pongs,
            rcvbuf: sockopt::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF).ok(),
            sndbuf: sockopt::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF).ok(),
            rx_queue: sockopt::recv_queue(fd).ok(),
            kernel_drops: udp::procfs::row_for_fd(fd).ok().flatten().map(|r| r.drops),
            max_payload: self.max,
        }
    }

    /// Counters only (cheap: no system calls).
    pub fn counters(&self) -> UdpCounters {
        self.counters
    }

    /// Server→client sequence accounting.
    pub fn rx_stats(&self) -> SeqStats {
        self.rx.stats()
    }

    /// What the fault injector did.
    pub fn fault_stats(&self) -> Option<FaultStats> {
        self.inj.as_ref().map(FaultInjector::stats)
    }

    /// The socket, for tests and experiments.
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// The socket, our next sequence number and the session token, for a
    /// sender that frames its own datagrams after the handshake (the bots'
    /// hot path).
    pub fn into_parts(self) -> (UdpSocket, u32, Option<u64>) {
        (self.sock, self.seq, self.cookie)
    }
}

/// The socket panel's lines for UDP (short keys, compact values), so the
/// UI shows UDP without knowing its details.
pub fn panel_fields(i: &UdpInfo) -> Vec<(&'static str, String)> {
    let pct = |r: f64| format!("{:.1}%", r * 100.0);
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
    let opt = |v: Option<u64>| v.map_or("n/a".to_string(), |v| v.to_string());
    let c = &i.counters;
    let mut f = vec![
        (
            "dgrams",
            format!("in {} / out {}", c.datagrams_in, c.datagrams_out),
        ),
        ("bytes", format!("in {} / out {}", c.bytes_in, c.bytes_out)),
        (
            "lost",
            format!(
                "{} of {} ({})",
                i.rx.lost,
                i.rx.expected,
                pct(i.rx.loss_rate())
            ),
        ),
        (
            "dup",
            format!("{} ({})", i.rx.duplicated, pct(i.rx.dup_rate())),
        ),
        (
            "reorder",
            format!("{} ({})", i.rx.reordered, pct(i.rx.reorder_rate())),
        ),
        (
            "rtt",
            match (i.rtt, i.srtt, i.rtt_min) {
                (Some(r), Some(s), Some(m)) => {
                    format!("{} ms (srtt {}, min {})", ms(r), ms(s), ms(m))
                }
                _ => "- (no pong yet)".to_string(),
            },
        ),
        ("pings", format!("{} sent / {} answered", i.pings, i.pongs)),
        (
            "rcvbuf",
            format!(
                "{} (SO_RCVBUF)",
                opt(i.rcvbuf.map(|b| u64::try_from(b).unwrap_or(0)))
            ),
        ),
        ("rx queue", opt(i.rx_queue.map(u64::from))),
        (
            "k drops",
            format!("{} (/proc/net/udp)", opt(i.kernel_drops)),
        ),
        ("max dgram", format!("{} B", i.max_payload)),
    ];
    if c.malformed > 0 {
        f.push(("bad dgram", c.malformed.to_string()));
    }
    if c.too_large > 0 {
        f.push(("too big", format!("{} refused locally", c.too_large)));
    }
    if let Some(fs) = &i.faults {
        f.push((
            "injected",
            format!(
                "drop {} dup {} reord {} of {}",
                fs.dropped, fs.duplicated, fs.reordered, fs.offered
            ),
        ));
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    /// A free UDP port on loopback with nothing bound to it (bind, then
    /// close; nothing else binds it within the test's few milliseconds).
    fn dead_port() -> SocketAddr {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
        s.local_addr().expect("addr")
    }

    #[tokio::test]
    async fn nothing_listening_is_econnrefused() {
        let mut link = UdpLink::connect(dead_port(), UdpOptions::default())
            .await
            .expect("connect sends nothing, so it succeeds");
        let r = tokio::time::timeout(
            T,
            link.handshake("alice", Duration::from_millis(200), Duration::from_secs(3)),
        )
        .await
        .expect("bounded");
        match r {
            Err(HandshakeError::Io(e)) => {
                assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED), "{e}");
            }
            other => panic!("expected ECONNREFUSED, got {other:?}"),
        }
        assert!(link.counters().hellos >= 1);
    }

    #[tokio::test]
    async fn oversize_refused_locally_nothing_sent() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let mut link = UdpLink::connect(server.local_addr().expect("addr"), UdpOptions::default())
            .await
            .expect("connect");
        let big = ClientMsg::Say {
            room: "lobby".into(),
            text: "x".repeat(3000),
        };
        let err = link.send(&big).await.expect_err("too large");
        let text = err.to_string();
        assert!(
            text.contains("too large") && text.contains("1472"),
            "{text}"
        );
        assert_eq!(link.counters().datagrams_out, 0);
        assert_eq!(link.counters().too_large, 1);
        // The next message still gets sequence 0: a refused message is not
        // a gap the server would count as loss.
        link.send(&ClientMsg::Rooms).await.expect("small fits");
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(T, server.recv(&mut buf))
            .await
            .expect("bounded")
            .expect("recv");
        let d = udp::decode_client(&buf[..n], 1472).expect("valid");
        assert_eq!((d.seq, d.msg), (0, ClientMsg::Rooms));
        // Nothing else arrived (the big one was never sent).
        assert!(
            tokio::time::timeout(Duration::from_millis(100), server.recv(&mut buf))
                .await
                .is_err()
        );
    }

    /// Injected faults on real loopback sockets: the receiver's tracker
    /// counts what the injector did (loopback itself loses nothing at this
    /// rate; the tolerance covers a kernel drop if the machine stalls).
    #[tokio::test]
    async fn injected_faults_are_counted_by_the_receiver() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let opts = UdpOptions {
            faults: FaultConfig {
                drop: 0.1,
                duplicate: 0.05,
                reorder: 0.05,
            },
            seed: Some(7),
            ..UdpOptions::default()
        };
        let mut link = UdpLink::connect(server.local_addr().expect("addr"), opts)
            .await
            .expect("connect");
        let n = 2000u64;
        let recv = tokio::spawn(async move {
            let mut t = SeqTracker::expecting(0);
            let mut buf = [0u8; 2048];
            while let Ok(Ok(len)) =
                tokio::time::timeout(Duration::from_millis(300), server.recv(&mut buf)).await
            {
                if let Ok(d) = udp::decode_client(&buf[..len], 1472) {
                    t.record(d.seq);
                }
            }
            t.stats()
        });
        for i in 0..n {
            link.send(&ClientMsg::Ping { token: i })
                .await
                .expect("send");
            if i % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
        link.flush_faults().await.expect("flush");
        let s = tokio::time::timeout(T, recv)
            .await
            .expect("bounded")
            .expect("join");
        let f = link.fault_stats().expect("injector on");
        assert_eq!(f.offered, n);
        let tail = n - s.expected; // trailing drops are invisible to the receiver
        let tol = 5;
        assert!(
            s.lost + tail >= f.dropped && s.lost + tail <= f.dropped + tol,
            "{s:?} {f:?}"
        );
        assert!(s.duplicated.abs_diff(f.duplicated) <= tol, "{s:?} {f:?}");
        assert!(s.reordered.abs_diff(f.reordered) <= tol, "{s:?} {f:?}");
        assert!(
            f.dropped > 100 && f.duplicated > 40 && f.reordered > 40,
            "{f:?}"
        );
        let c = link.counters();
        assert_eq!(c.datagrams_out, n - f.dropped + f.duplicated);
    }

    #[tokio::test]
    async fn info_reads_kernel_numbers() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let link = UdpLink::connect(
            server.local_addr().expect("addr"),
            UdpOptions {
                recv_buffer: 65536,
                ..UdpOptions::default()
            },
        )
        .await
        .expect("connect");
        let i = link.info();
        // Linux doubles the requested size (capped by rmem_max) for its
        // bookkeeping.
        let rmem_max: i32 = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65536);
        assert_eq!(i.rcvbuf, Some(2 * rmem_max.min(65536)));
        assert_eq!(i.kernel_drops, Some(0));
        assert_eq!(i.rx_queue, Some(0));
        let fields = panel_fields(&i);
        assert!(
            fields
                .iter()
                .any(|(k, v)| *k == "k drops" && v.starts_with("0 ")),
            "{fields:?}"
        );
    }
}
