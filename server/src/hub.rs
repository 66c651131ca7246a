//! Rooms, members, nicks, history and fan-out.
//!
//! **Invariant:** the hub knows nothing about TCP. A member is a [`Peer`]: an
//! [`Outbox`] plus metadata (nick, wire format, address, an optional view of
//! its socket). TCP connections create peers today; UDP sessions can create
//! them the same way.
//!
//! Locking: the fan-out path takes only the one room's mutex (never a global
//! lock) and each member's outbox mutex for a push; no socket is written
//! under a room lock (deliveries are flushed when the caller's
//! [`crate::owed`] scope ends, or by the member's writer task). Joining and leaving take
//! the room map first, then the room (always in that order). The nick map is
//! never held while a room is locked. No lock is held across an `.await`:
//! everything here is synchronous.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use bytes::{Bytes, BytesMut};
use sockchat_shared::config::SlowConsumerPolicy;
use sockchat_shared::fold;
use sockchat_shared::names::{self, NameError};
use sockchat_shared::{DisconnectReason, ErrorCode, RoomInfo, ServerMsg, codec};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::counters::Counters;
use crate::outbox::{Lane, Outbox, Push};
use crate::owed;
use crate::room_quota::{QuotaConfig, QuotaError, RoomQuota};
use crate::text;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a hub lock is a bug, but it must not take every
    // other connection down with poisoned locks.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Cluster mode's seam into the hub ([`crate::cluster`] implements it).
/// With the cluster off there is none, and the hub pays one branch per
/// fan-out. Every call is synchronous and only queues (never awaits, never
/// does I/O): it runs under a room lock.
pub trait Uplink: Send + Sync {
    /// A local chat batch, encoded once as frames, for the other nodes
    /// (and the cluster's history of the room).
    fn room_event(&self, room: &str, frames: Bytes);
    /// A local `Joined` or `Left`, encoded once, for the other nodes.
    fn room_presence(&self, room: &str, frames: Bytes);
    /// `room` was just created here: the cluster may hold older messages
    /// of it, handed back through [`Hub::seed_history`].
    fn room_created(&self, room: &str);
    /// A local member joined (`true`) or left `room` (presence).
    fn membership(&self, peer: &Peer, room: &str, joined: bool);
    /// A local nick was taken (`old` = None), changed, or freed (`new` =
    /// None).
    fn nick(&self, peer: &Arc<Peer>, old: Option<&str>, new: Option<&str>);
    /// A local member's `NickChanged`, encoded once, for the rooms it is in.
    fn nick_changed(&self, rooms: Vec<String>, frames: Bytes);
    /// The nick of whoever holds nick key `key` on another node.
    fn remote_holder(&self, key: &str) -> Option<String>;
    /// Nicks of `room`'s members on other nodes.
    fn remote_who(&self, room: &str) -> Vec<String>;
    /// Rooms on other nodes and their member counts there.
    fn remote_rooms(&self) -> Vec<RoomInfo>;
}

/// How a member wants its bytes: length-prefixed frames or text lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Framed,
    Text,
}

/// Which transport carries a member (for logs and sockinfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// The server's view of a member's socket, for `/sockinfo`.
pub trait SocketView: Send + Sync {
    /// Ordered key/value pairs (TCP_INFO, queues, ...).
    fn fields(&self) -> Vec<(String, String)>;

    /// One non-blocking vectored write straight to the socket, for an owed
    /// flush ([`Outbox::flush`]). Sockets that cannot (UDP members share
    /// one socket and have their own writer) say `WouldBlock`, so every
    /// chunk goes through the writer.
    fn try_writev_now(&self, _bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }

    /// Why the connection under this socket ended, when the stream the
    /// session reads only saw EOF (TLS: the relay read a reset or a bad
    /// record from the user's socket). `None`: the EOF is the reason.
    fn end_reason(&self) -> Option<DisconnectReason> {
        None
    }
}

/// The nick as shown: the key's own allocation when they are the same text
/// (a lower-case nick the confusables skeleton leaves alone: no digits, no
/// `rn`-like pairs), else a new one — one allocation less per such
/// connection. Not measurable on the bots' load (c): their nicks have
/// digits, which the skeleton changes (BENCHMARKS.md, stop 23).
fn shown(nick: impl AsRef<str>, key: &Arc<str>) -> Arc<str> {
    let nick = nick.as_ref();
    if nick == &**key {
        key.clone()
    } else {
        Arc::from(nick)
    }
}

/// A peer's nick as shown and its key ([`fold::nick_key`]), set together
/// by the hub: the key is folded once per nick (NFKC, case fold,
/// confusables: a few µs), not again when the user leaves, is renamed, or
/// joins a room that checks invitations (issue 10's churn).
#[derive(Debug, Default)]
struct Nick {
    shown: Arc<str>,
    key: Arc<str>,
}

/// One connected user: what the hub needs to deliver to it and to end it.
pub struct Peer {
    pub id: u64,
    pub addr: SocketAddr,
    pub transport: Transport,
    pub format: Format,
    nick: Mutex<Nick>,
    pub outbox: Outbox,
    policy: SlowConsumerPolicy,
    /// Cancelled when the connection is doomed (slow consumer, write error,
    /// an operator's kick): its tasks stop at once. A TCP peer's is a child
    /// of the shutdown's input token ([`crate::shutdown::Shutdown::input_token`]),
    /// so its reader waits on one future for both (issue 10's 2.5 KiB per
    /// idle connection); [`Peer::ending`] tells the two apart.
    cancel: CancellationToken,
    socket: Option<Arc<dyn SocketView>>,
    /// The mute and the away text, boxed: most members never have either,
    /// and every idle connection would carry their size otherwise.
    aside: Mutex<Option<Box<Aside>>>,
    /// True while `mute` may be set: every chat message checks this flag
    /// (one relaxed load) and takes the lock only for a muted member.
    maybe_muted: std::sync::atomic::AtomicBool,
    /// This peer's own `Arc`, so a delivery can owe it a flush
    /// ([`crate::owed`]) from `&self`.
    me: Weak<Peer>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("nick", &self.nick())
            .finish()
    }
}

