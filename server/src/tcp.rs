//! One TCP user from accept to close: detect the format, create the peer
//! and its writer task, then the reader loop ([`Connection`] frames and
//! lines into [`Session::handle`]; handshake timeout, idle timeout and
//! pings; chat of one read fanned out together), and the close that fits
//! how it ended (Bye, flush, FIN, drain — or abort). The session's end
//! itself (reason, rooms, nick, Bye) is [`Session::end`].

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sockchat_shared::codec::DecodeError;
use sockchat_shared::proto::{PREAMBLE_LEN, VERSION};
use sockchat_shared::{ClientMsg, DisconnectReason, ErrorCode, ServerMsg};
use socket2::SockRef;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, info, info_span};

use crate::connection::{Connection, Detected, Frame, Read, detect, detect_now};
use crate::ctx::{Admission, Ctx};
use crate::hub::{Format, Peer, Room, Transport};
use crate::outbox::{WriterEnd, run_writer};
use crate::owed;
use crate::password::{self, Check};
use crate::session::{Session, Step};
use crate::shutdown::InputGuard;
use crate::text::{self, TextCommand};

/// The preamble the server answers a framed client with.
static PREAMBLE: [u8; PREAMBLE_LEN] = [0x00, b'S', b'C', b'K', VERSION];

/// Chat messages from one read are fanned out together, at most this many
/// per chunk.
const MAX_BATCH: usize = 256;

/// Resources a connection holds for its whole life (freed on drop, after
/// the socket is closed).
#[derive(Debug)]
pub struct Guards {
    pub admission: Option<Admission>,
    pub input: InputGuard,
}

/// How the reader loop ended; decides how the socket is closed.
#[derive(Debug)]
enum End {
    /// We end it (quit, idle, protocol error, rate limit, shutdown): tell
    /// the client why, flush, FIN, drain.
    /// Boxed: the loop's future carries an `End` while idle, and the
    /// largest reason is 56 bytes (issue 10's 2.5 KiB per connection).
    Server(Box<DisconnectReason>),
    /// read() returned 0: the peer sent FIN. Flush what is queued, FIN.
    Eof,
    /// The kernel reported an error.
    Io(std::io::Error),
    /// Someone else already decided (slow consumer, write error).
    Doomed,
    /// Not an end: a password to check ([`crate::password`]). Reading
    /// stops (what is buffered waits, in order) until the verdict is in.
    Park(Box<Check>),
}

/// Serve one accepted connection until it ends.
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
    let setup = Box::pin(setup(stream, addr, id, ctx, guards, None));
    async move {
        if let Some(conn) = setup.await {
            drive(conn).await;
        }
    }
}

/// [`serve`] for a stream that is not itself the user's TCP socket (TLS:
/// [`crate::tls`] relays the decrypted bytes over a socketpair): `view` is
/// `view` makes, from the stream this connection reads and writes, what
/// `/sockinfo` shows (the real socket's TCP_INFO, the TLS version and
/// cipher) and what an owed flush writes to. The real socket has its
/// options from its listener (`crate::bind::bind_tcp`).
pub(crate) fn serve_with_view(
    stream: TcpStream,
    addr: SocketAddr,
    id: u64,
    ctx: Arc<Ctx>,
    guards: Guards,
    view: MakeView,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let setup = Box::pin(setup(stream, addr, id, ctx, guards, Some(view)));
    async move {
        if let Some(conn) = setup.await {
            drive(conn).await;
        }
    }
}

/// Builds a connection's [`crate::hub::SocketView`] from its stream.
pub(crate) type MakeView =
    Box<dyn FnOnce(Arc<TcpStream>) -> Arc<dyn crate::hub::SocketView> + Send>;

