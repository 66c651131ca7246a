//! The connection loop: connect, handshake, read/write frames, poll
//! TCP_INFO, carry out `/fault` actions, and reconnect with backoff.
//!
//! One task owns the socket. Reads and writes use readiness
//! (`readable`/`try_read`, `writable`/`try_write`) inside one `select!`, so
//! nothing is half-done when another branch wins: the read buffer and the
//! write buffer live in [`Conn`], not in a future.

use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use sockchat_shared::codec::{self, decode_frame, decode_server};
use sockchat_shared::proto::{PREAMBLE_LEN, preamble};
use sockchat_shared::sockopt::{recv_queue, tcp_snapshot};
use sockchat_shared::{ClientMsg, DisconnectReason, ErrorCode, ServerMsg};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::{
    CloseReason, Events, Fault, HalfClose, NetCmd, NetConfig, Session, SocketEvent, SocketInfo,
    Stats, SysError, Transport, UiGone, emit, sanitize_msg, wait_to_reconnect,
};

/// How one connection ended.
enum Outcome {
    /// The user quit: do not reconnect.
    Quit,
    /// The connection ended; `welcomed` says whether it ever got going (then
    /// the backoff starts over).
    Closed { welcomed: bool },
}

/// Longest nick we try when adding `_` to a taken one (the server's default
/// limit).
const MAX_NICK_CHARS: usize = 24;

/// How long we stay in CLOSE_WAIT after the peer's FIN before closing our
/// side too, so a person can see the state (the server is gone anyway).
const PEER_FIN_LINGER: Duration = Duration::from_secs(1);

/// How long a line may wait for its echo (or its room's Join) before it
/// is reported as failed.
const LINE_TIMEOUT: Duration = Duration::from_secs(15);

/// Most bytes we queue for the server before refusing more input; the
/// server only stops reading us if something is badly wrong.
const MAX_PENDING_WRITE: usize = 1 << 20;

pub(super) async fn run(cfg: NetConfig, mut cmds: mpsc::Receiver<NetCmd>, ev: Events) {
    let _ = run_inner(cfg, &mut cmds, &ev).await;
}

async fn run_inner(
    cfg: NetConfig,
    cmds: &mut mpsc::Receiver<NetCmd>,
    ev: &Events,
) -> Result<(), UiGone> {
    let mut session = Session {
        nick: cfg.nick.clone(),
        first_room: cfg.room.clone(),
        ..Session::default()
    };
    let mut failures: u32 = 0;
    loop {
        emit(
            ev,
            SocketEvent::Connecting {
                addr: cfg.server.clone(),
                attempt: failures + 1,
            },
        )
        .await?;
        // Lines typed while connecting are queued and sent once the
        // session is restored (after the rejoins). A /quit with nothing
        // pending ends at once; after pending lines it waits for them.
        let mut quit_after: Option<String> = None;
        let connecting = connect(&cfg);
        tokio::pin!(connecting);
        let connected = loop {
            tokio::select! {
                r = &mut connecting => break r,
                cmd = cmds.recv(), if quit_after.is_none() => match cmd {
                    None => {
                        emit(ev, SocketEvent::Finished).await?;
                        return Ok(());
                    }
                    // Finish this attempt first (queued lines go out, and the
                    // exit status can tell a session from a failure).
                    Some(NetCmd::Quit(m)) => quit_after = Some(m),
                    Some(NetCmd::Send { id, msg }) => session.queue(id, msg, ev).await?,
                    Some(_) => {
                        emit(ev, SocketEvent::Local("not connected yet: not done".into())).await?;
                    }
                },
            }
        };
        match connected {
            Ok(stream) => {
                let mut conn = Conn::new(stream, &cfg, &mut session);
                conn.quit_after = quit_after.take();
                let local = conn.local;
                let peer = conn.peer;
                emit(
                    ev,
                    SocketEvent::Connected {
                        local,
                        peer,
                        transport: Transport::Tcp,
                    },
                )
                .await?;
                let outcome = conn.run(cmds, ev).await?;
                session.lost(ev).await?;
                match outcome {
                    Outcome::Quit => {
                        emit(ev, SocketEvent::Finished).await?;
                        return Ok(());
                    }
                    Outcome::Closed { welcomed } => {
                        if welcomed {
                            failures = 0;
                        }
                    }
                }
            }
            Err(_) if quit_after.is_some() => {
                let mut evs = Vec::new();
                session
                    .lines
                    .give_up("the connection failed and we were quitting", &mut evs);
                Session::emit_all(ev, evs).await?;
                emit(ev, SocketEvent::Finished).await?;
                return Ok(());
            }
            Err(ConnectError::Sys(e)) => {
                emit(ev, SocketEvent::Error(e.clone())).await?;
                emit(ev, SocketEvent::Closed(CloseReason::Peer(e.reason()))).await?;
            }
            Err(ConnectError::Local(s)) => {
                emit(ev, SocketEvent::Local(s.clone())).await?;
                emit(ev, SocketEvent::Closed(CloseReason::Local(s))).await?;
            }
        }
        failures += 1;
        if !wait_to_reconnect(&cfg, &mut session, failures, cmds, ev).await? {
            return Ok(());
        }
    }
}