impl Peer {
    /// `cancel`: a new token, or a child of a token that must also stop
    /// this peer's tasks (see the field).
    #[allow(clippy::too_many_arguments)] // one per field a transport decides
    pub fn new(
        id: u64,
        addr: SocketAddr,
        transport: Transport,
        format: Format,
        outbox_frames: usize,
        policy: SlowConsumerPolicy,
        socket: Option<Arc<dyn SocketView>>,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            id,
            addr,
            transport,
            format,
            nick: Mutex::default(),
            outbox: Outbox::new(outbox_frames),
            policy,
            cancel,
            socket,
            aside: Mutex::new(None),
            maybe_muted: std::sync::atomic::AtomicBool::new(false),
            me: me.clone(),
        })
    }

    /// End this member's session on an operator's word (`kicked`,
    /// `banned`): the reason is recorded (if it is the first) and the
    /// session's tasks are told to stop, but its queue is kept, so its
    /// transport ends it politely through `Session::end` (the rooms are
    /// told, then `Bye` with the reason, then FIN). False when the session
    /// was already ending for another reason.
    pub fn remove(&self, reason: DisconnectReason) -> bool {
        let first = self.set_reason(reason);
        self.cancel.cancel();
        first
    }

    /// True when an operator ended this session ([`Peer::remove`]): its
    /// transport still says goodbye, unlike a doomed connection's.
    pub fn removed(&self) -> bool {
        matches!(
            self.reason(),
            Some(DisconnectReason::Kicked { .. } | DisconnectReason::Banned { .. })
        )
    }

    /// Mute this member (`None`: unmute).
    pub fn set_mute(&self, m: Option<Mute>) {
        let mut g = lock(&self.aside);
        self.maybe_muted.store(m.is_some(), Ordering::Relaxed);
        Aside::edit(&mut g, |a| a.mute = m);
    }

    /// The mute in force now, if any (an expired one is forgotten).
    pub fn muted(&self) -> Option<Mute> {
        if !self.maybe_muted.load(Ordering::Relaxed) {
            return None;
        }
        let now = std::time::Instant::now();
        let mut g = lock(&self.aside);
        let mute = g.as_ref().and_then(|a| a.mute.clone());
        if mute
            .as_ref()
            .is_some_and(|m| m.until.is_some_and(|u| u <= now))
        {
            Aside::edit(&mut g, |a| a.mute = None);
            self.maybe_muted.store(false, Ordering::Relaxed);
            return None;
        }
        mute
    }

    /// The `/away` text, if this user is away.
    pub fn away(&self) -> Option<Arc<str>> {
        lock(&self.aside).as_ref().and_then(|a| a.away.clone())
    }

    /// Mark this user away with `text` (`None`: back).
    pub fn set_away(&self, text: Option<Arc<str>>) {
        Aside::edit(&mut lock(&self.aside), |a| a.away = text);
    }

    pub fn nick(&self) -> Arc<str> {
        lock(&self.nick).shown.clone()
    }

    /// The nick's key ([`fold::nick_key`]; empty before registration).
    pub fn nick_key(&self) -> Arc<str> {
        lock(&self.nick).key.clone()
    }

    /// `key` is `fold::nick_key(&shown)`.
    fn set_nick(&self, shown: Arc<str>, key: Arc<str>) {
        *lock(&self.nick) = Nick { shown, key };
    }

    /// Queue a chunk for this member, applying the slow-consumer policy when
    /// its outbox is full. Never blocks the caller and never writes the
    /// socket itself: inside an [`owed`] scope a TCP member that was idle is
    /// owed a flush at the scope's end (one vectored send for all it got
    /// meanwhile; a big room's members go to their writer tasks then);
    /// otherwise its writer task is woken if it was parked.
    pub fn deliver(&self, b: Bytes) {
        self.deliver_in(b, Lane::Chat);
    }

    /// [`Peer::deliver`] into one lane of the outbox: file chunks go to
    /// [`Lane::Bulk`], written only behind chat.
    pub fn deliver_in(&self, b: Bytes, lane: Lane) {
        self.deliver_with(b, lane, true);
    }

    /// [`Peer::deliver_in`], saying whether the current turn may owe this
    /// member its flush (`owe`) or must hand it to its writer task at once:
    /// a big room's fan-out does the latter (see [`owed::INLINE_MAX`]).
    fn deliver_with(&self, b: Bytes, lane: Lane, owe: bool) {
        let pushed =
            if owe && self.transport == Transport::Tcp && self.socket.is_some() && owed::active() {
                self.outbox.push_owed(b, lane)
            } else {
                self.outbox.push(b, lane)
            };
        match pushed {
            Push::Owed => match self.me.upgrade() {
                Some(me) => owed::defer(me),
                // Unreachable while `&self` is borrowed from an `Arc`;
                // flushing here is still correct.
                None => owed::Flush::flush(self),
            },
            Push::Queued | Push::Closed => {}
            Push::Full => match self.policy {
                SlowConsumerPolicy::Disconnect => {
                    let frames = self.outbox.capacity().min(u32::MAX as usize) as u32;
                    // Not `fail`: the queue is dropped but the writer keeps
                    // going, so the connection's close can still try to
                    // tell a peer that is only slow why it is cut off.
                    self.set_reason(DisconnectReason::SlowConsumer { frames });
                    self.outbox.cut_off();
                    self.cancel.cancel();
                }
                SlowConsumerPolicy::Drop => self.outbox.count_drop(),
            },
        }
    }

    /// Record `reason` if none is set yet. Returns true if it was the first.
    pub fn set_reason(&self, reason: DisconnectReason) -> bool {
        let mut first = false;
        Aside::edit(&mut lock(&self.aside), |a| {
            if a.reason.is_none() {
                a.reason = Some(reason);
                first = true;
            }
        });
        first
    }

    /// The connection is doomed: record the reason (if first), throw away
    /// its queue and stop its tasks now.
    pub fn fail(&self, reason: DisconnectReason) {
        self.set_reason(reason);
        self.outbox.abort();
        self.cancel.cancel();
    }

    /// True once this session was ended by its own cause (doomed, cut off
    /// as a slow consumer, removed by an operator): each records its reason
    /// before it cancels the token. A cancelled token without one was the
    /// parent's: the server stopping input.
    pub fn ending(&self) -> bool {
        lock(&self.aside)
            .as_ref()
            .is_some_and(|a| a.reason.is_some())
    }

    pub fn reason(&self) -> Option<DisconnectReason> {
        lock(&self.aside).as_ref().and_then(|a| a.reason.clone())
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Encode `msg` in this member's format and queue it.
    pub fn send(&self, msg: &ServerMsg) {
        if let Some(b) = encode(msg, self.format) {
            self.deliver(b);
        }
    }

    /// [`Peer::send`] on the bulk lane (file chunks).
    pub fn send_bulk(&self, msg: &ServerMsg) {
        if let Some(b) = encode(msg, self.format) {
            self.deliver_in(b, Lane::Bulk);
        }
    }

    /// [`SocketView::end_reason`] of this member's socket.
    pub fn socket_end_reason(&self) -> Option<DisconnectReason> {
        self.socket.as_ref()?.end_reason()
    }

    /// The server's view of this member's socket plus its outbox.
    pub fn sockinfo(&self) -> Vec<(String, String)> {
        let mut f = vec![
            ("transport".to_string(), self.transport.as_str().to_string()),
            ("peer".to_string(), self.addr.to_string()),
        ];
        if let Some(s) = &self.socket {
            f.extend(s.fields());
        }
        f.push(("outbox_frames".into(), self.outbox.depth().to_string()));
        f.push(("outbox_capacity".into(), self.outbox.capacity().to_string()));
        f.push(("outbox_dropped".into(), self.outbox.dropped().to_string()));
        f
    }
}

