//! The one session driver, the same for TCP and UDP (over [`Link`]):
//! resolve, open, Hello with nick retry, restore the nick and every room
//! after a reconnect, the lines typed (queued while there is no session,
//! held for their room's Join, confirmed or failed: [`Lines`]), liveness
//! (pings, lag, the ping timeout) and the back-off between attempts.
//!
//! Rules (docs/CLIENT.md): a line typed while connecting waits for the
//! session and is sent after the rejoins; a line sent but not echoed when
//! the connection dies fails, it is never resent; a ping unanswered for
//! `ping_timeout` ends the connection with `idle-timeout`; the back-off
//! starts over only after a connection stayed up [`HEALTHY_AFTER`].

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sockchat_shared::{ClientMsg, DisconnectReason, ErrorCode, ServerMsg};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::lines::{Lines, room_key};
use super::link::{HelloError, Link, Up, Welcome};
use super::remembered::Remembered;
use super::transfer::Transfers;
use super::{CloseReason, Events, LineId, NetCmd, NetConfig, SocketEvent, UiGone, backoff, emit};

/// A connection must stay up this long after its Welcome before the
/// back-off starts over: a server that welcomes and then fails at once
/// (garbage, a crash loop) is retried ever more slowly, not every second.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// How often the driver looks at the clock: lag reports, the ping timeout,
/// lines waiting too long.
const TICK: Duration = Duration::from_millis(250);

/// Longest nick we try when adding `_` to a taken one (the server's default
/// limit).
const MAX_NICK_CHARS: usize = 24;

/// How one attempt ended.
enum End {
    /// The user quit (or the UI went away): do not reconnect.
    Quit,
    /// The connection or session ended; `healthy` if it stayed up long
    /// enough to start the back-off over.
    Lost { healthy: bool },
    /// Trying again cannot help (a changed TLS certificate): stop for good.
    Refused,
}

/// What the driver remembers across reconnects.
struct State {
    /// The nick the server gave us (what we ask for next time).
    nick: String,
    /// The rooms we are in (keys), restored after a reconnect.
    rooms: BTreeSet<String>,
    /// The room we ask for after the very first Welcome.
    first_room: String,
    welcomed_once: bool,
    lines: Lines,
    /// A /quit that came while there was no session: carried out once the
    /// current attempt has a session (its queued lines sent), or at once if
    /// the attempt fails.
    quit: Option<String>,
    /// Connection failures in a row (for the back-off).
    failures: u32,
    /// True while a link is open and its Hello unanswered: a /fault then
    /// waits for the Welcome (the link is busy with the handshake).
    in_hello: bool,
    faults: Vec<super::Fault>,
    /// File transfers (moving ones pause when the session ends and resume on the next).
    xfer: Transfers,
    /// `/send`s typed while there was no session: offered once there is.
    xfer_queued: Vec<super::transfer::XferCmd>,
    /// The server password: `SOCKCHAT_PASSWORD`, or the last `/pass` typed
    /// while a server asked for one. Kept in memory only, for reconnects.
    password: Option<String>,
    /// Room keys and the nick password, sent again after a reconnect
    /// (memory only).
    remembered: Remembered,
    /// We identified again after a reconnect and have no answer yet: a
    /// refusal means the remembered password is stale (forgotten).
    reidentifying: bool,
}

/// Where the server password comes from when it is not typed.
pub const PASSWORD_ENV: &str = "SOCKCHAT_PASSWORD";

/// Chunks are handed to the link only while less than this waits in it,
/// so a chat line typed during a transfer waits behind little.
const MAX_CHUNK_BACKLOG: usize = 256 * 1024;

/// Run the driver over transport `L` until the user quits, reconnect gives
/// up, or the UI goes away.
pub(super) async fn run<L: Link>(cfg: NetConfig, mut cmds: mpsc::Receiver<NetCmd>, ev: Events) {
    let mut st = State {
        nick: cfg.nick.clone(),
        rooms: BTreeSet::new(),
        first_room: cfg.room.clone(),
        welcomed_once: false,
        lines: Lines::default(),
        quit: None,
        failures: 0,
        in_hello: false,
        faults: Vec::new(),
        xfer: Transfers::new(
            cfg.download_dir.clone(),
            L::TRANSPORT,
            own_max_chunk(&cfg),
            cfg.auto_accept.clone(),
        ),
        xfer_queued: Vec::new(),
        password: std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()),
        remembered: Remembered::default(),
        reidentifying: false,
    };
    let _ = st.run::<L>(&cfg, &mut cmds, &ev).await;
}