enum ConnectError {
    Sys(SysError),
    Local(String),
}

/// Resolve, create the socket, set options, connect (bounded in time).
async fn connect(cfg: &NetConfig) -> Result<TcpStream, ConnectError> {
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host(cfg.server.as_str()).await {
        Ok(a) => a.collect(),
        Err(e) => {
            return Err(ConnectError::Local(format!(
                "cannot resolve {}: {e}",
                cfg.server
            )));
        }
    };
    let Some(addr) = addrs.first().copied() else {
        return Err(ConnectError::Local(format!(
            "{} resolves to no address",
            cfg.server
        )));
    };
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
    match tokio::time::timeout(cfg.connect_timeout, sock.connect(addr)).await {
        Ok(Ok(s)) => {
            // Chat lines are small: send them at once (no Nagle delay).
            s.set_nodelay(true)
                .map_err(|e| sys_or_local("setsockopt", &e))?;
            Ok(s)
        }
        Ok(Err(e)) => Err(sys_or_local("connect", &e)),
        Err(_) => Err(ConnectError::Local(format!(
            "connect: no answer from {addr} within {} s (the kernel would keep retrying SYN; we gave up)",
            cfg.connect_timeout.as_secs()
        ))),
    }
}

fn sys_or_local(syscall: &'static str, e: &std::io::Error) -> ConnectError {
    match SysError::from_io(syscall, e) {
        Some(s) => ConnectError::Sys(s),
        None => ConnectError::Local(format!("{syscall}: {e}")),
    }
}

/// One live TCP connection and everything the loop needs about it.
struct Conn<'a> {
    stream: TcpStream,
    cfg: &'a NetConfig,
    session: &'a mut Session,
    local: SocketAddr,
    peer: SocketAddr,
    rbuf: BytesMut,
    wbuf: BytesMut,
    stats: Stats,
    got_preamble: bool,
    welcomed: bool,
    reading: bool,
    we_sent_fin: bool,
    /// The server's Bye reason, if it said one before closing.
    bye: Option<DisconnectReason>,
    /// Our outstanding latency ping: token and when it left.
    ping: Option<(u64, Instant)>,
    next_token: u64,
    last_tcp_state: Option<&'static str>,
    /// `/fault close-unread` in progress: close once bytes wait unread, or
    /// at this deadline.
    close_unread_by: Option<Instant>,
    /// `/quit` in progress: give the server until then to close.
    quit_by: Option<Instant>,
    /// When the peer's FIN arrived (we linger in CLOSE_WAIT briefly).
    peer_fin_at: Option<Instant>,
    /// Hellos refused so far (nick taken or invalid) on this connection.
    hello_refusals: u32,
    /// A /quit typed while connecting, carried out once the queued lines
    /// are sent.
    quit_after: Option<String>,
}

/// What woke the loop.
enum Wake {
    Cmd(Option<NetCmd>),
    Readable(std::io::Result<()>),
    Writable(std::io::Result<()>),
    Info,
    Ping,
    Check,
}

impl<'a> Conn<'a> {
    fn new(stream: TcpStream, cfg: &'a NetConfig, session: &'a mut Session) -> Self {
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let mut wbuf = BytesMut::with_capacity(256);
        wbuf.extend_from_slice(&preamble());
        codec::encode_client(
            &ClientMsg::Hello {
                nick: session.nick.clone(),
            },
            &mut wbuf,
        );
        Self {
            stream,
            cfg,
            session,
            local,
            peer,
            rbuf: BytesMut::with_capacity(8192),
            wbuf,
            stats: Stats::default(),
            got_preamble: false,
            welcomed: false,
            reading: true,
            we_sent_fin: false,
            bye: None,
            ping: None,
            next_token: 1,
            last_tcp_state: None,
            close_unread_by: None,
            quit_by: None,
            peer_fin_at: None,
            hello_refusals: 0,
            quit_after: None,
        }
    }

