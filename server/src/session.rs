//! One user's session, whatever its transport: [`Session::handle`] takes a
//! decoded [`ClientMsg`] (registration, chat, commands, ping, quit, the
//! rate limit) and [`Session::end`] is the only place a session ends (the
//! one reason logged, rooms left and told, the nick freed, `Bye`). The TCP
//! session ([`crate::tcp`]) and the UDP transport ([`crate::udp`]) only
//! move bytes and decide *when* a session ends, so a command behaves the
//! same whichever socket it came in on.
//!
//! Who may come in is decided here too, the same for every transport: the
//! server password before `Hello`, registered nicks (`Identify`,
//! `Register`), nick bans, mutes, and the operators' commands (kick, ban,
//! mute, room keys and invitations: [`crate::operators`], [`crate::auth`]).
//!
//! **Invariant:** every session ends exactly once, in [`Session::end`],
//! with one [`DisconnectReason`] (the first recorded on its [`Peer`] wins).
//! **Invariant:** a password is never logged, echoed or kept: only
//! [`crate::auth`] sees it, to hash or verify it, on a blocking thread
//! ([`crate::password`]; the session is parked meanwhile).

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use sockchat_shared::ban::BanTarget;
use sockchat_shared::names::normalize_room;
use sockchat_shared::sanitize::sanitize;
use sockchat_shared::{
    ChatKind, ClientMsg, DisconnectReason, ErrorCode, ServerMsg, codec, fold, page, secret, udp,
};

use tracing::{debug, info, info_span};

use crate::auth::AuthError;
use crate::ctx::Ctx;
use crate::hub::{Format, HubError, Mute, Peer, Room, Transport};
use crate::limits::TokenBucket;
use crate::password::{Check, Verdict};

/// What [`Session::handle`] leaves to the transport.
#[derive(Debug)]
pub(crate) enum Step {
    Continue,
    /// A room message to fan out (TCP batches a read's worth per room).
    Chat(Arc<Room>, ServerMsg),
    /// End the session with this reason ([`Session::end`]).
    End(DisconnectReason),
    /// A password to check off the async threads ([`crate::password`]):
    /// the transport parks this session (its next messages wait, in order)
    /// until it hands the verdict to [`Session::resume`].
    Check(Check),
}

/// One user's session: its peer (outbox, nick, socket view), its rooms and
/// its rate limit.
pub(crate) struct Session {
    pub ctx: Arc<Ctx>,
    pub peer: Arc<Peer>,
    /// Rooms this user is in; the last one is the current room.
    rooms: Vec<Arc<Room>>,
    rate: RateLimit,
    registered: bool,
    /// The server password was given (or the server has none).
    passed: bool,
    /// The nick key this session proved it owns (`Identify`, `Register`).
    /// Boxed `str`: 8 bytes less per idle connection than a `String`.
    identified: Option<Box<str>>,
    /// A server operator (`/oper`, or an identified nick in
    /// `auth.operators`).
    oper: bool,
    /// Wrong passwords so far (server, nick, operator together).
    failures: u32,
}

/// Wrong passwords one session may give; the next one ends it
/// (`protocol-error`, "too many wrong passwords"): a password cannot be
/// guessed faster than connections can be opened.
pub(crate) const MAX_PASSWORD_FAILURES: u32 = 3;

/// Longest kick or ban reason kept, in characters.
const MAX_WHY: usize = 300;

/// Bans `/bans` lists one by one; the rest are counted.
const MAX_LISTED_BANS: usize = 100;

/// The `/bans` answer, one `Notice` each: a count, then the bans (oldest
/// first, at most [`MAX_LISTED_BANS`]), then how many were left out.
fn ban_list(bans: &[crate::operators::Ban], now: Instant) -> Vec<String> {
    if bans.is_empty() {
        return vec!["no bans".into()];
    }
    let mut lines = vec![format!("{} bans:", bans.len())];
    lines.extend(
        bans.iter()
            .take(MAX_LISTED_BANS)
            .map(|b| format!("  {}", b.describe(now))),
    );
    if bans.len() > MAX_LISTED_BANS {
        lines.push(format!("  ... and {} more", bans.len() - MAX_LISTED_BANS));
    }
    lines
}

/// Why a session could not take a nick: the error code and text the client
/// gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    code: ErrorCode,
    text: String,
}

impl Refused {
    fn new(code: ErrorCode, text: impl Into<String>) -> Self {
        Refused {
            code,
            text: text.into(),
        }
    }