async fn emit_all(ev: &Events, evs: Vec<SocketEvent>) -> Result<(), UiGone> {
    for e in evs {
        emit(ev, e).await?;
    }
    Ok(())
}

/// A timeout in whole seconds for [`DisconnectReason::IdleTimeout`],
/// rounded up (a 300 ms timeout is not "0 s").
fn whole_secs(d: Duration) -> u32 {
    u32::try_from(d.as_millis().div_ceil(1000)).unwrap_or(u32::MAX)
}

/// Largest file chunk our own link carries in one message.
fn own_max_chunk(cfg: &NetConfig) -> u64 {
    use sockchat_shared::transfer::{CHUNK_OVERHEAD, TCP_CHUNK};
    match &cfg.udp {
        Some(u) => u
            .max_payload
            .saturating_sub(sockchat_shared::udp::SESSION_HEADER_LEN + CHUNK_OVERHEAD)
            .max(1) as u64,
        None => TCP_CHUNK as u64,
    }
}

async fn resolve(server: &str) -> Result<SocketAddr, String> {
    match tokio::net::lookup_host(server).await {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| format!("{server} resolves to no address")),
        Err(e) => Err(format!("cannot resolve {server}: {e}")),
    }
}

impl State {
    async fn run<L: Link>(
        &mut self,
        cfg: &NetConfig,
        cmds: &mut mpsc::Receiver<NetCmd>,
        ev: &Events,
    ) -> Result<(), UiGone> {
        loop {
            emit(
                ev,
                SocketEvent::Connecting {
                    addr: cfg.server.clone(),
                    attempt: self.failures + 1,
                },
            )
            .await?;
            let end = self.attempt::<L>(cfg, cmds, ev).await?;
            self.xfer.session_lost();
            self.emit_xfer(ev).await?;
            let mut evs = Vec::new();
            for r in self.lines.session_lost(&mut evs) {
                self.rooms.insert(r);
            }
            emit_all(ev, evs).await?;
            match end {
                End::Quit => return self.finish("we quit", true, ev).await,
                End::Refused => {
                    return self
                        .finish(
                            "the server's certificate changed: not reconnecting",
                            false,
                            ev,
                        )
                        .await;
                }
                End::Lost { healthy } if healthy => self.failures = 0,
                End::Lost { .. } => {}
            }
            self.failures += 1;
            if self.quit.is_some() {
                return self
                    .finish("the connection failed while we were quitting", false, ev)
                    .await;
            }
            if !cfg.reconnect {
                emit(ev, SocketEvent::Local("reconnect is off".into())).await?;
                return self
                    .finish("not connected and reconnect is off", false, ev)
                    .await;
            }
            if !self.wait_to_reconnect(cfg, cmds, ev).await? {
                return self.finish("not connected when we quit", false, ev).await;
            }
        }
    }

    /// No session will come: every line still waiting fails; the end.
    /// `quit`: the last session ended by our Quit.
    async fn finish(&mut self, why: &str, quit: bool, ev: &Events) -> Result<(), UiGone> {
        self.xfer.give_up(why);
        self.emit_xfer(ev).await?;
        let mut evs = Vec::new();
        self.lines.give_up(why, &mut evs);
        emit_all(ev, evs).await?;
        for c in std::mem::take(&mut self.xfer_queued) {
            if let super::transfer::XferCmd::Send { path, .. } = c {
                let e = super::transfer::XferEvent::Failed {
                    id: 0,
                    dir: super::transfer::Dir::Send,
                    peer: String::new(),
                    name: String::new(),
                    why: format!("{} not offered: {why}", path.display()),
                };
                emit(ev, SocketEvent::Transfer(Box::new(e))).await?;
            }
        }
        emit(ev, SocketEvent::Finished { quit }).await
    }

