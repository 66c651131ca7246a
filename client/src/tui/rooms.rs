//! The room buffers of the terminal UI and their bounds. A server decides
//! how many rooms we are in and how much it sends, so nothing here may grow
//! with it unchecked: a room is found by name in a map (never by a scan per
//! event), rooms keep the order they appeared in (a `BTreeMap` by number,
//! so removing one is cheap too), and the lines of all rooms together stay
//! under a byte budget (`[client] scrollback_bytes`): past it the oldest
//! line of any room goes first.
//!
//! Names are kept exactly as the server sent them (the protocol needs the
//! original to address a room); the view sanitises them when it draws.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use sockchat_shared::text::Severity;

/// Lines kept per room; older ones scroll away for good.
pub const SCROLLBACK: usize = 5000;
/// Rooms kept at most; events for further new rooms are not shown.
pub const ROOMS_MAX: usize = 131_072;
/// Member names kept at most, over all rooms (member lists are only
/// for the sidebar and Tab completion).
pub const MEMBERS_MAX: usize = 500_000;

/// A room's number: the order rooms appeared in.
pub type RoomId = u64;

/// What kind of line a chat line is (it decides the colours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    Chat {
        from: String,
        me: bool,
    },
    Private {
        from: String,
        to: String,
    },
    System,
    Error,
    /// A line exactly as `shared::text::render` wrote it (its `* ` or `! `
    /// included), styled by its severity.
    Rendered(Severity),
    /// The day changed: the view writes the date of `ts_ms`.
    Day,
    /// Replayed history follows (the server's last messages of the room).
    HistoryStart,
}

/// One line in a room's scrollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    pub ts_ms: u64,
    pub kind: LineKind,
    pub text: String,
    /// Replayed history (drawn dimmer, marked).
    pub history: bool,
    /// It mentions our nick (or is a private message to us): highlighted.
    pub mention: bool,
    /// The server's timestamp of a chat line (0 for local lines): `ts_ms`
    /// is when it reached us (one clock for every line on screen), this
    /// recognises a replayed line already shown.
    pub server_ms: u64,
}

impl ChatLine {
    /// A local line (notice, error) at `ts_ms`.
    pub fn local(ts_ms: u64, kind: LineKind, text: String) -> Self {
        Self {
            ts_ms,
            kind,
            text,
            history: false,
            mention: false,
            server_ms: 0,
        }
    }
}

impl ChatLine {
    /// What keeping this line costs, roughly, in bytes (its heap strings,
    /// its slot, and its entry in the eviction order).
    fn cost(&self) -> usize {
        let names = match &self.kind {
            LineKind::Chat { from, .. } => from.len(),
            LineKind::Private { from, to } => from.len() + to.len(),
            LineKind::System
            | LineKind::Error
            | LineKind::Rendered(_)
            | LineKind::Day
            | LineKind::HistoryStart => 0,
        };
        std::mem::size_of::<ChatLine>() + ORDER_ENTRY + self.text.len() + names
    }
}

/// Bytes of one entry of [`Rooms::order`].
const ORDER_ENTRY: usize = std::mem::size_of::<(RoomId, u64)>();

/// A room buffer: its lines, members and where the user is scrolled to.
#[derive(Debug, Clone)]
pub struct Room {
    /// As the server sent it (may hold characters the view replaces).
    pub name: String,
    pub lines: VecDeque<ChatLine>,
    /// Chat lines that arrived while another room was in view.
    pub unread: usize,
    /// Of those, the ones that mention us (or private messages).
    pub mentions: usize,
    /// A private view (`/query NICK`): the peer's nick. Never joined,
    /// never asked for members; a line typed here is `/msg NICK`.
    pub query: Option<String>,
    pub members: BTreeSet<String>,
    /// The room's topic as the server last told it (`/topic`); shown in
    /// the chat's title.
    pub topic: Option<String>,
    pub joined: bool,
    /// We were in this room when the connection dropped: the net task will
    /// rejoin it after reconnecting, so the view stays on it.
    pub rejoin: bool,
    /// Its member list was asked for on this connection.
    pub who_asked: bool,
    /// Lines scrolled up from the bottom (0: following new lines).
    pub scroll: usize,
    /// New lines that arrived below the view while scrolled up.
    pub new_below: usize,
    /// The number (within this room) of `lines[0]`.
    front_no: u64,
}

