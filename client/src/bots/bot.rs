//! One bot: a task that owns one TCP connection at a time and runs its
//! group's behaviour (chat, lurk, stop reading, churn, flood) until the
//! coordinator says stop.
//!
//! Each bot is a single task with no split halves: one `select!` over
//! readable / writable / the send schedule / control, using `try_read` and
//! `try_write` on the stream. Reads land in the shard's shared scratch buffer
//! (the shard is one thread, so a `RefCell` suffices), so an idle bot owns no
//! read buffer at all; only a partial line or frame is kept per bot.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use sockchat_shared::{ClientMsg, DisconnectReason};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;

use super::plan::{Behaviour, Method, Plan};
use super::schedule::{Schedule, mono_ns, per_sender, sleep_until_ns};
use super::seq::{Seen, SeqTracker};
use super::stats::Stats;
use super::wake::{Control, ShardControl, Timer};
use super::wire::{self, Event, Mark, Wire};

/// Size of the shard's shared read buffer.
pub const SCRATCH: usize = 256 * 1024;
/// A sender stops generating messages while this much is unwritten (the
/// server is not reading): its schedule falls behind, and the wait shows in
/// latency (coordinated omission) instead of in our memory.
pub(super) const OUT_CAP: usize = 256 * 1024;
/// Most messages generated in one wake-up (one write).
const MAX_BATCH: u64 = 1024;
/// Reads per readiness event before yielding to other bots.
const READS_PER_WAKE: usize = 4;

/// What one shard's bots share (one thread: no locks).
pub struct Shard {
    pub plan: Arc<Plan>,
    pub stats: RefCell<Stats>,
    pub scratch: RefCell<Vec<u8>>,
    pub control: ShardControl,
}

/// A bot's identity and its fault mailbox.
pub struct BotSpec {
    /// Global bot number (also its sender id and nick `{n}`).
    pub n: usize,
    /// Index among its shard's bots (its waker slot in [`ShardControl`]).
    pub slot: usize,
    pub group: usize,
    pub room: usize,
    /// Index among its group's senders, if it sends.
    pub sender_k: Option<usize>,
    pub measured: bool,
    pub fault: Rc<FaultBox>,
}

/// A scheduled fault for one bot: the fault task sets it and notifies.
#[derive(Default)]
pub struct FaultBox {
    pub pending: Cell<Option<(Method, Duration)>>,
    pub notify: Notify,
}

#[derive(Debug, Clone)]
pub(super) struct Go {
    pub(super) start_ns: u64,
    pub(super) end_ns: u64,
    pub(super) members: Arc<Vec<u32>>,
}

/// A `Go` arrived: remember the phase (the first one wins) and, for a
/// sender, build its send schedule once. Shared by the TCP and UDP bots.
pub(super) fn on_go(
    sh: &Shard,
    spec: &BotSpec,
    go: &mut Option<Go>,
    sched: &mut Option<Schedule>,
    start_ns: u64,
    end_ns: u64,
    members: Arc<Vec<u32>>,
) {
    if go.is_none() {
        *go = Some(Go {
            start_ns,
            end_ns,
            members,
        });
    }
    let group = &sh.plan.groups[spec.group];
    if sched.is_none()
        && let Some(k) = spec.sender_k
        && group.rate > 0.0
    {
        let (rate, phase) = per_sender(group.rate, group.senders, k);
        let s = Schedule::new(start_ns, rate, phase, end_ns);
        if spec.measured {
            sh.stats.borrow_mut().scheduled += s.total();
        }
        *sched = Some(s);
    }
}

/// How a session ended.
enum End {
    Stopped,
    /// We end it on purpose (churn or fault), then maybe reconnect.
    Planned(Method, Duration),
    /// The connection died under us: reason code.
    Lost(String),
}

/// One connection: tokio's stream in the bot tasks; a plain non-blocking
/// std stream once handed to the shard loop (`pump`).
pub(super) struct Conn<S = TcpStream> {
    pub(super) stream: S,
    pub(super) out: BytesMut,
    /// End offsets (absolute, in bytes queued since connect) of messages not
    /// yet fully written, and whether each is measured. A message counts as
    /// sent (and its deliveries as expected) only once all its bytes are in
    /// the kernel.
    ends: VecDeque<(u64, bool)>,
    written: u64,
    partial: Vec<u8>,
    /// Framed: bytes of the server's preamble still to check.
    preamble_left: usize,
    bye: Option<DisconnectReason>,
    since_ns: u64,
}

