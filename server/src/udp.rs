//! The UDP transport: one socket per listen address, on the same port as
//! TCP, carrying UDP users into the same hub (rooms, nicks, private
//! messages, history) as TCP users.
//!
//! - **Sessions** are keyed by the peer's address. A Hello creates one, but
//!   only once the address is proven: the first Hello gets a 16-byte retry
//!   with a cookie ([`sockchat_shared::udp::CookieJar`]), and only a Hello
//!   echoing it is welcomed. Any datagram refreshes the session; a session
//!   silent for `udp.session_timeout_secs` ends with `idle-timeout`, which
//!   the room hears as "... idle timeout (30 s) — UDP has no FIN".
//! - **Session token:** every datagram of a session must carry, in its
//!   COOKIE field, the cookie its Hello echoed (a SipHash of the address and
//!   epoch under a per-process key, which a blind spoofer never sees); and
//!   its sequence number must lie within the tracker's window. Anything else
//!   is dropped unanswered, so a spoofed source address can neither speak for
//!   a session, nor end it, nor draw replies from it (no reflection). A
//!   Hello without the token gets a retry like an unknown address; one with
//!   a fresh valid cookie (the same address, e.g. a restarted client)
//!   re-keys the session.
//! - **A UDP member is just another [`Peer`]** with a bounded outbox. Its
//!   writer task turns each queued frame into one datagram with the
//!   session's next sequence number; fan-out only pushes to outboxes, so a
//!   UDP member can never block a TCP member. EAGAIN/ENOBUFS are counted.
//! - **Abuse resistance:** an address without a session gets at most one
//!   reply no larger than its datagram (the retry), rate-limited per
//!   address and globally; malformed datagrams are counted and dropped;
//!   sessions are capped in total and per address; each session has the
//!   same message rate limit as a TCP connection.
//!
//! One task owns the session map (receive, dispatch, timeouts): no lock
//! on the receive path.
//!
//! **Invariant:** every session ends exactly once, through
//! [`UdpServer::end`] into [`Session::end`], with one [`DisconnectReason`].

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sockchat_shared::config::UdpConfig;
use sockchat_shared::udp::{self, CookieJar, FaultInjector, SeqStats, SeqTracker, SeqVerdict};
use sockchat_shared::{ClientMsg, DisconnectReason, ErrorCode, ServerMsg, codec, sockopt};
use tokio::net::UdpSocket;
use tracing::{debug, info, warn};

use crate::ctx::{Admission, Ctx, Refusal};
use crate::hub::{Format, Peer, SocketView, Transport};
use crate::limits::TokenBucket;
use crate::mmsg;
use crate::password::{self, Check, Verdict};
use crate::session::{Session, Step};

/// How often a held-back (reordered) datagram is released at the latest.
const REORDER_HOLD: Duration = Duration::from_millis(20);
/// How long a kicked or banned session's writer waits for its `Bye`.
const GOODBYE_WITHIN: Duration = Duration::from_secs(5);
/// Replies (retries) to addresses without a session: per source IP (off
/// with `--no-rate-limits`: load tests run many clients from one IP)...
const RETRY_PER_ADDR_RATE: f64 = 20.0;
const RETRY_PER_ADDR_BURST: f64 = 40.0;
/// ...and in total, so a flood of spoofed sources cannot make us a
/// reflector of any size.
const RETRY_GLOBAL_RATE: f64 = 2000.0;
const RETRY_GLOBAL_BURST: f64 = 2000.0;
/// The per-address retry buckets are forgotten when this many exist
/// (bounded memory under a spoofed-source flood).
const MAX_RETRY_BUCKETS: usize = 4096;
/// Cookies are valid for one to two epochs.
const COOKIE_EPOCH_SECS: u64 = 30;
/// Messages a session parked on a password check holds for later; more
/// are dropped (counted), as the network may drop a datagram. A check
/// takes tens of milliseconds: a client within the rate limit sends far
/// fewer meanwhile.
const MAX_HELD: usize = 64;

/// 128 random bits from the OS (std seeds `RandomState` from getrandom).
fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