impl Room {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            lines: VecDeque::new(),
            unread: 0,
            mentions: 0,
            query: None,
            members: BTreeSet::new(),
            topic: None,
            joined: false,
            rejoin: false,
            who_asked: false,
            scroll: 0,
            new_below: 0,
            front_no: 0,
        }
    }

    /// The number (within this room) of its oldest kept line.
    pub fn front_no(&self) -> u64 {
        self.front_no
    }

    /// The number the next pushed line gets.
    fn next_no(&self) -> u64 {
        self.front_no + self.lines.len() as u64
    }

    /// Drop the oldest line; returns its cost.
    fn pop_oldest(&mut self) -> usize {
        let Some(l) = self.lines.pop_front() else {
            return 0;
        };
        self.front_no += 1;
        self.scroll = self.scroll.min(self.lines.len().saturating_sub(1));
        l.cost()
    }
}

/// Every room buffer, by number and by name.
#[derive(Debug, Clone)]
pub struct Rooms {
    by_id: BTreeMap<RoomId, Room>,
    by_name: HashMap<String, RoomId>,
    next_id: RoomId,
    /// Every line still counted, oldest first: (room, number in the room).
    /// Entries of lines already gone (their room left, or its own cap)
    /// stay until they reach the front; they are counted in `bytes`.
    order: VecDeque<(RoomId, u64)>,
    /// Cost of every kept line plus every `order` entry.
    bytes: usize,
    budget: usize,
    members: usize,
    /// Which rooms list each member, so a rename touches only those.
    member_of: HashMap<String, HashSet<RoomId>>,
}

impl Rooms {
    /// One room (the first: there is always at least one), and a budget of
    /// `budget` bytes for all lines.
    pub fn new(first: &str, budget: usize) -> Self {
        let mut r = Self {
            by_id: BTreeMap::new(),
            by_name: HashMap::new(),
            next_id: 0,
            order: VecDeque::new(),
            bytes: 0,
            budget,
            members: 0,
            member_of: HashMap::new(),
        };
        r.insert(first);
        r
    }

