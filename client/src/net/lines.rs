//! The lines the user typed, from Enter to their one outcome: queued while
//! there is no session, held while the Join of their room is unanswered, in
//! flight until the server's echo. Each ends in exactly one
//! [`SocketEvent::LineConfirmed`] or [`SocketEvent::LineFailed`].
//!
//! Pure bookkeeping (no socket, no clock of its own): the session driver
//! tells it what was sent and what arrived and sends what it hands back, so
//! TCP and UDP follow the same rules.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use sockchat_shared::names::normalize_room;
use sockchat_shared::sanitize::sanitize;
use sockchat_shared::{ChatKind, ClientMsg, ErrorCode, ServerMsg};

use super::{LineId, SocketEvent};

/// Most messages kept while there is no session (lines and commands).
pub(super) const MAX_QUEUED: usize = 256;

/// What the server's echo of a line looks like.
#[derive(Debug)]
enum Echo {
    /// A Chat from us in this room (key: [`room_key`]) with this text.
    Room {
        room: String,
        kind: ChatKind,
        text: String,
    },
    /// A Private from us to this nick (lowercased: nicks compare so).
    Private { to: String, text: String },
}

#[derive(Debug)]
struct InFlight {
    id: LineId,
    echo: Echo,
    since: Instant,
}

#[derive(Debug)]
struct Held {
    room: String,
    id: LineId,
    msg: ClientMsg,
    since: Instant,
}

/// The lines and commands between the user and the server.
#[derive(Debug, Default)]
pub(super) struct Lines {
    /// Typed while there was no session; sent once it is restored.
    queued: VecDeque<(Option<LineId>, ClientMsg)>,
    /// Lines for a room whose Join is unanswered.
    held: Vec<Held>,
    /// Requests the server has not answered yet that it may refuse with
    /// `BadName` (a Join or a Nick), in sending order: the server answers in
    /// order, so a `BadName` is about the oldest.
    asks: VecDeque<Ask>,
    /// Lines sent, waiting for their echo (in sending order).
    in_flight: VecDeque<InFlight>,
}

/// A request whose refusal matters to the lines.
#[derive(Debug, PartialEq, Eq)]
enum Ask {
    /// A Join of this room (key): lines for it are held until it is
    /// answered.
    Join(String),
    /// A Nick change (answered by NickChanged, or NickTaken/BadName).
    Nick,
}

/// The name the server files a room under (`#dev` and `dev` are one room).
pub(super) fn room_key(room: &str) -> String {
    normalize_room(room).to_string()
}

/// A line the user typed (as opposed to a command): the room it is for, if
/// it is a room line.
fn line_room(msg: &ClientMsg) -> Option<&str> {
    match msg {
        ClientMsg::Say { room, .. } | ClientMsg::Me { room, .. } => Some(room),
        _ => None,
    }
}

fn echo_of(msg: &ClientMsg) -> Option<Echo> {
    // The server replaces control characters in the text it relays
    // (PROTOCOL.md), so the echo carries the sanitized text.
    let clean = |t: &str| sanitize(t).into_owned();
    match msg {
        ClientMsg::Say { room, text } => Some(Echo::Room {
            room: room_key(room),
            kind: ChatKind::Say,
            text: clean(text),
        }),
        ClientMsg::Me { room, text } => Some(Echo::Room {
            room: room_key(room),
            kind: ChatKind::Me,
            text: clean(text),
        }),
        ClientMsg::Private { to, text } => Some(Echo::Private {
            to: to.to_lowercase(),
            text: clean(text),
        }),
        _ => None,
    }
}

/// A short name for a message in "not sent" texts.
fn what(msg: &ClientMsg) -> &'static str {
    match msg {
        ClientMsg::Say { .. } | ClientMsg::Me { .. } | ClientMsg::Private { .. } => "line",
        ClientMsg::Join { .. } | ClientMsg::JoinKey { .. } => "/join",
        ClientMsg::Leave { .. } => "/leave",
        ClientMsg::Nick { .. } => "/nick",
        ClientMsg::Who { .. } => "/who",
        ClientMsg::Rooms => "/rooms",
        ClientMsg::SockInfo { .. } => "/sockinfo",
        _ => "command",
    }
}

impl Lines {
    /// True while a line sent or held on this session has no outcome yet.
    pub(super) fn unresolved(&self) -> bool {
        !self.in_flight.is_empty() || !self.held.is_empty()
    }

    /// Keep a message typed while there is no session. Over the bound, a
    /// line fails and a command is refused with a word to the user.
    pub(super) fn queue(&mut self, id: Option<LineId>, msg: ClientMsg) -> Option<SocketEvent> {
        if self.queued.len() < MAX_QUEUED {
            self.queued.push_back((id, msg));
            return None;
        }
        let why = format!("not connected and {MAX_QUEUED} messages already wait to be sent");
        Some(match id {
            Some(id) => SocketEvent::LineFailed { id, why },
            None => SocketEvent::Local(format!("{} not sent: {why}", what(&msg))),
        })
    }