/// A connection that ended before it had a session (EOF or an error on
/// the first read, shutdown meanwhile): its one log line.
pub(crate) fn log_early_end(id: u64, addr: SocketAddr, reason: &DisconnectReason) {
    let _in =
        info_span!("conn", conn_id = id, peer = %addr, transport = "tcp", nick = "").entered();
    info!(reason = %reason, code = %reason.code(), errno = reason.errno(), registered = false, "disconnected");
}

/// A set-up connection: its reader, its writer task and what it holds.
struct Conn {
    t: TcpSession,
    writer: tokio::task::JoinHandle<bool>,
    /// Set when the first bytes already ended it (e.g. a bad preamble).
    early_end: Option<End>,
    admission: Option<Admission>,
}

async fn drive(mut conn: Box<Conn>) {
    let end = match conn.early_end.take() {
        // Boxed, as in `run`: the check's future is not carried by every
        // idle connection's `drive` (the size test below).
        Some(End::Park(check)) => match Box::pin(conn.t.check(check)).await {
            Some(e) => e,
            None => conn.t.run().await,
        },
        Some(e) => e,
        None => conn.t.run().await,
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
        t,
        writer,
        admission,
        ..
    } = *conn;
    Box::pin(async move {
        t.finish(end, writer).await;
        drop(admission);
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
    view: Option<MakeView>,
) -> Option<Box<Conn>> {
    let Guards { admission, input } = guards;
    // No socket options here: the accepted socket inherited TCP_NODELAY and
    // the keepalive settings from its listener (`crate::bind::bind_tcp`).
    debug!(conn_id = id, peer = %addr, "connected");
    let stream = Arc::new(stream);
    let cfg = &ctx.settings.config;

    let wait = Duration::from_millis(cfg.server.detect_timeout_ms);
    // Usually the first bytes are already there: no wait, no timer, and no
    // shutdown future registered with the token every connection shares.
    let detected = match detect_now(&stream) {
        Some(d) => d,
        None => tokio::select! {
            d = detect(&stream, wait) => d,
            _ = ctx.shutdown.input_stopped() => {
                log_early_end(id, addr, &DisconnectReason::ServerShutdown);
                return None;
            }
        },
    };
    let (format, first) = match detected {
        Detected::Format(f, first) => (f, first),
        Detected::Eof => {
            log_early_end(id, addr, &DisconnectReason::Eof);
            return None;
        }
        Detected::Failed(e) => {
            log_early_end(id, addr, &DisconnectReason::from_io_error(&e));
            return None;
        }
    };

    let view: Arc<dyn crate::hub::SocketView> = match view {
        Some(make) => make(stream.clone()),
        None => stream.clone(),
    };
    let peer = Peer::new(
        id,
        addr,
        Transport::Tcp,
        format,
        cfg.server.outbox_frames,
        cfg.server.slow_consumer,
        Some(view),
        ctx.shutdown.input_token(),
    );
    let writer = ctx
        .shutdown
        .tracker
        .spawn(writer_task(stream.clone(), peer.clone()));

    let now = Instant::now();
    let limits = &cfg.limits;
    let conn = Connection::new(
        stream,
        format,
        first,
        limits.max_message_len + 64,
        limits.max_frame,
    );
    let mut t = TcpSession {
        conn,
        r: Reader {
            s: Session::new(ctx.clone(), peer, now.into_std()),
            started: now,
            last_rx: now,
            last_ping: now,
            ping_token: 0,
            batch_room: None,
            batch: Vec::new(),
            input: Some(input),
        },
    };

    // Replies to the first bytes are written once, when this scope ends.
    let turn = owed::scope();
    if format == Format::Text {
        t.r.s.greet_text();
    }
    let r = &mut t.r;
    let end = t.conn.process_buffered(|f| r.on_frame(f)).break_value();
    t.r.flush_batch();
    drop(turn);
    Some(Box::new(Conn {
        t,
        writer,
        early_end: end,
        admission,
    }))
}

/// The writer task: drain the outbox until it is closed and flushed, or a
/// write fails (then the connection is doomed with that errno). A writer
/// stuck on a peer that does not read is aborted by the reader's close.
/// (A plain fn around an async block: an async fn would keep its
/// arguments twice in every idle connection's writer task.)
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn writer_task(
    stream: Arc<TcpStream>,
    peer: Arc<Peer>,
) -> impl std::future::Future<Output = bool> + Send + 'static {
    async move {
        match run_writer(&stream, &peer.outbox).await {
            WriterEnd::Flushed => true,
            WriterEnd::Failed(e) => {
                debug!(conn_id = peer.id, error = %e, "write failed");
                peer.fail(DisconnectReason::from_io_error(&e));
                false
            }
        }
    }
}

/// One TCP user: the socket and its framing, and everything else.
struct TcpSession {
    conn: Connection,
    r: Reader,
}

/// The reader's state apart from the socket (so a read can hand frames to
/// it while the [`Connection`] is borrowed).
struct Reader {
    s: Session,
    started: Instant,
    last_rx: Instant,
    last_ping: Instant,
    ping_token: u64,
    /// Chat messages of the current read, for one room, not yet fanned out.
    batch_room: Option<Arc<Room>>,
    batch: Vec<ServerMsg>,
    /// Dropped when this connection stops processing input (shutdown
    /// phase 1 waits for every guard).
    input: Option<InputGuard>,
}

impl TcpSession {
    /// The reader loop: read, parse, handle, until the connection ends.
    async fn run(&mut self) -> End {
        let timer = tokio::time::sleep_until(self.r.next_check());
        // Created once, outside the loop: a cancellation future registers
        // with its token when first polled. One future for the doomed
        // session and the server's shutdown: the peer's token is a child of
        // the shutdown's ([`Peer::ending`] tells them apart) — a second
        // future would cost every idle connection 72 bytes, a 128-byte step
        // of its task's cell (issue 10's 2.5 KiB).
        let cancelled = self.r.s.peer.cancel_token().clone().cancelled_owned();
        tokio::pin!(timer, cancelled);
        let mut reads: u32 = 0;
        loop {
            tokio::select! {
                biased;
                _ = &mut cancelled => return self.r.cancelled(),
                // poll_read_ready in a poll_fn rather than `readable()`: the
                // same readiness, a much smaller future (only this task ever
                // waits for read readiness on this socket).
                r = std::future::poll_fn(|cx| self.conn.stream().poll_read_ready(cx)) => {
                    if let Err(e) = r {
                        return End::Io(e);
                    }
                    let was_registered = self.r.s.registered();
                    match self.on_readable() {
                        None => {}
                        // Boxed: the check's future is not carried by
                        // every idle connection's.
                        Some(End::Park(check)) => {
                            if let Some(end) = Box::pin(self.check(check)).await {
                                return end;
                            }
                        }
                        Some(end) => return end,
                    }
                    // Registered by this read (a Hello after the preamble's
                    // read): the timer still waits for the handshake
                    // timeout; from now on it is the ping and idle timer.
                    if !was_registered && self.r.s.registered() {
                        timer.as_mut().reset(self.r.next_check());
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
                    if let ControlFlow::Break(end) = self.r.on_timer() {
                        return end;
                    }
                    timer.as_mut().reset(self.r.next_check());
                }
            }
        }
    }

    /// Read once and handle every complete frame/line in it. What that
    /// delivers to TCP members (fan-out, replies) is written once per member
    /// when the [`owed`] scope ends, after the room locks are released.
    fn on_readable(&mut self) -> Option<End> {
        let _owed = owed::scope();
        let r = &mut self.r;
        let read = self.conn.on_readable(|f| r.on_frame(f));
        let end = match read {
            Read::Nothing => return None,
            Read::Handled => None,
            Read::Stopped(end) => Some(end),
            Read::Eof => Some(End::Eof),
            Read::Failed(e) => Some(End::Io(e)),
        };
        self.r.last_rx = Instant::now();
        self.r.flush_batch();
        end
    }

    /// Check a password on the blocking pool, hand the verdict to the
    /// session, then handle what was read meanwhile (which may park again).
    /// `Some`: the connection ends (shutdown, doomed, or what followed).
    async fn check(&mut self, mut check: Box<Check>) -> Option<End> {
        let ctx = self.r.s.ctx.clone();
        let peer = self.r.s.peer.clone();
        loop {
            let verdict = tokio::select! {
                v = password::run(ctx.clone(), *check) => v,
                _ = peer.cancel_token().cancelled() => return Some(self.r.cancelled()),
            };
            let _owed = owed::scope();
            let r = &mut self.r;
            let step = r.s.resume(verdict);
            let flow = match r.step(step) {
                ControlFlow::Continue(()) => self.conn.process_buffered(|f| r.on_frame(f)),
                brk => brk,
            };
            self.r.flush_batch();
            match flow {
                ControlFlow::Continue(()) => return None,
                ControlFlow::Break(End::Park(next)) => check = next,
                ControlFlow::Break(end) => return Some(end),
            }
        }
    }

    /// End the connection: one reason, through [`Session::end`]; then close
    /// the socket the right way for how it ended.
    async fn finish(mut self, end: End, writer: tokio::task::JoinHandle<bool>) {
        self.r.flush_batch();
        // Stop counting as an input: this connection fans nothing out any more.
        self.r.input.take();
        let peer = self.r.s.peer.clone();
        let shutdown = self.r.s.ctx.shutdown.clone();
        let reason = match &end {
            End::Server(r) => (**r).clone(),
            End::Eof => peer.socket_end_reason().unwrap_or(DisconnectReason::Eof),
            End::Io(e) => DisconnectReason::from_io_error(e),
            End::Doomed => peer.reason().unwrap_or(DisconnectReason::ProtocolError {
                detail: "connection aborted".into(),
            }),
            // Never an end: `run` and `check` resolve it.
            End::Park(_) => DisconnectReason::quit(),
        };
        if reason == DisconnectReason::ServerShutdown {
            // Phase 2 of the shutdown: wait until no connection can fan a
            // message out any more, so nothing accepted misses us.
            let _ = tokio::time::timeout_at(shutdown.deadline(), shutdown.bye()).await;
        }
        // A slow consumer's writer is still running: it may yet deliver a
        // last notice to a peer that is slow rather than gone.
        // So is a kicked or banned user's: an operator ended it, and it is
        // told why (`Peer::remove`).
        let slow = matches!(end, End::Doomed)
            && (matches!(peer.reason(), Some(DisconnectReason::SlowConsumer { .. }))
                || peer.removed());
        let polite = match &end {
            End::Server(_) | End::Eof => !peer.ending(),
            End::Doomed => slow,
            End::Io(_) | End::Park(_) => false,
        };
        let tell = matches!(end, End::Server(_)) || slow;
        let reason = self.r.s.end(reason, polite && tell);
        let server_shutdown = reason == DisconnectReason::ServerShutdown;
        let flush_by = if server_shutdown {
            shutdown.deadline()
        } else if slow {
            Instant::now() + Duration::from_secs(2)
        } else {
            Instant::now() + Duration::from_secs(5)
        };
        if polite {
            peer.outbox.close();
            let mut writer = writer;
            match tokio::time::timeout_at(flush_by, &mut writer).await {
                Ok(Ok(true)) => {
                    // FIN after everything queued; then read until the
                    // client closes too, so unread data never turns our
                    // close into RST.
                    let _ =
                        SockRef::from(&**self.conn.stream()).shutdown(std::net::Shutdown::Write);
                    if tell {
                        let drain_by = if server_shutdown {
                            shutdown.deadline()
                        } else {
                            Instant::now() + Duration::from_secs(2)
                        };
                        self.conn.drain(drain_by).await;
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    writer.abort();
                    let _ = writer.await;
                }
            }
        } else {
            peer.outbox.abort();
            peer.cancel_token().cancel();
            writer.abort();
            let _ = writer.await;
        }
    }
}

impl Reader {
    /// Why the peer's token was cancelled: its own end (doomed, slow,
    /// removed: the reason is recorded first) or else the server stopping
    /// input, the token's parent.
    fn cancelled(&self) -> End {
        if self.s.peer.ending() {
            End::Doomed
        } else {
            End::Server(Box::new(DisconnectReason::ServerShutdown))
        }
    }

    fn format(&self) -> Format {
        self.s.peer.format
    }

    fn send(&self, msg: &ServerMsg) {
        self.s.peer.send(msg);
    }

    fn error(&self, code: ErrorCode, text: impl Into<String>) {
        self.send(&ServerMsg::Error {
            code,
            text: text.into(),
        });
    }

    /// One unit of input from the [`Connection`].
    fn on_frame(&mut self, f: Frame<'_>) -> ControlFlow<End> {
        match f {
            Frame::Preamble(Ok(())) => {
                self.s.peer.deliver(Bytes::from_static(&PREAMBLE));
                ControlFlow::Continue(())
            }
            Frame::Preamble(Err(e)) => {
                // Answer with our preamble so the peer can see which
                // version we speak, then the error.
                self.s.peer.deliver(Bytes::from_static(&PREAMBLE));
                let code = match e {
                    DecodeError::BadVersion(_) => ErrorCode::VersionMismatch,
                    _ => ErrorCode::Protocol,
                };
                self.error(code, e.to_string());
                ControlFlow::Break(End::Server(Box::new(e.into())))
            }
            Frame::Msg(m) => self.handle(m),
            Frame::Line(l) => self.text_line(&l),
            Frame::LineTooLong => {
                self.flush_batch();
                let max = self.s.ctx.settings.config.limits.max_message_len;
                self.error(
                    ErrorCode::MessageTooLong,
                    format!("line too long (max {max} bytes): ignored"),
                );
                ControlFlow::Continue(())
            }
            Frame::Bad(e) => {
                self.flush_batch();
                self.error(ErrorCode::Protocol, e.to_string());
                ControlFlow::Break(End::Server(Box::new(e.into())))
            }
        }
    }

    fn text_line(&mut self, line: &str) -> ControlFlow<End> {
        match text::parse(line) {
            TextCommand::Msg(m) => self.handle(m),
            TextCommand::Help => {
                self.flush_batch();
                for text in text::help() {
                    self.send(&ServerMsg::Notice { text });
                }
                ControlFlow::Continue(())
            }
            TextCommand::Nothing => ControlFlow::Continue(()),
            TextCommand::Error(e) => {
                self.flush_batch();
                self.error(ErrorCode::BadCommand, e);
                ControlFlow::Continue(())
            }
        }
    }

    fn handle(&mut self, msg: ClientMsg) -> ControlFlow<End> {
        if !matches!(msg, ClientMsg::Say { .. } | ClientMsg::Me { .. }) {
            // Keep order: chat queued before this command goes out first.
            self.flush_batch();
        }
        let step = self.s.handle(msg);
        self.step(step)
    }

    /// What the session asked for.
    fn step(&mut self, step: Step) -> ControlFlow<End> {
        match step {
            Step::Continue => ControlFlow::Continue(()),
            Step::Chat(room, msg) => {
                self.queue_chat(room, msg);
                ControlFlow::Continue(())
            }
            Step::End(r) => ControlFlow::Break(End::Server(Box::new(r))),
            Step::Check(c) => {
                self.flush_batch();
                ControlFlow::Break(End::Park(Box::new(c)))
            }
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
            room.fan_out_chat(msgs, self.s.peer.id);
        }
    }

    /// When the timer must next look at this connection.
    fn next_check(&self) -> Instant {
        let l = &self.s.ctx.settings.config.limits;
        let far = Instant::now() + Duration::from_secs(3600);
        if !self.s.registered() {
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

    fn on_timer(&mut self) -> ControlFlow<End> {
        let l = &self.s.ctx.settings.config.limits;
        let now = Instant::now();
        if !self.s.registered() {
            let secs = l.handshake_timeout_secs;
            if now >= self.started + Duration::from_secs(secs) {
                let detail = format!("no hello within {secs} s");
                self.error(ErrorCode::Protocol, format!("handshake timeout: {detail}"));
                return ControlFlow::Break(End::Server(Box::new(
                    DisconnectReason::ProtocolError { detail },
                )));
            }
            return ControlFlow::Continue(());
        }
        let silence = now.saturating_duration_since(self.last_rx);
        let idle = match self.format() {
            Format::Framed => l.idle_timeout_secs,
            Format::Text => l.text_idle_timeout_secs,
        };
        if idle > 0 && silence >= Duration::from_secs(idle) {
            // At most a year (config validation), so it fits a u32.
            let secs = u32::try_from(idle).unwrap_or(u32::MAX);
            return ControlFlow::Break(End::Server(Box::new(DisconnectReason::IdleTimeout {
                secs,
            })));
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
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod idle_size {
    //! What every idle TCP connection carries: its `Peer` (in an `Arc`),
    //! its boxed `Conn`, and two tokio tasks: `serve` (which becomes
    //! `drive`) and the writer. Issue 10 holds an idle connection to 2.5
    //! KiB of server RSS; a field added to one of these is paid 19,900
    //! times at the fd limit. A task's cell is tokio's header, core and
    //! trailer (104 bytes on x86_64, tokio 1.54: `runtime/task/core.rs`)
    //! plus the future (here inside the task tracker's `TrackedFuture`, 8
    //! more), rounded up to 128 bytes: `serve` at most 400 bytes keeps its
    //! cell at 512 (640 while the reader waited on the shutdown with a
    //! future of its own: 488 bytes), the writer at most 144 keeps its cell
    //! at 256 (384 with tokio's `Notified` in it and its arguments kept
    //! twice: 192 bytes). massif shows the cells. The other bounds are
    //! today's sizes plus a little slack:
    //! a mute and an away text stored inline (`Peer` 376 bytes) or an
    //! unboxed `End` (`Conn` 392) fail them.
    use std::future::Future;
    use std::mem::size_of;

    fn size1<A, F: Future>(_: fn(A) -> F) -> usize {
        size_of::<F>()
    }
    fn size2<A, B, F: Future>(_: fn(A, B) -> F) -> usize {
        size_of::<F>()
    }
    fn size5<A, B, C, D, E, F: Future>(_: fn(A, B, C, D, E) -> F) -> usize {
        size_of::<F>()
    }

    #[test]
    fn an_idle_connection_stays_small() {
        let peer = size_of::<crate::hub::Peer>();
        let conn = size_of::<super::Conn>();
        let drive = size1(super::drive);
        let serve = size5(super::serve);
        let writer = size2(super::writer_task);
        assert!(
            peer <= 280,
            "Peer is {peer} bytes (272 now): box what few peers use (16 more bytes, the held \
             nick key's, cost 0.05 KiB per idle connection at 19,900: over the 2.5 KiB budget)"
        );
        assert!(
            conn <= 368,
            "Conn is {conn} bytes (344 when this test was written)"
        );
        assert!(
            drive <= 376,
            "the drive future is {drive} bytes (352 when this test was written)"
        );
        assert!(
            serve <= 400,
            "the serve future is {serve} bytes (376 now): over 400 its task cell grows from \
             512 to 640 bytes, 0.125 KiB per idle connection"
        );
        assert!(
            writer <= 144,
            "the writer future is {writer} bytes (112 now): over 144 its task cell grows from \
             256 to 384 bytes, 0.125 KiB per idle connection"
        );
    }
}