    pub(crate) fn code(&self) -> ErrorCode {
        self.code
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<HubError> for Refused {
    fn from(e: HubError) -> Self {
        Refused::new(e.code(), e.to_string())
    }
}

/// What a user without the server password reads.
fn password_required(format: Format) -> Refused {
    Refused::new(
        ErrorCode::PasswordRequired,
        match format {
            Format::Text => "this server needs a password: type /pass PASSWORD",
            Format::Framed => "this server needs a password: send Pass, then Hello",
        },
    )
}

impl Session {
    pub(crate) fn new(ctx: Arc<Ctx>, peer: Arc<Peer>, now: Instant) -> Self {
        let rate = RateLimit::new(&ctx, now);
        let passed = !ctx.auth.needs_password();
        Session {
            ctx,
            peer,
            rooms: Vec::new(),
            rate,
            registered: false,
            passed,
            identified: None,
            oper: false,
            failures: 0,
        }
    }

    pub(crate) fn registered(&self) -> bool {
        self.registered
    }

    /// The connection's log span (conn_id, peer, transport, nick). Built
    /// when something is logged rather than held for the session's life:
    /// a live span costs the subscriber a few hundred bytes, most of an idle
    /// connection's budget.
    pub(crate) fn span(&self) -> tracing::Span {
        span(&self.peer)
    }

    /// A text user has just connected: welcome them as `guestN`, or, on a
    /// server with a password, tell them to type it first.
    pub(crate) fn greet_text(&mut self) {
        if !self.passed {
            self.peer.send(&ServerMsg::Notice {
                text: "this server needs a password: type /pass PASSWORD (over TLS if you can: plain TCP carries it in the clear)".into(),
            });
            return;
        }
        if let Err(e) = self.register("") {
            self.error(e.code(), e.to_string());
        }
    }

    /// May this session take `nick` (`""`: a guest nick)? Not when it is
    /// banned (or the address is), nor when it is registered to someone
    /// and this session has not identified for it.
    fn admit_nick(&self, nick: &str) -> Result<(), Refused> {
        let now = Instant::now();
        let named = (!nick.is_empty()).then_some(nick);
        if let Some(ban) = self.ctx.bans.find(named, self.peer.addr.ip(), now) {
            return Err(Refused::new(ErrorCode::Banned, ban.refusal(now)));
        }
        if let Some(owner) = named.and_then(|n| self.ctx.auth.registered(n))
            && self.identified.as_deref() != Some(fold::nick_key(nick).as_str())
        {
            let how = match self.peer.format {
                Format::Text => format!("/identify {owner} PASSWORD"),
                Format::Framed => format!("Identify {owner} PASSWORD"),
            };
            return Err(Refused::new(
                ErrorCode::NickRegistered,
                format!(
                    "nick {} is registered: identify first ({how}), or pick another nick",
                    shown(nick)
                ),
            ));
        }
        Ok(())
    }

    /// Take `wanted` (empty: `guestN`), send Welcome and join the default
    /// room. On error nothing is sent: the caller tells the client.
    pub(crate) fn register(&mut self, wanted: &str) -> Result<(), Refused> {
        if !self.passed {
            return Err(password_required(self.peer.format));
        }
        self.admit_nick(wanted)?;
        self.ctx.hub.register(&self.peer, wanted)?;
        self.registered = true;
        self.member().welcome_and_join();
        // One INFO line per session (its end); the rest is DEBUG, so a
        // churn of thousands of connections per second is not mostly logging.
        if tracing::enabled!(tracing::Level::DEBUG) {
            let _in = self.span().entered();
            debug!("registered");
        }
        Ok(())
    }

    fn member(&mut self) -> Member<'_> {
        Member {
            ctx: &self.ctx,
            peer: &self.peer,
            rooms: &mut self.rooms,
            oper: self.oper,
        }
    }

    fn notice(&self, text: impl Into<String>) {
        self.peer.send(&ServerMsg::Notice { text: text.into() });
    }

    /// One more wrong password: tell the user, and end the session past
    /// [`MAX_PASSWORD_FAILURES`].
    fn wrong_password(&mut self, text: String) -> Step {
        self.failures += 1;
        self.error(ErrorCode::BadPassword, text);
        if self.failures >= MAX_PASSWORD_FAILURES {
            return Step::End(DisconnectReason::ProtocolError {
                detail: format!("too many wrong passwords ({MAX_PASSWORD_FAILURES})"),
            });
        }
        Step::Continue
    }

    /// `Pass`: the server password.
    fn pass(&mut self, password: &str) -> Step {
        if self.registered || self.passed {
            self.notice("no password needed: you are in");
            return Step::Continue;
        }
        Step::Check(Check::Server {
            password: password.to_string(),
        })
    }

    /// The answer to a [`Step::Check`]: what the password proved.
    pub(crate) fn resume(&mut self, verdict: Verdict) -> Step {
        match verdict {
            Verdict::Server(ok) => self.passed(ok),
            Verdict::Identify { nick, result } => self.identified(nick, result),
            Verdict::Register { nick, result } => {
                self.registered_nick(&nick, result);
                Step::Continue
            }
            Verdict::Oper(ok) => self.opered(ok),
            Verdict::Unavailable => {
                self.error(
                    ErrorCode::NotPermitted,
                    "the server could not check the password; try again",
                );
                Step::Continue
            }
        }
    }

    /// After `Pass`: the server password was `ok`?
    fn passed(&mut self, ok: bool) -> Step {
        if !ok {
            return self.wrong_password("wrong server password".into());
        }
        self.passed = true;
        self.notice("password accepted");
        if self.peer.format == Format::Text
            && let Err(e) = self.register("")
        {
            self.error(e.code(), e.to_string());
        }
        Step::Continue
    }

    /// `Identify`: prove this session owns a registered nick; after
    /// `Hello` it is then renamed to it.
    fn identify(&mut self, nick: &str, password: &str) -> Step {
        if !self.passed {
            let e = password_required(self.peer.format);
            self.error(e.code(), e.to_string());
            return Step::Continue;
        }
        let nick = if nick.is_empty() {
            if !self.registered {
                self.error(
                    ErrorCode::BadCommand,
                    "say which nick: Identify NICK PASSWORD before Hello",
                );
                return Step::Continue;
            }
            self.peer.nick().to_string()
        } else {
            nick.to_string()
        };
        Step::Check(Check::Identify {
            nick,
            password: password.to_string(),
        })
    }

    /// After `Identify`: `nick`'s key, or why not.
    fn identified(&mut self, nick: String, result: Result<String, AuthError>) -> Step {
        let key = match result {
            Ok(k) => k,
            Err(AuthError::BadPassword(_)) => {
                return self.wrong_password(format!("wrong password for {}", shown(&nick)));
            }
            Err(e) => {
                self.error(ErrorCode::NotRegistered, shown(&e.to_string()));
                return Step::Continue;
            }
        };
        self.identified = Some(key.as_str().into());
        self.notice(format!("you are identified as {}", shown(&nick)));
        if self.ctx.auth.is_operator(&key) && !self.oper {
            self.oper = true;
            self.notice("you are a server operator");
        }
        if self.registered && fold::nick_key(&self.peer.nick()) != key {
            self.member().command(ClientMsg::Nick { nick });
        }
        Step::Continue
    }

    /// `Register`: register the current nick to this session.
    fn register_nick(&mut self, password: &str) -> Step {
        Step::Check(Check::Register {
            nick: self.peer.nick().to_string(),
            password: password.to_string(),
        })
    }

    /// After `Register`: `nick`'s key, or why not.
    fn registered_nick(&mut self, nick: &str, result: Result<String, AuthError>) {
        match result {
            Ok(key) => {
                info!(parent: &self.span(), "nick registered");
                self.notice(format!(
                    "{nick} is registered to you: from now on identify first (/identify {nick} PASSWORD)"
                ));
                if self.ctx.auth.is_operator(&key) && !self.oper {
                    self.oper = true;
                    self.notice("you are a server operator");
                }
                self.identified = Some(key.into_boxed_str());
            }
            Err(e) => {
                let code = match e {
                    AuthError::AlreadyRegistered(_) => ErrorCode::NickRegistered,
                    AuthError::Secret(_) => ErrorCode::BadCommand,
                    AuthError::Guest(_) => ErrorCode::BadName,
                    _ => ErrorCode::NotPermitted,
                };
                self.error(code, e.to_string());
            }
        }
    }

    /// `Oper`.
    fn oper(&mut self, password: &str) -> Step {
        Step::Check(Check::Oper {
            password: password.to_string(),
        })
    }

    /// After `Oper`: the operator password was `ok`?
    fn opered(&mut self, ok: bool) -> Step {
        if ok {
            if !self.oper {
                info!(parent: &self.span(), "became an operator");
            }
            self.oper = true;
            self.notice("you are a server operator");
            return Step::Continue;
        }
        self.wrong_password("wrong operator password (or none is set on this server)".into())
    }

    /// An operator command from someone who is not one: tell them.
    fn not_oper(&self, cmd: &str) -> bool {
        if !self.oper {
            self.error(
                ErrorCode::NotPermitted,
                format!("{cmd} is for server operators (/oper PASSWORD)"),
            );
        }
        !self.oper
    }

    /// The operator's reason, as the rooms will read it.
    fn why(typed: &str) -> String {
        let clean = sanitize(typed.trim());
        match clean.char_indices().nth(MAX_WHY) {
            Some((cut, _)) => clean[..cut].to_string(),
            None => clean.into_owned(),
        }
    }

    /// Kick, Ban, Unban, Mute, Unmute (server operators only).
    fn operate(&mut self, msg: ClientMsg) {
        let me = self.peer.nick().to_string();
        let hub = self.ctx.hub.clone();
        let now = Instant::now();
        let find = |nick: &str| {
            let t = hub.find(nick);
            if t.is_none() {
                error(
                    &self.peer,
                    ErrorCode::NoSuchNick,
                    format!("no such nick: {}", shown(nick)),
                );
            }
            t
        };
        match msg {
            ClientMsg::Kick { nick, reason } => {
                if self.not_oper("/kick") {
                    return;
                }
                let Some(t) = find(&nick) else { return };
                let why = Self::why(&reason);
                info!(parent: &self.span(), target = %t.nick(), %why, "kick");
                t.remove(DisconnectReason::Kicked { by: me, why });
                self.notice(format!("kicked {}", t.nick()));
            }
            ClientMsg::Ban {
                target,
                secs,
                reason,
            } => {
                if self.not_oper("/ban") {
                    return;
                }
                if target.trim().is_empty() || secs > sockchat_shared::text::MAX_SECS {
                    return self.error(
                        ErrorCode::BadCommand,
                        "usage: /ban NICK|ADDR|CIDR [TIME] [REASON] (TIME at most 365d)",
                    );
                }
                let t = BanTarget::parse(&target);
                let why = Self::why(&reason);
                let ban = self.ctx.bans.ban(t.clone(), &me, &why, secs, now);
                info!(parent: &self.span(), target = %t, secs, %why, "ban");
                let ended = crate::operators::end_banned(&hub, &ban);
                let time = if secs == 0 {
                    "until /unban".to_string()
                } else {
                    format!("for {secs} s")
                };
                self.notice(format!("banned {t} {time} ({ended} sessions ended)"));
            }
            ClientMsg::Unban { target } => {
                if self.not_oper("/unban") {
                    return;
                }
                let t = BanTarget::parse(&target);
                if self.ctx.bans.unban(&t, now) {
                    info!(parent: &self.span(), target = %t, "unban");
                    self.notice(format!("unbanned {t}"));
                } else {
                    self.error(ErrorCode::BadCommand, format!("no ban on {t}"));
                }
            }
            ClientMsg::Bans => {
                if self.not_oper("/bans") {
                    return;
                }
                for text in ban_list(&self.ctx.bans.live(now), now) {
                    self.notice(text);
                }
            }
            ClientMsg::Mute { nick, secs } => {
                if self.not_oper("/mute") {
                    return;
                }
                let Some(t) = find(&nick) else { return };
                let until =
                    (secs > 0).then(|| now + std::time::Duration::from_secs(u64::from(secs)));
                t.set_mute(Some(Mute {
                    by: me.clone(),
                    until,
                }));
                info!(parent: &self.span(), target = %t.nick(), secs, "mute");
                let time = if secs == 0 {
                    String::new()
                } else {
                    format!(" for {secs} s")
                };
                t.send(&ServerMsg::Notice {
                    text: format!("you are muted by {me}{time}: your messages are refused"),
                });
                self.notice(format!("muted {}{time}", t.nick()));
            }
            ClientMsg::Unmute { nick } => {
                if self.not_oper("/unmute") {
                    return;
                }
                let Some(t) = find(&nick) else { return };
                t.set_mute(None);
                t.send(&ServerMsg::Notice {
                    text: format!("{me} unmuted you"),
                });
                self.notice(format!("unmuted {}", t.nick()));
            }
            _ => {}
        }
    }

    /// Refuse chat from a muted member (true: refused, and told).
    fn refuse_muted(&self) -> bool {
        let Some(m) = self.peer.muted() else {
            return false;
        };
        let left = match m.until {
            Some(u) => format!(
                ", {} s left",
                u.saturating_duration_since(Instant::now()).as_secs().max(1)
            ),
            None => String::new(),
        };
        self.error(
            ErrorCode::Muted,
            format!("you are muted (by {}{left}): message not sent", m.by),
        );
        true
    }

    fn error(&self, code: ErrorCode, text: impl Into<String>) {
        error(&self.peer, code, text);
    }

    /// Handle one message from the client.
    pub(crate) fn handle(&mut self, msg: ClientMsg) -> Step {
        if !self.registered {
            return self.handle_unregistered(msg);
        }
        // Pings, pongs, hellos and quit are free; everything else costs a token.
        // So do a transfer's messages after its offer: they are paced by
        // the transfer's window, not by a chat rate.
        if !matches!(
            msg,
            ClientMsg::Ping { .. }
                | ClientMsg::Pong { .. }
                | ClientMsg::Hello { .. }
                | ClientMsg::Quit { .. }
        ) && !crate::transfer::is_paced(&msg)
        {
            match self.rate.check(&self.ctx, &self.peer) {
                Rate::Allowed => {}
                Rate::Dropped => return Step::Continue,
                Rate::Exceeded => return Step::End(DisconnectReason::RateLimited),
            }
        }
        match msg {
            ClientMsg::Hello { .. } if self.peer.transport == Transport::Udp => {
                // Our Welcome was lost and the client asks again: repeat it
                // (the nick stays; a different one in this Hello is ignored).
                self.peer.send(&ServerMsg::Welcome {
                    nick: self.peer.nick().to_string(),
                    room: self
                        .rooms
                        .last()
                        .map(|r| r.name.to_string())
                        .unwrap_or_default(),
                    server: self.ctx.server_name.clone(),
                });
            }
            ClientMsg::Hello { .. } => self.error(ErrorCode::BadCommand, "already registered"),
            ClientMsg::Say { .. } | ClientMsg::Me { .. } | ClientMsg::Private { .. }
                if self.refuse_muted() => {}
            ClientMsg::Nick { nick } => match self.admit_nick(&nick) {
                Ok(()) => self.member().command(ClientMsg::Nick { nick }),
                Err(e) => self.error(e.code(), e.to_string()),
            },
            ClientMsg::Pass { password } => return self.pass(&password),
            ClientMsg::Identify { nick, password } => return self.identify(&nick, &password),
            ClientMsg::Register { password } => return self.register_nick(&password),
            ClientMsg::Oper { password } => return self.oper(&password),
            m @ (ClientMsg::Kick { .. }
            | ClientMsg::Ban { .. }
            | ClientMsg::Unban { .. }
            | ClientMsg::Bans
            | ClientMsg::Mute { .. }
            | ClientMsg::Unmute { .. }) => self.operate(m),
            ClientMsg::Stats => {
                // A dozen short pairs: one frame, one datagram.
                if !self.not_oper("/stats") {
                    let fields = crate::stats::render::fields(&crate::stats::snapshot(&self.ctx));
                    self.peer.send(&ServerMsg::Stats { fields });
                }
            }
            ClientMsg::Ping { token } => self.peer.send(&ServerMsg::Pong { token }),
            ClientMsg::Pong { .. } => {}
            ClientMsg::Quit { message } => return Step::End(quit_reason(&self.ctx, &message)),
            ClientMsg::Say { room, text } => return self.chat(&room, text, ChatKind::Say),
            ClientMsg::Me { room, text } => return self.chat(&room, text, ChatKind::Me),
            ClientMsg::Transfer(x) => self.ctx.transfers.handle(&self.ctx.hub, &self.peer, x),
            other => self.member().command(other),
        }
        Step::Continue
    }

    fn handle_unregistered(&mut self, msg: ClientMsg) -> Step {
        match msg {
            ClientMsg::Hello { nick } => {
                if let Err(e) = self.register(&nick) {
                    self.error(e.code(), e.to_string());
                }
            }
            ClientMsg::Ping { token } => self.peer.send(&ServerMsg::Pong { token }),
            ClientMsg::Pong { .. } => {}
            ClientMsg::Quit { message } => return Step::End(quit_reason(&self.ctx, &message)),
            ClientMsg::Pass { password } => return self.pass(&password),
            ClientMsg::Identify { nick, password } => return self.identify(&nick, &password),
            _ if !self.passed => {
                let e = password_required(self.peer.format);
                self.error(e.code(), e.to_string());
            }
            _ => self.error(ErrorCode::BadCommand, "send Hello first"),
        }
        Step::Continue
    }

    fn chat(&mut self, room: &str, text: String, kind: ChatKind) -> Step {
        match self.member().chat(room, text, kind) {
            Some((room, msg)) => Step::Chat(room, msg),
            None => Step::Continue,
        }
    }

    /// End the session: record the reason (the first one recorded on the
    /// peer wins; that one is returned), log it (the session's one INFO
    /// line), leave every room and tell the members (not during a server
    /// shutdown: everyone gets their own Bye then), free the nick, and queue
    /// `Bye` when `bye` (the transport knows whether the client can still
    /// read it). Closing the socket is the transport's.
    pub(crate) fn end(&mut self, reason: DisconnectReason, bye: bool) -> DisconnectReason {
        self.peer.set_reason(reason);
        let reason = self.peer.reason().unwrap_or_else(DisconnectReason::quit);
        {
            let _in = self.span().entered();
            info!(
                reason = %reason,
                code = %reason.code(),
                errno = reason.errno(),
                registered = self.registered,
                "disconnected"
            );
        }
        let server_shutdown = reason == DisconnectReason::ServerShutdown;
        // UDP has no FIN: a UDP user who went silent is only ever a timeout,
        // and the text line says so.
        let no_fin = self.peer.transport == Transport::Udp
            && matches!(reason, DisconnectReason::IdleTimeout { .. });
        let hub = self.ctx.hub.clone();
        for r in std::mem::take(&mut self.rooms) {
            if no_fin {
                hub.leave(&self.peer, &r, Some(&reason), false, false);
                let left = ServerMsg::Left {
                    room: r.name.to_string(),
                    nick: self.peer.nick().to_string(),
                    reason: Some(reason.clone()),
                };
                let line = format!(
                    "* {} left {}: {reason} — UDP has no FIN",
                    self.peer.nick(),
                    r.name
                );
                r.broadcast_with_text(&left, &line, Some(self.peer.id));
            } else {
                hub.leave(&self.peer, &r, Some(&reason), !server_shutdown, false);
            }
        }
        self.ctx.transfers.peer_gone(&self.peer);
        if self.registered {
            hub.unregister(&self.peer);
            self.registered = false;
        }
        hub.counters().session_ended(
            matches!(reason, DisconnectReason::SlowConsumer { .. }),
            self.peer.outbox.dropped(),
        );
        if bye {
            let msg = ServerMsg::Bye {
                reason: reason.clone(),
            };
            if let Some(b) = crate::hub::encode(&msg, self.peer.format) {
                self.peer.outbox.push_force(b);
            }
        }
        reason
    }
}

/// The log span of a session (see [`Session::span`]).
pub(crate) fn span(peer: &Peer) -> tracing::Span {
    info_span!("conn", conn_id = peer.id, peer = %peer.addr, transport = peer.transport.as_str(), nick = %peer.nick())
}

/// The per-session message rate limit (off with `--no-rate-limits`): a
/// token bucket and the count of refusals in a row.
#[derive(Debug)]
struct RateLimit {
    bucket: Option<TokenBucket>,
    /// Rate-limited commands in a row.
    strikes: u32,
}

/// What [`RateLimit::check`] decided about one command.
#[derive(Debug, PartialEq, Eq)]
enum Rate {
    Allowed,
    /// Refused (the user was told on the first refusal); the session goes on.
    Dropped,
    /// `limits.rate_limit_strikes` refusals in a row: end the session with
    /// `rate-limited`.
    Exceeded,
}

impl RateLimit {
    fn new(ctx: &Ctx, now: Instant) -> Self {
        let l = &ctx.settings.config.limits;
        RateLimit {
            bucket: (!ctx.settings.no_rate_limits)
                .then(|| TokenBucket::new(l.messages_per_sec, l.burst, now)),
            strikes: 0,
        }
    }