/// Server-wide UDP counters (one set per socket), for logs and sockinfo.
#[derive(Debug, Default)]
pub struct UdpCounters {
    pub datagrams_in: AtomicU64,
    pub bytes_in: AtomicU64,
    /// Not a sockchat datagram, bad header or bad payload.
    pub malformed: AtomicU64,
    /// Valid datagrams from addresses without a session.
    pub unknown: AtomicU64,
    pub retries_sent: AtomicU64,
    /// Unknown-address datagrams not answered (rate limit, too small).
    pub retries_suppressed: AtomicU64,
    /// Hellos with a bad or expired cookie.
    pub bad_cookies: AtomicU64,
    /// Session datagrams without the session's token (spoofed or stale).
    pub bad_tokens: AtomicU64,
    /// Session datagrams whose sequence number is outside the window.
    pub out_of_window: AtomicU64,
    pub sessions_refused: AtomicU64,
    /// Messages dropped because their session, parked on a password
    /// check, already held [`MAX_HELD`].
    pub held_dropped: AtomicU64,
    /// recv_from errors (counted; the loop goes on).
    pub recv_errors: AtomicU64,
    /// Datagrams the session writers handed to the kernel, and in how many
    /// `sendmmsg` calls: their ratio is the batch a member's writer finds
    /// (what GSO or `sendmmsg` could merge), logged when the socket stops.
    pub datagrams_out: AtomicU64,
    pub send_calls: AtomicU64,
}

/// Per-session numbers shared by the receive task, the writer task and
/// the sockinfo view.
#[derive(Debug, Default)]
struct SessionStats {
    datagrams_in: AtomicU64,
    bytes_in: AtomicU64,
    datagrams_out: AtomicU64,
    bytes_out: AtomicU64,
    /// Next server→client sequence number.
    tx_seq: AtomicU32,
    send_eagain: AtomicU64,
    send_enobufs: AtomicU64,
    send_errors: AtomicU64,
    /// Messages that did not fit one datagram (replaced by a notice).
    too_large: AtomicU64,
    injected_drop: AtomicU64,
    injected_dup: AtomicU64,
    injected_reorder: AtomicU64,
    /// Client→server accounting (snapshot after every datagram).
    rx: Mutex<SeqStats>,
    last_rx_ms: AtomicU64,
}

/// The server's view of a UDP member's "socket", for `/sockinfo`.
struct UdpView {
    stats: Arc<SessionStats>,
    sock: Arc<UdpSocket>,
    started: Instant,
    timeout_secs: u64,
}

impl SocketView for UdpView {
    fn fields(&self) -> Vec<(String, String)> {
        let s = &self.stats;
        let rx = *s.rx.lock().unwrap_or_else(|p| p.into_inner());
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        let now_ms = self.started.elapsed().as_millis() as u64;
        let silent = now_ms.saturating_sub(s.last_rx_ms.load(Ordering::Relaxed));
        let fd = self.sock.as_raw_fd();
        let mut f = vec![
            ("udp_datagrams_in".into(), ld(&s.datagrams_in)),
            ("udp_datagrams_out".into(), ld(&s.datagrams_out)),
            ("udp_bytes_in".into(), ld(&s.bytes_in)),
            ("udp_bytes_out".into(), ld(&s.bytes_out)),
            ("udp_rx_lost".into(), rx.lost.to_string()),
            ("udp_rx_duplicated".into(), rx.duplicated.to_string()),
            ("udp_rx_reordered".into(), rx.reordered.to_string()),
            ("udp_rx_expected".into(), rx.expected.to_string()),
            (
                "udp_tx_seq".into(),
                s.tx_seq.load(Ordering::Relaxed).to_string(),
            ),
            ("udp_send_eagain".into(), ld(&s.send_eagain)),
            ("udp_send_enobufs".into(), ld(&s.send_enobufs)),
            ("udp_send_errors".into(), ld(&s.send_errors)),
            ("udp_too_large".into(), ld(&s.too_large)),
            ("udp_silent_ms".into(), silent.to_string()),
            (
                "udp_session_timeout_s".into(),
                self.timeout_secs.to_string(),
            ),
        ];
        if let Ok(b) = sockopt::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF) {
            f.push(("server_so_rcvbuf".into(), b.to_string()));
        }
        if let Ok(Some(r)) = udp::procfs::row_for_fd(fd) {
            f.push(("server_socket_drops".into(), r.drops.to_string()));
        }
        let inj =
            ld(&s.injected_drop) + "/" + &ld(&s.injected_dup) + "/" + &ld(&s.injected_reorder);
        if inj != "0/0/0" {
            f.push(("udp_injected_drop/dup/reorder".into(), inj));
        }
        f
    }
}