impl owed::Flush for Peer {
    fn flush(&self) {
        match &self.socket {
            Some(sock) => self.outbox.flush(|iov| sock.try_writev_now(iov)),
            None => self
                .outbox
                .flush(|_| Err(std::io::ErrorKind::WouldBlock.into())),
        }
    }

    fn hand_off(&self) {
        self.outbox.hand_off();
    }
}

/// What few members have: a mute, an away text, and what every member has
/// only at its end: the disconnect reason ([`Peer`] keeps it boxed).
#[derive(Debug, Default)]
struct Aside {
    /// Set by an operator's `/mute`: this member's chat is refused.
    mute: Option<Mute>,
    /// The `/away` text; `None`: here. Shown after a `Who` reply and to
    /// whoever sends this user a private message.
    away: Option<Arc<str>>,
    /// The one disconnect reason: the first one set wins. Here, not in
    /// `Peer`: it is set once, at the end, and every idle member would carry
    /// its lock and pointer otherwise (issue 10's 2.5 KiB per connection:
    /// 16 bytes of `Peer` that the held nick key needed).
    reason: Option<DisconnectReason>,
}

impl Aside {
    /// Change the boxed state in place; the box is dropped once empty.
    fn edit(slot: &mut Option<Box<Aside>>, f: impl FnOnce(&mut Aside)) {
        let a = slot.get_or_insert_with(Box::default);
        f(a);
        if a.mute.is_none() && a.away.is_none() && a.reason.is_none() {
            *slot = None;
        }
    }
}

/// An operator's `/mute` of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mute {
    /// The operator's nick.
    pub by: String,
    /// `None`: until `/unmute`.
    pub until: Option<std::time::Instant>,
}

/// Who may join a room besides anyone: its key, whether it is
/// invite-only and who was invited, and its operator (the member who
/// created it; server operators may always set these).
#[derive(Debug, Default)]
struct Gate {
    key: Option<String>,
    invite_only: bool,
    /// Nick keys ([`fold::nick_key`]) invited while the room lives.
    invited: HashSet<String>,
    /// The peer id of the member who created the room (0: nobody, the
    /// default room).
    op: u64,
}

/// Why a join was refused by the room's gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateError {
    /// The room has a key and none (or another) was given.
    Key { room: String, given: bool },
    /// Invite-only and not invited.
    InviteOnly(String),
}

impl std::fmt::Display for GateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key { room, given: false } => {
                write!(f, "{room} needs a key: /join {room} KEY")
            }
            Self::Key { room, given: true } => write!(f, "wrong key for {room}"),
            Self::InviteOnly(room) => write!(
                f,
                "{room} is invite-only: ask its operator (or a server operator) to /invite you"
            ),
        }
    }
}

/// Encode one message for one format. `None`: nothing to send in that
/// format (e.g. a Ping to a text user).
pub fn encode(msg: &ServerMsg, format: Format) -> Option<Bytes> {
    match format {
        Format::Framed => Some(codec::server_frame(msg)),
        Format::Text => text::render(msg).map(|mut s| {
            s.push('\n');
            Bytes::from(s)
        }),
    }
}

/// A message encoded at most once per format, lazily (only when a member
/// of that format is met).
struct Encoded<'a> {
    msgs: &'a [ServerMsg],
    framed: Option<Option<Bytes>>,
    text: Option<Option<Bytes>>,
}

impl<'a> Encoded<'a> {
    fn new(msgs: &'a [ServerMsg]) -> Self {
        Self {
            msgs,
            framed: None,
            text: None,
        }
    }

    fn get(&mut self, f: Format) -> Option<Bytes> {
        let msgs = self.msgs;
        let slot = match f {
            Format::Framed => &mut self.framed,
            Format::Text => &mut self.text,
        };
        slot.get_or_insert_with(|| {
            let mut b = BytesMut::new();
            for m in msgs {
                match f {
                    Format::Framed => codec::encode_server(m, &mut b),
                    Format::Text => {
                        if let Some(line) = text::render(m) {
                            b.extend_from_slice(line.as_bytes());
                            b.extend_from_slice(b"\n");
                        }
                    }
                }
            }
            (!b.is_empty()).then(|| b.freeze())
        })
        .clone()
    }
}

/// A room: members and the last messages.
pub struct Room {
    pub name: Arc<str>,
    inner: Mutex<RoomInner>,
    /// Key, invite-only, invitations, operator; locked on its own, never
    /// with `inner`.
    gate: Mutex<Gate>,
    /// Cluster mode: where local traffic goes for the other nodes.
    uplink: Option<Arc<dyn Uplink>>,
    /// The server's totals (one add per fan-out).
    counters: Arc<Counters>,
    /// `/topic`: the text and who set it; locked on its own (inside
    /// `inner` at a join, never the other way round).
    topic: Mutex<Option<(String, String)>>,
}

struct RoomInner {
    members: Vec<Arc<Peer>>,
    /// Chat messages (as sent live); replayed with `history = true`.
    history: VecDeque<ServerMsg>,
    history_cap: usize,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Room").field("name", &self.name).finish()
    }
}