    /// Take a token for one command. The first refusal of a run tells the
    /// user; the run's length decides whether the session ends.
    fn check(&mut self, ctx: &Ctx, peer: &Peer) -> Rate {
        let Some(bucket) = &mut self.bucket else {
            return Rate::Allowed;
        };
        if bucket.try_take(Instant::now()) {
            self.strikes = 0;
            return Rate::Allowed;
        }
        self.strikes += 1;
        let l = &ctx.settings.config.limits;
        if self.strikes >= l.rate_limit_strikes {
            return Rate::Exceeded;
        }
        if self.strikes == 1 {
            error(
                peer,
                ErrorCode::RateLimited,
                format!(
                    "rate limited: slow down (at most {} messages/s); message dropped",
                    l.messages_per_sec
                ),
            );
        }
        Rate::Dropped
    }
}

/// The reason for a `Quit`: its message sanitised (as chat text is) and cut
/// to `limits.max_message_len` bytes at a character boundary (the user is
/// leaving: there is no one to send an error to). Rooms see it in `Left`.
fn quit_reason(ctx: &Ctx, message: &str) -> DisconnectReason {
    let message = sanitize(message.trim());
    let mut end = message
        .len()
        .min(ctx.settings.config.limits.max_message_len);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    DisconnectReason::Quit {
        message: message[..end].to_string(),
    }
}

/// A name the user typed, as an error text shows it back: sanitised and
/// cut to [`SHOWN_MAX`] characters (with `…`), so the error for a
/// 65,535-byte "nick" is not itself a frame over the limit.
fn shown(typed: &str) -> String {
    let clean = sanitize(typed);
    match clean.char_indices().nth(SHOWN_MAX) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean.into_owned(),
    }
}

