//! The transport-neutral half of a user's session: the chat commands
//! (nick, join, leave, private, who, rooms, sockinfo), room messages, the
//! message rate limit and the welcome. The TCP connection
//! ([`crate::connection`]) and the UDP transport ([`crate::udp`]) both call
//! it, so a command behaves the same whichever socket it came in on; each
//! transport keeps only what really differs (framing, handshake, batching,
//! how a session ends).

use std::sync::Arc;
use std::time::Instant;

use sockchat_shared::names::normalize_room;
use sockchat_shared::sanitize::sanitize;
use sockchat_shared::{ChatKind, ClientMsg, DisconnectReason, ErrorCode, ServerMsg};

use crate::connection::Ctx;
use crate::hub::{Format, Peer, Room};
use crate::limits::TokenBucket;

/// The per-session message rate limit (off with `--no-rate-limits`): a
/// token bucket and the count of refusals in a row.
#[derive(Debug)]
pub(crate) struct RateLimit {
    bucket: Option<TokenBucket>,
    /// Rate-limited commands in a row.
    strikes: u32,
}

/// What [`RateLimit::check`] decided about one command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rate {
    Allowed,
    /// Refused (the user was told on the first refusal); the session goes on.
    Dropped,
    /// `limits.rate_limit_strikes` refusals in a row: end the session with
    /// `rate-limited`.
    Exceeded,
}

impl RateLimit {
    pub(crate) fn new(ctx: &Ctx, now: Instant) -> Self {
        let l = &ctx.settings.config.limits;
        RateLimit {
            bucket: (!ctx.settings.no_rate_limits)
                .then(|| TokenBucket::new(l.messages_per_sec, l.burst, now)),
            strikes: 0,
        }
    }

    /// Take a token for one command. The first refusal of a run tells the
    /// user; the run's length decides whether the session ends.
    pub(crate) fn check(&mut self, ctx: &Ctx, peer: &Peer) -> Rate {
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
pub(crate) fn quit_reason(ctx: &Ctx, message: &str) -> DisconnectReason {
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

fn error(peer: &Peer, code: ErrorCode, text: impl Into<String>) {
    peer.send(&ServerMsg::Error {
        code,
        text: text.into(),
    });
}

/// One registered user as the commands see it, borrowed from the
/// transport's session for the length of one command.
pub(crate) struct Member<'a> {
    pub ctx: &'a Ctx,
    pub peer: &'a Arc<Peer>,
    /// Rooms this user is in; the last one is the current room.
    pub rooms: &'a mut Vec<Arc<Room>>,
}

impl Member<'_> {
    pub(crate) fn error(&self, code: ErrorCode, text: impl Into<String>) {
        error(self.peer, code, text);
    }

    fn notice(&self, text: impl Into<String>) {
        self.peer.send(&ServerMsg::Notice { text: text.into() });
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
            None => Err(format!(
                "you are not in {}",
                sanitize(normalize_room(typed))
            )),
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
    pub(crate) fn welcome_and_join(&mut self) {
        let room = self.ctx.settings.config.server.default_room.clone();
        self.peer.send(&ServerMsg::Welcome {
            nick: self.peer.nick().to_string(),
            room: room.clone(),
            server: self.ctx.server_name.clone(),
        });
        match self.ctx.hub.join(self.peer, &room) {
            Ok(r) => self.rooms.push(r),
            Err(e) => self.error(e.code(), e.to_string()),
        }
    }

    /// A Say/Me (rate limit already taken): the sanitized room message and
    /// the room it goes to, or `None` when the user was told why not. The
    /// transport fans it out (TCP batches a read's worth, UDP sends each).
    pub(crate) fn chat(
        &self,
        room: &str,
        text: String,
        kind: ChatKind,
    ) -> Option<(Arc<Room>, ServerMsg)> {
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
    pub(crate) fn command(&mut self, msg: ClientMsg) {
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
            ClientMsg::Join { room } => {
                let name = match hub.room_name(&room) {
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
                match hub.join(self.peer, name) {
                    Ok(r) => self.rooms.push(r),
                    Err(e) => self.error(e.code(), e.to_string()),
                }
            }
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
                    None => self.error(ErrorCode::NotInRoom, "you are not in that room"),
                }
            }
            ClientMsg::Private { to, text } => {
                if !self.check_len(&text) {
                    return;
                }
                let Some(target) = hub.find(&to) else {
                    return self.error(
                        ErrorCode::NoSuchNick,
                        format!("no such nick: {}", sanitize(&to)),
                    );
                };
                let text = sanitize(&text).into_owned();
                let m = ServerMsg::Private {
                    from: self.peer.nick().to_string(),
                    to: target.nick().to_string(),
                    text,
                    ts_ms: sockchat_shared::now_ms(),
                };
                target.send(&m);
                // A framed client shows its own PM from the echo; a text
                // user already sees what it typed.
                if self.peer.format == Format::Framed && target.id != self.peer.id {
                    self.peer.send(&m);
                }
            }
            ClientMsg::Who { room } => {
                let r = if room.is_empty() {
                    self.rooms.last().cloned()
                } else {
                    hub.room(&room)
                };
                match r {
                    Some(r) => self.peer.send(&ServerMsg::Who {
                        room: r.name.to_string(),
                        nicks: r.who(),
                    }),
                    None if room.is_empty() => {
                        self.error(ErrorCode::NotInRoom, "you are not in a room (/join ROOM)")
                    }
                    None => self.error(
                        ErrorCode::NoSuchRoom,
                        format!("no such room: {}", sanitize(&room)),
                    ),
                }
            }
            ClientMsg::Rooms => self.peer.send(&ServerMsg::Rooms { rooms: hub.rooms() }),
            ClientMsg::SockInfo { nick } => {
                let target = if nick.is_empty() {
                    Some(self.peer.clone())
                } else {
                    hub.find(&nick)
                };
                match target {
                    Some(t) => self.peer.send(&ServerMsg::SockInfo {
                        nick: t.nick().to_string(),
                        fields: t.sockinfo(),
                    }),
                    None => self.error(
                        ErrorCode::NoSuchNick,
                        format!("no such nick: {}", sanitize(&nick)),
                    ),
                }
            }
            ClientMsg::Hello { .. }
            | ClientMsg::Say { .. }
            | ClientMsg::Me { .. }
            | ClientMsg::Ping { .. }
            | ClientMsg::Pong { .. }
            | ClientMsg::Quit { .. } => {}
        }
    }
}