/// One UDP user, owned by the receive task: the transport-neutral session
/// plus what only UDP has (sequence accounting, silence, its writer).
struct UdpSession {
    s: Session,
    /// The cookie the session's Hello echoed: every later datagram carries it.
    token: u64,
    rx: SeqTracker,
    last_rx: Instant,
    stats: Arc<SessionStats>,
    writer: tokio::task::JoinHandle<()>,
    /// A password of this session is being checked ([`crate::password`]):
    /// its messages wait in `held`, in order, until the verdict.
    parked: bool,
    held: VecDeque<ClientMsg>,
    /// The `limits.max_connections` permit and per-address slot, shared
    /// with TCP; released when the session ends.
    _admission: Admission,
}

/// The receive task's state for one UDP socket.
struct UdpServer {
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    ctx: Arc<Ctx>,
    cfg: UdpConfig,
    jar: CookieJar,
    started: Instant,
    sessions: HashMap<SocketAddr, UdpSession>,
    retry_buckets: HashMap<IpAddr, TokenBucket>,
    retry_global: TokenBucket,
    counters: Arc<UdpCounters>,
    /// Where password checks send their verdict (address, peer id):
    /// received by [`UdpServer::run`].
    verdicts: tokio::sync::mpsc::UnboundedSender<(SocketAddr, u64, Verdict)>,
}

/// Serve one bound UDP socket until shutdown. Spawn it on the server's
/// task tracker.
pub async fn serve(sock: std::net::UdpSocket, ctx: Arc<Ctx>) {
    let sock = match UdpSocket::from_std(sock) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            warn!(error = %e, "udp socket unusable");
            return;
        }
    };
    let local = sock
        .local_addr()
        .unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
    let cfg = ctx.settings.config.udp.clone();
    if !cfg.gso {
        mmsg::disable_gso();
    }
    info!(gso = mmsg::gso_enabled(&*sock), "udp send path");
    // The kernel's drop counter of this socket, for /stats.
    if let Ok(inode) = udp::procfs::socket_inode(sock.as_raw_fd()) {
        ctx.hub.counters().add_udp_socket(inode);
    }
    let now = Instant::now();
    // Unbounded, yet bounded: at most one check per session is in flight.
    let (verdicts, verdicts_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut s = UdpServer {
        sock,
        local,
        jar: CookieJar::new([random_u64(), random_u64()], COOKIE_EPOCH_SECS),
        cfg,
        ctx,
        started: now,
        sessions: HashMap::new(),
        retry_buckets: HashMap::new(),
        retry_global: TokenBucket::new(RETRY_GLOBAL_RATE, RETRY_GLOBAL_BURST, now),
        counters: Arc::default(),
        verdicts,
    };
    s.run(verdicts_rx).await;
}

impl UdpServer {
    fn max(&self) -> usize {
        self.cfg.max_payload
    }

    /// Seconds for the cookie epoch: monotonic, offset so that the previous
    /// epoch always exists.
    fn cookie_now(&self) -> u64 {
        self.started.elapsed().as_secs() + COOKIE_EPOCH_SECS * 2
    }