    fn insert(&mut self, name: &str) -> RoomId {
        let id = self.next_id;
        self.next_id += 1;
        self.by_id.insert(id, Room::new(name));
        self.by_name.insert(name.to_string(), id);
        id
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Bytes the lines of all rooms take (estimated).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn find(&self, name: &str) -> Option<RoomId> {
        self.by_name.get(name).copied()
    }

    /// The room called `name`, created if new; `None` past [`ROOMS_MAX`].
    pub fn ensure(&mut self, name: &str) -> Option<RoomId> {
        if let Some(id) = self.find(name) {
            return Some(id);
        }
        (self.by_id.len() < ROOMS_MAX).then(|| self.insert(name))
    }

    pub fn get(&self, id: RoomId) -> Option<&Room> {
        self.by_id.get(&id)
    }

    pub fn get_mut(&mut self, id: RoomId) -> Option<&mut Room> {
        self.by_id.get_mut(&id)
    }

    /// Rooms in the order they appeared.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (RoomId, &Room)> {
        self.by_id.iter().map(|(id, r)| (*id, r))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Room> {
        self.by_id.values_mut()
    }

    /// Up to `before` rooms before `id` and the rest of `n` from `id` on:
    /// the window the sidebar shows, without walking every room.
    pub fn window(&self, id: RoomId, before: usize, n: usize) -> Vec<(RoomId, &Room)> {
        let mut head: Vec<(RoomId, &Room)> = self
            .by_id
            .range(..id)
            .rev()
            .take(before)
            .map(|(i, r)| (*i, r))
            .collect();
        head.reverse();
        let rest = n.saturating_sub(head.len());
        head.extend(self.by_id.range(id..).take(rest).map(|(i, r)| (*i, r)));
        head
    }

    /// The `n`th room (0-based) in the order they appeared (Alt-1..9).
    pub fn nth(&self, n: usize) -> Option<RoomId> {
        self.by_id.keys().nth(n).copied()
    }

    /// Replace the text of line number `no` of a room (as `line_no` gave
    /// it), if it is still kept; the byte count follows.
    pub fn edit(&mut self, id: RoomId, no: u64, text: String) -> bool {
        let Some(room) = self.by_id.get_mut(&id) else {
            return false;
        };
        let Some(l) = no
            .checked_sub(room.front_no)
            .and_then(|i| room.lines.get_mut(i as usize))
        else {
            return false;
        };
        self.bytes = self.bytes - l.text.len() + text.len();
        l.text = text;
        self.evict();
        true
    }

    /// The number the last line of a room has (for [`Rooms::edit`]).
    pub fn last_no(&self, id: RoomId) -> Option<u64> {
        let room = self.by_id.get(&id)?;
        room.next_no()
            .checked_sub(1)
            .filter(|_| !room.lines.is_empty())
    }

    /// Forget every line of a room (`/clear`); the budget gets them back.
    pub fn clear_lines(&mut self, id: RoomId) {
        let Some(room) = self.by_id.get_mut(&id) else {
            return;
        };
        let freed: usize = room.lines.iter().map(|l| l.cost() - ORDER_ENTRY).sum();
        room.front_no += room.lines.len() as u64;
        room.lines.clear();
        room.scroll = 0;
        room.new_below = 0;
        // Their `order` entries stay (counted) until they reach the front.
        self.bytes -= freed;
    }

    /// The room `step` places after (or before) `id`, wrapping around.
    pub fn step(&self, id: RoomId, forward: bool) -> RoomId {
        let next = if forward {
            self.by_id
                .range(id + 1..)
                .next()
                .or_else(|| self.by_id.iter().next())
        } else {
            self.by_id
                .range(..id)
                .next_back()
                .or_else(|| self.by_id.iter().next_back())
        };
        next.map(|(i, _)| *i).unwrap_or(id)
    }

    /// The first room (there is always one).
    pub fn first(&self) -> RoomId {
        self.by_id.keys().next().copied().unwrap_or(0)
    }

    /// Call room `id` `name` from now on (a private view whose peer changed
    /// nick). False when another room already has that name.
    pub fn rename(&mut self, id: RoomId, name: &str) -> bool {
        if self.by_name.contains_key(name) {
            return false;
        }
        let Some(room) = self.by_id.get_mut(&id) else {
            return false;
        };
        self.by_name.remove(&room.name);
        room.name = name.to_string();
        self.by_name.insert(name.to_string(), id);
        true
    }

    /// Remove a room (never the last one). Returns whether it was removed.
    pub fn remove(&mut self, id: RoomId) -> bool {
        if self.by_id.len() <= 1 {
            return false;
        }
        let Some(room) = self.by_id.remove(&id) else {
            return false;
        };
        self.by_name.remove(&room.name);
        self.members -= room.members.len();
        for n in &room.members {
            self.unindex(n, id);
        }
        // Its entries in `order` stay (counted) until they reach the front.
        self.bytes -= room
            .lines
            .iter()
            .map(|l| l.cost() - ORDER_ENTRY)
            .sum::<usize>();
        true
    }

    /// Append a line to a room, then drop the oldest lines of any room
    /// while over the budget.
    pub fn push(&mut self, id: RoomId, line: ChatLine) {
        let Some(room) = self.by_id.get_mut(&id) else {
            return;
        };
        let cost = line.cost();
        let no = room.next_no();
        room.lines.push_back(line);
        if room.scroll > 0 {
            // Keep the view where the user put it.
            room.scroll = (room.scroll + 1).min(room.lines.len().saturating_sub(1));
            room.new_below += 1;
        }
        let mut freed = 0;
        if room.lines.len() > SCROLLBACK {
            // Its order entry stays until it reaches the front.
            freed = room.pop_oldest() - ORDER_ENTRY;
        }
        self.order.push_back((id, no));
        self.bytes = self.bytes + cost - freed;
        self.evict();
    }

    /// Drop the oldest lines (of any room) until within the budget.
    fn evict(&mut self) {
        while self.bytes > self.budget {
            let Some((id, no)) = self.order.pop_front() else {
                break;
            };
            self.bytes -= ORDER_ENTRY;
            if let Some(room) = self.by_id.get_mut(&id)
                && room.front_no == no
            {
                self.bytes -= room.pop_oldest() - ORDER_ENTRY;
            }
        }
    }

    /// Add a member to a room (false past [`MEMBERS_MAX`]).
    pub fn add_member(&mut self, id: RoomId, nick: &str) -> bool {
        let Some(room) = self.by_id.get_mut(&id) else {
            return false;
        };
        if room.members.contains(nick) {
            return true;
        }
        if self.members >= MEMBERS_MAX {
            return false;
        }
        room.members.insert(nick.to_string());
        self.members += 1;
        self.member_of
            .entry(nick.to_string())
            .or_default()
            .insert(id);
        true
    }

    pub fn remove_member(&mut self, id: RoomId, nick: &str) -> bool {
        let removed = self
            .by_id
            .get_mut(&id)
            .is_some_and(|r| r.members.remove(nick));
        if removed {
            self.members -= 1;
            self.unindex(nick, id);
        }
        removed
    }

    fn unindex(&mut self, nick: &str, id: RoomId) {
        if let Some(set) = self.member_of.get_mut(nick) {
            set.remove(&id);
            if set.is_empty() {
                self.member_of.remove(nick);
            }
        }
    }

    /// Replace a room's member list (a `Who` answer), within the cap.
    pub fn set_members<'a>(&mut self, id: RoomId, nicks: impl IntoIterator<Item = &'a String>) {
        let Some(room) = self.by_id.get_mut(&id) else {
            return;
        };
        let old = std::mem::take(&mut room.members);
        self.members -= old.len();
        for n in &old {
            self.unindex(n, id);
        }
        for n in nicks {
            if !self.add_member(id, n) {
                break;
            }
        }
    }