impl Room {
    fn new(
        name: Arc<str>,
        history_cap: usize,
        uplink: Option<Arc<dyn Uplink>>,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            name,
            uplink,
            counters,
            topic: Mutex::default(),
            inner: Mutex::new(RoomInner {
                members: Vec::new(),
                history: VecDeque::new(),
                history_cap,
            }),
            gate: Mutex::default(),
        }
    }

    /// The topic and who set it.
    pub fn topic(&self) -> Option<(String, String)> {
        lock(&self.topic).clone()
    }

    /// Set the topic (`None`: clear it); the caller tells the members.
    pub fn set_topic(&self, t: Option<(String, String)>) {
        *lock(&self.topic) = t;
    }

    /// Is `peer` this room's operator (the member who created it)?
    pub fn is_op(&self, peer: &Peer) -> bool {
        lock(&self.gate).op == peer.id
    }

    /// Set (or with `None` remove) the room's key.
    pub fn set_key(&self, key: Option<String>) {
        lock(&self.gate).key = key;
    }

    /// Make the room invite-only, or open it.
    pub fn set_invite_only(&self, on: bool) {
        lock(&self.gate).invite_only = on;
    }

    /// Let `nick` in while the room lives, whether or not it is
    /// invite-only (and without its key).
    pub fn invite(&self, nick: &str) {
        lock(&self.gate).invited.insert(fold::nick_key(nick));
    }

    /// May `peer` come in with `key`? Invited nicks and `privileged`
    /// members (server operators) pass every gate.
    fn admits(&self, peer: &Peer, key: Option<&str>, privileged: bool) -> Result<(), GateError> {
        let g = lock(&self.gate);
        if privileged || (!g.invited.is_empty() && g.invited.contains(&*peer.nick_key())) {
            return Ok(());
        }
        if g.invite_only {
            return Err(GateError::InviteOnly(self.name.to_string()));
        }
        match &g.key {
            Some(k) if Some(k.as_str()) != key => Err(GateError::Key {
                room: self.name.to_string(),
                given: key.is_some(),
            }),
            _ => Ok(()),
        }
    }

    /// Nicks of the members (on every node, in cluster mode), sorted.
    pub fn who(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.inner)
            .members
            .iter()
            .map(|p| p.nick().to_string())
            .collect();
        if let Some(u) = &self.uplink {
            v.extend(u.remote_who(&self.name));
        }
        v.sort();
        v
    }

    /// The members who are away: `Away` messages, sorted by nick.
    pub fn away(&self) -> Vec<ServerMsg> {
        let mut v: Vec<(String, Arc<str>)> = lock(&self.inner)
            .members
            .iter()
            .filter_map(|p| p.away().map(|a| (p.nick().to_string(), a)))
            .collect();
        v.sort();
        v.into_iter()
            .map(|(nick, text)| ServerMsg::Away {
                nick,
                text: text.to_string(),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        lock(&self.inner).members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fan a batch of chat messages from `sender` out to every member: each
    /// format is encoded once (all messages in one chunk) and the same
    /// `Bytes` is queued to every member of that format. Text senders do not
    /// get their own messages back; framed senders do (it confirms the server
    /// accepted the message and carries the server timestamp).
    pub fn fan_out_chat(&self, msgs: Vec<ServerMsg>, sender_id: u64) {
        if msgs.is_empty() {
            return;
        }
        let mut inner = lock(&self.inner);
        {
            let mut enc = Encoded::new(&msgs);
            // Members other than the sender: counted here, added once.
            let mut others = 0usize;
            // A big room's members go straight to their writer tasks: owing
            // them would only collect the few that happen to be idle and
            // write each of those one message from this reader, while a
            // writer woken now runs after this turn and finds more queued
            // (measured on 100 members: ~6 % less server CPU). Small rooms
            // keep the direct write.
            let owe = inner.members.len() <= owed::INLINE_MAX;
            for m in &inner.members {
                others += usize::from(m.id != sender_id);
                if m.format == Format::Text && m.id == sender_id {
                    continue;
                }
                if let Some(b) = enc.get(m.format) {
                    m.deliver_with(b, Lane::Chat, owe);
                }
            }
            self.counters.fan_out(msgs.len(), msgs.len() * others);
            if let Some(u) = &self.uplink
                && let Some(b) = enc.get(Format::Framed)
            {
                u.room_event(&self.name, b);
            }
        }
        if inner.history_cap > 0 {
            for m in msgs {
                if inner.history.len() >= inner.history_cap {
                    inner.history.pop_front();
                }
                inner.history.push_back(m);
            }
        }
    }

    /// Send one event to every member (optionally except one).
    pub fn broadcast(&self, msg: &ServerMsg, except: Option<u64>) {
        let inner = lock(&self.inner);
        let msgs = std::slice::from_ref(msg);
        let mut enc = Encoded::new(msgs);
        for m in &inner.members {
            if Some(m.id) == except {
                continue;
            }
            if let Some(b) = enc.get(m.format) {
                m.deliver(b);
            }
        }
    }

    /// Like [`Room::broadcast`], but text members get `text_line` instead
    /// of the standard rendering of `msg` (e.g. a UDP member's timeout,
    /// which adds "UDP has no FIN").
    pub fn broadcast_with_text(&self, msg: &ServerMsg, text_line: &str, except: Option<u64>) {
        let inner = lock(&self.inner);
        let framed = codec::server_frame(msg);
        let mut line = sockchat_shared::sanitize::sanitize(text_line).into_owned();
        line.push('\n');
        let line = Bytes::from(line);
        for m in &inner.members {
            if Some(m.id) == except {
                continue;
            }
            m.deliver(match m.format {
                Format::Framed => framed.clone(),
                Format::Text => line.clone(),
            });
        }
    }

    fn members_snapshot(&self) -> Vec<Arc<Peer>> {
        lock(&self.inner).members.clone()
    }
}

/// Why a hub operation was refused. The `Display` text is what the user
/// sees (after `! ` in text mode).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum HubError {
    #[error("nick already taken: {0}")]
    NickTaken(String),
    #[error("{0}")]
    RoomQuota(QuotaError),
    #[error("{0}")]
    BadName(NameError),
    #[error("no such nick: {0}")]
    NoSuchNick(String),
    #[error("no such room: {0}")]
    NoSuchRoom(String),
    #[error("too many rooms on this server (max {0})")]
    TooManyRooms(usize),
    #[error("{0}")]
    Gate(GateError),
}

impl HubError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NickTaken(_) => ErrorCode::NickTaken,
            Self::BadName(_) => ErrorCode::BadName,
            Self::NoSuchNick(_) => ErrorCode::NoSuchNick,
            Self::NoSuchRoom(_) => ErrorCode::NoSuchRoom,
            Self::TooManyRooms(_) | Self::RoomQuota(_) => ErrorCode::TooManyRooms,
            Self::Gate(GateError::Key { .. }) => ErrorCode::BadRoomKey,
            Self::Gate(GateError::InviteOnly(_)) => ErrorCode::InviteOnly,
        }
    }
}

/// What a "nick already taken" error says: the nick, and the holder's when
/// they differ by more than case (look-alike letters: `аlice` vs `alice`).
fn taken_text(wanted: &str, holder: &str) -> String {
    if wanted.to_lowercase() == holder.to_lowercase() {
        wanted.to_string()
    } else {
        format!(
            "{wanted} (too much like {holder}: nicks are compared without case and look-alike letters)"
        )
    }
}

/// A history message as it is replayed (`history = true`).
fn as_history(mut m: ServerMsg) -> ServerMsg {
    if let ServerMsg::Chat { history, .. } = &mut m {
        *history = true;
    }
    m
}

/// Limits the hub enforces itself.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub default_room: String,
    pub history: usize,
    /// Joins/leaves are announced only in rooms up to this size.
    pub announce_max_members: usize,
    pub max_rooms: usize,
    /// Rooms one user / one address may have created that still exist.
    pub room_quota: QuotaConfig,
    pub max_nick_len: usize,
    pub max_room_len: usize,
    pub server_name: String,
}

