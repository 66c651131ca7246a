//! A proptest state machine of the hub: random sequences of connect (with
//! look-alike nicks), join, leave, rename, kick and disconnect (with a
//! reason) are run against the real `Hub` and `Peer`s (in process, their
//! outboxes read back and decoded) and against a model, and after every
//! step:
//!
//! - a nick is unique after folding (`shared::fold`): a register or rename
//!   is refused exactly when another live user's nick folds to the same key,
//!   and `Hub::find` finds each live user by its nick;
//! - a member is in exactly the rooms it joined (`Room::who` of every room
//!   equals the model), rooms exist exactly while someone is in them (the
//!   default room stays), `Hub::user_count` and `Hub::rooms` agree;
//! - every message each peer was sent is exactly what the step owed it:
//!   every departure is announced exactly once per shared room, to every
//!   member that stayed, with the one reason (none for a `/leave`), and a
//!   nick change once to everyone who shares a room.
//!
//! A disconnect is what `Session::end` does with the hub (leave every room
//! announcing the reason, then free the nick); the session's own
//! exactly-once rule (the first reason wins) is tested with it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use proptest::prelude::*;
use sockchat_server::hub::{Format, Hub, HubConfig, HubError, Peer, Transport};
use sockchat_server::room_quota::QuotaConfig;
use sockchat_shared::config::SlowConsumerPolicy;
use sockchat_shared::{DisconnectReason, ServerMsg, codec, fold};

/// Nicks to draw from: several fold to the same key (case, Cyrillic а,
/// fullwidth, ß/SS, rn/m), plus one invalid nick.
const NICKS: [&str; 12] = [
    "alice",
    "ALICE",
    "аlice",
    "ａｌｉｃｅ",
    "bob",
    "Bob",
    "straße",
    "STRASSE",
    "rn",
    "m",
    "carol",
    "bad nick",
];
const ROOMS: [&str; 4] = ["lobby", "dev", "#dev", "ops"];
const SLOTS: usize = 6;
const LOBBY: &str = "lobby";

fn reasons() -> Vec<DisconnectReason> {
    vec![
        DisconnectReason::Quit {
            message: "bye".into(),
        },
        DisconnectReason::Eof,
        DisconnectReason::Reset,
        DisconnectReason::IdleTimeout { secs: 90 },
        DisconnectReason::SlowConsumer { frames: 1024 },
        DisconnectReason::RateLimited,
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Connect(usize, usize),
    Join(usize, usize),
    Leave(usize, usize),
    Rename(usize, usize),
    /// Slot, reason, and a second reason recorded after it (must lose).
    Disconnect(usize, usize, usize),
    /// An operator (second slot) kicks a user (`Peer::remove`, as `/kick`
    /// does); its socket then fails too (reset), which must lose.
    Kick(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..SLOTS, 0..NICKS.len()).prop_map(|(s, n)| Op::Connect(s, n)),
        3 => (0..SLOTS, 0..ROOMS.len()).prop_map(|(s, r)| Op::Join(s, r)),
        2 => (0..SLOTS, 0..ROOMS.len()).prop_map(|(s, r)| Op::Leave(s, r)),
        2 => (0..SLOTS, 0..NICKS.len()).prop_map(|(s, n)| Op::Rename(s, n)),
        2 => (0..SLOTS, 0..6usize, 0..6usize).prop_map(|(s, a, b)| Op::Disconnect(s, a, b)),
        1 => (0..SLOTS, 0..SLOTS).prop_map(|(s, by)| Op::Kick(s, by)),
    ]
}

/// One live user: the real peer and what the model says about it.
struct User {
    peer: Arc<Peer>,
    nick: String,
    /// Rooms joined, in order (names normalised).
    rooms: Vec<String>,
}

struct World {
    hub: Hub,
    users: Vec<Option<User>>,
    next_id: u64,
}

fn hub() -> Hub {
    Hub::new(HubConfig {
        default_room: LOBBY.into(),
        history: 0,
        announce_max_members: 1000,
        max_rooms: 100,
        room_quota: QuotaConfig {
            per_user: None,
            per_ip: None,
        },
        max_nick_len: 24,
        max_room_len: 32,
        server_name: "model".into(),
    })
}

fn norm(room: &str) -> String {
    room.trim_start_matches('#').to_string()
}

/// Everything queued for `peer`, decoded, without waiting.
fn drain(peer: &Peer) -> Vec<ServerMsg> {
    let mut q: VecDeque<Bytes> = VecDeque::new();
    {
        let mut fut = pin!(peer.outbox.next_batch(&mut q));
        let mut cx = Context::from_waker(Waker::noop());
        let _ = matches!(fut.as_mut().poll(&mut cx), Poll::Ready(_));
    }
    let mut out = Vec::new();
    for chunk in q {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let (payload, used) = codec::split_frame(rest, 1 << 20)
                .expect("a frame")
                .expect("a whole frame");
            out.push(codec::decode_server(payload).expect("a server message"));
            rest = &rest[used..];
        }
    }
    out
}

