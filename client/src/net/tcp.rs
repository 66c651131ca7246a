//! The TCP transport: connect (keepalive, TCP_USER_TIMEOUT, a bounded
//! connect), the preamble and Hello, frames both ways, TCP_INFO polls and
//! state changes, the half-closes, and the `/fault` actions. What TCP and
//! UDP share (reconnecting, rooms, lines, liveness) is the driver's.
//! With `--tls` the same link speaks TLS ([`super::tls`]): the handshake
//! in `open`, then every read and write passes through the TLS session.
//!
//! Reads and writes use readiness (`readable`/`try_read`,
//! `writable`/`try_write`) inside one `select!`, so nothing is half-done
//! when another branch wins: the buffers live in [`TcpLink`], not in a
//! future, and [`Link::next`] is cancel-safe.

use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use sockchat_shared::codec::{self, decode_frame, decode_server};
use sockchat_shared::proto::{PREAMBLE_LEN, preamble};
use sockchat_shared::sockopt::{recv_queue, tcp_snapshot};
use sockchat_shared::{ClientMsg, DisconnectReason, ServerMsg};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Interval, MissedTickBehavior};

use super::after_close::tap_news;
use super::link::{HelloError, Link, OpenError, Outbox, Up, Welcome};
use super::tls::{TlsSession, Trust};
use super::{
    CloseReason, Fault, HalfClose, NetConfig, SocketEvent, SocketInfo, Stats, SysError, Transport,
    WireNews,
};
use crate::wire::{Tap, cannot_capture};

/// How long we stay in CLOSE_WAIT after the peer's FIN before closing our
/// side too, so a person can see the state (the server is gone anyway).
const PEER_FIN_LINGER: Duration = Duration::from_secs(1);

/// After a failed connect, how long the capture may take to read the
/// segments that made it fail (they arrived before the error did).
const FAILED_CONNECT_SETTLE: Duration = Duration::from_millis(30);

/// Most bytes we queue for the server before refusing more input; the
/// server only stops reading us if something is badly wrong.
const MAX_PENDING_WRITE: usize = 1 << 20;

/// One TCP connection to the server.
pub(super) struct TcpLink {
    stream: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    max_frame: usize,
    rbuf: BytesMut,
    wbuf: BytesMut,
    stats: Stats,
    sent_preamble: bool,
    got_preamble: bool,
    reading: bool,
    we_sent_fin: bool,
    /// The server's Bye reason, if it said one before closing.
    bye: Option<DisconnectReason>,
    /// Ping tokens are microseconds since this instant, so a Pong alone
    /// gives its round trip.
    started: Instant,
    last_tcp_state: Option<&'static str>,
    info_tick: Interval,
    /// `/fault close-unread` in progress: close once bytes wait unread, or
    /// at this deadline.
    close_unread_by: Option<Instant>,
    /// `/quit` in progress: give the server until then to close.
    quit_by: Option<Instant>,
    /// When the peer's FIN arrived (we linger in CLOSE_WAIT briefly).
    peer_fin_at: Option<Instant>,
    /// What happened and was not yet taken by `next`.
    out: Outbox,
    /// `--tls`: the TLS session every byte passes through.
    tls: Option<Box<TlsSession>>,
    /// The capture of this connection's packets (`NetConfig::wire`),
    /// drained on every TCP_INFO poll.
    tap: Option<Tap>,
}

/// Bind `sock` to a port of the kernel's choosing (so the capture's filter
/// can name it before the SYN leaves), then start capturing the
/// connection to `peer`. `Err`: why there will be no packets.
fn start_tap(sock: &TcpSocket, peer: SocketAddr) -> Result<Tap, String> {
    let any = match peer {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    };
    sock.bind(any)
        .and_then(|()| sock.local_addr())
        .and_then(|local| Tap::start(local, peer))
        .map_err(|e| cannot_capture(&e))
}

