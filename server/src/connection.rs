//! One TCP connection: detect framed vs text by the first byte, then a
//! reader (this task) and a writer task (draining the outbox).
//!
//! The reader reads into a per-thread scratch buffer, parses *every* complete
//! frame or line of that read, and fans chat messages out as one chunk per
//! room per read. Only an incomplete trailing frame/line is copied into the
//! connection's own buffer, and that buffer is freed as soon as it is empty:
//! an idle connection owns no read buffer.
//!
//! Every connection ends with exactly one [`DisconnectReason`] (the first
//! one recorded on its [`Peer`] wins), logged in the connection's span and
//! announced to every room it was in.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use sockchat_shared::codec;
use sockchat_shared::proto::{PREAMBLE_LEN, VERSION};
use sockchat_shared::{ChatKind, ClientMsg, DisconnectReason, ErrorCode, ServerMsg};
use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tracing::{debug, info, info_span};

use crate::config::Settings;
use crate::hub::{Format, Hub, Peer, Room, Transport};
use crate::limits::IpSlot;
use crate::outbox::{WriterEnd, run_writer};
use crate::session::{Member, Rate, RateLimit, quit_reason};
use crate::shutdown::{InputGuard, Shutdown};
use crate::text::{self, TextCommand};

/// The preamble the server answers a framed client with.
static PREAMBLE: [u8; PREAMBLE_LEN] = [0x00, b'S', b'C', b'K', VERSION];

/// Size of the per-thread read buffer.
const SCRATCH: usize = 64 * 1024;

/// Chat messages from one read are fanned out together, at most this many
/// per chunk.
const MAX_BATCH: usize = 256;

thread_local! {
    /// Reads land here first; only an incomplete tail is copied into the
    /// connection. One per runtime thread, never held across an await.
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; SCRATCH].into_boxed_slice());
}

/// What every connection shares.
#[derive(Debug)]
pub struct Ctx {
    pub settings: Arc<Settings>,
    pub hub: Arc<Hub>,
    pub shutdown: Shutdown,
    pub next_id: AtomicU64,
    pub server_name: String,
}

/// Resources a connection holds for its whole life (freed on drop).
#[derive(Debug)]
pub struct Guards {
    pub permit: Option<OwnedSemaphorePermit>,
    pub ip_slot: Option<IpSlot>,
    pub input: InputGuard,
}

/// How the reader loop ended; decides how the socket is closed.
#[derive(Debug)]
enum End {
    /// We end it (quit, idle, protocol error, rate limit, shutdown): tell
    /// the client why, flush, FIN, drain.
    Server(DisconnectReason),
    /// read() returned 0: the peer sent FIN. Flush what is queued, FIN.
    Eof,
    /// The kernel reported an error.
    Io(io::Error),
    /// Someone else already decided (slow consumer, write error).
    Doomed,
}

enum Flow {
    Continue,
    Stop(End),
}

/// Serve one accepted connection until it ends, inside its own span.
///
/// Memory matters here (an idle connection should cost ~2 KB): the setup
/// and the closing sequence are boxed futures built in plain functions, so
/// neither they nor the arguments stay in the future that every connection
/// carries while idle (an async fn keeps its arguments, and often its
/// temporaries, for its whole life).
pub fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    id: u64,
    ctx: Arc<Ctx>,
    guards: Guards,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let setup = Box::pin(setup(stream, addr, id, ctx, guards));
    async move {
        if let Some(conn) = setup.await {
            drive(conn).await;
        }
    }
}

/// The connection's span (conn_id, peer, transport, nick). It is built
/// when something is logged rather than held for the connection's life: a
/// live span costs the subscriber a few hundred bytes, which would be most
/// of an idle connection's budget. Every connection log line is inside it.
fn conn_span(id: u64, addr: SocketAddr, nick: &str) -> tracing::Span {
    info_span!("conn", conn_id = id, peer = %addr, transport = "tcp", nick = %nick)
}