/// Characters of a typed name an error text repeats (far above any valid
/// nick or room name, which are at most 255).
const SHOWN_MAX: usize = 300;

/// [`Member::send_list`] for `peer` (`udp_max_payload`: `udp.max_payload`).
fn send_list(peer: &Peer, udp_max_payload: usize, msg: ServerMsg) {
    if peer.format == Format::Text {
        return peer.send(&msg);
    }
    let max = match peer.transport {
        Transport::Tcp => page::MAX_SERVER_FRAME,
        Transport::Udp => udp_max_payload.saturating_sub(udp::HEADER_LEN),
    };
    let mut chunk = BytesMut::new();
    for p in page::paginate(msg, max) {
        codec::encode_server(&p, &mut chunk);
    }
    peer.deliver(chunk.freeze());
}

fn error(peer: &Peer, code: ErrorCode, text: impl Into<String>) {
    peer.send(&ServerMsg::Error {
        code,
        text: text.into(),
    });
}

/// One registered user as the commands see it, borrowed from its
/// [`Session`] for the length of one command.
struct Member<'a> {
    ctx: &'a Ctx,
    peer: &'a Arc<Peer>,
    /// Rooms this user is in; the last one is the current room.
    rooms: &'a mut Vec<Arc<Room>>,
    /// A server operator: passes room gates, may set any room's key.
    oper: bool,
}