    /// A member's new nick in every room that lists the old one; returns
    /// those rooms. Costs as many steps as there are such rooms.
    pub fn rename_member(&mut self, old: &str, new: &str) -> Vec<RoomId> {
        let Some(ids) = self.member_of.remove(old) else {
            return Vec::new();
        };
        let ids: Vec<RoomId> = ids.into_iter().collect();
        for &id in &ids {
            if let Some(room) = self.by_id.get_mut(&id) {
                room.members.remove(old);
                self.members -= 1;
            }
            self.add_member(id, new);
        }
        ids
    }

    /// Forget a room's members (a room we are no longer in).
    pub fn clear_room_members(&mut self, id: RoomId) {
        self.set_members(id, &[]);
    }

    /// Forget every member list (the connection is gone).
    pub fn clear_members(&mut self) {
        for r in self.by_id.values_mut() {
            r.members.clear();
        }
        self.members = 0;
        self.member_of.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> ChatLine {
        ChatLine::local(0, LineKind::System, text.into())
    }

    #[test]
    fn budget_drops_the_oldest_line_of_any_room() {
        let one = line(&"x".repeat(1000)).cost();
        let mut r = Rooms::new("a", one * 3 + one / 2);
        let b = r.ensure("b").unwrap_or(0);
        let a = r.first();
        r.push(a, line(&"x".repeat(1000)));
        r.push(b, line(&"x".repeat(1000)));
        r.push(a, line(&"x".repeat(1000)));
        assert_eq!(r.get(a).map(|x| x.lines.len()), Some(2));
        r.push(b, line(&"x".repeat(1000)));
        // The oldest (a's first) went.
        assert_eq!(r.get(a).map(|x| x.lines.len()), Some(1));
        assert_eq!(r.get(b).map(|x| x.lines.len()), Some(2));
        assert!(r.bytes() <= one * 3 + one / 2);
        // Removing a room frees its lines; its stale order entries are
        // dropped as they reach the front.
        assert!(r.remove(b));
        for _ in 0..10 {
            r.push(a, line(&"x".repeat(1000)));
        }
        assert!(r.bytes() <= one * 3 + one / 2, "{}", r.bytes());
        assert_eq!(r.get(a).map(|x| x.lines.len()), Some(3));
    }

    #[test]
    fn lookup_order_window_and_step() {
        let mut r = Rooms::new("r0", 1 << 20);
        for i in 1..10 {
            r.ensure(&format!("r{i}"));
        }
        assert_eq!(r.find("r5"), Some(5));
        assert!(r.remove(5));
        assert_eq!(r.find("r5"), None);
        assert_eq!(r.step(4, true), 6);
        assert_eq!(r.step(9, true), 0);
        assert_eq!(r.step(0, false), 9);
        let w: Vec<RoomId> = r.window(7, 2, 4).into_iter().map(|(i, _)| i).collect();
        assert_eq!(w, vec![4, 6, 7, 8]);
        assert_eq!(r.ensure("r5"), Some(10), "a new room goes last");
    }

    #[test]
    fn members_are_capped_and_counted() {
        let mut r = Rooms::new("a", 1 << 20);
        let a = r.first();
        r.set_members(a, &["x".to_string(), "y".to_string()]);
        assert!(r.add_member(a, "z"));
        assert!(r.remove_member(a, "x"));
        assert_eq!(r.members, 2);
        let b = r.ensure("b").unwrap_or(0);
        r.add_member(b, "y");
        let mut moved = r.rename_member("y", "w");
        moved.sort();
        assert_eq!(moved, vec![a, b]);
        assert!(r.get(b).is_some_and(|x| x.members.contains("w")));
        assert_eq!(r.members, 3);
        r.clear_members();
        assert_eq!(r.members, 0);
    }

    #[test]
    fn rooms_are_capped_and_found_fast() {
        let mut r = Rooms::new("a", 1 << 20);
        let t0 = std::time::Instant::now();
        for i in 1..ROOMS_MAX {
            assert!(r.ensure(&i.to_string()).is_some());
        }
        assert_eq!(r.ensure("one more"), None);
        assert_eq!(r.ensure("5"), Some(5), "known rooms are still found");
        // A map, not a scan: well under a second even in a debug build.
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    }
}