impl Conn {
    /// The same connection out of tokio's reactor, for the shard loop
    /// (`pump`); the stream stays non-blocking.
    pub(super) fn into_std(self) -> io::Result<Conn<std::net::TcpStream>> {
        Ok(Conn {
            stream: self.stream.into_std()?,
            out: self.out,
            ends: self.ends,
            written: self.written,
            partial: self.partial,
            preamble_left: self.preamble_left,
            bye: self.bye,
            since_ns: self.since_ns,
        })
    }
}

impl<S> Conn<S> {
    /// A connection just made: nothing queued, nothing received yet.
    pub(super) fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            out: BytesMut::new(),
            ends: VecDeque::new(),
            written: 0,
            partial: Vec::new(),
            preamble_left: 0,
            bye: None,
            since_ns: mono_ns(),
        }
    }

    /// Why the peer closed: its Bye reason if one came, else `eof`.
    pub(super) fn eof_code(&mut self) -> String {
        self.bye
            .take()
            .map(|r| r.code())
            .unwrap_or_else(|| "eof".into())
    }
}

/// A non-blocking write, as [`flush`] needs it from either stream.
pub(super) trait TryWrite {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
}

impl TryWrite for TcpStream {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }
}

impl TryWrite for std::net::TcpStream {
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        io::Write::write(&mut &*self, buf)
    }
}

/// Receiver state that outlives a connection.
#[derive(Default)]
pub(super) struct Rx {
    trackers: SenderMap,
}

/// Per-sender trackers, keyed by bot number. Keys are small integers we
/// made ourselves, so a multiplicative hash is enough (SipHash showed up in
/// the receive-path profile).
pub(super) type SenderMap = HashMap<u32, SeqTracker, BuildHasherDefault<IdHash>>;

#[derive(Default)]
pub(super) struct IdHash(u64);

impl Hasher for IdHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(super) fn code(e: &io::Error) -> String {
    DisconnectReason::from_io_error(e).code()
}

/// A server refusal (`ServerMsg::Error`) as an errors-map key:
/// `nick-taken`, `server-full`, ... (the text stays out of the key so the
/// map groups them).
pub(super) fn error_code_name(c: sockchat_shared::ErrorCode) -> String {
    use sockchat_shared::ErrorCode as E;
    match c {
        E::NickTaken => "nick-taken".into(),
        E::BadName => "bad-name".into(),
        E::NoSuchRoom => "no-such-room".into(),
        E::NoSuchNick => "no-such-nick".into(),
        E::TooManyRooms => "too-many-rooms".into(),
        E::MessageTooLong => "message-too-long".into(),
        E::RateLimited => "rate-limited".into(),
        E::NotInRoom => "not-in-room".into(),
        E::BadCommand => "bad-command".into(),
        E::Protocol => "protocol-error".into(),
        E::VersionMismatch => "version-mismatch".into(),
        E::ServerFull => "server-full".into(),
        E::TooManyFromAddress => "too-many-from-address".into(),
        E::Forbidden => "forbidden".into(),
        E::PasswordRequired => "password-required".into(),
        E::BadPassword => "bad-password".into(),
        E::NickRegistered => "nick-registered".into(),
        E::Banned => "banned".into(),
        E::NotPermitted => "not-permitted".into(),
        E::Muted => "muted".into(),
        E::BadRoomKey => "bad-room-key".into(),
        E::InviteOnly => "invite-only".into(),
        E::NotRegistered => "not-registered".into(),
        E::Other(n) => format!("server-error-{n}"),
    }
}

/// Expand a template: `{id}` (or `{n}`) bot number, `{room}`, `{run}` (4
/// hex digits of the run id). `{id}` exists because clap turns a literal
/// `{n}` in help text into a line break, so the help can only show `{id}`.
pub(super) fn fill(template: &str, n: usize, room: &str, run: u32) -> String {
    template
        .replace("{id}", &n.to_string())
        .replace("{n}", &n.to_string())
        .replace("{room}", room)
        .replace("{run}", &format!("{:04x}", run & 0xffff))
}