impl World {
    fn new() -> Self {
        World {
            hub: hub(),
            users: (0..SLOTS).map(|_| None).collect(),
            next_id: 1,
        }
    }

    fn members(&self, room: &str) -> Vec<usize> {
        (0..SLOTS)
            .filter(|&i| {
                self.users[i]
                    .as_ref()
                    .is_some_and(|u| u.rooms.iter().any(|r| r == room))
            })
            .collect()
    }

    fn taken_by_other(&self, slot: Option<usize>, nick: &str) -> bool {
        let key = fold::nick_key(nick);
        self.users.iter().enumerate().any(|(i, u)| {
            Some(i) != slot && u.as_ref().is_some_and(|u| fold::nick_key(&u.nick) == key)
        })
    }

    /// Run one step; returns what every slot (and a departed peer) must
    /// have been sent by it.
    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let mut owed: BTreeMap<usize, Vec<ServerMsg>> = BTreeMap::new();
        let mut gone: Option<Arc<Peer>> = None;
        match *op {
            Op::Connect(s, n) => {
                if self.users[s].is_some() {
                    return Ok(());
                }
                let nick = NICKS[n];
                let peer = Peer::new(
                    self.next_id,
                    "127.0.0.1:40000".parse().expect("addr"),
                    Transport::Tcp,
                    Format::Framed,
                    4096,
                    SlowConsumerPolicy::Disconnect,
                    None,
                    tokio_util::sync::CancellationToken::new(),
                );
                self.next_id += 1;
                let res = self.hub.register(&peer, nick);
                let valid = !nick.contains(' ');
                match res {
                    Ok(got) => {
                        prop_assert!(
                            valid && !self.taken_by_other(None, nick),
                            "{nick} given twice"
                        );
                        prop_assert_eq!(&*got, nick);
                    }
                    Err(HubError::NickTaken(_)) => {
                        prop_assert!(self.taken_by_other(None, nick), "{nick} refused but free");
                        prop_assert!(drain(&peer).is_empty());
                        return Ok(());
                    }
                    Err(HubError::BadName(_)) => {
                        prop_assert!(!valid);
                        return Ok(());
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("register: {e}"))),
                }
                self.hub.join(&peer, LOBBY).expect("lobby");
                self.users[s] = Some(User {
                    peer,
                    nick: nick.to_string(),
                    rooms: vec![LOBBY.into()],
                });
                let joined = ServerMsg::Joined {
                    room: LOBBY.into(),
                    nick: nick.into(),
                };
                for m in self.members(LOBBY) {
                    owed.entry(m).or_default().push(joined.clone());
                }
            }
            Op::Join(s, r) => {
                let room = norm(ROOMS[r]);
                let Some(u) = &self.users[s] else {
                    return Ok(());
                };
                if u.rooms.contains(&room) {
                    return Ok(()); // the session answers that itself
                }
                let got = self.hub.join(&u.peer, ROOMS[r]).expect("join");
                prop_assert_eq!(&*got.name, room.as_str());
                let nick = u.nick.clone();
                if let Some(u) = self.users[s].as_mut() {
                    u.rooms.push(room.clone());
                }
                let joined = ServerMsg::Joined {
                    room: room.clone(),
                    nick,
                };
                for m in self.members(&room) {
                    owed.entry(m).or_default().push(joined.clone());
                }
            }
            Op::Leave(s, r) => {
                let room = norm(ROOMS[r]);
                let Some(u) = &self.users[s] else {
                    return Ok(());
                };
                if !u.rooms.contains(&room) {
                    return Ok(());
                }
                let arc = self.hub.room(&room).expect("a joined room exists");
                self.hub.leave(&u.peer, &arc, None, true, true);
                let left = ServerMsg::Left {
                    room: room.clone(),
                    nick: u.nick.clone(),
                    reason: None,
                };
                if let Some(u) = self.users[s].as_mut() {
                    u.rooms.retain(|x| *x != room);
                }
                for m in self.members(&room).into_iter().chain([s]) {
                    owed.entry(m).or_default().push(left.clone());
                }
            }
            Op::Rename(s, n) => {
                let new = NICKS[n];
                let Some(u) = &self.users[s] else {
                    return Ok(());
                };
                let old = u.nick.clone();
                let res = self.hub.rename(&u.peer, new);
                let valid = !new.contains(' ');
                match res {
                    Ok(was) => {
                        prop_assert!(
                            valid && !self.taken_by_other(Some(s), new),
                            "{new} given twice"
                        );
                        prop_assert_eq!(&*was, old.as_str());
                    }
                    Err(HubError::NickTaken(_)) => {
                        prop_assert!(self.taken_by_other(Some(s), new), "{new} refused but free");
                        return Ok(());
                    }
                    Err(HubError::BadName(_)) => {
                        prop_assert!(!valid);
                        return Ok(());
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("rename: {e}"))),
                }
                if old != new {
                    // As the session does: everyone sharing a room, once.
                    let rooms: Vec<_> = u.rooms.iter().filter_map(|r| self.hub.room(r)).collect();
                    let m = ServerMsg::NickChanged {
                        old: old.clone(),
                        new: new.into(),
                    };
                    self.hub.tell_rooms(&rooms, &m, &u.peer);
                    let mut told: BTreeSet<usize> = BTreeSet::from([s]);
                    for r in &u.rooms {
                        told.extend(self.members(r));
                    }
                    for i in told {
                        owed.entry(i).or_default().push(m.clone());
                    }
                }
                if let Some(u) = self.users[s].as_mut() {
                    u.nick = new.to_string();
                }
            }
            Op::Disconnect(..) | Op::Kick(..) => {
                let (s, first, second, kick) = match *op {
                    Op::Disconnect(s, a, b) => {
                        (s, reasons()[a].clone(), reasons()[b].clone(), false)
                    }
                    Op::Kick(s, by) => {
                        let Some(op_nick) = self.users[by].as_ref().map(|u| u.nick.clone()) else {
                            return Ok(());
                        };
                        let kicked = DisconnectReason::Kicked {
                            by: op_nick,
                            why: "flood".into(),
                        };
                        (s, kicked, DisconnectReason::Reset, true)
                    }
                    _ => unreachable!(),
                };
                let Some(u) = self.users[s].take() else {
                    return Ok(());
                };
                // Session::end: the first reason recorded wins.
                if kick {
                    prop_assert!(u.peer.remove(first.clone()));
                    prop_assert!(u.peer.removed());
                } else {
                    prop_assert!(u.peer.set_reason(first.clone()));
                }
                prop_assert!(!u.peer.set_reason(second));
                let reason = u.peer.reason().expect("a reason");
                prop_assert_eq!(&reason, &first);
                for r in &u.rooms {
                    let arc = self.hub.room(r).expect("a joined room exists");
                    self.hub.leave(&u.peer, &arc, Some(&reason), true, false);
                    let left = ServerMsg::Left {
                        room: r.clone(),
                        nick: u.nick.clone(),
                        reason: Some(reason.clone()),
                    };
                    for m in self.members(r) {
                        owed.entry(m).or_default().push(left.clone());
                    }
                }
                self.hub.unregister(&u.peer);
                gone = Some(u.peer);
            }
        }
        if let Some(p) = gone {
            prop_assert_eq!(
                drain(&p),
                Vec::<ServerMsg>::new(),
                "the departed peer was told"
            );
        }
        for i in 0..SLOTS {
            if let Some(u) = &self.users[i] {
                let want = owed.remove(&i).unwrap_or_default();
                prop_assert_eq!(
                    drain(&u.peer),
                    want,
                    "slot {} ({}) after {:?}",
                    i,
                    u.nick,
                    op
                );
            }
        }
        self.check()
    }

    /// The invariants that hold between steps.
    fn check(&self) -> Result<(), TestCaseError> {
        let live: Vec<&User> = self.users.iter().flatten().collect();
        prop_assert_eq!(self.hub.user_count(), live.len());
        let keys: BTreeSet<String> = live.iter().map(|u| fold::nick_key(&u.nick)).collect();
        prop_assert_eq!(keys.len(), live.len(), "two live nicks fold to one key");
        for u in &live {
            let found = self.hub.find(&u.nick).expect("a live nick is found");
            prop_assert_eq!(found.id, u.peer.id);
            prop_assert_eq!(&*u.peer.nick(), u.nick.as_str());
        }
        let mut want_rooms: BTreeSet<String> = BTreeSet::new();
        for name in ROOMS.iter().map(|r| norm(r)) {
            let mut want: Vec<String> = self
                .members(&name)
                .into_iter()
                .filter_map(|i| self.users[i].as_ref().map(|u| u.nick.clone()))
                .collect();
            want.sort();
            match self.hub.room(&name) {
                Some(r) => {
                    prop_assert!(
                        !want.is_empty() || name == LOBBY,
                        "empty room {} kept",
                        name
                    );
                    prop_assert_eq!(r.who(), want.clone(), "members of {}", name);
                    want_rooms.insert(name);
                }
                None => prop_assert!(want.is_empty(), "room {} missing", name),
            }
        }
        let listed: BTreeSet<String> = self.hub.rooms().into_iter().map(|r| r.name).collect();
        prop_assert_eq!(listed, want_rooms);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn hub_keeps_its_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        let mut w = World::new();
        for op in &ops {
            w.step(op)?;
        }
        // Everyone leaves: nothing is left behind but the default room.
        for s in 0..SLOTS {
            w.step(&Op::Disconnect(s, 1, 2))?;
        }
        prop_assert_eq!(w.hub.user_count(), 0);
        prop_assert!(w.hub.rooms().iter().all(|r| r.name == LOBBY && r.members == 0));
    }
}