    fn queue(&mut self, msg: &ClientMsg) {
        codec::encode_client(msg, &mut self.wbuf);
        self.stats.frames_out += 1;
    }

    /// Send a message of the user's through the line bookkeeping (a line
    /// for a room being joined waits for the Joined).
    fn dispatch(&mut self, id: Option<super::LineId>, msg: ClientMsg) {
        if let Some(m) = self
            .session
            .lines
            .dispatch(id, msg, &self.session.rooms, Instant::now())
        {
            self.queue(&m);
        }
    }

    /// Say Quit, then (once it is written) send FIN and wait a moment for
    /// the server to close.
    fn start_quit(&mut self, message: String) {
        self.queue(&ClientMsg::Quit { message });
        self.quit_by = Some(Instant::now() + Duration::from_secs(1));
        self.reading = true;
    }

    /// How this connection ended, as far as reconnecting goes: after a
    /// /quit, whatever ended it, we do not come back.
    fn closed_outcome(&self) -> Outcome {
        if self.quit_by.is_some() {
            Outcome::Quit
        } else {
            Outcome::Closed {
                welcomed: self.welcomed,
            }
        }
    }

    async fn run(
        mut self,
        cmds: &mut mpsc::Receiver<NetCmd>,
        ev: &Events,
    ) -> Result<Outcome, UiGone> {
        let mut info_tick = tokio::time::interval(self.cfg.info_poll);
        info_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut ping_tick = tokio::time::interval(self.cfg.ping_every);
        ping_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        // The Hello counts as a frame out (the preamble is not a frame).
        self.stats.frames_out = 1;
        loop {
            let checking = self.close_unread_by.is_some()
                || self.quit_by.is_some()
                || self.peer_fin_at.is_some();
            let wake = tokio::select! {
                c = cmds.recv() => Wake::Cmd(c),
                r = self.stream.readable(), if self.reading => Wake::Readable(r),
                r = self.stream.writable(), if !self.wbuf.is_empty() => Wake::Writable(r),
                _ = info_tick.tick() => Wake::Info,
                _ = ping_tick.tick() => Wake::Ping,
                _ = tokio::time::sleep(Duration::from_millis(10)), if checking => Wake::Check,
            };
            match wake {
                Wake::Cmd(None) => return Ok(Outcome::Quit),
                Wake::Cmd(Some(cmd)) => {
                    if let Some(out) = self.command(cmd, ev).await? {
                        return Ok(out);
                    }
                }
                Wake::Readable(r) => {
                    if let Err(e) = r {
                        return self.fail("read", &e, ev).await;
                    }
                    if let Some(out) = self.read(ev).await? {
                        return Ok(out);
                    }
                }
                Wake::Writable(r) => {
                    if let Err(e) = r {
                        return self.fail("write", &e, ev).await;
                    }
                    match self.stream.try_write(&self.wbuf) {
                        Ok(n) => {
                            self.wbuf.advance(n);
                            self.stats.bytes_out += n as u64;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return self.fail("write", &e, ev).await,
                    }
                    if self.wbuf.is_empty() && self.quit_by.is_some() && !self.we_sent_fin {
                        // Everything said: send our FIN, wait for the server's.
                        let _ = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Write);
                        self.we_sent_fin = true;
                    }
                }
                Wake::Info => {
                    self.poll_info(ev).await?;
                    if let Some((_, at)) = self.ping {
                        let waiting_ms = at.elapsed().as_millis() as u64;
                        emit(ev, SocketEvent::Lag { waiting_ms }).await?;
                    }
                }
                Wake::Ping => {
                    let mut evs = Vec::new();
                    self.session
                        .lines
                        .expire(Instant::now(), LINE_TIMEOUT, &mut evs);
                    Session::emit_all(ev, evs).await?;
                    if self.welcomed && !self.we_sent_fin && self.reading && self.ping.is_none() {
                        let token = self.next_token;
                        self.next_token += 1;
                        self.ping = Some((token, Instant::now()));
                        self.queue(&ClientMsg::Ping { token });
                    }
                }
                Wake::Check => {
                    if let Some(out) = self.check(ev).await? {
                        return Ok(out);
                    }
                }
            }
        }
    }