impl Member<'_> {
    fn error(&self, code: ErrorCode, text: impl Into<String>) {
        error(self.peer, code, text);
    }

    fn notice(&self, text: impl Into<String>) {
        self.peer.send(&ServerMsg::Notice { text: text.into() });
    }

    /// A list reply (Who, Rooms, SockInfo). A framed member gets it in
    /// pages that each fit its transport's unit (a TCP frame of at most
    /// [`page::MAX_SERVER_FRAME`], or one UDP datagram), queued as one
    /// chunk so nothing comes between the pages; a text user gets one line
    /// however long (text mode has no frame limit).
    fn send_list(&self, msg: ServerMsg) {
        send_list(self.peer, self.ctx.settings.config.udp.max_payload, msg);
    }

    fn find_joined(&self, typed: &str) -> Option<usize> {
        let name = normalize_room(typed);
        self.rooms.iter().position(|r| &*r.name == name)
    }

    /// The room a Say/Me refers to: `""` = current room.
    fn target_room(&self, typed: &str) -> Result<Arc<Room>, String> {
        if typed.is_empty() {
            return self
                .rooms
                .last()
                .cloned()
                .ok_or_else(|| "you are not in a room (/join ROOM)".to_string());
        }
        match self.find_joined(typed) {
            Some(i) => Ok(self.rooms[i].clone()),
            None => Err(format!("you are not in {}", shown(normalize_room(typed)))),
        }
    }

    fn check_len(&self, text: &str) -> bool {
        let max = self.ctx.settings.config.limits.max_message_len;
        if text.len() > max {
            self.error(
                ErrorCode::MessageTooLong,
                format!("message too long ({} bytes, max {max})", text.len()),
            );
            false
        } else {
            true
        }
    }

    /// Send Welcome and join the default room (a just-registered user).
    fn welcome_and_join(&mut self) {
        let room = self.ctx.settings.config.server.default_room.clone();
        self.peer.send(&ServerMsg::Welcome {
            nick: self.peer.nick().to_string(),
            room: room.clone(),
            server: self.ctx.server_name.clone(),
        });
        if let Some(c) = &self.ctx.cluster {
            self.notice(c.describe());
        }
        match self.ctx.hub.join(self.peer, &room) {
            Ok(r) => self.rooms.push(r),
            Err(e) => self.error(e.code(), e.to_string()),
        }
    }

    /// A Say/Me (rate limit already taken): the sanitized room message and
    /// the room it goes to, or `None` when the user was told why not. The
    /// transport fans it out (TCP batches a read's worth, UDP sends each).
    fn chat(&self, room: &str, text: String, kind: ChatKind) -> Option<(Arc<Room>, ServerMsg)> {
        if !self.check_len(&text) {
            return None;
        }
        let room = match self.target_room(room) {
            Ok(r) => r,
            Err(t) => {
                self.error(ErrorCode::NotInRoom, t);
                return None;
            }
        };
        let text = match sanitize(&text) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(s) => s,
        };
        let msg = ServerMsg::Chat {
            room: room.name.to_string(),
            from: self.peer.nick().to_string(),
            text,
            kind,
            ts_ms: sockchat_shared::now_ms(),
            history: false,
        };
        Some((room, msg))
    }

    /// Nick, Join, Leave, Private, Who, Rooms, SockInfo (rate limit already
    /// taken). The session-level messages (Hello, Say, Me, Ping, Pong,
    /// Quit) are the transport's and are ignored here.
    fn command(&mut self, msg: ClientMsg) {
        let hub = self.ctx.hub.clone();
        match msg {
            ClientMsg::Nick { nick } => match hub.rename(self.peer, &nick) {
                Ok(old) => {
                    let new = self.peer.nick();
                    if *old != *new {
                        let m = ServerMsg::NickChanged {
                            old: old.to_string(),
                            new: new.to_string(),
                        };
                        hub.tell_rooms(self.rooms, &m, self.peer);
                    }
                }
                Err(e) => self.error(e.code(), e.to_string()),
            },
            ClientMsg::Join { room } => self.join(&room, None),
            ClientMsg::JoinKey { room, key } => {
                if let Err(e) = secret::check_room_key(&key) {
                    return self.error(ErrorCode::BadCommand, e.to_string());
                }
                self.join(&room, Some(&key));
            }
            m @ (ClientMsg::Invite { .. }
            | ClientMsg::RoomKey { .. }
            | ClientMsg::InviteOnly { .. }) => self.room_setting(m),
            ClientMsg::Topic { room, text } => self.topic(&room, text),
            ClientMsg::Leave { room } => {
                let idx = if room.is_empty() {
                    self.rooms.len().checked_sub(1)
                } else {
                    self.find_joined(&room)
                };
                match idx {
                    Some(i) => {
                        let r = self.rooms.remove(i);
                        hub.leave(self.peer, &r, None, true, true);
                    }
                    None if room.is_empty() => {
                        self.error(ErrorCode::NotInRoom, "you are not in a room")
                    }
                    // Name the room (as `Say` does): the user may have
                    // typed it, or a client may have sent the one in view.
                    None => self.error(
                        ErrorCode::NotInRoom,
                        format!("you are not in {}", shown(normalize_room(&room))),
                    ),
                }
            }
            ClientMsg::Private { to, text } => {
                if !self.check_len(&text) {
                    return;
                }
                let text = sanitize(&text).into_owned();
                let (m, away) = match hub.find(&to) {
                    Some(target) => {
                        let m = ServerMsg::Private {
                            from: self.peer.nick().to_string(),
                            to: target.nick().to_string(),
                            text,
                            ts_ms: sockchat_shared::now_ms(),
                        };
                        target.send(&m);
                        self.ctx.hub.counters().fan_out(1, 1);
                        let away = target.away().map(|text| ServerMsg::Away {
                            nick: target.nick().to_string(),
                            text: text.to_string(),
                        });
                        ((target.id != self.peer.id).then_some(m), away)
                    }
                    // Cluster mode: a nick on another node.
                    None => match self
                        .ctx
                        .cluster
                        .as_ref()
                        .and_then(|c| c.private(self.peer, &to, &text))
                    {
                        Some(m) => (Some(m), None),
                        None => {
                            return self.error(
                                ErrorCode::NoSuchNick,
                                format!("no such nick: {}", shown(&to)),
                            );
                        }
                    },
                };
                // The sender learns it was delivered: a framed client gets
                // the message back (with the server's timestamp), a text
                // user the line `[pm] -> bob: text`.
                if let Some(m) = m {
                    match self.peer.format {
                        Format::Framed => self.peer.send(&m),
                        Format::Text => {
                            if let Some(mut line) = crate::text::render_for(&m, &self.peer.nick()) {
                                line.push('\n');
                                self.peer.deliver(Bytes::from(line));
                            }
                        }
                    }
                }
                // ... and that nobody may read it soon (after the echo).
                if let Some(a) = away {
                    self.peer.send(&a);
                }
            }
            ClientMsg::Away { text } => {
                if !self.check_len(&text) {
                    return;
                }
                let text = sanitize(&text).into_owned();
                self.peer
                    .set_away((!text.is_empty()).then(|| Arc::from(text.as_str())));
                self.peer.send(&ServerMsg::Away {
                    nick: self.peer.nick().to_string(),
                    text,
                });
            }
            ClientMsg::Who { room } => {
                let r = if room.is_empty() {
                    self.rooms.last().cloned()
                } else {
                    hub.room(&room)
                };
                match r {
                    Some(r) => {
                        self.send_list(ServerMsg::Who {
                            room: r.name.to_string(),
                            nicks: r.who(),
                        });
                        // The away marks follow the reply's last page.
                        for a in r.away() {
                            self.peer.send(&a);
                        }
                    }
                    None if room.is_empty() => {
                        self.error(ErrorCode::NotInRoom, "you are not in a room (/join ROOM)")
                    }
                    // Cluster mode: a room only other nodes have.
                    None if let Some(nicks) = hub.remote_who(&room) => {
                        self.send_list(ServerMsg::Who {
                            room: normalize_room(&room).to_string(),
                            nicks,
                        })
                    }
                    None => self.error(
                        ErrorCode::NoSuchRoom,
                        format!("no such room: {}", shown(&room)),
                    ),
                }
            }
            ClientMsg::Rooms => {
                let rooms = hub.rooms();
                // The topics follow the reply's last page (sorted by room,
                // as the reply is).
                let topics: Vec<ServerMsg> = rooms
                    .iter()
                    .filter_map(|r| {
                        let (text, by) = hub.room(&r.name)?.topic()?;
                        Some(ServerMsg::Topic {
                            room: r.name.clone(),
                            text,
                            by,
                            changed: false,
                        })
                    })
                    .collect();
                self.send_list(ServerMsg::Rooms { rooms });
                for t in &topics {
                    self.peer.send(t);
                }
            }
            ClientMsg::SockInfo { nick } => {
                let target = if nick.is_empty() {
                    Some(self.peer.clone())
                } else {
                    hub.find(&nick)
                };
                match target {
                    Some(t) => self.send_list(ServerMsg::SockInfo {
                        nick: t.nick().to_string(),
                        // Operators see addresses too (to /ban them).
                        fields: self
                            .ctx
                            .access
                            .sockinfo_for(t.sockinfo(), t.id == self.peer.id || self.oper),
                    }),
                    None => {
                        // Cluster mode: the node holding the nick answers.
                        let (peer, udp_max) =
                            (self.peer.clone(), self.ctx.settings.config.udp.max_payload);
                        let asked = self.ctx.cluster.as_ref().is_some_and(|c| {
                            c.sockinfo(&nick, move |m| send_list(&peer, udp_max, m))
                        });
                        if !asked {
                            self.error(
                                ErrorCode::NoSuchNick,
                                format!("no such nick: {}", shown(&nick)),
                            )
                        }
                    }
                }
            }
            ClientMsg::Hello { .. }
            | ClientMsg::Say { .. }
            | ClientMsg::Me { .. }
            | ClientMsg::Ping { .. }
            | ClientMsg::Pong { .. }
            | ClientMsg::Quit { .. }
            | ClientMsg::Transfer(_)
            | ClientMsg::Pass { .. }
            | ClientMsg::Register { .. }
            | ClientMsg::Identify { .. }
            | ClientMsg::Oper { .. }
            | ClientMsg::Kick { .. }
            | ClientMsg::Ban { .. }
            | ClientMsg::Unban { .. }
            | ClientMsg::Bans
            | ClientMsg::Mute { .. }
            | ClientMsg::Unmute { .. }
            | ClientMsg::Stats => {}
        }
    }

    /// Join (or make current) a room, through its gate with `key`.
    fn join(&mut self, room: &str, key: Option<&str>) {
        let hub = self.ctx.hub.clone();
        let name = match hub.room_name(room) {
            Ok(n) => n,
            Err(e) => return self.error(e.code(), e.to_string()),
        };
        if let Some(i) = self.find_joined(name) {
            let r = self.rooms.remove(i);
            self.notice(format!("now talking in {}", r.name));
            self.rooms.push(r);
            return;
        }
        let max = self.ctx.settings.config.limits.max_rooms_per_user;
        if self.rooms.len() >= max {
            return self.error(
                ErrorCode::TooManyRooms,
                format!("you are in too many rooms (max {max}); /leave one first"),
            );
        }
        match hub.join_with(self.peer, name, key, self.oper) {
            Ok(r) => self.rooms.push(r),
            Err(e) => self.error(e.code(), e.to_string()),
        }
    }

    /// The room a room command names (`""`: the current room), or `None`
    /// when the user was told there is none.
    fn named_room(&self, typed: &str) -> Option<Arc<Room>> {
        let room = if typed.is_empty() {
            self.rooms.last().cloned()
        } else {
            self.ctx.hub.room(typed)
        };
        if room.is_none() {
            if typed.is_empty() {
                self.error(ErrorCode::NotInRoom, "you are not in a room (/join ROOM)")
            } else {
                self.error(
                    ErrorCode::NoSuchRoom,
                    format!("no such room: {}", shown(typed)),
                )
            }
        }
        room
    }

    /// `Topic`: show it (any existing room), or set or clear it (a member
    /// who is the room's or a server operator; the default room's only a
    /// server operator), told to every member.
    fn topic(&mut self, typed: &str, text: Option<String>) {
        let Some(room) = self.named_room(typed) else {
            return;
        };
        let Some(text) = text else {
            let (text, by) = room.topic().unwrap_or_default();
            return self.peer.send(&ServerMsg::Topic {
                room: room.name.to_string(),
                text,
                by,
                changed: false,
            });
        };
        if self.find_joined(&room.name).is_none() {
            return self.error(
                ErrorCode::NotInRoom,
                format!("you are not in {}", room.name),
            );
        }
        let default = &*room.name == self.ctx.settings.config.server.default_room.as_str();
        if !self.oper && (default || !room.is_op(self.peer)) {
            let who = if default {
                format!("the topic of {} is set by server operators", room.name)
            } else {
                format!(
                    "only {}'s operator (who created it) or a server operator may set its topic",
                    room.name
                )
            };
            return self.error(ErrorCode::NotPermitted, who);
        }
        let text = sanitize(text.trim()).into_owned();
        if text.len() > sockchat_shared::MAX_TOPIC_LEN {
            return self.error(
                ErrorCode::MessageTooLong,
                format!(
                    "topic too long ({} bytes, max {})",
                    text.len(),
                    sockchat_shared::MAX_TOPIC_LEN
                ),
            );
        }
        let me = self.peer.nick().to_string();
        room.set_topic((!text.is_empty()).then(|| (text.clone(), me.clone())));
        info!(parent: &span(self.peer), room = %room.name, cleared = text.is_empty(), "topic");
        room.broadcast(
            &ServerMsg::Topic {
                room: room.name.to_string(),
                text,
                by: me,
                changed: true,
            },
            None,
        );
    }

    /// Invite, RoomKey, InviteOnly: the room's operator (who created it)
    /// or a server operator; the default room stays open.
    fn room_setting(&mut self, msg: ClientMsg) {
        let hub = self.ctx.hub.clone();
        let typed = match &msg {
            ClientMsg::Invite { room, .. }
            | ClientMsg::RoomKey { room, .. }
            | ClientMsg::InviteOnly { room, .. } => room.clone(),
            _ => return,
        };
        let Some(room) = self.named_room(&typed) else {
            return;
        };
        if !self.oper && !room.is_op(self.peer) {
            return self.error(
                ErrorCode::NotPermitted,
                format!(
                    "only {}'s operator (who created it) or a server operator may do that",
                    room.name
                ),
            );
        }
        let me = self.peer.nick();
        let default = &*room.name == self.ctx.settings.config.server.default_room.as_str();
        match msg {
            ClientMsg::Invite { nick, .. } => {
                let Some(t) = hub.find(&nick) else {
                    return self.error(
                        ErrorCode::NoSuchNick,
                        format!("no such nick: {}", shown(&nick)),
                    );
                };
                room.invite(&t.nick());
                t.send(&ServerMsg::Notice {
                    text: format!("{me} invites you to {}: /join {}", room.name, room.name),
                });
                self.notice(format!("invited {} to {}", t.nick(), room.name));
            }
            _ if default => self.error(
                ErrorCode::NotPermitted,
                format!(
                    "{} is the default room: it stays open to everyone",
                    room.name
                ),
            ),
            ClientMsg::RoomKey { key, .. } if key.is_empty() => {
                room.set_key(None);
                room.broadcast(
                    &ServerMsg::Notice {
                        text: format!("{me} removed the key of {}", room.name),
                    },
                    None,
                );
            }
            ClientMsg::RoomKey { key, .. } => {
                if let Err(e) = secret::check_room_key(&key) {
                    return self.error(ErrorCode::BadCommand, e.to_string());
                }
                room.set_key(Some(key));
                // The key itself is never shown: members were told it
                // some other way, or set it.
                room.broadcast(
                    &ServerMsg::Notice {
                        text: format!("{me} set a key on {}: /join {} KEY", room.name, room.name),
                    },
                    None,
                );
            }
            ClientMsg::InviteOnly { on, .. } => {
                room.set_invite_only(on);
                let text = if on {
                    format!("{me} made {} invite-only (/invite NICK)", room.name)
                } else {
                    format!("{me} opened {}: no longer invite-only", room.name)
                };
                room.broadcast(&ServerMsg::Notice { text }, None);
            }
            _ => {}
        }
    }
}