    async fn run(
        &mut self,
        mut verdicts: tokio::sync::mpsc::UnboundedReceiver<(SocketAddr, u64, Verdict)>,
    ) {
        let shutdown = self.ctx.shutdown.clone();
        let input = shutdown.input_guard();
        // 64 KiB: a datagram above max_payload is seen whole and rejected
        // by its length instead of being silently truncated by recv.
        let mut buf = vec![0u8; 65536];
        let timeout = Duration::from_secs(self.cfg.session_timeout_secs.max(1));
        let mut sweep = tokio::time::interval(
            (timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)),
        );
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(local = %self.local, max_payload = self.max(), "udp listening");
        loop {
            tokio::select! {
                biased;
                _ = shutdown.input_stopped() => break,
                r = self.sock.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        // What this datagram fans out to TCP members is
                        // written when the scope ends (crate::owed).
                        let _owed = crate::owed::scope();
                        self.on_datagram(&buf[..n], from);
                    }
                    Err(e) => {
                        // An unconnected UDP socket reports no ICMP errors,
                        // so this is rare (ENOMEM...): count, breathe, go on.
                        self.counters.recv_errors.fetch_add(1, Ordering::Relaxed);
                        debug!(error = %e, "udp recv_from failed");
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                },
                Some((from, id, verdict)) = verdicts.recv() => {
                    let _owed = crate::owed::scope();
                    self.on_verdict(from, id, verdict);
                }
                _ = sweep.tick() => self.sweep(timeout),
            }
        }
        // Phase 1 of the shutdown: we fan nothing out any more.
        drop(input);
        let _ = tokio::time::timeout_at(shutdown.deadline(), shutdown.bye()).await;
        let addrs: Vec<SocketAddr> = self.sessions.keys().copied().collect();
        for a in addrs {
            self.end(a, DisconnectReason::ServerShutdown);
        }
        let c = &self.counters;
        // The kernel's own count of datagrams this socket could not queue
        // (receive buffer full): the loss no sequence number of ours sees.
        let kernel_drops = udp::procfs::row_for_fd(self.sock.as_raw_fd())
            .ok()
            .flatten()
            .map_or_else(|| "unknown".to_string(), |r| r.drops.to_string());
        info!(
            datagrams_in = c.datagrams_in.load(Ordering::Relaxed),
            kernel_drops = %kernel_drops,
            datagrams_out = c.datagrams_out.load(Ordering::Relaxed),
            send_calls = c.send_calls.load(Ordering::Relaxed),
            malformed = c.malformed.load(Ordering::Relaxed),
            unknown = c.unknown.load(Ordering::Relaxed),
            retries_sent = c.retries_sent.load(Ordering::Relaxed),
            bad_tokens = c.bad_tokens.load(Ordering::Relaxed),
            out_of_window = c.out_of_window.load(Ordering::Relaxed),
            "udp stopped"
        );
    }

    fn on_datagram(&mut self, d: &[u8], from: SocketAddr) {
        let c = &self.counters;
        c.datagrams_in.fetch_add(1, Ordering::Relaxed);
        c.bytes_in.fetch_add(d.len() as u64, Ordering::Relaxed);
        let dg = match udp::decode_client(d, self.max()) {
            Ok(dg) => dg,
            Err(e) => {
                c.malformed.fetch_add(1, Ordering::Relaxed);
                debug!(peer = %from, len = d.len(), error = %e, "malformed datagram dropped");
                return;
            }
        };
        if let Some(s) = self.sessions.get(&from) {
            if dg.cookie == Some(s.token) {
                self.on_session_datagram(from, dg, d.len());
                return;
            }
            c.bad_tokens.fetch_add(1, Ordering::Relaxed);
            match (&dg.msg, dg.cookie) {
                // Proof of the address again (a client restarted on the
                // same port): the session takes the new token.
                (ClientMsg::Hello { .. }, Some(cookie))
                    if self.jar.verify(&from, cookie, self.cookie_now()) =>
                {
                    if let Some(s) = self.sessions.get_mut(&from) {
                        s.token = cookie;
                        s.rx = SeqTracker::expecting(dg.seq);
                    }
                    self.on_session_datagram(from, dg, d.len());
                }
                // A Hello without it: the same small, rate-limited retry as
                // for an unknown address.
                (ClientMsg::Hello { .. }, _) => self.send_retry(from, d.len()),
                // Anything else is dropped unanswered (spoofed, or stale):
                // answering would make the session a reflector.
                _ => debug!(peer = %from, "session datagram without its token dropped"),
            }
            return;
        }
        c.unknown.fetch_add(1, Ordering::Relaxed);
        match (&dg.msg, dg.cookie) {
            (ClientMsg::Hello { nick }, Some(cookie))
                if self.jar.verify(&from, cookie, self.cookie_now()) =>
            {
                let nick = nick.clone();
                self.create_session(from, &nick, cookie, dg.seq, d.len());
            }
            _ => {
                if dg.cookie.is_some() {
                    c.bad_cookies.fetch_add(1, Ordering::Relaxed);
                }
                self.send_retry(from, d.len());
            }
        }
    }

    /// Answer an address we do not know with a retry: never larger than
    /// what it sent, rate-limited per address and in total.
    fn send_retry(&mut self, to: SocketAddr, request_len: usize) {
        let now = Instant::now();
        let retry = udp::encode_retry(self.jar.issue(&to, self.cookie_now()));
        let small_enough = retry.len() <= request_len;
        if self.retry_buckets.len() >= MAX_RETRY_BUCKETS
            && !self.retry_buckets.contains_key(&to.ip())
        {
            self.retry_buckets.clear();
        }
        let per_addr = self.ctx.settings.no_rate_limits
            || self
                .retry_buckets
                .entry(to.ip())
                .or_insert_with(|| TokenBucket::new(RETRY_PER_ADDR_RATE, RETRY_PER_ADDR_BURST, now))
                .try_take(now);
        if !small_enough || !per_addr || !self.retry_global.try_take(now) {
            self.counters
                .retries_suppressed
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        // try_send_to: never wait on behalf of an unknown address.
        match self.sock.try_send_to(&retry, to) {
            Ok(_) => {
                self.counters.retries_sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => debug!(peer = %to, error = %e, "retry not sent"),
        }
    }

    /// A verified Hello: admit (the global and per-address caps, shared
    /// with TCP, and `udp.max_sessions`), register the nick, welcome, join
    /// the default room.
    fn create_session(&mut self, from: SocketAddr, nick: &str, token: u64, seq: u32, len: usize) {
        let admitted = if self.sessions.len() >= self.cfg.max_sessions {
            Err(Refusal {
                code: ErrorCode::ServerFull,
                text: format!(
                    "server full ({} UDP sessions); try again later",
                    self.cfg.max_sessions
                ),
            })
        } else {
            self.ctx.admit(from.ip())
        };
        let admission = match admitted {
            Ok(a) => a,
            Err(Refusal { code, text }) => {
                self.counters
                    .sessions_refused
                    .fetch_add(1, Ordering::Relaxed);
                info!(peer = %from, %text, "udp session refused");
                // The address is verified (it echoed our cookie): a reply of
                // any size is no amplification.
                self.reply_direct(from, &ServerMsg::Error { code, text });
                return;
            }
        };
        let ctx = self.ctx.clone();
        let id = ctx.next_id.fetch_add(1, Ordering::Relaxed);
        let stats = Arc::new(SessionStats::default());
        let view = Arc::new(UdpView {
            stats: stats.clone(),
            sock: self.sock.clone(),
            started: self.started,
            timeout_secs: self.cfg.session_timeout_secs,
        });
        let cfg = &ctx.settings.config;
        let peer = Peer::new(
            id,
            from,
            Transport::Udp,
            Format::Framed,
            cfg.server.outbox_frames,
            cfg.server.slow_consumer,
            Some(view),
            // Its own: the UDP writer drains through phase 1 of a shutdown.
            tokio_util::sync::CancellationToken::new(),
        );
        let now = Instant::now();
        let mut session = Session::new(ctx.clone(), peer.clone(), now);
        // Registering queues the Welcome, Joined and history in the
        // outbox; the writer below sends them.
        match session.register(nick) {
            Ok(()) => {}
            // A server with a password: the session is kept, unregistered,
            // so its Pass (with the token) and then Hello can follow.
            Err(e) if e.code() == ErrorCode::PasswordRequired => {
                session.peer.send(&ServerMsg::Error {
                    code: e.code(),
                    text: e.to_string(),
                });
            }
            Err(e) => {
                self.reply_direct(
                    from,
                    &ServerMsg::Error {
                        code: e.code(),
                        text: e.to_string(),
                    },
                );
                return;
            }
        }
        let inj = {
            let f = crate::config::udp_faults(&self.cfg);
            (!f.is_off()).then(|| FaultInjector::new(f, random_u64() ^ id))
        };
        let writer = ctx.shutdown.tracker.spawn(writer_task(
            self.sock.clone(),
            peer.clone(),
            stats.clone(),
            self.counters.clone(),
            self.max(),
            inj,
        ));
        let mut rx = SeqTracker::expecting(seq);
        rx.record(seq);
        stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
        stats.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
        *stats.rx.lock().unwrap_or_else(|p| p.into_inner()) = rx.stats();
        self.ctx.hub.counters().udp_session(true);
        self.sessions.insert(
            from,
            UdpSession {
                s: session,
                token,
                rx,
                last_rx: now,
                stats,
                writer,
                parked: false,
                held: VecDeque::new(),
                _admission: admission,
            },
        );
    }

    /// One datagram straight to a verified address, outside any session
    /// (refusals). Best effort.
    fn reply_direct(&self, to: SocketAddr, msg: &ServerMsg) {
        if let Ok(d) = udp::encode_server(0, msg, self.max()) {
            let _ = self.sock.try_send_to(&d, to);
        }
    }

    fn on_session_datagram(&mut self, from: SocketAddr, dg: udp::ClientDatagram, len: usize) {
        let (id, step) = {
            let Some(s) = self.sessions.get_mut(&from) else {
                return;
            };
            if !s.rx.in_window(dg.seq) {
                // A replay from long ago or a jump far ahead: not recorded,
                // not handled, not answered.
                self.counters.out_of_window.fetch_add(1, Ordering::Relaxed);
                debug!(peer = %from, seq = dg.seq, "datagram outside the sequence window dropped");
                return;
            }
            s.last_rx = Instant::now();
            s.stats.datagrams_in.fetch_add(1, Ordering::Relaxed);
            s.stats.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
            s.stats
                .last_rx_ms
                .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
            let verdict = s.rx.record(dg.seq);
            *s.stats.rx.lock().unwrap_or_else(|p| p.into_inner()) = s.rx.stats();
            let id = s.s.peer.id;
            if s.s.peer.cancel_token().is_cancelled() {
                // Doomed (slow consumer): end it with its reason.
                let r = s.s.peer.reason().unwrap_or_else(DisconnectReason::quit);
                (id, Step::End(r))
            } else if matches!(verdict, SeqVerdict::Duplicate | SeqVerdict::Late)
                && !matches!(dg.msg, ClientMsg::Hello { .. })
            {
                // The same message twice must not be said twice, nor one
                // from before the session began. (A Hello is idempotent and
                // always answered.)
                return;
            } else if s.parked {
                // After the password being checked, in order.
                if s.held.len() < MAX_HELD {
                    s.held.push_back(dg.msg);
                } else {
                    self.counters.held_dropped.fetch_add(1, Ordering::Relaxed);
                    debug!(peer = %from, "message dropped: the session waits for a password check");
                }
                return;
            } else {
                (id, s.s.handle(dg.msg))
            }
        };
        self.apply(from, id, step);
    }

    /// Do what session `id` (at `from`) asked for.
    fn apply(&mut self, from: SocketAddr, id: u64, step: Step) {
        match step {
            Step::Continue => {}
            // One datagram's worth: no batching.
            Step::Chat(room, msg) => room.fan_out_chat(vec![msg], id),
            Step::End(r) => self.end(from, r),
            Step::Check(check) => self.park(from, id, check),
        }
    }

    /// Check a password off this task ([`password::run`]); the session's
    /// messages wait until [`UdpServer::on_verdict`].
    fn park(&mut self, from: SocketAddr, id: u64, check: Check) {
        let Some(s) = self.sessions.get_mut(&from) else {
            return;
        };
        s.parked = true;
        let (ctx, tx) = (self.ctx.clone(), self.verdicts.clone());
        tokio::spawn(async move {
            let verdict = password::run(ctx, check).await;
            // The receive task is gone only when the server stops.
            let _ = tx.send((from, id, verdict));
        });
    }

    /// A password check answered: the session resumes, then handles what it
    /// held, in order, until it ends or parks again. A session that ended
    /// meanwhile (or an address now used by another) is not resumed.
    fn on_verdict(&mut self, from: SocketAddr, id: u64, verdict: Verdict) {
        let Some(s) = self.sessions.get_mut(&from).filter(|s| s.s.peer.id == id) else {
            return;
        };
        s.parked = false;
        let mut step = s.s.resume(verdict);
        loop {
            let stop = matches!(step, Step::End(_) | Step::Check(_));
            self.apply(from, id, step);
            if stop {
                return;
            }
            let Some(s) = self.sessions.get_mut(&from) else {
                return;
            };
            let Some(msg) = s.held.pop_front() else {
                return;
            };
            step = s.s.handle(msg);
        }
    }

    /// End sessions that were silent too long or were doomed elsewhere.
    fn sweep(&mut self, timeout: Duration) {
        let now = Instant::now();
        let mut ended = Vec::new();
        for (a, s) in &self.sessions {
            if s.s.peer.cancel_token().is_cancelled() {
                let r =
                    s.s.peer
                        .reason()
                        .unwrap_or(DisconnectReason::ProtocolError {
                            detail: "session aborted".into(),
                        });
                ended.push((*a, r));
            } else if now.saturating_duration_since(s.last_rx) >= timeout {
                let secs = timeout.as_secs().min(u64::from(u32::MAX)) as u32;
                ended.push((*a, DisconnectReason::IdleTimeout { secs }));
            }
        }
        for (a, r) in ended {
            self.end(a, r);
        }
    }

    /// End a session ([`Session::end`]: reason, rooms, nick, Bye) and
    /// forget its address. Bye is best effort (UDP), but a live client
    /// learns the reason; the writer flushes and exits on its own (a doomed
    /// one was cancelled).
    fn end(&mut self, addr: SocketAddr, reason: DisconnectReason) {
        let Some(mut u) = self.sessions.remove(&addr) else {
            return;
        };
        self.ctx.hub.counters().udp_session(false);
        let rx = u.rx.stats();
        debug!(
            conn_id = u.s.peer.id,
            peer = %addr,
            rx_lost = rx.lost,
            rx_duplicated = rx.duplicated,
            rx_reordered = rx.reordered,
            "udp session accounting"
        );
        // A kicked or banned user is still there to read its Bye.
        let live = !u.s.peer.cancel_token().is_cancelled() || u.s.peer.removed();
        u.s.end(reason, live);
        if live {
            u.s.peer.outbox.close();
        }
        drop(u.writer);
    }
}

/// Split a chunk of length-prefixed frames (what the hub queues for a
/// framed member) into payloads, without copying: the one frame splitter
/// (`codec::split_frame`) finds each frame, the payload is a slice of the
/// shared chunk. The hub encodes what it queues, so a malformed frame is a
/// bug; it ends the iteration instead of reading past it.
fn frames(chunk: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let (payload, used) = codec::split_frame(chunk.get(pos..)?, usize::MAX).ok()??;
        let start = pos + used - payload.len();
        pos += used;
        Some(chunk.slice(start..pos))
    })
}