    /// True while the Join of this room (key) is unanswered.
    fn joining(&self, room: &str) -> bool {
        self.asks
            .iter()
            .any(|a| matches!(a, Ask::Join(r) if r == room))
    }

    /// The Join of `room` is answered (or given up): its entry goes.
    fn answered_join(&mut self, room: &str) {
        if let Some(i) = self
            .asks
            .iter()
            .position(|a| matches!(a, Ask::Join(r) if r == room))
        {
            self.asks.remove(i);
        }
    }

    /// The oldest Nick change is answered.
    fn answered_nick(&mut self) {
        if let Some(i) = self.asks.iter().position(|a| *a == Ask::Nick) {
            self.asks.remove(i);
        }
    }

    /// Everything queued while there was no session, oldest first.
    pub(super) fn take_queued(&mut self) -> Vec<(Option<LineId>, ClientMsg)> {
        self.queued.drain(..).collect()
    }

    /// A message is about to go out on a live session: returns it to send
    /// now, or `None` when it is a line held for the Join of its room.
    /// `rooms` are the rooms we are in (a Join of one of them gets no
    /// Joined back, only a notice, so nothing waits for it).
    pub(super) fn dispatch(
        &mut self,
        id: Option<LineId>,
        msg: ClientMsg,
        here: (&str, &BTreeSet<String>),
        now: Instant,
    ) -> Option<ClientMsg> {
        let (our_nick, rooms) = here;
        match &msg {
            ClientMsg::Join { room } | ClientMsg::JoinKey { room, .. } => {
                let key = room_key(room);
                if !rooms.contains(&key) && !self.joining(&key) {
                    self.asks.push_back(Ask::Join(key));
                }
                return Some(msg);
            }
            // Our own nick again gets no answer at all.
            ClientMsg::Nick { nick } if nick != our_nick => {
                self.asks.push_back(Ask::Nick);
                return Some(msg);
            }
            _ => {}
        }
        let Some(id) = id else { return Some(msg) };
        if let Some(room) = line_room(&msg).map(room_key)
            && self.joining(&room)
        {
            self.held.push(Held {
                room,
                id,
                msg,
                since: now,
            });
            return None;
        }
        if let Some(echo) = echo_of(&msg) {
            self.in_flight.push_back(InFlight {
                id,
                echo,
                since: now,
            });
        }
        Some(msg)
    }

    /// Follow what the server says: confirm lines by their echo, release
    /// held lines when their room is joined, fail them when it is refused.
    /// Lines to send now are pushed to `send`, events to `ev`.
    pub(super) fn on_server(
        &mut self,
        msg: &ServerMsg,
        our_nick: &str,
        rooms: &BTreeSet<String>,
        now: Instant,
        send: &mut Vec<ClientMsg>,
        ev: &mut Vec<SocketEvent>,
    ) {
        match msg {
            ServerMsg::Chat {
                room,
                from,
                text,
                kind,
                history: false,
                ..
            } if from == our_nick => {
                let key = room_key(room);
                let hit = self.in_flight.iter().position(|l| {
                    matches!(&l.echo, Echo::Room { room: r, kind: k, text: t }
                        if *r == key && k == kind && t == text)
                });
                if let Some(i) = hit
                    && let Some(l) = self.in_flight.remove(i)
                {
                    ev.push(SocketEvent::LineConfirmed { id: l.id });
                }
            }
            ServerMsg::Private { from, to, text, .. } if from == our_nick => {
                let to = to.to_lowercase();
                let hit = self.in_flight.iter().position(|l| {
                    matches!(&l.echo, Echo::Private { to: t2, text: t } if *t2 == to && t == text)
                });
                if let Some(i) = hit
                    && let Some(l) = self.in_flight.remove(i)
                {
                    ev.push(SocketEvent::LineConfirmed { id: l.id });
                }
            }
            ServerMsg::Joined { room, nick } if nick == our_nick => {
                let key = room_key(room);
                self.answered_join(&key);
                let (go, keep): (Vec<Held>, Vec<Held>) =
                    self.held.drain(..).partition(|h| h.room == key);
                self.held = keep;
                for h in go {
                    if let Some(m) = self.dispatch(Some(h.id), h.msg, (our_nick, rooms), now) {
                        send.push(m);
                    }
                }
            }
            ServerMsg::NickChanged { old, .. } if old == our_nick => self.answered_nick(),
            ServerMsg::Error { code, text } => self.on_error(*code, text, ev),
            _ => {}
        }
    }