/// All rooms and all nicks.
pub struct Hub {
    cfg: HubConfig,
    /// Cluster mode ([`Hub::set_uplink`], once, before serving).
    uplink: OnceLock<Arc<dyn Uplink>>,
    rooms: Mutex<HashMap<Arc<str>, Arc<Room>>>,
    /// Who created the live rooms; locked only inside `rooms`.
    quota: Mutex<RoomQuota>,
    /// Nick key ([`fold::nick_key`]: case folded, look-alikes mapped) ->
    /// peer: `alice`, `ALICE` and `аlice` are one nick.
    /// The key is the one the peer holds ([`Peer::nick_key`]).
    nicks: Mutex<HashMap<Arc<str>, Arc<Peer>>>,
    guest_seq: AtomicU64,
    /// The server's totals ([`crate::stats`]), shared with every room.
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("cfg", &self.cfg).finish()
    }
}

impl Hub {
    pub fn new(cfg: HubConfig) -> Self {
        Self {
            cfg,
            uplink: OnceLock::new(),
            rooms: Mutex::default(),
            quota: Mutex::default(),
            nicks: Mutex::default(),
            guest_seq: AtomicU64::new(1),
            counters: Arc::default(),
        }
    }

    /// The server's totals (messages, deliveries, ...).
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn config(&self) -> &HubConfig {
        &self.cfg
    }

    /// Turn cluster mode on: from now on local room traffic, presence and
    /// nicks go to `u`, and `u` is asked about other nodes' nicks and
    /// members. Set once, before the first room exists.
    /// `guest_base`: where this node's `guestN` numbers start, so nodes
    /// started together do not all hand out `guest1` at once (a claim
    /// collision renames the later user).
    pub fn set_uplink(&self, u: Arc<dyn Uplink>, guest_base: u64) {
        let _ = self.uplink.set(u);
        self.guest_seq.store(guest_base.max(1), Ordering::Relaxed);
    }

    /// Whether another node holds nick key `key`: the error to give.
    fn taken_remotely(&self, wanted: &str, key: &str) -> Result<(), HubError> {
        match self.uplink.get().and_then(|u| u.remote_holder(key)) {
            Some(holder) => Err(HubError::NickTaken(taken_text(wanted, &holder))),
            None => Ok(()),
        }
    }