/// The session's writer: each queued frame becomes one datagram with the
/// next sequence number, through the fault injector if one is configured.
/// Ends when the outbox is closed and flushed, or the peer is cancelled.
async fn writer_task(
    sock: Arc<UdpSocket>,
    peer: Arc<Peer>,
    stats: Arc<SessionStats>,
    counters: Arc<UdpCounters>,
    max: usize,
    mut inj: Option<FaultInjector>,
) {
    let addr = peer.addr;
    let mut batch: VecDeque<Bytes> = VecDeque::new();
    let mut out: Vec<Bytes> = Vec::new();
    // GSO for this member's path (mmsg: a refusal turns it off for this
    // destination only).
    let mut gso = mmsg::gso_enabled(&*sock);
    // Set when an operator ended the session (kick, ban): unlike a doomed
    // one, it still gets what is queued, its `Bye` last (the receive task
    // queues it and closes the outbox within a sweep); bounded all the same.
    let mut goodbye_by: Option<tokio::time::Instant> = None;
    loop {
        let holding = inj.as_ref().is_some_and(FaultInjector::holding);
        let closed = tokio::select! {
            c = peer.outbox.next_batch(&mut batch) => Some(c),
            _ = peer.cancel_token().cancelled(), if goodbye_by.is_none() => {
                if !peer.removed() {
                    return;
                }
                goodbye_by = Some(tokio::time::Instant::now() + GOODBYE_WITHIN);
                continue;
            }
            _ = tokio::time::sleep_until(goodbye_by.unwrap_or_else(tokio::time::Instant::now)),
                if goodbye_by.is_some() => return,
            _ = tokio::time::sleep(REORDER_HOLD), if holding => None,
        };
        let Some(closed) = closed else {
            if let Some(i) = &mut inj {
                i.flush(&mut out);
            }
            send_all(&sock, addr, &stats, &counters, &mut out, &mut gso).await;
            continue;
        };
        for chunk in batch.drain(..) {
            for payload in frames(&chunk) {
                let d = if udp::HEADER_LEN + payload.len() <= max {
                    udp::with_server_header(stats.tx_seq.fetch_add(1, Ordering::Relaxed), &payload)
                } else {
                    // Never truncated, never fragmented: the member is told
                    // what happened instead (its own echo: delivered to the
                    // room; anything else: not delivered to it).
                    stats.too_large.fetch_add(1, Ordering::Relaxed);
                    let notice = udp::oversize_notice(
                        &payload,
                        &peer.nick(),
                        udp::HEADER_LEN + payload.len(),
                        max,
                    );
                    match udp::encode_server(stats.tx_seq.load(Ordering::Relaxed), &notice, max) {
                        Ok(d) => {
                            stats.tx_seq.fetch_add(1, Ordering::Relaxed);
                            d
                        }
                        Err(_) => continue,
                    }
                };
                match &mut inj {
                    Some(i) => {
                        let before = i.stats();
                        i.process(d, &mut out);
                        let after = i.stats();
                        stats
                            .injected_drop
                            .fetch_add(after.dropped - before.dropped, Ordering::Relaxed);
                        stats
                            .injected_dup
                            .fetch_add(after.duplicated - before.duplicated, Ordering::Relaxed);
                        stats
                            .injected_reorder
                            .fetch_add(after.reordered - before.reordered, Ordering::Relaxed);
                    }
                    None => out.push(d),
                }
            }
        }
        // Everything taken goes out together: up to mmsg::BATCH datagrams
        // per syscall.
        send_all(&sock, addr, &stats, &counters, &mut out, &mut gso).await;
        if closed {
            if let Some(i) = &mut inj {
                i.flush(&mut out);
            }
            send_all(&sock, addr, &stats, &counters, &mut out, &mut gso).await;
            return;
        }
    }
}