    /// An Error from the server: the server answers in order, so it is
    /// about the oldest request it could be about.
    fn on_error(&mut self, code: ErrorCode, text: &str, ev: &mut Vec<SocketEvent>) {
        match code {
            // The oldest Join or Nick was refused; if a Join, its lines
            // fail.
            ErrorCode::BadName => match self.asks.pop_front() {
                Some(Ask::Join(room)) => self.join_failed(&room, text, ev),
                Some(Ask::Nick) | None => {}
            },
            ErrorCode::TooManyRooms => {
                if let Some(i) = self.asks.iter().position(|a| matches!(a, Ask::Join(_)))
                    && let Some(Ask::Join(room)) = self.asks.remove(i)
                {
                    self.join_failed(&room, text, ev);
                }
            }
            ErrorCode::NickTaken => self.answered_nick(),
            ErrorCode::NoSuchNick => {
                self.fail_oldest(|e| matches!(e, Echo::Private { .. }), text, ev)
            }
            ErrorCode::NotInRoom => self.fail_oldest(|e| matches!(e, Echo::Room { .. }), text, ev),
            ErrorCode::MessageTooLong | ErrorCode::RateLimited => {
                self.fail_oldest(|_| true, text, ev)
            }
            _ => {}
        }
    }

    fn join_failed(&mut self, room: &str, text: &str, ev: &mut Vec<SocketEvent>) {
        let (fail, keep): (Vec<Held>, Vec<Held>) =
            self.held.drain(..).partition(|h| h.room == room);
        self.held = keep;
        for h in fail {
            ev.push(SocketEvent::LineFailed {
                id: h.id,
                why: format!("the join of {room} failed: {text}"),
            });
        }
    }

    fn fail_oldest(
        &mut self,
        about: impl Fn(&Echo) -> bool,
        text: &str,
        ev: &mut Vec<SocketEvent>,
    ) {
        if let Some(i) = self.in_flight.iter().position(|l| about(&l.echo))
            && let Some(l) = self.in_flight.remove(i)
        {
            ev.push(SocketEvent::LineFailed {
                id: l.id,
                why: format!("the server refused it: {text}"),
            });
        }
    }

    /// A line just dispatched was refused locally before it left (too large
    /// for a datagram): it fails with `why`.
    pub(super) fn refused(&mut self, id: Option<LineId>, why: &str, ev: &mut Vec<SocketEvent>) {
        let Some(id) = id else { return };
        if let Some(i) = self.in_flight.iter().position(|l| l.id == id) {
            self.in_flight.remove(i);
            ev.push(SocketEvent::LineFailed {
                id,
                why: format!("not sent: {why}"),
            });
        }
    }

    /// Lines waiting longer than `limit` for their echo or their room's
    /// Join fail (over UDP a datagram can be lost without a sign).
    pub(super) fn expire(&mut self, now: Instant, limit: Duration, ev: &mut Vec<SocketEvent>) {
        let secs = limit.as_secs_f64();
        while let Some(l) = self.in_flight.front()
            && now.duration_since(l.since) >= limit
        {
            if let Some(l) = self.in_flight.pop_front() {
                ev.push(SocketEvent::LineFailed {
                    id: l.id,
                    why: format!("no echo from the server within {secs:.0} s: maybe not delivered"),
                });
            }
        }
        let (fail, keep): (Vec<Held>, Vec<Held>) = self
            .held
            .drain(..)
            .partition(|h| now.duration_since(h.since) >= limit);
        self.held = keep;
        for h in fail {
            self.answered_join(&h.room);
            ev.push(SocketEvent::LineFailed {
                id: h.id,
                why: format!("the join of {} got no answer within {secs:.0} s", h.room),
            });
        }
    }

    /// The session ended. Lines sent but not echoed fail (never resent: the
    /// server may have delivered them); lines held for a Join go back to
    /// the queue. Returns the rooms whose Join was unanswered (to join again
    /// with the others).
    pub(super) fn session_lost(&mut self, ev: &mut Vec<SocketEvent>) -> Vec<String> {
        for l in self.in_flight.drain(..) {
            ev.push(SocketEvent::LineFailed {
                id: l.id,
                why: "the connection ended before the server confirmed it (not resent: it may \
                      have been delivered)"
                    .into(),
            });
        }
        for h in self.held.drain(..).rev() {
            self.queued.push_front((Some(h.id), h.msg));
        }
        self.asks
            .drain(..)
            .filter_map(|a| match a {
                Ask::Join(r) => Some(r),
                Ask::Nick => None,
            })
            .collect()
    }