fn sys_or_local(syscall: &'static str, e: &std::io::Error) -> OpenError {
    match SysError::from_io(syscall, e) {
        Some(s) => OpenError {
            permanent: false,
            reason: CloseReason::Peer(s.reason()),
            report: vec![SocketEvent::Error(s)],
        },
        None => {
            let text = format!("{syscall}: {e}");
            OpenError {
                permanent: false,
                report: vec![SocketEvent::Local(text.clone())],
                reason: CloseReason::Local(text),
            }
        }
    }
}

impl Link for TcpLink {
    const TRANSPORT: Transport = Transport::Tcp;

    /// Create the socket, set its options, connect (bounded in time).
    async fn open(addr: SocketAddr, cfg: &NetConfig) -> Result<Self, OpenError> {
        let sock = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| sys_or_local("socket", &e))?;
        if let Some((idle, intvl, cnt)) = cfg.keepalive {
            let ka = socket2::TcpKeepalive::new()
                .with_time(Duration::from_secs(idle.into()))
                .with_interval(Duration::from_secs(intvl.into()))
                .with_retries(cnt);
            socket2::SockRef::from(&sock)
                .set_tcp_keepalive(&ka)
                .map_err(|e| sys_or_local("setsockopt", &e))?;
        }
        if cfg.user_timeout_ms > 0 {
            socket2::SockRef::from(&sock)
                .set_tcp_user_timeout(Some(Duration::from_millis(cfg.user_timeout_ms.into())))
                .map_err(|e| sys_or_local("setsockopt", &e))?;
        }
        let (mut tap, no_tap) = if cfg.wire {
            match start_tap(&sock, addr) {
                Ok(t) => (Some(t), None),
                Err(e) => (None, Some(e)),
            }
        } else {
            (None, None)
        };
        let connected = tokio::time::timeout(cfg.connect_timeout, sock.connect(addr)).await;
        let failed = match connected {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(sys_or_local("connect", &e)),
            Err(_) => {
                let text = format!(
                    "connect: no answer from {addr} within {} s (the kernel would keep retrying SYN; we gave up)",
                    cfg.connect_timeout.as_secs()
                );
                Err(OpenError {
                    permanent: false,
                    report: vec![SocketEvent::Local(text.clone())],
                    reason: CloseReason::Local(text),
                })
            }
        };
        let stream = match failed {
            Ok(s) => s,
            Err(mut e) => {
                // The SYNs and their answer (an RST-ACK: ECONNREFUSED) come
                // before the error, once the capture has read them.
                if let Some(t) = &mut tap {
                    tokio::time::sleep(FAILED_CONNECT_SETTLE).await;
                    let news = tap_news(t)
                        .into_iter()
                        .map(|n| SocketEvent::Wire(Box::new(n)));
                    e.report.splice(0..0, news);
                }
                return Err(e);
            }
        };
        // Chat lines are small: send them at once (no Nagle delay).
        stream
            .set_nodelay(true)
            .map_err(|e| sys_or_local("setsockopt", &e))?;
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        if let (Some(t), Ok(l)) = (&mut tap, stream.local_addr()) {
            t.set_local(l);
        }
        let mut info_tick = tokio::time::interval(cfg.info_poll.max(Duration::from_millis(10)));
        info_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut link = Self {
            local: stream.local_addr().unwrap_or(unknown),
            peer: stream.peer_addr().unwrap_or(unknown),
            stream,
            max_frame: cfg.max_frame,
            rbuf: BytesMut::with_capacity(8192),
            wbuf: BytesMut::with_capacity(256),
            stats: Stats::default(),
            sent_preamble: false,
            got_preamble: false,
            reading: true,
            we_sent_fin: false,
            bye: None,
            started: Instant::now(),
            last_tcp_state: None,
            info_tick,
            close_unread_by: None,
            quit_by: None,
            peer_fin_at: None,
            out: Outbox::default(),
            tls: None,
            tap,
        };
        if let Some(why) = no_tap {
            link.report(SocketEvent::Wire(Box::new(WireNews::Off(why))));
        }
        if let Some(opts) = &cfg.tls {
            link.start_tls(&cfg.server, opts, cfg.connect_timeout)
                .await?;
        }
        Ok(link)
    }

    fn addrs(&self) -> (SocketAddr, SocketAddr) {
        (self.local, self.peer)
    }

    /// The preamble (once per connection) and a Hello; then frames until
    /// the Welcome. After a refused Hello the server waits for another.
    async fn hello(&mut self, nick: &str) -> Result<Welcome, HelloError> {
        if !self.sent_preamble {
            self.wbuf.extend_from_slice(&preamble());
            self.sent_preamble = true;
        }
        self.queue(&ClientMsg::Hello {
            nick: nick.to_owned(),
        });
        let mut early = Vec::new();
        loop {
            match self.next().await {
                Up::Msg(ServerMsg::Welcome { nick, room, server }) => {
                    return Ok(Welcome {
                        nick,
                        room,
                        server,
                        early,
                    });
                }
                Up::Msg(ServerMsg::Error { code, text }) if code.refuses_hello() => {
                    return Err(HelloError::Refused { code, text });
                }
                Up::Closed(reason) => return Err(HelloError::Over { early, reason }),
                up => {
                    // Bounded: a server that talks without welcoming us is
                    // cut off by the driver's handshake limit.
                    if early.len() < 256 {
                        early.push(up);
                    }
                }
            }
        }
    }

    async fn send(&mut self, msg: &ClientMsg) -> Result<(), String> {
        if self.wbuf.len() > MAX_PENDING_WRITE {
            return Err(format!(
                "{} bytes already wait to be written (the server is not reading)",
                self.wbuf.len()
            ));
        }
        self.queue(msg);
        Ok(())
    }

    async fn ping(&mut self) {
        let token = self.started.elapsed().as_micros() as u64;
        self.queue(&ClientMsg::Ping { token });
    }

    fn backlog(&self) -> usize {
        self.wbuf.len()
    }

    fn is_over(&self) -> bool {
        self.out.is_over()
    }

    fn can_hear(&self) -> bool {
        self.reading && !self.we_sent_fin && self.peer_fin_at.is_none()
    }

    async fn next(&mut self) -> Up {
        loop {
            if let Some(u) = self.out.take().await {
                return u;
            }
            let checking = self.close_unread_by.is_some()
                || self.quit_by.is_some()
                || self.peer_fin_at.is_some();
            tokio::select! {
                r = self.stream.readable(), if self.reading => match r {
                    Ok(()) => self.read(),
                    Err(e) => self.fail("read", &e),
                },
                r = self.stream.writable(), if self.wants_write() => match r {
                    Ok(()) => self.write(),
                    Err(e) => self.fail("write", &e),
                },
                _ = self.info_tick.tick() => self.poll_info(),
                _ = tokio::time::sleep(Duration::from_millis(10)), if checking => self.check(),
            }
        }
    }

    async fn fault(&mut self, f: Fault) {
        let done = |did: &str, peer: &str| {
            Up::Report(SocketEvent::FaultDone {
                fault: f,
                did: did.to_string(),
                peer_sees: peer.to_string(),
            })
        };
        match f {
            Fault::Fin => {
                if let Err(e) = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Write) {
                    return self.fail("shutdown", &e);
                }
                self.we_sent_fin = true;
                self.out.push(done(
                    "shutdown(SHUT_WR): we sent FIN and keep reading; our state goes FIN_WAIT1 -> FIN_WAIT2",
                    "its read returns 0 (EOF, FIN received); it sits in CLOSE_WAIT until it closes too. A write from us now fails with EPIPE (32)",
                ));
                self.report(SocketEvent::HalfClosed(HalfClose::WeSentFin));
                self.poll_info();
            }
            Fault::Rst => {
                if let Err(e) =
                    socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO))
                {
                    return self.fail("setsockopt", &e);
                }
                self.out.push(done(
                    "setsockopt(SO_LINGER {on, 0}) then close(): the kernel sends RST, no FIN, no TIME_WAIT",
                    "its next read or write fails with ECONNRESET (104): connection reset by peer",
                ));
                self.close(CloseReason::Local(
                    "we reset the connection (fault rst)".into(),
                ));
            }
            Fault::CloseUnread => {
                // Stop reading and ask the server for something, so bytes
                // are sitting unread in our receive queue when we close.
                self.reading = false;
                self.ping().await;
                self.queue(&ClientMsg::Rooms);
                self.close_unread_by = Some(Instant::now() + Duration::from_secs(2));
            }
            Fault::StopReading => {
                self.reading = false;
                self.out.push(done(
                    "stopped calling read(): data piles up in our receive queue (SIOCINQ grows) until our advertised window is 0",
                    "its send queue and unacked bytes grow, it sees a zero window (probes), and its outbox may fill: slow consumer",
                ));
            }
            Fault::Resume => {
                self.reading = true;
                self.out.push(done(
                    "reading again: the receive queue drains and the window reopens",
                    "its queued data flows again (a window update arrives)",
                ));
            }
            Fault::Crash => {
                self.report(SocketEvent::Local(
                    "crash is carried out by the UI, not the net task".into(),
                ));
            }
        }
    }

    fn take_tap(&mut self) -> Option<Tap> {
        // Not drained here: the link is over and its reports are no longer
        // taken; what the ring holds goes out with the after-close report.
        self.tap.take()
    }

    /// Say Quit, then (once it is written) send FIN and wait a moment for
    /// the server to close.
    async fn quit(&mut self, message: String) {
        if self.we_sent_fin || self.peer_fin_at.is_some() {
            // Cannot say goodbye on a half-closed socket: just go.
            return self.close(CloseReason::Local("quit".into()));
        }
        self.queue(&ClientMsg::Quit { message });
        self.quit_by = Some(Instant::now() + Duration::from_secs(1));
        self.reading = true;
    }
}