    /// A system call failed: report it, and the connection is over.
    async fn fail(
        &mut self,
        syscall: &'static str,
        e: &std::io::Error,
        ev: &Events,
    ) -> Result<Outcome, UiGone> {
        let reason = match SysError::from_io(syscall, e) {
            Some(se) => {
                let r = se.reason();
                emit(ev, SocketEvent::Error(se)).await?;
                r
            }
            None => DisconnectReason::from_io_error(e),
        };
        self.poll_info(ev).await?;
        emit(ev, SocketEvent::Closed(CloseReason::Peer(reason))).await?;
        Ok(self.closed_outcome())
    }

    async fn read(&mut self, ev: &Events) -> Result<Option<Outcome>, UiGone> {
        // Bound the buffer: one max frame plus a read's worth.
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(8192);
        }
        match self.stream.try_read_buf(&mut self.rbuf) {
            Ok(0) => {
                // read() returned 0: the peer sent FIN.
                emit(ev, SocketEvent::HalfClosed(HalfClose::PeerSentFin)).await?;
                self.poll_info(ev).await?;
                if self.quit_by.is_some() {
                    emit(ev, SocketEvent::Closed(CloseReason::Local("quit".into()))).await?;
                    return Ok(Some(self.closed_outcome()));
                }
                // Stay half-closed for a moment so the panel shows
                // CLOSE_WAIT (nothing more can arrive: stop reading). A write
                // now still "succeeds" once and draws an RST; the next one
                // fails with EPIPE, and that becomes the reason.
                self.reading = false;
                self.peer_fin_at = Some(Instant::now());
                return Ok(None);
            }
            Ok(n) => self.stats.bytes_in += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return self.fail("read", &e, ev).await.map(Some),
        }
        if !self.got_preamble {
            if self.rbuf.len() < PREAMBLE_LEN {
                return Ok(None);
            }
            if let Err(e) = codec::check_preamble(&self.rbuf[..PREAMBLE_LEN]) {
                return self.protocol_error(e.to_string(), ev).await.map(Some);
            }
            self.rbuf.advance(PREAMBLE_LEN);
            self.got_preamble = true;
        }
        loop {
            let payload = match decode_frame(&mut self.rbuf, self.cfg.max_frame) {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(None),
                Err(e) => return self.protocol_error(e.to_string(), ev).await.map(Some),
            };
            self.stats.frames_in += 1;
            let msg = match decode_server(&payload) {
                Ok(m) => sanitize_msg(m),
                Err(e) => return self.protocol_error(e.to_string(), ev).await.map(Some),
            };
            self.handle(msg, ev).await?;
        }
    }

    async fn protocol_error(&mut self, detail: String, ev: &Events) -> Result<Outcome, UiGone> {
        let reason = DisconnectReason::ProtocolError { detail };
        emit(ev, SocketEvent::Local(format!("closing: {reason}"))).await?;
        emit(ev, SocketEvent::Closed(CloseReason::Peer(reason))).await?;
        Ok(self.closed_outcome())
    }

    /// Keep session state (nick, rooms) in step and answer pings; forward
    /// the rest to the UI.
    async fn handle(&mut self, msg: ServerMsg, ev: &Events) -> Result<(), UiGone> {
        match &msg {
            ServerMsg::Ping { token } => {
                self.queue(&ClientMsg::Pong { token: *token });
                return Ok(());
            }
            ServerMsg::Pong { token } => {
                if let Some((t, at)) = self.ping
                    && t == *token
                {
                    self.ping = None;
                    emit(ev, SocketEvent::Latency(at.elapsed())).await?;
                }
                return Ok(());
            }
            ServerMsg::Welcome { nick, room, .. } => {
                self.welcomed = true;
                self.session.nick = nick.clone();
                let wanted: Vec<String> = if self.session.welcomed_once {
                    self.session.rooms.iter().cloned().collect()
                } else if !self.session.first_room.is_empty() {
                    vec![self.session.first_room.clone()]
                } else {
                    Vec::new()
                };
                self.session.welcomed_once = true;
                self.session.rooms.clear();
                self.session.rooms.insert(room.clone());
                for r in wanted.iter().filter(|r| *r != room) {
                    self.dispatch(None, ClientMsg::Join { room: r.clone() });
                }
                // Then what was typed while there was no session.
                emit(ev, SocketEvent::Server(msg)).await?;
                for (id, m) in self.session.lines.take_queued() {
                    self.dispatch(id, m);
                }
                if let Some(m) = self.quit_after.take() {
                    self.start_quit(m);
                }
                return Ok(());
            }
            ServerMsg::Joined { room, nick } if *nick == self.session.nick => {
                self.session.rooms.insert(room.clone());
            }
            ServerMsg::Left { room, nick, .. } if *nick == self.session.nick => {
                self.session.rooms.remove(room);
            }
            ServerMsg::NickChanged { old, new } if *old == self.session.nick => {
                self.session.nick = new.clone();
            }
            ServerMsg::Bye { reason } => self.bye = Some(reason.clone()),
            ServerMsg::Error { code, .. }
                if !self.welcomed && matches!(code, ErrorCode::NickTaken | ErrorCode::BadName) =>
            {
                // The server refused our Hello and waits for another one
                // (after a reconnect our old session may still hold the
                // nick until the server notices it is dead). Try NICK_,
                // NICK__, then let the server pick a guest name.
                let err = msg.clone();
                emit(ev, SocketEvent::Server(err)).await?;
                self.hello_refusals += 1;
                let next = if *code == ErrorCode::NickTaken && self.hello_refusals <= 2 {
                    format!("{}_", self.session.nick)
                } else {
                    String::new()
                };
                if !next.is_empty() && next.chars().count() <= MAX_NICK_CHARS {
                    self.session.nick = next;
                } else {
                    self.session.nick = String::new();
                }
                let nick = self.session.nick.clone();
                emit(
                    ev,
                    SocketEvent::Local(if nick.is_empty() {
                        "asking the server for a guest nick".into()
                    } else {
                        format!("trying nick {nick}")
                    }),
                )
                .await?;
                self.queue(&ClientMsg::Hello { nick });
                return Ok(());
            }
            _ => {}
        }
        let (mut send, mut evs) = (Vec::new(), Vec::new());
        self.session.lines.on_server(
            &msg,
            &self.session.nick,
            &self.session.rooms,
            Instant::now(),
            &mut send,
            &mut evs,
        );
        for m in &send {
            self.queue(m);
        }
        emit(ev, SocketEvent::Server(msg)).await?;
        Session::emit_all(ev, evs).await
    }

    async fn poll_info(&mut self, ev: &Events) -> Result<(), UiGone> {
        let snap = tcp_snapshot(self.stream.as_raw_fd());
        if let Some(info) = &snap.info {
            let now = info.state_name();
            if let Some(prev) = self.last_tcp_state
                && prev != now
            {
                emit(
                    ev,
                    SocketEvent::TcpState {
                        from: prev,
                        to: now,
                    },
                )
                .await?;
            }
            self.last_tcp_state = Some(now);
        }
        emit(
            ev,
            SocketEvent::Info(Box::new(SocketInfo {
                snap,
                stats: self.stats,
                reading_paused: !self.reading,
            })),
        )
        .await
    }

    /// Periodic check while a close-unread or quit is in progress.
    async fn check(&mut self, ev: &Events) -> Result<Option<Outcome>, UiGone> {
        let now = Instant::now();
        if let Some(at) = self.peer_fin_at
            && now >= at + PEER_FIN_LINGER
        {
            self.poll_info(ev).await?;
            let reason = self.bye.clone().unwrap_or(DisconnectReason::Eof);
            emit(ev, SocketEvent::Closed(CloseReason::Peer(reason))).await?;
            return Ok(Some(self.closed_outcome()));
        }
        if let Some(by) = self.quit_by
            && now >= by
        {
            emit(
                ev,
                SocketEvent::Local("the server did not close within 1 s; closing anyway".into()),
            )
            .await?;
            emit(ev, SocketEvent::Closed(CloseReason::Local("quit".into()))).await?;
            return Ok(Some(Outcome::Quit));
        }
        if let Some(by) = self.close_unread_by {
            let unread = recv_queue(self.stream.as_raw_fd()).unwrap_or(0);
            if unread > 0 || now >= by {
                self.poll_info(ev).await?;
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
                emit(
                    ev,
                    SocketEvent::FaultDone {
                        fault: Fault::CloseUnread,
                        did: did.clone(),
                        peer_sees,
                    },
                )
                .await?;
                emit(
                    ev,
                    SocketEvent::Closed(CloseReason::Local(if unread > 0 {
                        "we closed with unread data (fault close-unread): RST sent".into()
                    } else {
                        "we closed (fault close-unread, queue empty): FIN sent".into()
                    })),
                )
                .await?;
                return Ok(Some(self.closed_outcome()));
            }
        }
        Ok(None)
    }

    async fn command(&mut self, cmd: NetCmd, ev: &Events) -> Result<Option<Outcome>, UiGone> {
        match cmd {
            NetCmd::Send { id, msg } => {
                if !self.welcomed {
                    self.session.queue(id, msg, ev).await?;
                } else if self.wbuf.len() > MAX_PENDING_WRITE {
                    let why = format!(
                        "not sent: {} bytes already wait to be written (the server is not reading)",
                        self.wbuf.len()
                    );
                    emit(
                        ev,
                        match id {
                            Some(id) => SocketEvent::LineFailed { id, why },
                            None => SocketEvent::Local(why),
                        },
                    )
                    .await?;
                } else {
                    self.dispatch(id, msg);
                }
            }
            NetCmd::Quit(message) => {
                if self.we_sent_fin || self.peer_fin_at.is_some() {
                    // Cannot say goodbye on a half-closed socket: just go.
                    emit(ev, SocketEvent::Closed(CloseReason::Local("quit".into()))).await?;
                    return Ok(Some(Outcome::Quit));
                }
                self.start_quit(message);
            }
            NetCmd::Fault(f) => return self.fault(f, ev).await,
        }
        Ok(None)
    }

    async fn fault(&mut self, f: Fault, ev: &Events) -> Result<Option<Outcome>, UiGone> {
        let done = |did: &str, peer: &str| SocketEvent::FaultDone {
            fault: f,
            did: did.to_string(),
            peer_sees: peer.to_string(),
        };
        match f {
            Fault::Fin => {
                if let Err(e) = socket2::SockRef::from(&self.stream).shutdown(Shutdown::Write) {
                    return self.fail("shutdown", &e, ev).await.map(Some);
                }
                self.we_sent_fin = true;
                emit(
                    ev,
                    done(
                        "shutdown(SHUT_WR): we sent FIN and keep reading; our state goes FIN_WAIT1 -> FIN_WAIT2",
                        "its read returns 0 (EOF, FIN received); it sits in CLOSE_WAIT until it closes too. A write from us now fails with EPIPE (32)",
                    ),
                )
                .await?;
                emit(ev, SocketEvent::HalfClosed(HalfClose::WeSentFin)).await?;
                self.poll_info(ev).await?;
            }
            Fault::Rst => {
                if let Err(e) =
                    socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO))
                {
                    return self.fail("setsockopt", &e, ev).await.map(Some);
                }
                emit(
                    ev,
                    done(
                        "setsockopt(SO_LINGER {on, 0}) then close(): the kernel sends RST, no FIN, no TIME_WAIT",
                        "its next read or write fails with ECONNRESET (104): connection reset by peer",
                    ),
                )
                .await?;
                emit(
                    ev,
                    SocketEvent::Closed(CloseReason::Local(
                        "we reset the connection (fault rst)".into(),
                    )),
                )
                .await?;
                return Ok(Some(self.closed_outcome()));
            }
            Fault::CloseUnread => {
                // Stop reading and ask the server for something, so bytes
                // are sitting unread in our receive queue when we close.
                self.reading = false;
                let token = self.next_token;
                self.next_token += 1;
                self.queue(&ClientMsg::Ping { token });
                self.queue(&ClientMsg::Rooms);
                self.close_unread_by = Some(Instant::now() + Duration::from_secs(2));
            }
            Fault::StopReading => {
                self.reading = false;
                emit(
                    ev,
                    done(
                        "stopped calling read(): data piles up in our receive queue (SIOCINQ grows) until our advertised window is 0",
                        "its send queue and unacked bytes grow, it sees a zero window (probes), and its outbox may fill: slow consumer",
                    ),
                )
                .await?;
            }
            Fault::Resume => {
                self.reading = true;
                emit(
                    ev,
                    done(
                        "reading again: the receive queue drains and the window reopens",
                        "its queued data flows again (a window update arrives)",
                    ),
                )
                .await?;
            }
            Fault::Crash => {
                emit(
                    ev,
                    SocketEvent::Local("crash is carried out by the UI, not the net task".into()),
                )
                .await?;
            }
        }
        Ok(None)
    }
}