    /// No session will come (reconnect is off or gave up, or we quit):
    /// every line still waiting fails, and the user hears how many
    /// commands were dropped.
    pub(super) fn give_up(&mut self, why: &str, ev: &mut Vec<SocketEvent>) {
        // No session will come, so no room is joined again.
        let _unanswered_joins = self.session_lost(ev);
        let mut commands = 0;
        for (id, _) in self.queued.drain(..) {
            match id {
                Some(id) => ev.push(SocketEvent::LineFailed {
                    id,
                    why: why.to_string(),
                }),
                None => commands += 1,
            }
        }
        if commands > 0 {
            ev.push(SocketEvent::Local(format!(
                "{commands} command(s) not sent: {why}"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(room: &str, text: &str) -> ClientMsg {
        ClientMsg::Say {
            room: room.into(),
            text: text.into(),
        }
    }

    fn chat(room: &str, from: &str, text: &str) -> ServerMsg {
        ServerMsg::Chat {
            room: room.into(),
            from: from.into(),
            text: text.into(),
            kind: ChatKind::Say,
            ts_ms: 0,
            history: false,
        }
    }

    #[test]
    fn held_for_join_then_confirmed_by_echo() {
        let mut l = Lines::default();
        let mut rooms = BTreeSet::from(["lobby".to_string()]);
        let now = Instant::now();
        let j = ClientMsg::Join { room: "dev".into() };
        assert_eq!(l.dispatch(None, j.clone(), ("me", &rooms), now), Some(j));
        assert_eq!(
            l.dispatch(Some(LineId(1)), say("dev", "hi\x07"), ("me", &rooms), now),
            None
        );
        let (mut send, mut ev) = (Vec::new(), Vec::new());
        rooms.insert("dev".into());
        let joined = ServerMsg::Joined {
            room: "dev".into(),
            nick: "me".into(),
        };
        l.on_server(&joined, "me", &rooms, now, &mut send, &mut ev);
        assert_eq!(send, vec![say("dev", "hi\x07")]);
        // Someone else's line with the same text confirms nothing.
        l.on_server(
            &chat("dev", "bob", "hi\u{FFFD}"),
            "me",
            &rooms,
            now,
            &mut send,
            &mut ev,
        );
        assert!(ev.is_empty());
        l.on_server(
            &chat("dev", "me", "hi\u{FFFD}"),
            "me",
            &rooms,
            now,
            &mut send,
            &mut ev,
        );
        assert_eq!(ev, vec![SocketEvent::LineConfirmed { id: LineId(1) }]);
    }

    #[test]
    fn refused_join_fails_its_lines_not_a_refused_nick_and_death_fails_in_flight() {
        let mut l = Lines::default();
        let rooms = BTreeSet::from(["lobby".to_string()]);
        let now = Instant::now();
        // A /nick the server will refuse, sent before the join.
        let nick = ClientMsg::Nick {
            nick: "bad nick".into(),
        };
        l.dispatch(None, nick, ("me", &rooms), now);
        let join = ClientMsg::Join {
            room: "bad!".into(),
        };
        l.dispatch(None, join, ("me", &rooms), now);
        assert_eq!(
            l.dispatch(Some(LineId(1)), say("bad!", "x"), ("me", &rooms), now),
            None
        );
        assert!(
            l.dispatch(Some(LineId(2)), say("lobby", "y"), ("me", &rooms), now)
                .is_some()
        );
        let (mut send, mut ev) = (Vec::new(), Vec::new());
        let err = ServerMsg::Error {
            code: ErrorCode::BadName,
            text: "bad room name".into(),
        };
        // The first BadName answers the /nick: no line fails.
        l.on_server(&err, "me", &rooms, now, &mut send, &mut ev);
        assert!(ev.is_empty(), "{ev:?}");
        l.on_server(&err, "me", &rooms, now, &mut send, &mut ev);
        assert!(
            matches!(&ev[..], [SocketEvent::LineFailed { id: LineId(1), why }] if why.contains("bad room name"))
        );
        ev.clear();
        assert!(l.session_lost(&mut ev).is_empty());
        assert!(matches!(
            &ev[..],
            [SocketEvent::LineFailed { id: LineId(2), .. }]
        ));
    }

    #[test]
    fn queue_is_bounded_and_give_up_fails_every_line() {
        let mut l = Lines::default();
        for i in 0..MAX_QUEUED as u64 {
            assert!(l.queue(Some(LineId(i)), say("lobby", "x")).is_none());
        }
        assert!(matches!(
            l.queue(Some(LineId(999)), say("lobby", "x")),
            Some(SocketEvent::LineFailed {
                id: LineId(999),
                ..
            })
        ));
        let mut ev = Vec::new();
        l.give_up("reconnect is off", &mut ev);
        assert_eq!(ev.len(), MAX_QUEUED);
    }
}