    /// Give `peer` a nick: `wanted`, or `guestN` when `wanted` is empty.
    pub fn register(&self, peer: &Arc<Peer>, wanted: &str) -> Result<Arc<str>, HubError> {
        if wanted.is_empty() {
            loop {
                let n = self.guest_seq.fetch_add(1, Ordering::Relaxed);
                let nick = format!("guest{n}");
                let key: Arc<str> = Arc::from(fold::nick_key(&nick));
                if self.taken_remotely(&nick, &key).is_err() {
                    continue;
                }
                let mut nicks = lock(&self.nicks);
                if let std::collections::hash_map::Entry::Vacant(e) = nicks.entry(key.clone()) {
                    e.insert(peer.clone());
                    drop(nicks);
                    let nick = shown(nick, &key);
                    peer.set_nick(nick.clone(), key);
                    if let Some(u) = self.uplink.get() {
                        u.nick(peer, None, Some(&nick));
                    }
                    return Ok(nick);
                }
            }
        }
        names::check_nick(wanted, self.cfg.max_nick_len).map_err(HubError::BadName)?;
        let key: Arc<str> = Arc::from(fold::nick_key(wanted));
        self.taken_remotely(wanted, &key)?;
        let mut nicks = lock(&self.nicks);
        match nicks.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => {
                Err(HubError::NickTaken(taken_text(wanted, &e.get().nick())))
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(peer.clone());
                drop(nicks);
                let nick = shown(wanted, &key);
                peer.set_nick(nick.clone(), key);
                if let Some(u) = self.uplink.get() {
                    u.nick(peer, None, Some(&nick));
                }
                Ok(nick)
            }
        }
    }

    /// Change `peer`'s nick. Returns the old one. Changing only the case of
    /// one's own nick is allowed.
    pub fn rename(&self, peer: &Arc<Peer>, new: &str) -> Result<Arc<str>, HubError> {
        names::check_nick(new, self.cfg.max_nick_len).map_err(HubError::BadName)?;
        let (old, old_key) = {
            let n = lock(&peer.nick);
            (n.shown.clone(), n.key.clone())
        };
        let new_key: Arc<str> = Arc::from(fold::nick_key(new));
        if new_key != old_key {
            self.taken_remotely(new, &new_key)?;
        }
        let mut nicks = lock(&self.nicks);
        if let Some(p) = nicks.get(&new_key)
            && p.id != peer.id
        {
            return Err(HubError::NickTaken(taken_text(new, &p.nick())));
        }
        nicks.remove(&old_key);
        nicks.insert(new_key.clone(), peer.clone());
        drop(nicks);
        peer.set_nick(shown(new, &new_key), new_key);
        if let Some(u) = self.uplink.get() {
            u.nick(peer, Some(&old), Some(new));
        }
        Ok(old)
    }

    /// Cluster mode: `peer` lost its nick to another node's earlier claim;
    /// give it a free `guestN`. Returns (old, new).
    pub fn rename_to_guest(&self, peer: &Arc<Peer>) -> Result<(Arc<str>, Arc<str>), HubError> {
        for _ in 0..1000 {
            let n = self.guest_seq.fetch_add(1, Ordering::Relaxed);
            let nick = format!("guest{n}");
            if let Ok(old) = self.rename(peer, &nick) {
                return Ok((old, peer.nick()));
            }
        }
        Err(HubError::NickTaken("guest".into()))
    }

    /// Forget `peer`'s nick (at disconnect).
    pub fn unregister(&self, peer: &Peer) {
        let key = peer.nick_key();
        let mut nicks = lock(&self.nicks);
        if nicks.get(&key).is_some_and(|p| p.id == peer.id) {
            nicks.remove(&key);
            drop(nicks);
            if let (Some(u), Some(me)) = (self.uplink.get(), peer.me.upgrade()) {
                u.nick(&me, Some(&peer.nick()), None);
            }
        }
    }

    pub fn find(&self, nick: &str) -> Option<Arc<Peer>> {
        lock(&self.nicks)
            .get(fold::nick_key(nick).as_str())
            .cloned()
    }

    /// Every registered user (for an operator's ban of an address).
    pub fn peers(&self) -> Vec<Arc<Peer>> {
        lock(&self.nicks).values().cloned().collect()
    }

    /// Number of registered users.
    pub fn user_count(&self) -> usize {
        lock(&self.nicks).len()
    }

    /// Check a room name as typed (a leading `#` is allowed) and return it
    /// normalized.
    pub fn room_name<'a>(&self, typed: &'a str) -> Result<&'a str, HubError> {
        let name = names::normalize_room(typed);
        names::check_room(name, self.cfg.max_room_len).map_err(HubError::BadName)?;
        Ok(name)
    }

    /// An existing room.
    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        lock(&self.rooms).get(names::normalize_room(name)).cloned()
    }

    /// Add `peer` to room `name` (created if needed, within `max_rooms`),
    /// announce `Joined` to every member including the joiner, then replay
    /// the room's history to the joiner. The caller checks that the peer is
    /// not already a member.
    pub fn join(&self, peer: &Arc<Peer>, typed: &str) -> Result<Arc<Room>, HubError> {
        self.join_with(peer, typed, None, false)
    }

    /// [`Hub::join`] through the room's gate: `key` as given (a room this
    /// creates gets it as its key), `privileged` (a server operator)
    /// passes every gate. The member who creates a room is its operator.
    pub fn join_with(
        &self,
        peer: &Arc<Peer>,
        typed: &str,
        room_key: Option<&str>,
        privileged: bool,
    ) -> Result<Arc<Room>, HubError> {
        let name = self.room_name(typed)?;
        let mut rooms = lock(&self.rooms);
        let mut new_room = false;
        let room = match rooms.get(name) {
            Some(r) => {
                r.admits(peer, room_key, privileged)
                    .map_err(HubError::Gate)?;
                r.clone()
            }
            None => {
                // The default room does not count against the cap.
                let created =
                    rooms.len() - usize::from(rooms.contains_key(self.cfg.default_room.as_str()));
                if created >= self.cfg.max_rooms {
                    return Err(HubError::TooManyRooms(self.cfg.max_rooms));
                }
                let key: Arc<str> = Arc::from(name);
                // The default room is nobody's.
                if name != self.cfg.default_room.as_str() {
                    let mut quota = lock(&self.quota);
                    quota
                        .check(self.cfg.room_quota, peer.id, peer.addr.ip())
                        .map_err(HubError::RoomQuota)?;
                    quota.created(key.clone(), peer.id, peer.addr.ip());
                }
                let r = Arc::new(Room::new(
                    key.clone(),
                    self.cfg.history,
                    self.uplink.get().cloned(),
                    self.counters.clone(),
                ));
                if name != self.cfg.default_room.as_str() {
                    let mut g = lock(&r.gate);
                    g.op = peer.id;
                    g.key = room_key.map(str::to_string);
                }
                rooms.insert(key, r.clone());
                new_room = true;
                r
            }
        };
        let mut inner = lock(&room.inner);
        drop(rooms);
        inner.members.push(peer.clone());
        let joined = ServerMsg::Joined {
            room: room.name.to_string(),
            nick: peer.nick().to_string(),
        };
        let msgs = std::slice::from_ref(&joined);
        let mut enc = Encoded::new(msgs);
        if inner.members.len() <= self.cfg.announce_max_members {
            for m in &inner.members {
                if let Some(b) = enc.get(m.format) {
                    m.deliver(b);
                }
            }
        } else if let Some(b) = enc.get(peer.format) {
            // A big room: only the joiner hears about it.
            peer.deliver(b);
        }
        if let Some(u) = &room.uplink {
            if let Some(b) = enc.get(Format::Framed) {
                u.room_presence(&room.name, b);
            }
            u.membership(peer, &room.name, true);
            if new_room {
                u.room_created(&room.name);
            }
        }
        // The topic, as IRC sends it: right after the join.
        if let Some((text, by)) = room.topic() {
            peer.send(&ServerMsg::Topic {
                room: room.name.to_string(),
                text,
                by,
                changed: false,
            });
        }
        if !inner.history.is_empty() {
            let replay: Vec<ServerMsg> = inner.history.iter().cloned().map(as_history).collect();
            if let Some(b) = Encoded::new(&replay).get(peer.format) {
                peer.deliver(b);
            }
        }
        drop(inner);
        Ok(room)
    }

    /// Remove `peer` from `room`. `announce`: tell the remaining members
    /// (`Left` with `reason`); `tell_self`: also tell the leaver (a voluntary
    /// `/leave`). An empty room other than the default one is deleted.
    pub fn leave(
        &self,
        peer: &Peer,
        room: &Arc<Room>,
        reason: Option<&DisconnectReason>,
        announce: bool,
        tell_self: bool,
    ) {
        let mut rooms = lock(&self.rooms);
        let mut inner = lock(&room.inner);
        let announce = announce && inner.members.len() <= self.cfg.announce_max_members;
        inner.members.retain(|m| m.id != peer.id);
        let empty = inner.members.is_empty();
        if empty && &*room.name != self.cfg.default_room.as_str() {
            rooms.remove(&room.name);
            lock(&self.quota).removed(&room.name);
        }
        drop(rooms);
        if let Some(u) = &room.uplink {
            // The other nodes always hear it (even during this node's
            // shutdown, when local members get their own Bye instead).
            let left = ServerMsg::Left {
                room: room.name.to_string(),
                nick: peer.nick().to_string(),
                reason: reason.cloned(),
            };
            u.room_presence(&room.name, codec::server_frame(&left));
            u.membership(peer, &room.name, false);
        }
        if announce || tell_self {
            let left = ServerMsg::Left {
                room: room.name.to_string(),
                nick: peer.nick().to_string(),
                reason: reason.cloned(),
            };
            let msgs = std::slice::from_ref(&left);
            let mut enc = Encoded::new(msgs);
            if announce {
                for m in &inner.members {
                    if let Some(b) = enc.get(m.format) {
                        m.deliver(b);
                    }
                }
            }
            if tell_self && let Some(b) = enc.get(peer.format) {
                peer.deliver(b);
            }
        }
    }

    /// Every room with its member count (on every node, in cluster mode),
    /// sorted by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let rooms: Vec<Arc<Room>> = lock(&self.rooms).values().cloned().collect();
        let mut counts: HashMap<String, u64> = rooms
            .iter()
            .map(|r| (r.name.to_string(), r.len() as u64))
            .collect();
        if let Some(u) = self.uplink.get() {
            for r in u.remote_rooms() {
                *counts.entry(r.name).or_default() += u64::from(r.members);
            }
        }
        let mut v: Vec<RoomInfo> = counts
            .into_iter()
            .map(|(name, n)| RoomInfo {
                name,
                members: n.min(u64::from(u32::MAX)) as u32,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Members of a room that exists only on other nodes (cluster mode),
    /// sorted; `None` when no node has it.
    pub fn remote_who(&self, room: &str) -> Option<Vec<String>> {
        let mut v = self.uplink.get()?.remote_who(names::normalize_room(room));
        v.sort();
        (!v.is_empty()).then_some(v)
    }

    /// Cluster mode: what another node published for `room` (a chat batch,
    /// joins, leaves), delivered to the local members, each format encoded
    /// once; chat goes into the room's history too. Nothing when no local
    /// member is in the room.
    pub fn deliver_remote(&self, room: &str, msgs: &[ServerMsg]) {
        let Some(r) = self.room(room) else {
            return;
        };
        let mut inner = lock(&r.inner);
        let presence_only = msgs
            .iter()
            .all(|m| matches!(m, ServerMsg::Joined { .. } | ServerMsg::Left { .. }));
        if !presence_only || inner.members.len() <= self.cfg.announce_max_members {
            let mut enc = Encoded::new(msgs);
            for m in &inner.members {
                if let Some(b) = enc.get(m.format) {
                    m.deliver(b);
                }
            }
            let chats = msgs
                .iter()
                .filter(|m| matches!(m, ServerMsg::Chat { .. }))
                .count();
            self.counters.fan_out(0, chats * inner.members.len());
        }
        if inner.history_cap > 0 {
            for m in msgs.iter().filter(|m| matches!(m, ServerMsg::Chat { .. })) {
                if inner.history.len() >= inner.history_cap {
                    inner.history.pop_front();
                }
                inner.history.push_back(m.clone());
            }
        }
    }

    /// Cluster mode: `older` chat of `room` (oldest first) from the
    /// cluster's history, read after the room was created here. What the
    /// room's history does not hold yet and has room for goes before it,
    /// and is replayed (`history = true`) to the members, who joined before
    /// it came.
    pub fn seed_history(&self, room: &str, older: Vec<ServerMsg>) {
        let Some(r) = self.room(room) else {
            return;
        };
        let mut inner = lock(&r.inner);
        let space = inner.history_cap.saturating_sub(inner.history.len());
        let mut new: Vec<ServerMsg> = older
            .into_iter()
            .filter(|m| !inner.history.contains(m))
            .collect();
        new.drain(..new.len().saturating_sub(space));
        if new.is_empty() {
            return;
        }
        for m in new.iter().rev() {
            inner.history.push_front(m.clone());
        }
        let replay: Vec<ServerMsg> = new.into_iter().map(as_history).collect();
        let mut enc = Encoded::new(&replay);
        for m in &inner.members {
            if let Some(b) = enc.get(m.format) {
                m.deliver(b);
            }
        }
    }

    /// Cluster mode: another node's `NickChanged`, to the local members of
    /// `rooms` (each at most once).
    pub fn tell_remote_rooms(&self, rooms: &[String], msg: &ServerMsg) {
        let rooms: Vec<Arc<Room>> = rooms.iter().filter_map(|r| self.room(r)).collect();
        self.tell(&rooms, msg, None);
    }

    /// Send a notice to every local member of every room (cluster link
    /// state changes).
    pub fn notice_everyone(&self, text: &str) {
        let rooms: Vec<Arc<Room>> = lock(&self.rooms).values().cloned().collect();
        self.tell(
            &rooms,
            &ServerMsg::Notice {
                text: text.to_string(),
            },
            None,
        );
    }

    pub fn room_count(&self) -> usize {
        lock(&self.rooms).len()
    }

    /// Send `msg` once to every member of any of `rooms`, plus `also`
    /// (each peer at most once). Used for nick changes.
    pub fn tell_rooms(&self, rooms: &[Arc<Room>], msg: &ServerMsg, also: &Arc<Peer>) {
        if let Some(u) = self.uplink.get() {
            u.nick_changed(
                rooms.iter().map(|r| r.name.to_string()).collect(),
                codec::server_frame(msg),
            );
        }
        self.tell(rooms, msg, Some(also));
    }

    fn tell(&self, rooms: &[Arc<Room>], msg: &ServerMsg, also: Option<&Arc<Peer>>) {
        let mut seen: HashSet<u64> = HashSet::new();
        let msgs = std::slice::from_ref(msg);
        let mut enc = Encoded::new(msgs);
        if let Some(also) = also {
            seen.insert(also.id);
            if let Some(b) = enc.get(also.format) {
                also.deliver(b);
            }
        }
        for r in rooms {
            for m in r.members_snapshot() {
                if seen.insert(m.id)
                    && let Some(b) = enc.get(m.format)
                {
                    m.deliver(b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockchat_shared::ChatKind;

    fn hub() -> Hub {
        Hub::new(HubConfig {
            default_room: "lobby".into(),
            history: 2,
            announce_max_members: 1000,
            max_rooms: 10,
            room_quota: QuotaConfig {
                per_user: None,
                per_ip: None,
            },
            max_nick_len: 24,
            max_room_len: 32,
            server_name: "test".into(),
        })
    }

    fn peer(id: u64, format: Format) -> Arc<Peer> {
        Peer::new(
            id,
            "127.0.0.1:1".parse().expect("addr"),
            Transport::Tcp,
            format,
            16,
            SlowConsumerPolicy::Disconnect,
            None,
            CancellationToken::new(),
        )
    }

    async fn drain(p: &Peer) -> Vec<Bytes> {
        let mut q = VecDeque::new();
        p.outbox.close();
        p.outbox.next_batch(&mut q).await;
        q.into_iter().collect()
    }

    fn chat(text: &str) -> ServerMsg {
        ServerMsg::Chat {
            room: "lobby".into(),
            from: "a".into(),
            text: text.into(),
            kind: ChatKind::Say,
            ts_ms: 0,
            history: false,
        }
    }

    /// The nick key a peer holds follows its nick through register, a
    /// rename and unregister (the hub no longer folds the nick again at
    /// those steps): the old key is freed on rename, the new one on leaving,
    /// and an invitation matches a look-alike of the invited nick.
    #[test]
    fn the_held_nick_key_follows_renames_and_is_freed() {
        let h = hub();
        let (a, b) = (peer(1, Format::Framed), peer(2, Format::Framed));
        h.register(&a, "Alice").expect("alice");
        assert_eq!(&*a.nick_key(), fold::nick_key("alice").as_str());
        assert!(h.register(&b, "ALICE").is_err(), "same key: taken");
        h.rename(&a, "Carol").expect("rename");
        assert_eq!(&*a.nick_key(), fold::nick_key("carol").as_str());
        h.register(&b, "alice").expect("the old key was freed");
        assert!(h.rename(&b, "CAROL").is_err(), "the new key is held");
        let room = h.join(&b, "den").expect("den");
        room.set_invite_only(true);
        room.invite("caro\u{217c}"); // SMALL ROMAN NUMERAL FIFTY: NFKC `l`
        assert!(room.admits(&a, None, false).is_ok(), "carol was invited");
        h.unregister(&a);
        assert!(h.find("carol").is_none(), "freed on leaving");
        h.register(&peer(3, Format::Framed), "Carol")
            .expect("free again");
        assert!(
            room.admits(&peer(4, Format::Framed), None, false).is_err(),
            "nobody else is invited"
        );
    }

    /// One chunk per format per batch, and every member of a format gets the
    /// very same bytes (one encoding, shared).
    #[tokio::test]
    async fn a_batch_is_encoded_once_per_format_and_shared() {
        let h = hub();
        let (a, b, t1, t2) = (
            peer(1, Format::Framed),
            peer(2, Format::Framed),
            peer(3, Format::Text),
            peer(4, Format::Text),
        );
        let mut room = None;
        for (p, n) in [(&a, "a"), (&b, "b"), (&t1, "t1"), (&t2, "t2")] {
            h.register(p, n).expect("nick");
            room = Some(h.join(p, "lobby").expect("join"));
        }
        let room = room.expect("room");
        // Throw away the join notices.
        for p in [&a, &b, &t1, &t2] {
            let mut q = VecDeque::new();
            p.outbox.take_all(&mut q);
        }
        room.fan_out_chat(vec![chat("one"), chat("two")], t1.id);
        let (qa, qb, q1, q2) = (
            drain(&a).await,
            drain(&b).await,
            drain(&t1).await,
            drain(&t2).await,
        );
        assert_eq!(qa.len(), 1, "one chunk for the whole batch");
        assert_eq!(
            qa[0].as_ptr(),
            qb[0].as_ptr(),
            "framed members share one buffer"
        );
        assert!(q1.is_empty(), "a text sender gets no echo");
        assert_eq!(&q2[0][..], b"[lobby] a: one\n[lobby] a: two\n");
        // History keeps the last 2, replayed with history = true.
        room.fan_out_chat(vec![chat("three")], a.id);
        let c = peer(5, Format::Text);
        h.register(&c, "c").expect("nick");
        h.join(&c, "lobby").expect("join");
        let got = drain(&c).await;
        let all: Vec<u8> = got.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(
            String::from_utf8(all).expect("utf-8"),
            "* c joined lobby\n[lobby history] a: two\n[lobby history] a: three\n"
        );
    }

    /// Cluster history read after the room was created here goes before
    /// the room's own, once, only as much as the cap leaves, and is
    /// replayed to the members already in.
    #[tokio::test]
    async fn seeded_history_goes_first_once_within_the_cap() {
        let h = hub();
        let a = peer(1, Format::Text);
        h.register(&a, "a").expect("nick");
        let room = h.join(&a, "lobby").expect("join");
        room.fan_out_chat(vec![chat("three")], 9);
        let mut q = VecDeque::new();
        a.outbox.take_all(&mut q);
        h.seed_history("lobby", vec![chat("one"), chat("two"), chat("three")]);
        h.seed_history("nowhere", vec![chat("x")]);
        let all: Vec<u8> = drain(&a).await.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(
            String::from_utf8(all).expect("utf-8"),
            "[lobby history] a: two\n"
        );
        let c = peer(2, Format::Text);
        h.register(&c, "c").expect("nick");
        h.join(&c, "lobby").expect("join");
        let all: Vec<u8> = drain(&c).await.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(
            String::from_utf8(all).expect("utf-8"),
            "* c joined lobby\n[lobby history] a: two\n[lobby history] a: three\n"
        );
    }

    /// A socket that records every `writev` it is offered and takes all.
    #[derive(Default)]
    struct CountingSocket {
        writes: Mutex<Vec<Vec<u8>>>,
    }

    impl SocketView for CountingSocket {
        fn fields(&self) -> Vec<(String, String)> {
            Vec::new()
        }

        fn try_writev_now(&self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len();
            lock(&self.writes).push(all);
            Ok(n)
        }
    }

    /// The fan-out regression (one `write` per message per member, made
    /// under the room lock): everything a member is owed during one turn
    /// (an `owed` scope: one read of one sender) is written with one
    /// syscall when the turn ends, in order, and nothing before that.
    #[test]
    fn a_turn_writes_each_member_once() {
        let h = hub();
        let sock = Arc::new(CountingSocket::default());
        let view: Arc<dyn SocketView> = sock.clone();
        let m = Peer::new(
            1,
            "127.0.0.1:1".parse().expect("addr"),
            Transport::Tcp,
            Format::Text,
            16,
            SlowConsumerPolicy::Disconnect,
            Some(view),
            CancellationToken::new(),
        );
        h.register(&m, "m").expect("nick");
        // (Outside a scope the join notice would go to a writer task, which
        // this test does not run.)
        let room = {
            let _turn = owed::scope();
            h.join(&m, "lobby").expect("join")
        };
        assert_eq!(lock(&sock.writes).len(), 1, "the join notice");
        lock(&sock.writes).clear();
        {
            let _turn = owed::scope();
            room.fan_out_chat(vec![chat("one")], 99);
            room.fan_out_chat(vec![chat("two")], 98);
            room.broadcast(
                &ServerMsg::Notice {
                    text: "three".into(),
                },
                None,
            );
            assert!(lock(&sock.writes).is_empty(), "written during the turn");
        }
        let w = lock(&sock.writes).clone();
        assert_eq!(w.len(), 1, "one writev per member per turn: {w:?}");
        assert_eq!(
            String::from_utf8_lossy(&w[0]),
            "[lobby] a: one\n[lobby] a: two\n* three\n"
        );
        assert_eq!(m.outbox.depth(), 0);
    }

    /// A full outbox makes its member a slow consumer without blocking the
    /// sender or the other members.
    #[tokio::test]
    async fn full_outbox_fails_only_that_member() {
        let h = hub();
        let (slow, ok) = (peer(1, Format::Framed), peer(2, Format::Framed));
        h.register(&slow, "slow").expect("nick");
        h.register(&ok, "ok").expect("nick");
        let room = h.join(&slow, "lobby").expect("join");
        h.join(&ok, "lobby").expect("join");
        for i in 0..20 {
            room.fan_out_chat(vec![chat(&i.to_string())], 99);
            let mut q = VecDeque::new();
            ok.outbox.take_all(&mut q); // `ok` keeps up
        }
        assert_eq!(
            slow.reason(),
            Some(DisconnectReason::SlowConsumer { frames: 16 })
        );
        assert!(slow.cancel_token().is_cancelled());
        assert!(slow.ending());
        assert_eq!(ok.reason(), None);
        assert!(!ok.ending());
    }

    /// A TCP peer's token is a child of the shutdown's: the reader tells the
    /// server stopping (no reason of its own) from its own end.
    #[test]
    fn a_parent_cancel_is_not_the_peer_ending() {
        let stop = CancellationToken::new();
        let make = |id| {
            Peer::new(
                id,
                "127.0.0.1:1".parse().expect("addr"),
                Transport::Tcp,
                Format::Framed,
                16,
                SlowConsumerPolicy::Disconnect,
                None,
                stop.child_token(),
            )
        };
        let (kicked, failed, plain) = (make(1), make(2), make(3));
        assert!(kicked.remove(DisconnectReason::Kicked {
            by: "op".into(),
            why: "spam".into(),
        }));
        failed.fail(DisconnectReason::Eof);
        assert!(!stop.is_cancelled(), "a child's cancel stays its own");
        assert!(!plain.cancel_token().is_cancelled());
        assert!(!plain.ending());
        stop.cancel();
        assert!(plain.cancel_token().is_cancelled());
        assert!(
            !plain.ending(),
            "the server stopping is not this peer's end"
        );
        assert!(kicked.ending() && failed.ending());
    }
}