/// How a bot's first connection went (its counts are taken).
pub(super) enum Ramped {
    Stopped,
    Failed,
    Up(Box<Conn>),
}

/// Wait for the bot's turn on the ramp (or a stop), then connect and
/// count the attempt.
pub(super) async fn ramp(sh: &Rc<Shard>, spec: &BotSpec, ramp_ns: u64) -> Ramped {
    tokio::select! {
        _ = sleep_until_ns(ramp_ns) => {}
        _ = sh.control.stopped(spec.slot) => {
            sh.stats.borrow_mut().attempted += 1;
            return Ramped::Stopped;
        }
    }
    match connect(sh, spec, ramp_ns).await {
        Ok(c) => {
            let mut st = sh.stats.borrow_mut();
            st.attempted += 1;
            st.connected += 1;
            if spec.measured {
                st.members[spec.room] += 1;
            }
            Ramped::Up(Box::new(c))
        }
        Err(code) => {
            let mut st = sh.stats.borrow_mut();
            st.attempted += 1;
            st.connect_errors += 1;
            let g = &mut st.groups[spec.group];
            g.connect_errors += 1;
            *g.errors.entry(code).or_default() += 1;
            Ramped::Failed
        }
    }
}

/// Run one bot to completion.
pub async fn run_bot(sh: Rc<Shard>, spec: BotSpec, ramp_ns: u64) {
    let group = &sh.plan.groups[spec.group];
    let behaviour = group.behaviour;
    let mut go: Option<Go> = None;
    let mut rx = Rx::default();
    let mut sched: Option<Schedule> = None;

    let mut conn = match ramp(&sh, &spec, ramp_ns).await {
        Ramped::Stopped => return,
        Ramped::Up(c) => *c,
        Ramped::Failed if behaviour != Behaviour::Churner => return,
        // A churner keeps trying once the run starts.
        Ramped::Failed => match reconnect(&sh, &spec, &mut go, None, String::new()).await {
            Some(c) => c,
            None => return,
        },
    };

    let mut session_no: usize = 0;
    loop {
        let end = session(
            &sh, &spec, &mut conn, &mut go, &mut rx, &mut sched, session_no,
        )
        .await;
        let reconnect_after = match end {
            End::Stopped => {
                finish(&sh, &spec, conn);
                return;
            }
            End::Lost(code) => {
                close_count(&sh, &conn);
                let mut st = sh.stats.borrow_mut();
                *st.groups[spec.group].errors.entry(code).or_default() += 1;
                drop(st);
                drop(conn);
                // Measured bots and flooders stay down: their loss is the
                // measurement. Churners and faulted bots come back.
                let comes_back = behaviour == Behaviour::Churner
                    || sh.plan.faults.iter().any(|f| f.group == spec.group);
                if !comes_back {
                    return;
                }
                Duration::from_millis(100)
            }
            End::Planned(method, after) => {
                close_count(&sh, &conn);
                hang_up(&sh, conn, method).await;
                *sh.stats.borrow_mut().groups[spec.group]
                    .disconnects
                    .entry(method.name().to_string())
                    .or_default() += 1;
                after
            }
        };
        session_no += 1;
        // Back off (or pace churn), then reconnect while the run lasts.
        let wake = match (&go, behaviour) {
            (Some(g), Behaviour::Churner) if group.churn_rate > 0.0 => {
                // Sessions of the group evenly spread at churn_rate.
                let (rate, phase) =
                    per_sender(group.churn_rate, group.count, spec.sender_k.unwrap_or(0));
                let s = Schedule::new(g.start_ns, rate, phase, g.end_ns);
                s.at(session_no as u64)
                    .max(mono_ns() + reconnect_after.as_nanos() as u64)
            }
            _ => mono_ns() + reconnect_after.as_nanos() as u64,
        };
        tokio::select! {
            _ = sleep_until_ns(wake) => {}
            _ = sh.control.stopped(spec.slot) => return,
        }
        match reconnect(&sh, &spec, &mut go, Some(wake), String::new()).await {
            Some(c) => conn = c,
            None => return,
        }
    }
}