    /// Announce the back-off delay and wait it out, keeping what is typed
    /// meanwhile. `Ok(false)`: the user quit.
    async fn wait_to_reconnect(
        &mut self,
        cfg: &NetConfig,
        cmds: &mut mpsc::Receiver<NetCmd>,
        ev: &Events,
    ) -> Result<bool, UiGone> {
        let delay = backoff::delay(
            cfg.reconnect_initial,
            cfg.reconnect_max,
            self.failures,
            backoff::jitter(),
        );
        emit(
            ev,
            SocketEvent::Reconnecting {
                delay,
                attempt: self.failures + 1,
            },
        )
        .await?;
        let wake = tokio::time::sleep(delay);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                _ = &mut wake => return Ok(true),
                cmd = cmds.recv() => match cmd {
                    None | Some(NetCmd::Quit(_)) => return Ok(false),
                    Some(c) => self.offline(c, ev).await?,
                },
            }
        }
    }

    /// A command while there is no session: lines and commands are kept
    /// for it, a /quit is remembered, a /fault has nothing to act on.
    async fn offline(&mut self, cmd: NetCmd, ev: &Events) -> Result<(), UiGone> {
        match cmd {
            NetCmd::Send { id, msg } => {
                if let Some(e) = self.lines.queue(id, msg) {
                    emit(ev, e).await?;
                }
            }
            NetCmd::Quit(m) => self.quit = Some(m),
            // A /send waits for the session like a typed line (bounded);
            // the rest act on transfers, which need one.
            NetCmd::Transfer(c @ super::transfer::XferCmd::Send { .. })
                if self.xfer_queued.len() < 16 =>
            {
                self.xfer_queued.push(c);
            }
            NetCmd::Transfer(c) => {
                self.xfer.command(c, false);
                self.emit_xfer(ev).await?;
            }
            NetCmd::Fault(f) if self.in_hello && self.faults.len() < 16 => self.faults.push(f),
            NetCmd::Fault(_) => {
                emit(
                    ev,
                    SocketEvent::Local("not connected: no fault to inject".into()),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// One attempt: resolve, open, Hello (retrying a refused nick), then
    /// the session until it ends.
    async fn attempt<L: Link>(
        &mut self,
        cfg: &NetConfig,
        cmds: &mut mpsc::Receiver<NetCmd>,
        ev: &Events,
    ) -> Result<End, UiGone> {
        let lost = Ok(End::Lost { healthy: false });
        // Resolve and open, answering commands meanwhile.
        let opened = {
            let open = async {
                let addr = resolve(&cfg.server)
                    .await
                    .map_err(|text| super::link::OpenError {
                        permanent: false,
                        report: vec![SocketEvent::Local(text.clone())],
                        reason: CloseReason::Local(text),
                    })?;
                L::open(addr, cfg).await
            };
            tokio::pin!(open);
            loop {
                tokio::select! {
                    r = &mut open => break r,
                    cmd = cmds.recv() => match cmd {
                        None => return Ok(End::Quit),
                        Some(c) => self.offline(c, ev).await?,
                    },
                }
            }
        };
        let mut link = match opened {
            Ok(l) => l,
            Err(e) => {
                emit_all(ev, e.report).await?;
                emit(ev, SocketEvent::Closed(e.reason)).await?;
                if e.permanent {
                    return Ok(End::Refused);
                }
                return lost;
            }
        };
        let (local, peer) = link.addrs();
        emit(
            ev,
            SocketEvent::Connected {
                local,
                peer,
                transport: L::TRANSPORT,
            },
        )
        .await?;
        self.in_hello = true;
        let welcome = self.hello(&mut link, cfg, cmds, ev).await;
        self.in_hello = false;
        let Some(welcome) = welcome? else {
            self.faults.clear();
            self.closed(link, ev).await?;
            return lost;
        };
        let welcomed_at = Instant::now();
        let end = self.session(&mut link, welcome, cfg, cmds, ev).await;
        self.closed(link, ev).await?;
        Ok(match end? {
            End::Lost { .. } => End::Lost {
                healthy: welcomed_at.elapsed() >= HEALTHY_AFTER,
            },
            quit => quit,
        })
    }

    /// The link is over: close its socket (drop it) and tell what the
    /// kernel keeps of it, with the packets the close set off.
    async fn closed<L: Link>(&mut self, mut link: L, ev: &Events) -> Result<(), UiGone> {
        let tap = link.take_tap();
        let (local, peer) = link.addrs();
        drop(link);
        if L::TRANSPORT == super::Transport::Tcp {
            super::after_close::report(local, peer, tap, ev).await?;
        }
        Ok(())
    }

    /// Hello until welcomed: a taken nick is retried as NICK_, NICK__,
    /// then a guest nick. Bounded by the ping timeout (a server that
    /// accepts and never welcomes is as dead as one that stops answering).
    /// `None`: the attempt failed (already reported).
    async fn hello<L: Link>(
        &mut self,
        link: &mut L,
        cfg: &NetConfig,
        cmds: &mut mpsc::Receiver<NetCmd>,
        ev: &Events,
    ) -> Result<Option<Welcome>, UiGone> {
        let mut deadline = tokio::time::Instant::now() + cfg.ping_timeout;
        let mut refusals = 0u32;
        // Passwords sent on this link (a wrong one is asked for again).
        let mut passes = 0u32;
        loop {
            let nick = self.nick.clone();
            let r = {
                let h = tokio::time::timeout_at(deadline, link.hello(&nick));
                tokio::pin!(h);
                loop {
                    tokio::select! {
                        r = &mut h => break r,
                        cmd = cmds.recv() => match cmd {
                            None => {
                                emit(ev, SocketEvent::Finished { quit: false }).await?;
                                return Err(UiGone);
                            }
                            Some(c) => self.offline(c, ev).await?,
                        },
                    }
                }
            };
            match r {
                Ok(Ok(w)) => return Ok(Some(w)),
                // The server's password: send the one we have, or ask the
                // user for it; then Hello again on the same link.
                Ok(Err(HelloError::Refused { code, text }))
                    if matches!(code, ErrorCode::PasswordRequired | ErrorCode::BadPassword) =>
                {
                    emit(ev, SocketEvent::Server(ServerMsg::Error { code, text })).await?;
                    if code == ErrorCode::BadPassword {
                        self.password = None;
                    }
                    let pw = match self.password.clone() {
                        Some(p) if passes < 2 => p,
                        _ => match self.ask_password(link, cmds, ev).await? {
                            Some(p) => p,
                            None => return Ok(None),
                        },
                    };
                    passes += 1;
                    self.password = Some(pw.clone());
                    let _ = link.send(&ClientMsg::Pass { password: pw }).await;
                    deadline = tokio::time::Instant::now() + cfg.ping_timeout;
                }
                // Our own registered nick after a reconnect: a guest nick
                // first, then the remembered password renames us (welcomed).
                Ok(Err(HelloError::Refused {
                    code: ErrorCode::NickRegistered,
                    ..
                })) if self.welcomed_once && self.remembered.identifies(&self.nick) => {
                    emit(
                        ev,
                        SocketEvent::Local(format!(
                            "{} is registered: a guest nick first, then identifying again",
                            self.nick
                        )),
                    )
                    .await?;
                    self.nick = String::new();
                }
                Ok(Err(HelloError::Refused { code, text })) => {
                    emit(ev, SocketEvent::Server(ServerMsg::Error { code, text })).await?;
                    refusals += 1;
                    let next = format!("{}_", self.nick);
                    self.nick = if code == ErrorCode::NickTaken
                        && refusals <= 2
                        && next.chars().count() <= MAX_NICK_CHARS
                    {
                        next
                    } else {
                        String::new()
                    };
                    emit(
                        ev,
                        SocketEvent::Local(if self.nick.is_empty() {
                            "asking the server for a guest nick".into()
                        } else {
                            format!("trying nick {}", self.nick)
                        }),
                    )
                    .await?;
                }
                Ok(Err(HelloError::Over { early, reason })) => {
                    for u in early {
                        self.report(u, ev).await?;
                    }
                    emit(ev, SocketEvent::Closed(reason)).await?;
                    return Ok(None);
                }
                Err(_) => {
                    let secs = cfg.ping_timeout.as_secs_f64();
                    let text = format!(
                        "no welcome from the server within {secs:.0} s (it accepted us but does not answer)"
                    );
                    emit(ev, SocketEvent::Local(text)).await?;
                    let secs = whole_secs(cfg.ping_timeout);
                    emit(
                        ev,
                        SocketEvent::Closed(CloseReason::Peer(DisconnectReason::IdleTimeout {
                            secs,
                        })),
                    )
                    .await?;
                    return Ok(None);
                }
            }
        }
    }

    /// Wait for the user's `/pass PASSWORD` (other commands are kept for
    /// the session). `None`: the link ended meanwhile (the server's
    /// handshake timeout), already reported.
    async fn ask_password<L: Link>(
        &mut self,
        link: &mut L,
        cmds: &mut mpsc::Receiver<NetCmd>,
        ev: &Events,
    ) -> Result<Option<String>, UiGone> {
        emit(
            ev,
            SocketEvent::Local(format!(
                "this server needs a password: type /pass PASSWORD (or set {PASSWORD_ENV})"
            )),
        )
        .await?;
        loop {
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    None => {
                        emit(ev, SocketEvent::Finished { quit: false }).await?;
                        return Err(UiGone);
                    }
                    Some(NetCmd::Send { msg: ClientMsg::Pass { password }, .. }) => {
                        return Ok(Some(password));
                    }
                    Some(c) => {
                        self.offline(c, ev).await?;
                        if self.quit.is_some() {
                            return Ok(None);
                        }
                    }
                },
                u = link.next() => {
                    let over = matches!(u, Up::Closed(_));
                    self.report(u, ev).await?;
                    if over {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Something a link reported outside the session loop (before a
    /// Welcome or after a failed Hello): shown as it is.
    async fn report(&mut self, u: Up, ev: &Events) -> Result<(), UiGone> {
        match u {
            Up::Msg(m) => emit(ev, SocketEvent::Server(m)).await,
            Up::Pong(d) => emit(ev, SocketEvent::Latency(d)).await,
            Up::Report(e) => emit(ev, e).await,
            Up::Closed(r) => emit(ev, SocketEvent::Closed(r)).await,
        }
    }

    /// After a Welcome (the first, or one after the server forgot a UDP
    /// session): take the nick, and ask for our rooms back — all of them
    /// after a reconnect, the configured one the first time. The default
    /// room the server put us in is left if we were not in it.
    async fn welcomed<L: Link>(&mut self, link: &mut L, nick: &str, room: &str, ev: &Events) {
        self.nick = nick.to_owned();
        let wanted: Vec<String> = if self.welcomed_once {
            self.rooms.iter().cloned().collect()
        } else if !self.first_room.is_empty() {
            vec![room_key(&self.first_room)]
        } else {
            Vec::new()
        };
        let reconnect = self.welcomed_once;
        self.welcomed_once = true;
        let here = room_key(room);
        self.rooms.clear();
        self.rooms.insert(here.clone());
        // Our registered nick back first (the server renames us to it), so
        // the rooms see us under it; then keyed rooms with their key.
        if reconnect && let Some(identify) = self.remembered.identify() {
            self.reidentifying = true;
            self.dispatch(link, None, identify, ev).await;
        }
        for r in wanted.iter().filter(|r| **r != here) {
            let join = self.remembered.rejoin(r);
            self.dispatch(link, None, join, ev).await;
        }
        if reconnect && !wanted.is_empty() && !wanted.contains(&here) {
            // We had left the default room: leave it again.
            let leave = ClientMsg::Leave {
                room: room.to_owned(),
            };
            self.dispatch(link, None, leave, ev).await;
        }
    }

    /// Send one message of the user's on the live session, through the
    /// line bookkeeping (a line for a room being joined waits for it).
    async fn dispatch<L: Link>(
        &mut self,
        link: &mut L,
        id: Option<LineId>,
        msg: ClientMsg,
        ev: &Events,
    ) {
        self.remembered.note(&msg, &self.nick);
        let here = (self.nick.as_str(), &self.rooms);
        let Some(m) = self.lines.dispatch(id, msg, here, Instant::now()) else {
            return;
        };
        if let Err(why) = link.send(&m).await {
            let mut evs = Vec::new();
            self.lines.refused(id, &why, &mut evs);
            if evs.is_empty() {
                evs.push(SocketEvent::Local(format!("not sent: {why}")));
            }
            let _ = emit_all(ev, evs).await;
        }
    }

    /// A message from the server on the live session: keep nick and rooms
    /// in step, confirm / release / fail lines, and pass it on.
    async fn server<L: Link>(
        &mut self,
        link: &mut L,
        m: ServerMsg,
        ev: &Events,
    ) -> Result<(), UiGone> {
        if let ServerMsg::Transfer(x) = m {
            self.xfer.on_msg(x, Instant::now());
            return self.flush_xfer(link, ev).await;
        }
        match &m {
            ServerMsg::Welcome { nick, room, .. } => {
                self.xfer.session_lost();
                self.emit_xfer(ev).await?;
                // A new session on the same link (the UDP server forgot us
                // and welcomed our new Hello): what was in flight went to
                // the old one and fails; held lines wait for the rejoins.
                let mut evs = Vec::new();
                for r in self.lines.session_lost(&mut evs) {
                    self.rooms.insert(r);
                }
                emit_all(ev, evs).await?;
                let (nick, room) = (nick.clone(), room.clone());
                self.welcomed(link, &nick, &room, ev).await;
                emit(ev, SocketEvent::Server(m)).await?;
                self.xfer.resume();
                self.flush_xfer(link, ev).await?;
                for (id, q) in self.lines.take_queued() {
                    self.dispatch(link, id, q, ev).await;
                }
                return Ok(());
            }
            ServerMsg::Joined { room, nick } if *nick == self.nick => {
                self.rooms.insert(room_key(room));
            }
            ServerMsg::Left { room, nick, .. } if *nick == self.nick => {
                self.rooms.remove(&room_key(room));
            }
            ServerMsg::NickChanged { old, new } if *old == self.nick => {
                self.nick = new.clone();
            }
            ServerMsg::Notice { text } if text.starts_with("you are identified as ") => {
                self.reidentifying = false;
            }
            ServerMsg::Error {
                code: ErrorCode::BadPassword | ErrorCode::NotRegistered,
                ..
            } if self.reidentifying => {
                // The password typed in an earlier session no longer
                // works: the user types /identify again if they want.
                self.reidentifying = false;
                if let Some(ClientMsg::Identify { nick, .. }) = self.remembered.identify() {
                    self.remembered.forget_identify(&nick);
                }
            }
            _ => {}
        }
        let (mut send, mut evs) = (Vec::new(), Vec::new());
        self.lines.on_server(
            &m,
            &self.nick,
            &self.rooms,
            Instant::now(),
            &mut send,
            &mut evs,
        );
        for s in &send {
            if let Err(why) = link.send(s).await {
                evs.push(SocketEvent::Local(format!("not sent: {why}")));
            }
        }
        emit(ev, SocketEvent::Server(m)).await?;
        emit_all(ev, evs).await
    }

    /// The live session, from the Welcome until the link closes.
    async fn session<L: Link>(
        &mut self,
        link: &mut L,
        w: Welcome,
        cfg: &NetConfig,
        cmds: &mut mpsc::Receiver<NetCmd>,
        ev: &Events,
    ) -> Result<End, UiGone> {
        self.welcomed(link, &w.nick, &w.room, ev).await;
        emit(
            ev,
            SocketEvent::Server(ServerMsg::Welcome {
                nick: w.nick,
                room: w.room,
                server: w.server,
            }),
        )
        .await?;
        for u in w.early {
            self.up(link, u, ev).await?;
        }
        // Then what was typed while there was no session.
        for (id, m) in self.lines.take_queued() {
            self.dispatch(link, id, m, ev).await;
        }
        for f in std::mem::take(&mut self.faults) {
            link.fault(f).await;
        }
        // Our transfers the last session left paused or unanswered are
        // offered again (a receiver resumes from what it has).
        self.xfer.resume();
        for c in std::mem::take(&mut self.xfer_queued) {
            self.xfer.command(c, true);
        }
        self.flush_xfer(link, ev).await?;
        // A /quit waits for the lines typed before it (bounded: they
        // expire), so the user learns whether they were delivered.
        let mut quit_after = self.quit.take();
        let mut quitting = false;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let ping_every = cfg.ping_every.min(cfg.ping_timeout / 3).max(TICK);
        let mut next_ping = Instant::now() + ping_every;
        // When the oldest ping not yet answered left (None: all answered).
        let mut unanswered: Option<Instant> = None;
        loop {
            // A /quit also waits for our file transfers to end (done,
            // declined, failed: each ends by itself or with its peer).
            // A link that already ended (a /fault rst just before the
            // quit) cannot say it: its Closed comes next and is not a quit.
            if !quitting
                && !link.is_over()
                && !self.lines.unresolved()
                && !self.xfer.busy()
                && let Some(m) = quit_after.take()
            {
                quitting = true;
                link.quit(m).await;
            }
            // File chunks the windows allow, while the link is not backed up.
            let mut more_chunks = false;
            if !quitting && link.backlog() < MAX_CHUNK_BACKLOG {
                more_chunks = self.xfer.pump(Instant::now());
                self.flush_xfer(link, ev).await?;
            }
            let resend_at = self.xfer.deadline();
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                h = self.xfer.next_hashed() => {
                    self.xfer.hashed(h);
                    self.flush_xfer(link, ev).await?;
                }
                _ = tokio::time::sleep_until(resend_at.unwrap_or(far).into()), if resend_at.is_some() => {}
                _ = std::future::ready(()), if more_chunks && link.backlog() < MAX_CHUNK_BACKLOG => {}
                up = link.next() => match up {
                    Up::Closed(reason) => {
                        emit(ev, SocketEvent::Closed(reason)).await?;
                        if quitting {
                            return Ok(End::Quit);
                        }
                        // A quit asked for but not said is still wanted:
                        // the caller ends instead of reconnecting.
                        self.quit = self.quit.take().or(quit_after);
                        return Ok(End::Lost { healthy: false });
                    }
                    Up::Pong(rtt) => {
                        unanswered = None;
                        emit(ev, SocketEvent::Latency(rtt)).await?;
                    }
                    u => self.up(link, u, ev).await?,
                },
                cmd = cmds.recv(), if !quitting && quit_after.is_none() => match cmd {
                    None => return Ok(End::Quit),
                    Some(NetCmd::Quit(m)) => quit_after = Some(m),
                    Some(NetCmd::Send { id, msg }) => self.dispatch(link, id, msg, ev).await,
                    Some(NetCmd::Fault(f)) => link.fault(f).await,
                    Some(NetCmd::Transfer(c)) => {
                        self.xfer.command(c, true);
                        self.flush_xfer(link, ev).await?;
                    }
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    let mut evs = Vec::new();
                    self.lines.expire(now, cfg.ping_timeout, &mut evs);
                    emit_all(ev, evs).await?;
                    self.xfer.tick(now);
                    // A paused sender's offer may be due: send it.
                    self.flush_xfer(link, ev).await?;
                    if !link.can_hear() || quitting {
                        // Nothing can come back (we stopped reading, or
                        // sent our FIN): no ping is expected.
                        unanswered = None;
                        continue;
                    }
                    if let Some(at) = unanswered {
                        let waited = now.duration_since(at);
                        if waited >= cfg.ping_timeout {
                            return self.ping_timeout(cfg, ev).await;
                        }
                        let waiting_ms = waited.as_millis().min(u128::from(u64::MAX)) as u64;
                        emit(ev, SocketEvent::Lag { waiting_ms }).await?;
                    }
                    if now >= next_ping {
                        link.ping().await;
                        unanswered.get_or_insert(now);
                        next_ping = now + ping_every;
                    }
                }
            }
        }
    }

    /// The server answered no ping for the ping timeout: it is hung (or a
    /// middlebox ate the connection). End it; the link is dropped (closed).
    async fn ping_timeout(&mut self, cfg: &NetConfig, ev: &Events) -> Result<End, UiGone> {
        let secs = whole_secs(cfg.ping_timeout);
        emit(
            ev,
            SocketEvent::Local(format!(
                "no answer to our ping for {:.1} s: the server is hung or unreachable; closing",
                cfg.ping_timeout.as_secs_f64()
            )),
        )
        .await?;
        emit(
            ev,
            SocketEvent::Closed(CloseReason::Peer(DisconnectReason::IdleTimeout { secs })),
        )
        .await?;
        Ok(End::Lost { healthy: false })
    }

    /// Report what the transfers have to say (no session needed).
    async fn emit_xfer(&mut self, ev: &Events) -> Result<(), UiGone> {
        let (msgs, evs) = self.xfer.drain();
        // Without a session nothing can be sent (the server forgot them).
        drop(msgs);
        for e in evs {
            emit(ev, SocketEvent::Transfer(Box::new(e))).await?;
        }
        Ok(())
    }

    /// Send what the transfers have to send, and report their news.
    async fn flush_xfer<L: Link>(&mut self, link: &mut L, ev: &Events) -> Result<(), UiGone> {
        loop {
            let (msgs, evs) = self.xfer.drain();
            if msgs.is_empty() && evs.is_empty() {
                return Ok(());
            }
            for m in msgs {
                if let Err(why) = link.send(&m).await
                    && let ClientMsg::Transfer(x) = &m
                {
                    self.xfer.refused(x.id(), &why);
                }
            }
            for e in evs {
                emit(ev, SocketEvent::Transfer(Box::new(e))).await?;
            }
        }
    }

    /// One report of the link on the live session.
    async fn up<L: Link>(&mut self, link: &mut L, u: Up, ev: &Events) -> Result<(), UiGone> {
        match u {
            Up::Msg(m) => self.server(link, m, ev).await,
            other => self.report(other, ev).await,
        }
    }
}