impl TcpLink {
    /// The TLS handshake, bounded by the connect timeout; reports the
    /// version, cipher and how the certificate was trusted. A refused
    /// certificate is an [`OpenError`] with the whole warning.
    async fn start_tls(
        &mut self,
        server: &str,
        opts: &super::tls::TlsOptions,
        limit: Duration,
    ) -> Result<(), OpenError> {
        // The reason is the warning's first sentence; the event has it all.
        let local = |text: String| OpenError {
            permanent: false,
            reason: CloseReason::Local(text.split(". ").next().unwrap_or(&text).to_string()),
            report: vec![SocketEvent::Local(text)],
        };
        let mut t = TlsSession::new(server, opts).map_err(local)?;
        let hs = async {
            while t.info().is_none() || t.wants_write() {
                if t.wants_write() {
                    self.stream.writable().await?;
                    match t.write(&self.stream, &mut self.wbuf) {
                        Ok(n) => self.stats.bytes_out += n as u64,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                    continue;
                }
                self.stream.readable().await?;
                match t.read(&self.stream, &mut self.rbuf) {
                    Ok(0) => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "tls: the server closed the connection during the handshake (is it a TLS port?)",
                        ));
                    }
                    Ok(n) => self.stats.bytes_in += n as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(limit, hs).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // A changed certificate stays changed: no reconnect.
                return Err(OpenError {
                    permanent: t.certificate_changed(),
                    ..local(e.to_string())
                });
            }
            Err(_) => {
                return Err(local(format!(
                    "tls: no handshake within {} s (is it a TLS port?)",
                    limit.as_secs()
                )));
            }
        }
        if let Some(i) = t.info() {
            let how = match (i.trust.clone(), &opts.known_servers) {
                (Trust::New, Some(p)) if opts.announced == Some(i.fingerprint) => format!(
                    "first contact: certificate {} (the one it announced on the LAN) is now pinned in {}",
                    i.fingerprint,
                    p.display()
                ),
                (Trust::New, Some(p)) => format!(
                    "first contact: certificate {} is now pinned in {}; check it against the fingerprint the server printed at start",
                    i.fingerprint,
                    p.display()
                ),
                (Trust::New, None) => format!(
                    "first contact: certificate {} (nowhere to pin it: no HOME; use --known-servers)",
                    i.fingerprint
                ),
                (Trust::Pinned, _) => format!("certificate {} matches the pin", i.fingerprint),
                (Trust::Given, _) => format!(
                    "certificate {} is the one --tls-fingerprint gave (pinned)",
                    i.fingerprint
                ),
            };
            self.report(SocketEvent::Local(format!(
                "tls: {} {}; {how}",
                i.version, i.cipher
            )));
        }
        self.tls = Some(Box::new(t));
        Ok(())
    }

    fn queue(&mut self, msg: &ClientMsg) {
        codec::encode_client(msg, &mut self.wbuf);
        self.stats.frames_out += 1;
    }

    /// Report `e`, after the packets captured so far (they came first: a
    /// half-close or an error follows the segment that caused it).
    fn report(&mut self, e: SocketEvent) {
        self.drain_tap();
        self.out.report(e);
    }

    /// The connection is over with this reason: nothing more is read.
    fn close(&mut self, reason: CloseReason) {
        // The packets so far come before the end.
        self.drain_tap();
        self.out.close(reason);
        self.reading = false;
        self.wbuf.clear();
        self.close_unread_by = None;
        self.quit_by = None;
        self.peer_fin_at = None;
    }

    /// A system call failed: report it, and the connection is over.
    fn fail(&mut self, syscall: &'static str, e: &std::io::Error) {
        let reason = match SysError::from_io(syscall, e) {
            Some(se) => {
                let r = se.reason();
                self.report(SocketEvent::Error(se));
                r
            }
            None => DisconnectReason::from_io_error(e),
        };
        self.poll_info();
        self.close(CloseReason::Peer(reason));
    }

    /// Bytes wait for the socket: ours, or TLS records.
    fn wants_write(&self) -> bool {
        !self.wbuf.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    fn write(&mut self) {
        let r = match &mut self.tls {
            Some(t) => {
                if self.quit_by.is_some() {
                    // After the Quit (it is in wbuf): close_notify, so the
                    // server can tell our end from a cut connection.
                    let r = t.write(&self.stream, &mut self.wbuf);
                    t.close_notify();
                    r.and_then(|n| Ok(n + t.write(&self.stream, &mut self.wbuf)?))
                } else {
                    t.write(&self.stream, &mut self.wbuf)
                }
            }
            None => self
                .stream
                .try_write(&self.wbuf)
                .inspect(|&n| self.wbuf.advance(n)),
        };
        match r {
            Ok(n) => self.stats.bytes_out += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return self.fail("write", &e),
        }
        if !self.wants_write() && self.quit_by.is_some() && !self.we_sent_fin {
            // Everything said: send our FIN, wait for the server's.
            let _ = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Write);
            self.we_sent_fin = true;
        }
    }

    fn read(&mut self) {
        // The segments that brought these bytes go out before what they say.
        self.drain_tap();
        // Bound the buffer: one max frame plus a read's worth.
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(8192);
        }
        let r = match &mut self.tls {
            Some(t) => t.read(&self.stream, &mut self.rbuf),
            None => self.stream.try_read_buf(&mut self.rbuf),
        };
        match r {
            Ok(0) => {
                // read() returned 0: the peer sent FIN.
                self.report(SocketEvent::HalfClosed(HalfClose::PeerSentFin));
                self.poll_info();
                if self.quit_by.is_some() {
                    return self.close(CloseReason::Local("quit".into()));
                }
                // Stay half-closed for a moment so the panel shows
                // CLOSE_WAIT (nothing more can arrive: stop reading). A write
                // now still "succeeds" once and draws an RST; the next one
                // fails with EPIPE, and that becomes the reason.
                self.reading = false;
                self.peer_fin_at = Some(Instant::now());
                return;
            }
            Ok(n) => self.stats.bytes_in += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData && self.tls.is_some() => {
                return self.protocol_error(e.to_string());
            }
            Err(e) => return self.fail("read", &e),
        }
        if !self.got_preamble {
            if self.rbuf.len() < PREAMBLE_LEN {
                return;
            }
            if let Err(e) = codec::check_preamble(&self.rbuf[..PREAMBLE_LEN]) {
                return self.protocol_error(e.to_string());
            }
            self.rbuf.advance(PREAMBLE_LEN);
            self.got_preamble = true;
        }
        loop {
            let payload = match decode_frame(&mut self.rbuf, self.max_frame) {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => return self.protocol_error(e.to_string()),
            };
            self.stats.frames_in += 1;
            match decode_server(&payload) {
                Ok(m) => self.received(m),
                Err(e) => return self.protocol_error(e.to_string()),
            }
        }
    }

    /// A message arrived: answer pings here, report the rest.
    fn received(&mut self, msg: ServerMsg) {
        match msg {
            ServerMsg::Ping { token } => self.queue(&ClientMsg::Pong { token }),
            ServerMsg::Pong { token } => {
                let now = self.started.elapsed().as_micros() as u64;
                // A token from the future is not ours: ignore it.
                if let Some(us) = now.checked_sub(token) {
                    self.out.push(Up::Pong(Duration::from_micros(us)));
                }
            }
            m => {
                if let ServerMsg::Bye { reason } = &m {
                    self.bye = Some(reason.clone());
                }
                self.out.push(Up::Msg(m));
            }
        }
    }

    fn protocol_error(&mut self, detail: String) {
        let reason = DisconnectReason::ProtocolError { detail };
        self.report(SocketEvent::Local(format!("closing: {reason}")));
        self.close(CloseReason::Peer(reason));
    }

    /// Report the packets captured since the last poll (before the state
    /// change the same poll may report: they came first).
    fn drain_tap(&mut self) {
        if let Some(t) = &mut self.tap {
            for n in tap_news(t) {
                self.out.report(SocketEvent::Wire(Box::new(n)));
            }
        }
    }

    fn poll_info(&mut self) {
        self.drain_tap();
        let snap = tcp_snapshot(self.stream.as_raw_fd());
        if let Some(info) = &snap.info {
            let now = info.state_name();
            if let Some(prev) = self.last_tcp_state
                && prev != now
            {
                self.report(SocketEvent::TcpState {
                    from: prev,
                    to: now,
                });
            }
            self.last_tcp_state = Some(now);
        }
        let info = SocketInfo {
            snap,
            stats: self.stats,
            reading_paused: !self.reading,
            tls: self.tls.as_ref().and_then(|t| t.info().cloned()),
        };
        self.report(SocketEvent::Info(Box::new(info)));
    }

    /// Periodic check while a close-unread, a quit or a CLOSE_WAIT linger
    /// is in progress.
    fn check(&mut self) {
        let now = Instant::now();
        if let Some(at) = self.peer_fin_at
            && now >= at + PEER_FIN_LINGER
        {
            self.poll_info();
            let reason = self.bye.clone().unwrap_or(DisconnectReason::Eof);
            return self.close(CloseReason::Peer(reason));
        }
        if let Some(by) = self.quit_by
            && now >= by
        {
            self.report(SocketEvent::Local(
                "the server did not close within 1 s; closing anyway".into(),
            ));
            return self.close(CloseReason::Local("quit".into()));
        }
        if let Some(by) = self.close_unread_by {
            let unread = recv_queue(self.stream.as_raw_fd()).unwrap_or(0);
            if unread > 0 || now >= by {
                self.poll_info();
                let (did, peer_sees) = if unread > 0 {
                    (
                        format!(
                            "close() with {unread} unread bytes in our receive queue: the kernel discards them and sends RST instead of FIN"
                        ),
                        "read/write fails with ECONNRESET (104): connection reset by peer"
                            .to_string(),
                    )
                } else {
                    (
                        "close() — but nothing arrived to leave unread within 2 s, so the kernel sent a normal FIN".to_string(),
                        "read returns 0: EOF (FIN received)".to_string(),
                    )
                };
                self.report(SocketEvent::FaultDone {
                    fault: Fault::CloseUnread,
                    did,
                    peer_sees,
                });
                self.close(CloseReason::Local(if unread > 0 {
                    "we closed with unread data (fault close-unread): RST sent".into()
                } else {
                    "we closed (fault close-unread, queue empty): FIN sent".into()
                }));
            }
        }
    }
}