/// Connect again (churn, fault, or a failed first connect of a churner).
/// Gives up when the send phase is over or on Stop.
async fn reconnect(
    sh: &Rc<Shard>,
    spec: &BotSpec,
    go: &mut Option<Go>,
    sched_ns: Option<u64>,
    first_error: String,
) -> Option<Conn> {
    let mut last = first_error;
    loop {
        if !last.is_empty() {
            {
                let mut st = sh.stats.borrow_mut();
                let g = &mut st.groups[spec.group];
                g.connect_errors += 1;
                *g.errors.entry(std::mem::take(&mut last)).or_default() += 1;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = sh.control.stopped(spec.slot) => return None,
            }
        }
        // Refresh our view of the phase without waiting.
        match sh.control.value() {
            Control::Stop => return None,
            Control::Go {
                start_ns,
                end_ns,
                members,
            } => {
                *go = Some(Go {
                    start_ns,
                    end_ns,
                    members,
                });
            }
            Control::Ramp => {}
        }
        if let Some(g) = go
            && mono_ns() >= g.end_ns
        {
            return None;
        }
        match connect(sh, spec, sched_ns.unwrap_or_else(mono_ns)).await {
            Ok(c) => return Some(c),
            Err(e) => last = e,
        }
    }
}

/// Bookkeeping when a connection goes away: one fewer open, and what it
/// had not written is no longer pending.
pub(super) fn close_count<S>(sh: &Shard, conn: &Conn<S>) {
    let mut st = sh.stats.borrow_mut();
    st.open -= 1;
    st.pending_out = st.pending_out.saturating_sub(conn.out.len() as u64);
}

/// End of run: note whether the server had already given up on us.
pub(super) fn finish<S: std::os::fd::AsRawFd>(sh: &Shard, spec: &BotSpec, conn: Conn<S>) {
    if sh.plan.groups[spec.group].behaviour == Behaviour::SlowReader {
        let state = sockchat_shared::sockopt::tcp_info(conn.stream.as_raw_fd())
            .map(|i| i.state)
            .unwrap_or(0);
        // 1 = ESTABLISHED; anything else (CLOSE_WAIT after the server's FIN,
        // CLOSE after its RST) means the server dropped this slow reader.
        if state != 1 {
            sh.stats.borrow_mut().groups[spec.group].closed_by_server += 1;
        }
    }
    close_count(sh, &conn);
}

/// Open a connection (bound to a source address if asked) and queue the
/// handshake: preamble + Hello + Join (framed) or first line + join lines.
async fn connect(sh: &Shard, spec: &BotSpec, sched_ns: u64) -> Result<Conn, String> {
    let plan = &sh.plan;
    if plan.wire == Wire::Udp {
        return Err("udp-unsupported".into());
    }
    let server = plan.server_for(spec.n, spec.sender_k.is_some());
    let sock = if server.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| code(&e))?;
    if !plan.source_ips.is_empty() {
        use std::os::fd::AsRawFd;
        let ip = plan.source_ips[spec.n % plan.source_ips.len()];
        // IP_BIND_ADDRESS_NO_PORT: bind the address now but pick the port at
        // connect() time, by the full 4-tuple. Without it bind() reserves a
        // port per socket and ~28k sockets exhaust the range per address.
        let _ = sockchat_shared::sockopt::setsockopt_int(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            1,
        );
        sock.bind(std::net::SocketAddr::new(ip, 0))
            .map_err(|e| code(&e))?;
    }
    let _ = sock.set_nodelay(true);
    let stream = match tokio::time::timeout(plan.connect_timeout, sock.connect(server)).await {
        Err(_) => return Err("connect-timeout".into()),
        Ok(Err(e)) => return Err(code(&e)),
        Ok(Ok(s)) => s,
    };
    let mut conn = Conn::new(stream);
    let now = conn.since_ns;
    let room = &plan.rooms[spec.room];
    let join = plan.groups[spec.group].join;
    match plan.wire {
        Wire::Framed => {
            conn.out
                .extend_from_slice(&sockchat_shared::proto::preamble());
            conn.preamble_left = sockchat_shared::proto::PREAMBLE_LEN;
            wire::write_frame(
                &mut conn.out,
                &ClientMsg::Hello {
                    nick: fill(&plan.nick, spec.n, room, plan.run_id),
                },
            );
            if join {
                wire::write_frame(&mut conn.out, &ClientMsg::Join { room: room.clone() });
                if let Some(l) = &plan.leave_room
                    && l != room
                {
                    wire::write_frame(&mut conn.out, &ClientMsg::Leave { room: l.clone() });
                }
            }
        }
        Wire::Lines | Wire::Udp => {
            if let Some(first) = &plan.first_line {
                conn.out
                    .extend_from_slice(fill(first, spec.n, room, plan.run_id).as_bytes());
                conn.out.extend_from_slice(b"\n");
            }
            for l in plan.join_lines.iter().filter(|_| join) {
                conn.out
                    .extend_from_slice(fill(l, spec.n, room, plan.run_id).as_bytes());
                conn.out.extend_from_slice(b"\n");
            }
        }
    }
    {
        let mut st = sh.stats.borrow_mut();
        st.connect
            .saturating_record((now.saturating_sub(sched_ns) / 1000).max(1));
        st.open += 1;
        st.groups[spec.group].connects += 1;
        st.pending_out += conn.out.len() as u64;
    }
    flush(sh, spec, &mut conn, None)?;
    // Lines mode: a text server answers `/join` only with a notice, so the
    // bot waits for it here; sending before it took effect would put the
    // first messages in the old room (lost, or counted for other bots).
    // The ramp counts a bot as attempted only when `connect` returns, so
    // the send phase starts after every join was seen.
    if plan.wire == Wire::Lines && join && plan.join_lines.iter().any(|l| l.starts_with("/join ")) {
        wait_joined(sh, spec, &mut conn, room).await?;
    }
    Ok(conn)
}