fn configure(stream: &TcpStream, s: &Settings) {
    let c = &s.config.server;
    let sock = SockRef::from(stream);
    if let Err(e) = sock.set_tcp_nodelay(c.nodelay) {
        debug!(error = %e, "TCP_NODELAY");
    }
    if c.keepalive {
        let ka = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(c.keepalive_idle_secs.max(1).into()))
            .with_interval(Duration::from_secs(c.keepalive_interval_secs.max(1).into()))
            .with_retries(c.keepalive_count.max(1));
        if let Err(e) = sock.set_tcp_keepalive(&ka) {
            debug!(error = %e, "SO_KEEPALIVE");
        }
    }
    if c.user_timeout_ms > 0
        && let Err(e) =
            sock.set_tcp_user_timeout(Some(Duration::from_millis(c.user_timeout_ms.into())))
    {
        debug!(error = %e, "TCP_USER_TIMEOUT");
    }
}

fn log_end(span: &tracing::Span, reason: &DisconnectReason, registered: bool) {
    let _in = span.enter();
    info!(
        reason = %reason,
        code = %reason.code(),
        errno = reason.errno(),
        registered,
        "disconnected"
    );
}

/// A set-up connection: its session, its writer task and what it holds.
struct Conn {
    s: Session,
    writer: tokio::task::JoinHandle<bool>,
    /// Set when the first bytes already ended it (e.g. a bad preamble).
    early_end: Option<End>,
    permit: Option<OwnedSemaphorePermit>,
    ip_slot: Option<IpSlot>,
}

async fn drive(mut conn: Box<Conn>) {
    let end = match conn.early_end.take() {
        Some(e) => e,
        None => conn.s.run().await,
    };
    closing(conn, end).await;
}

/// The closing sequence as a boxed future (built outside any async fn, so
/// its size never counts in the idle connection's future).
fn closing(
    conn: Box<Conn>,
    end: End,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    let Conn {
        s,
        writer,
        permit,
        ip_slot,
        ..
    } = *conn;
    Box::pin(async move {
        s.finish(end, writer).await;
        drop(permit);
        drop(ip_slot);
    })
}

/// Detect the format, create the peer and its writer, greet a text user and
/// handle whatever arrived with the first bytes. `None`: the connection
/// ended before that (logged here).
async fn setup(
    stream: TcpStream,
    addr: SocketAddr,
    id: u64,
    ctx: Arc<Ctx>,
    guards: Guards,
) -> Option<Box<Conn>> {
    let Guards {
        permit,
        ip_slot,
        input,
    } = guards;
    configure(&stream, &ctx.settings);
    debug!(conn_id = id, peer = %addr, "connected");
    let stream = Arc::new(stream);
    let mut pending = BytesMut::new();
    let cfg = &ctx.settings.config;

    // Framed clients start with a NUL byte; a silent client (nc waiting for
    // a prompt) is greeted as a text user after detect_timeout.
    let detect = Duration::from_millis(cfg.server.detect_timeout_ms);
    let first = tokio::select! {
        r = tokio::time::timeout(detect, read_some(&stream, &mut pending)) => r,
        _ = ctx.shutdown.input_stopped() => {
            log_end(&conn_span(id, addr, ""), &DisconnectReason::ServerShutdown, false);
            return None;
        }
    };
    let format = match first {
        Err(_) => Format::Text,
        Ok(Ok(0)) => {
            log_end(&conn_span(id, addr, ""), &DisconnectReason::Eof, false);
            return None;
        }
        Ok(Ok(_)) if pending.first() == Some(&0) => Format::Framed,
        Ok(Ok(_)) => Format::Text,
        Ok(Err(e)) => {
            log_end(
                &conn_span(id, addr, ""),
                &DisconnectReason::from_io_error(&e),
                false,
            );
            return None;
        }
    };

    let view: Arc<dyn crate::hub::SocketView> = stream.clone();
    let peer = Arc::new(Peer::new(
        id,
        addr,
        Transport::Tcp,
        format,
        cfg.server.outbox_frames,
        cfg.server.slow_consumer,
        Some(view),
    ));
    let writer = ctx
        .shutdown
        .tracker
        .spawn(writer_task(stream.clone(), peer.clone()));

    let now = Instant::now();
    let limits = &cfg.limits;
    let mut s = Session {
        ctx: ctx.clone(),
        stream,
        peer,
        pending: BytesMut::new(),
        registered: false,
        preamble_done: false,
        rooms: Vec::new(),
        rate: RateLimit::new(&ctx, now.into_std()),
        started: now,
        last_rx: now,
        last_ping: now,
        ping_token: 0,
        discarding: false,
        batch_room: None,
        batch: Vec::new(),
        max_line: limits.max_message_len + 64,
        input: Some(input),
    };

    if format == Format::Text {
        s.register_text();
    }
    let end = if pending.is_empty() {
        None
    } else {
        let data = pending.freeze();
        match s.process(&data) {
            (used, Flow::Continue) => {
                if used < data.len() {
                    s.pending = BytesMut::from(&data[used..]);
                }
                None
            }
            (_, Flow::Stop(end)) => Some(end),
        }
    };
    s.flush_batch();
    Some(Box::new(Conn {
        s,
        writer,
        early_end: end,
        permit,
        ip_slot,
    }))
}