/// Send datagrams to one member, in order, with `sendmmsg` (one syscall
/// per [`mmsg::BATCH`]). EAGAIN (socket buffer full) waits for room and is
/// counted; ENOBUFS and other per-datagram errors lose that datagram, as
/// UDP may, and are counted: none of them ends the session.
async fn send_all(
    sock: &UdpSocket,
    to: SocketAddr,
    stats: &SessionStats,
    counters: &UdpCounters,
    out: &mut Vec<Bytes>,
    gso: &mut bool,
) {
    let dest = socket2::SockAddr::from(to);
    let mut done = 0;
    while done < out.len() {
        let rest = &out[done..];
        match sock.try_io(tokio::io::Interest::WRITABLE, || {
            mmsg::send_to(sock, &dest, rest, gso)
        }) {
            Ok(n) => {
                let bytes: usize = rest.iter().take(n).map(Bytes::len).sum();
                stats.datagrams_out.fetch_add(n as u64, Ordering::Relaxed);
                stats.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
                counters
                    .datagrams_out
                    .fetch_add(n as u64, Ordering::Relaxed);
                counters.send_calls.fetch_add(1, Ordering::Relaxed);
                done += n.max(1);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                stats.send_eagain.fetch_add(1, Ordering::Relaxed);
                if sock.writable().await.is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                stats.send_enobufs.fetch_add(1, Ordering::Relaxed);
                done += 1;
            }
            Err(e) => {
                stats.send_errors.fetch_add(1, Ordering::Relaxed);
                debug!(peer = %to, error = %e, "udp send failed");
                done += 1;
            }
        }
    }
    out.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_without_copy() {
        let mut b = bytes::BytesMut::new();
        codec::encode_server(&ServerMsg::Ping { token: 1 }, &mut b);
        codec::encode_server(&ServerMsg::Pong { token: 2 }, &mut b);
        let chunk = b.freeze();
        let got: Vec<ServerMsg> = frames(&chunk)
            .map(|p| codec::decode_server(&p).expect("valid"))
            .collect();
        assert_eq!(
            got,
            vec![ServerMsg::Ping { token: 1 }, ServerMsg::Pong { token: 2 }]
        );
        // A truncated trailing frame is ignored, never read past the end.
        let cut = chunk.slice(..chunk.len() - 1);
        assert_eq!(frames(&cut).count(), 1);
    }
}