/// Read until the server's `* NICK joined ROOM` line for our room (the
/// first one we can see is ours or a later joiner's: either way we are in),
/// within `--connect-timeout`. Lines before it are the greeting and lobby
/// notices; bytes after it stay in `partial` for the receive path.
async fn wait_joined(
    sh: &Shard,
    spec: &BotSpec,
    conn: &mut Conn,
    room: &str,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + sh.plan.connect_timeout;
    let mut buf = [0u8; 4096];
    loop {
        let ready = if conn.out.is_empty() {
            tokio::time::timeout_at(deadline, conn.stream.readable()).await
        } else {
            tokio::time::timeout_at(
                deadline,
                conn.stream
                    .ready(tokio::io::Interest::READABLE | tokio::io::Interest::WRITABLE),
            )
            .await
            .map(|r| r.map(|_| ()))
        };
        match ready {
            Err(_) => return Err("join-timeout".into()),
            Ok(Err(e)) => return Err(code(&e)),
            Ok(Ok(())) => {}
        }
        if !conn.out.is_empty() {
            flush(sh, spec, conn, None)?;
        }
        let n = match conn.stream.try_read(&mut buf) {
            Ok(0) => return Err("eof".into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(code(&e)),
        };
        sh.stats.borrow_mut().bytes_in += n as u64;
        conn.partial.extend_from_slice(&buf[..n]);
        let mut pos = 0;
        while let Some(i) = memchr::memchr(b'\n', &conn.partial[pos..]) {
            let line = String::from_utf8_lossy(&conn.partial[pos..pos + i]).into_owned();
            pos += i + 1;
            if sockchat_shared::text::joined(&line).is_some_and(|(_, r)| r == room) {
                conn.partial.drain(..pos);
                return Ok(());
            }
            if let Some(r) = sockchat_shared::text::bye_reason(&line) {
                return Err(r.code());
            }
        }
        conn.partial.drain(..pos);
        if conn.partial.len() > wire::MAX_LINE {
            return Err("protocol-error".into());
        }
    }
}

/// Write what we can; count fully written messages as sent.
pub(super) fn flush<S: TryWrite>(
    sh: &Shard,
    spec: &BotSpec,
    conn: &mut Conn<S>,
    go: Option<&Go>,
) -> Result<(), String> {
    let mut wrote = 0;
    let mut err = None;
    while !conn.out.is_empty() {
        match conn.stream.try_write(&conn.out) {
            Ok(0) => break,
            Ok(n) => {
                conn.out.advance(n);
                wrote += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                err = Some(code(&e));
                break;
            }
        }
    }
    conn.written += wrote as u64;
    let mut st = sh.stats.borrow_mut();
    st.bytes_out += wrote as u64;
    st.pending_out = st.pending_out.saturating_sub(wrote as u64);
    if !conn.ends.is_empty() {
        let per_msg = go
            .and_then(|g| g.members.get(spec.room).copied())
            .map(|m| {
                if sh.plan.echo {
                    m as u64
                } else {
                    (m as u64).saturating_sub(1)
                }
            })
            .unwrap_or(0);
        while let Some(&(end, measured)) = conn.ends.front() {
            if end > conn.written {
                break;
            }
            conn.ends.pop_front();
            st.groups[spec.group].sent += 1;
            if measured {
                st.sent += 1;
                st.expected += per_msg;
            } else {
                st.sent_unmeasured += 1;
            }
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Queue every message due now (at most one batch).
pub(super) fn generate<S>(sh: &Shard, spec: &BotSpec, conn: &mut Conn<S>, sched: &mut Schedule) {
    let plan = &sh.plan;
    let group = &plan.groups[spec.group];
    let now = mono_ns();
    let (first, n) = sched.due(now, MAX_BATCH);
    let before = conn.out.len();
    let mut st = sh.stats.borrow_mut();
    let room = &plan.rooms[spec.room];
    for seq in first..first + n {
        let mark = Mark {
            measured: spec.measured,
            run: plan.run_id,
            sender: spec.n as u32,
            seq,
            sched_us: sched.at(seq) / 1000,
        };
        if spec.measured {
            // When the message is queued: the write follows at once (or
            // waits for a full socket, which the latency shows anyway).
            st.timeline
                .record_send(mark.sched_us, (now / 1000).saturating_sub(mark.sched_us));
        }
        let size = group.size.pick(rand::random::<f64>());
        match plan.wire {
            Wire::Framed => wire::write_say_frame(&mut conn.out, room, &mark, size),
            Wire::Lines | Wire::Udp => wire::write_line_msg(&mut conn.out, &mark, size),
        }
        conn.ends
            .push_back((conn.written + conn.out.len() as u64, spec.measured));
    }
    st.pending_out += (conn.out.len() - before) as u64;
}

/// Read what is there; process every complete line/frame.
/// `Ok(false)` = the peer closed (EOF).
fn read_ready(sh: &Shard, spec: &BotSpec, conn: &mut Conn, rx: &mut Rx) -> Result<bool, String> {
    let mut scratch = sh.scratch.borrow_mut();
    for _ in 0..READS_PER_WAKE {
        match conn.stream.try_read(&mut scratch[..]) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                on_data(sh, spec, conn, rx, &scratch[..n])?;
                if n < scratch.len() {
                    // A short read emptied the socket, but tokio clears its
                    // cached readiness only on WouldBlock: without this the
                    // next `readable()` returns at once and costs one more
                    // select round and one EAGAIN `recv` per delivery. Safe
                    // here: the shard is single-threaded, so the IO driver
                    // cannot have recorded a newer epoll edge since the
                    // read; data arriving from now on raises a new edge.
                    let _ = conn.stream.try_io(tokio::io::Interest::READABLE, || {
                        Err::<(), _>(io::ErrorKind::WouldBlock.into())
                    });
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(code(&e)),
        }
    }
    Ok(true)
}

pub(super) fn on_data<S>(
    sh: &Shard,
    spec: &BotSpec,
    conn: &mut Conn<S>,
    rx: &mut Rx,
    mut data: &[u8],
) -> Result<(), String> {
    let plan = &sh.plan;
    let mut st = sh.stats.borrow_mut();
    st.bytes_in += data.len() as u64;
    if conn.preamble_left > 0 {
        let take = conn.preamble_left.min(data.len());
        let want = sockchat_shared::proto::preamble();
        let off = want.len() - conn.preamble_left;
        if data[..take] != want[off..off + take] {
            return Err("protocol-error".into());
        }
        conn.preamble_left -= take;
        data = &data[take..];
    }
    let now = mono_ns();
    let run = plan.run_id;
    let measured_rx = spec.measured;
    let mut pongs: Vec<u64> = Vec::new();
    let mut bye = None;
    let mut handle = |ev: Event| match ev {
        Event::Mark { mark, history } => {
            let ours = !history && mark.measured && mark.run == run && measured_rx;
            record_mark(&mut st, &mut rx.trackers, &mark, ours, now);
        }
        Event::Ping(t) => pongs.push(t),
        Event::Bye(r) => bye = Some(r),
        Event::Other => {}
    };
    let parse = |buf: &[u8], f: &mut dyn FnMut(Event)| -> Result<usize, String> {
        match plan.wire {
            Wire::Framed => {
                wire::parse_frames(buf, plan.max_frame, f).map_err(|_| "protocol-error".to_string())
            }
            Wire::Lines | Wire::Udp => Ok(wire::parse_lines(buf, f)),
        }
    };
    if conn.partial.is_empty() {
        let used = parse(data, &mut handle)?;
        conn.partial.extend_from_slice(&data[used..]);
    } else {
        conn.partial.extend_from_slice(data);
        let used = parse(&conn.partial, &mut handle)?;
        conn.partial.drain(..used);
    }
    if conn.partial.len() > wire::MAX_LINE.max(plan.max_frame + 4) {
        return Err("protocol-error".into());
    }
    if conn.partial.is_empty() && conn.partial.capacity() > 4096 {
        // Give back a big buffer once a large message is done.
        conn.partial = Vec::new();
    }
    drop(st);
    for token in pongs {
        wire::write_frame(&mut conn.out, &ClientMsg::Pong { token });
    }
    if bye.is_some() {
        conn.bye = bye;
    }
    Ok(())
}

/// Account one received message marker: a delivery of this run to a
/// measured bot (`ours`) is checked for duplicates and reordering and its
/// latency recorded; anything else (history, other runs, unmeasured) is
/// counted apart. Shared by the TCP and UDP bots.
pub(super) fn record_mark(
    st: &mut Stats,
    trackers: &mut SenderMap,
    mark: &Mark,
    ours: bool,
    now: u64,
) {
    if !ours {
        st.other_deliveries += 1;
        return;
    }
    match trackers.entry(mark.sender).or_default().record(mark.seq) {
        Seen::Duplicate => st.duplicated += 1,
        seen => {
            if seen == Seen::Reordered {
                st.reordered += 1;
            }
            st.delivered += 1;
            let lat_us = (now / 1000).saturating_sub(mark.sched_us).max(1);
            st.latency.saturating_record(lat_us);
            st.timeline.record(mark.sched_us, lat_us);
            st.last_delivery_ns = now;
        }
    }
}

async fn session(
    sh: &Rc<Shard>,
    spec: &BotSpec,
    conn: &mut Conn,
    go: &mut Option<Go>,
    rx: &mut Rx,
    sched: &mut Option<Schedule>,
    session_no: usize,
) -> End {
    let plan = &sh.plan;
    let group = &plan.groups[spec.group];
    let behaviour = group.behaviour;
    let mut reading = true;
    let has_faults = plan.faults.iter().any(|f| f.group == spec.group);
    // Made once per session, re-armed as needed (crate::bots::wake).
    let mut deadline_timer = Timer::new();
    let mut send_timer = Timer::new();
    // Pick up a Go that happened while we were (re)connecting.
    let mut seen = None;
    loop {
        let generation = sh.control.generation();
        if seen != Some(generation) {
            seen = Some(generation);
            match sh.control.value() {
                Control::Stop => return End::Stopped,
                Control::Go {
                    start_ns,
                    end_ns,
                    members,
                } => {
                    on_go(sh, spec, go, sched, start_ns, end_ns, members);
                }
                Control::Ramp => {}
            }
        }
        if !spec.measured
            && session_no > 0
            && let Some(s) = sched.as_mut()
        {
            // Unmeasured bots coming back skip what was due while away.
            let _ = s.due(mono_ns(), u64::MAX);
        }
        let deadline = match (&*go, behaviour) {
            (Some(g), Behaviour::Churner) => {
                Some(conn.since_ns.max(g.start_ns) + group.session.as_nanos() as u64)
            }
            (Some(g), Behaviour::SlowReader) if reading => {
                Some(g.start_ns + group.stop_reading_after.as_nanos() as u64)
            }
            _ => None,
        };
        let send_at = if conn.out.len() < OUT_CAP {
            sched.as_ref().and_then(|s| s.next_time())
        } else {
            None
        };
        let want_write = !conn.out.is_empty();
        deadline_timer.set(deadline);
        send_timer.set(send_at);
        // Readiness through poll_*_ready: the stream's one reader/writer
        // waker slot, nothing registered or unregistered per turn.
        tokio::select! {
            biased;
            _ = sh.control.changed(spec.slot, generation) => {}
            // An async block: a disabled branch's future is still made
            // every turn; this one costs nothing until polled.
            _ = async { spec.fault.notify.notified().await }, if has_faults => {
                if let Some((m, after)) = spec.fault.pending.take() {
                    return End::Planned(m, after);
                }
            }
            _ = deadline_timer.fired(), if deadline_timer.is_armed() => {
                if behaviour == Behaviour::SlowReader {
                    reading = false;
                } else {
                    let m = group.methods.get(session_no % group.methods.len().max(1)).copied().unwrap_or(Method::Fin);
                    return End::Planned(m, group.pause);
                }
            }
            r = poll_fn(|cx| conn.stream.poll_read_ready(cx)), if reading => {
                if let Err(e) = r {
                    return End::Lost(code(&e));
                }
                match read_ready(sh, spec, conn, rx) {
                    Ok(true) => {}
                    Ok(false) => {
                        return End::Lost(conn.eof_code());
                    }
                    Err(c) => return End::Lost(c),
                }
                if !conn.out.is_empty()
                    && let Err(c) = flush(sh, spec, conn, go.as_ref())
                {
                    return End::Lost(c);
                }
            }
            r = poll_fn(|cx| conn.stream.poll_write_ready(cx)), if want_write => {
                if let Err(e) = r {
                    return End::Lost(code(&e));
                }
                if let Err(c) = flush(sh, spec, conn, go.as_ref()) {
                    return End::Lost(c);
                }
            }
            _ = send_timer.fired(), if send_timer.is_armed() => {
                if let Some(s) = sched.as_mut() {
                    generate(sh, spec, conn, s);
                }
                if let Err(c) = flush(sh, spec, conn, go.as_ref()) {
                    return End::Lost(c);
                }
            }
        }
    }
}

/// End a connection on purpose with the chosen method.
async fn hang_up(sh: &Shard, mut conn: Conn, method: Method) {
    let bound = Duration::from_secs(1);
    match method {
        Method::Quit => {
            let mut msg = BytesMut::new();
            match sh.plan.wire {
                Wire::Framed => wire::write_frame(
                    &mut msg,
                    &ClientMsg::Quit {
                        message: "bye".into(),
                    },
                ),
                _ => msg.extend_from_slice(b"/quit\n"),
            }
            let _ = tokio::time::timeout(bound, async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                conn.stream.write_all(&msg).await?;
                // Wait for the server to close (EOF), discarding what it sends.
                let mut buf = [0u8; 4096];
                while conn.stream.read(&mut buf).await? > 0 {}
                Ok::<(), io::Error>(())
            })
            .await;
        }
        Method::Fin => {
            // Read what is queued first: close() with unread data would send
            // RST instead of FIN.
            let mut buf = [0u8; 4096];
            while matches!(conn.stream.try_read(&mut buf), Ok(n) if n > 0) {}
        }
        Method::Rst => {
            let _ = socket2::SockRef::from(&conn.stream).set_linger(Some(Duration::ZERO));
        }
        Method::CloseUnread => {
            // Let something arrive without reading it; close() then answers
            // the unread bytes with RST (RFC 2525 / Linux tcp_close).
            let _ = tokio::time::timeout(Duration::from_millis(200), conn.stream.readable()).await;
        }
        Method::HalfClose => {
            let _ = socket2::SockRef::from(&conn.stream).shutdown(std::net::Shutdown::Write);
            let _ = tokio::time::timeout(bound, async {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 4096];
                while conn.stream.read(&mut buf).await? > 0 {}
                Ok::<(), io::Error>(())
            })
            .await;
        }
    }
    drop(conn);
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn templates_expand_id_n_room_and_run() {
        assert_eq!(fill("b{run}-{id}", 7, "r1", 0x1_abcd), "babcd-7");
        assert_eq!(fill("/nick bot{n}", 12, "r1", 0), "/nick bot12");
        assert_eq!(fill("/join {room}", 0, "bots3", 0), "/join bots3");
    }
}