/// Read once (waiting for readiness) into `buf`.
async fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    // Small: a framed client's preamble + hello or a typed line. More stays
    // in the kernel for the next read.
    buf.reserve(512);
    loop {
        stream.readable().await?;
        match stream.try_read_buf(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The writer task: drain the outbox until it is closed and flushed, or a
/// write fails (then the connection is doomed with that errno). A writer
/// stuck on a peer that does not read is aborted by the reader's close.
async fn writer_task(stream: Arc<TcpStream>, peer: Arc<Peer>) -> bool {
    match run_writer(&stream, &peer.outbox).await {
        WriterEnd::Flushed => true,
        WriterEnd::Failed(e) => {
            debug!(conn_id = peer.id, error = %e, "write failed");
            peer.fail(DisconnectReason::from_io_error(&e));
            false
        }
    }
}

/// The reader side of one connection.
struct Session {
    ctx: Arc<Ctx>,
    stream: Arc<TcpStream>,
    peer: Arc<Peer>,
    /// Incomplete frame/line carried over to the next read; empty (no
    /// allocation) most of the time.
    pending: BytesMut,
    registered: bool,
    preamble_done: bool,
    /// Rooms this user is in; the last one is the current room.
    rooms: Vec<Arc<Room>>,
    rate: RateLimit,
    started: Instant,
    last_rx: Instant,
    last_ping: Instant,
    ping_token: u64,
    /// Text mode: skipping the rest of an over-long line.
    discarding: bool,
    /// Chat messages of the current read, for one room, not yet fanned out.
    batch_room: Option<Arc<Room>>,
    batch: Vec<ServerMsg>,
    max_line: usize,
    /// Dropped when this connection stops processing input (shutdown
    /// phase 1 waits for every guard).
    input: Option<InputGuard>,
}

impl Session {
    fn format(&self) -> Format {
        self.peer.format
    }

    fn send(&self, msg: &ServerMsg) {
        self.peer.send(msg);
    }

    fn span(&self) -> tracing::Span {
        conn_span(self.peer.id, self.peer.addr, &self.peer.nick())
    }

    fn error(&self, code: ErrorCode, text: impl Into<String>) {
        self.send(&ServerMsg::Error {
            code,
            text: text.into(),
        });
    }

    fn notice(&self, text: impl Into<String>) {
        self.send(&ServerMsg::Notice { text: text.into() });
    }

    /// The transport-neutral half of this session, for one command.
    fn member(&mut self) -> Member<'_> {
        Member {
            ctx: &self.ctx,
            peer: &self.peer,
            rooms: &mut self.rooms,
        }
    }

    fn welcome_and_join(&mut self) {
        self.registered = true;
        self.member().welcome_and_join();
        // One INFO line per connection (its end); the rest is DEBUG, so a
        // churn of thousands of connections per second is not mostly logging.
        if tracing::enabled!(tracing::Level::DEBUG) {
            let _in = self.span().entered();
            debug!("registered");
        }
    }

    fn register_text(&mut self) {
        match self.ctx.hub.register(&self.peer, "") {
            Ok(_) => self.welcome_and_join(),
            Err(e) => self.error(e.code(), e.to_string()),
        }
    }

    /// The reader loop: read, parse, handle, until the connection ends.
    async fn run(&mut self) -> End {
        let peer = self.peer.clone();
        let stream = self.stream.clone();
        let ctx = self.ctx.clone();
        let timer = tokio::time::sleep_until(self.next_check());
        // Created once, outside the loop: a cancellation future registers
        // with its token when first polled, and the shutdown token is shared
        // by every connection — re-creating it per read would take that
        // token's lock on every read of every connection.
        let doomed = peer.cancel_token().cancelled();
        let stopping = ctx.shutdown.input_stopped();
        tokio::pin!(timer, doomed, stopping);
        let mut reads: u32 = 0;
        loop {
            tokio::select! {
                biased;
                _ = &mut doomed => return End::Doomed,
                _ = &mut stopping => {
                    return End::Server(DisconnectReason::ServerShutdown)
                }
                // poll_read_ready in a poll_fn rather than `readable()`: the
                // same readiness, a much smaller future (only this task ever
                // waits for read readiness on this socket).
                r = std::future::poll_fn(|cx| stream.poll_read_ready(cx)) => {
                    if let Err(e) = r {
                        return End::Io(e);
                    }
                    if let Flow::Stop(end) = self.on_readable() {
                        return end;
                    }
                    // poll_read_ready does not take part in tokio's
                    // cooperative budget: a peer that keeps the socket full
                    // must not keep this worker thread from everyone else.
                    reads += 1;
                    if reads.is_multiple_of(16) {
                        tokio::task::yield_now().await;
                    }
                }
                _ = &mut timer => {
                    if let Flow::Stop(end) = self.on_timer() {
                        return end;
                    }
                    timer.as_mut().reset(self.next_check());
                }
            }
        }
    }

    /// Read once into the thread's scratch buffer and handle every complete
    /// frame/line in it.
    fn on_readable(&mut self) -> Flow {
        let flow = SCRATCH_BUF.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let n = match self.stream.try_read(&mut scratch[..]) {
                Ok(0) => return Flow::Stop(End::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flow::Continue,
                Err(e) => return Flow::Stop(End::Io(e)),
            };
            self.last_rx = Instant::now();
            if self.pending.is_empty() {
                let data = &scratch[..n];
                let (used, flow) = self.process(data);
                if matches!(flow, Flow::Continue) && used < n {
                    self.pending = BytesMut::from(&data[used..]);
                }
                flow
            } else {
                let mut buf = std::mem::take(&mut self.pending);
                buf.extend_from_slice(&scratch[..n]);
                let (used, flow) = self.process(&buf);
                buf.advance(used);
                if !buf.is_empty() {
                    self.pending = buf;
                }
                flow
            }
        });
        self.flush_batch();
        flow
    }

    /// Handle every complete unit in `data`; returns how many bytes were used.
    fn process(&mut self, data: &[u8]) -> (usize, Flow) {
        match self.format() {
            Format::Framed => self.process_framed(data),
            Format::Text => self.process_text(data),
        }
    }

    fn process_framed(&mut self, data: &[u8]) -> (usize, Flow) {
        let mut pos = 0;
        if !self.preamble_done {
            if data.len() < PREAMBLE_LEN {
                return (0, Flow::Continue);
            }
            match codec::check_preamble(&data[..PREAMBLE_LEN]) {
                Ok(_) => {
                    self.peer.deliver(Bytes::from_static(&PREAMBLE));
                    self.preamble_done = true;
                    pos = PREAMBLE_LEN;
                }
                Err(e) => {
                    // Answer with our preamble so the peer can see which
                    // version we speak, then the error.
                    self.peer.deliver(Bytes::from_static(&PREAMBLE));
                    let code = match e {
                        codec::DecodeError::BadVersion(_) => ErrorCode::VersionMismatch,
                        _ => ErrorCode::Protocol,
                    };
                    self.error(code, e.to_string());
                    return (PREAMBLE_LEN, Flow::Stop(End::Server(e.into())));
                }
            }
        }
        let max = self.ctx.settings.config.limits.max_frame;
        loop {
            let rest = &data[pos..];
            if rest.len() < codec::HEADER_LEN {
                break;
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let err = if len > max {
                Some(codec::DecodeError::FrameTooLarge { len, max })
            } else if len == 0 {
                Some(codec::DecodeError::EmptyFrame)
            } else {
                None
            };
            if let Some(e) = err {
                self.error(ErrorCode::Protocol, e.to_string());
                return (data.len(), Flow::Stop(End::Server(e.into())));
            }
            if rest.len() < codec::HEADER_LEN + len {
                break;
            }
            let payload = &rest[codec::HEADER_LEN..codec::HEADER_LEN + len];
            pos += codec::HEADER_LEN + len;
            match codec::decode_client(payload) {
                Ok(msg) => {
                    if let Flow::Stop(end) = self.handle(msg) {
                        return (pos, Flow::Stop(end));
                    }
                }
                Err(e) => {
                    self.error(ErrorCode::Protocol, e.to_string());
                    return (pos, Flow::Stop(End::Server(e.into())));
                }
            }
        }
        (pos, Flow::Continue)
    }

    fn process_text(&mut self, data: &[u8]) -> (usize, Flow) {
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    pos += i + 1;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    let mut line = &rest[..i];
                    if let Some(l) = line.strip_suffix(b"\r") {
                        line = l;
                    }
                    if line.len() > self.max_line {
                        self.line_too_long();
                        continue;
                    }
                    let text = String::from_utf8_lossy(line);
                    if let Flow::Stop(end) = self.text_line(&text) {
                        return (pos, Flow::Stop(end));
                    }
                }
                None => {
                    if self.discarding {
                        return (data.len(), Flow::Continue);
                    }
                    if rest.len() > self.max_line {
                        self.line_too_long();
                        self.discarding = true;
                        return (data.len(), Flow::Continue);
                    }
                    break;
                }
            }
        }
        (pos, Flow::Continue)
    }

    fn line_too_long(&mut self) {
        self.flush_batch();
        self.error(
            ErrorCode::MessageTooLong,
            format!(
                "line too long (max {} bytes): ignored",
                self.ctx.settings.config.limits.max_message_len
            ),
        );
    }

    fn text_line(&mut self, line: &str) -> Flow {
        match text::parse(line) {
            TextCommand::Msg(m) => self.handle(m),
            TextCommand::Help => {
                self.flush_batch();
                for l in text::HELP {
                    self.notice(*l);
                }
                Flow::Continue
            }
            TextCommand::Nothing => Flow::Continue,
            TextCommand::Error(e) => {
                self.flush_batch();
                self.error(ErrorCode::BadCommand, e);
                Flow::Continue
            }
        }
    }

    /// Check the rate limit; `Some(flow)` means stop handling this command.
    fn limited(&mut self) -> Option<Flow> {
        match self.rate.check(&self.ctx, &self.peer) {
            Rate::Allowed => None,
            Rate::Dropped => Some(Flow::Continue),
            Rate::Exceeded => Some(Flow::Stop(End::Server(DisconnectReason::RateLimited))),
        }
    }

    /// Queue a chat message for this read's fan-out.
    fn queue_chat(&mut self, room: Arc<Room>, msg: ServerMsg) {
        let same = self
            .batch_room
            .as_ref()
            .is_some_and(|r| Arc::ptr_eq(r, &room));
        if !same || self.batch.len() >= MAX_BATCH {
            self.flush_batch();
            self.batch_room = Some(room);
        }
        self.batch.push(msg);
    }

    /// Fan out the queued chat messages (one chunk per format).
    fn flush_batch(&mut self) {
        if let Some(room) = self.batch_room.take()
            && !self.batch.is_empty()
        {
            let msgs = std::mem::take(&mut self.batch);
            room.fan_out_chat(msgs, self.peer.id);
        }
    }

    fn handle(&mut self, msg: ClientMsg) -> Flow {
        if !matches!(msg, ClientMsg::Say { .. } | ClientMsg::Me { .. }) {
            // Keep order: chat queued before this command goes out first.
            self.flush_batch();
        }
        if !self.registered {
            return self.handle_handshake(msg);
        }
        match msg {
            ClientMsg::Hello { .. } => {
                self.error(ErrorCode::BadCommand, "already registered");
            }
            ClientMsg::Ping { token } => self.send(&ServerMsg::Pong { token }),
            ClientMsg::Pong { .. } => {}
            ClientMsg::Quit { message } => {
                return Flow::Stop(End::Server(quit_reason(&self.ctx, &message)));
            }
            ClientMsg::Say { room, text } => return self.chat(&room, text, ChatKind::Say),
            ClientMsg::Me { room, text } => return self.chat(&room, text, ChatKind::Me),
            other => {
                if let Some(f) = self.limited() {
                    return f;
                }
                self.member().command(other);
            }
        }
        Flow::Continue
    }

    fn handle_handshake(&mut self, msg: ClientMsg) -> Flow {
        match msg {
            ClientMsg::Hello { nick } => match self.ctx.hub.register(&self.peer, &nick) {
                Ok(_) => self.welcome_and_join(),
                Err(e) => self.error(e.code(), e.to_string()),
            },
            ClientMsg::Ping { token } => self.send(&ServerMsg::Pong { token }),
            ClientMsg::Pong { .. } => {}
            ClientMsg::Quit { message } => {
                return Flow::Stop(End::Server(quit_reason(&self.ctx, &message)));
            }
            _ => self.error(ErrorCode::BadCommand, "send Hello first"),
        }
        Flow::Continue
    }

    fn chat(&mut self, room: &str, text: String, kind: ChatKind) -> Flow {
        if let Some(f) = self.limited() {
            return f;
        }
        if let Some((room, msg)) = self.member().chat(room, text, kind) {
            self.queue_chat(room, msg);
        }
        Flow::Continue
    }

    /// When the timer must next look at this connection.
    fn next_check(&self) -> Instant {
        let l = &self.ctx.settings.config.limits;
        let far = Instant::now() + Duration::from_secs(3600);
        if !self.registered {
            return self.started + Duration::from_secs(l.handshake_timeout_secs);
        }
        match self.format() {
            Format::Framed => {
                let mut t = far;
                if l.idle_timeout_secs > 0 {
                    t = t.min(self.last_rx + Duration::from_secs(l.idle_timeout_secs));
                }
                if l.ping_interval_secs > 0 {
                    let base = self.last_rx.max(self.last_ping);
                    t = t.min(base + Duration::from_secs(l.ping_interval_secs));
                }
                t
            }
            Format::Text if l.text_idle_timeout_secs > 0 => {
                self.last_rx + Duration::from_secs(l.text_idle_timeout_secs)
            }
            Format::Text => far,
        }
    }

    fn on_timer(&mut self) -> Flow {
        let l = &self.ctx.settings.config.limits;
        let now = Instant::now();
        if !self.registered {
            let secs = l.handshake_timeout_secs;
            if now >= self.started + Duration::from_secs(secs) {
                let detail = format!("no hello within {secs} s");
                self.error(ErrorCode::Protocol, format!("handshake timeout: {detail}"));
                return Flow::Stop(End::Server(DisconnectReason::ProtocolError { detail }));
            }
            return Flow::Continue;
        }
        let silence = now.saturating_duration_since(self.last_rx);
        let idle = match self.format() {
            Format::Framed => l.idle_timeout_secs,
            Format::Text => l.text_idle_timeout_secs,
        };
        if idle > 0 && silence >= Duration::from_secs(idle) {
            let secs = idle.min(u32::MAX as u64) as u32;
            return Flow::Stop(End::Server(DisconnectReason::IdleTimeout { secs }));
        }
        if self.format() == Format::Framed && l.ping_interval_secs > 0 {
            let base = self.last_rx.max(self.last_ping);
            if now >= base + Duration::from_secs(l.ping_interval_secs) {
                self.ping_token += 1;
                self.last_ping = now;
                self.send(&ServerMsg::Ping {
                    token: self.ping_token,
                });
            }
        }
        Flow::Continue
    }

    /// End the connection: one reason, logged and announced; then close the
    /// socket the right way for how it ended.
    async fn finish(mut self, end: End, writer: tokio::task::JoinHandle<bool>) {
        self.flush_batch();
        // Stop counting as an input: this connection fans nothing out any more.
        self.input.take();
        let shutdown = self.ctx.shutdown.clone();
        let reason = match &end {
            End::Server(r) => r.clone(),
            End::Eof => DisconnectReason::Eof,
            End::Io(e) => DisconnectReason::from_io_error(e),
            End::Doomed => self
                .peer
                .reason()
                .unwrap_or(DisconnectReason::ProtocolError {
                    detail: "connection aborted".into(),
                }),
        };
        self.peer.set_reason(reason);
        let reason = self.peer.reason().unwrap_or(DisconnectReason::Eof);
        let server_shutdown = reason == DisconnectReason::ServerShutdown;
        if server_shutdown {
            // Phase 2 of the shutdown: wait until no connection can fan a
            // message out any more, so nothing accepted misses us.
            let _ = tokio::time::timeout_at(shutdown.deadline(), shutdown.bye()).await;
        }
        log_end(&self.span(), &reason, self.registered);
        // Leave every room; announce unless the whole server is stopping
        // (everyone gets their own notice then).
        let hub = self.ctx.hub.clone();
        for r in std::mem::take(&mut self.rooms) {
            hub.leave(&self.peer, &r, Some(&reason), !server_shutdown, false);
        }
        if self.registered {
            hub.unregister(&self.peer);
        }
        // A slow consumer's writer is still running: it may yet deliver a
        // last notice to a peer that is slow rather than gone.
        let slow =
            matches!(end, End::Doomed) && matches!(reason, DisconnectReason::SlowConsumer { .. });
        let polite = match &end {
            End::Server(_) | End::Eof => !self.peer.cancel_token().is_cancelled(),
            End::Doomed => slow,
            End::Io(_) => false,
        };
        let tell = matches!(end, End::Server(_)) || slow;
        let flush_by = if server_shutdown {
            shutdown.deadline()
        } else if slow {
            Instant::now() + Duration::from_secs(2)
        } else {
            Instant::now() + Duration::from_secs(5)
        };
        if polite {
            if tell {
                let bye = ServerMsg::Bye {
                    reason: reason.clone(),
                };
                if let Some(b) = crate::hub::encode(&bye, self.format()) {
                    self.peer.outbox.push_force(b);
                }
            }
            self.peer.outbox.close();
            let mut writer = writer;
            match tokio::time::timeout_at(flush_by, &mut writer).await {
                Ok(Ok(true)) => {
                    // FIN after everything queued; then read until the
                    // client closes too, so unread data never turns our
                    // close into RST.
                    let _ = SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write);
                    if tell {
                        let drain_by = if server_shutdown {
                            shutdown.deadline()
                        } else {
                            Instant::now() + Duration::from_secs(2)
                        };
                        drain(&self.stream, drain_by).await;
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    writer.abort();
                    let _ = writer.await;
                }
            }
        } else {
            self.peer.outbox.abort();
            self.peer.cancel_token().cancel();
            writer.abort();
            let _ = writer.await;
        }
    }
}

/// Read and discard until EOF, an error or the deadline. (Reads go to the
/// thread's scratch buffer: a buffer here would sit in every connection's
/// future.)
async fn drain(stream: &TcpStream, until: Instant) {
    let _ = tokio::time::timeout_at(until, async {
        loop {
            if stream.readable().await.is_err() {
                return;
            }
            let r = SCRATCH_BUF.with(|cell| stream.try_read(&mut cell.borrow_mut()[..]));
            match r {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}
