//! What a node knows about the others: their users (from the presence
//! bucket: nick, node, rooms) and when each node incarnation was last
//! heard. Pure (time is an argument): the rules for `/who`, `/rooms`,
//! nick collisions and lost nodes are tested without a NATS server.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sockchat_shared::RoomInfo;

use super::envelope::Presence;

/// A node incarnation that stopped answering and the users it had.
#[derive(Debug, PartialEq)]
pub struct Lost {
    pub node: String,
    pub inc: u64,
    pub users: Vec<Presence>,
}

/// Other nodes' users and liveness.
#[derive(Debug, Default)]
pub struct Directory {
    /// KV key (nick key in hex) -> user.
    users: HashMap<String, Presence>,
    /// (node, incarnation) -> last heard (heartbeat, or first seen).
    nodes: HashMap<(String, u64), Instant>,
}

impl Directory {
    /// A user appeared or changed (a KV put).
    pub fn put(&mut self, key: String, p: Presence, now: Instant) {
        self.nodes.entry((p.node.clone(), p.inc)).or_insert(now);
        self.users.insert(key, p);
    }

    /// A user is gone (a KV delete or purge); who it was.
    pub fn remove(&mut self, key: &str) -> Option<Presence> {
        self.users.remove(key)
    }

    /// A node's heartbeat.
    pub fn heard(&mut self, node: &str, inc: u64, now: Instant) {
        self.nodes.insert((node.to_string(), inc), now);
    }

    /// The nick of whoever holds `key`.
    pub fn holder(&self, key: &str) -> Option<&Presence> {
        self.users.get(key)
    }

    /// The users in `room`.
    pub fn who(&self, room: &str) -> Vec<String> {
        self.users
            .values()
            .filter(|p| p.rooms.iter().any(|r| r == room))
            .map(|p| p.nick.clone())
            .collect()
    }

    /// Every room with its member count on other nodes.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let mut n: HashMap<&str, u32> = HashMap::new();
        for p in self.users.values() {
            for r in &p.rooms {
                *n.entry(r).or_default() += 1;
            }
        }
        n.into_iter()
            .map(|(name, members)| RoomInfo {
                name: name.to_string(),
                members,
            })
            .collect()
    }

    /// Node incarnations not heard for `timeout`: removed with their users.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<Lost> {
        let dead: Vec<(String, u64)> = self
            .nodes
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) >= timeout)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for (node, inc) in dead {
            self.nodes.remove(&(node.clone(), inc));
            let keys: Vec<String> = self
                .users
                .iter()
                .filter(|(_, p)| p.node == node && p.inc == inc)
                .map(|(k, _)| k.clone())
                .collect();
            let users = keys
                .iter()
                .filter_map(|k| self.users.remove(k))
                .collect::<Vec<_>>();
            out.push(Lost { node, inc, users });
        }
        out
    }

    /// The keys a lost node's users had (to delete from the bucket).
    pub fn keys_of(users: &[Presence]) -> impl Iterator<Item = String> + '_ {
        users
            .iter()
            .map(|p| super::subject::nick_kv_key(&sockchat_shared::fold::nick_key(&p.nick)))
    }

    /// Forget everything (this node lost its link: local rooms only).
    pub fn clear(&mut self) {
        self.users.clear();
        self.nodes.clear();
    }

    /// Live node names (for logs and the socket panel).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(nick: &str, node: &str, inc: u64, rooms: &[&str]) -> Presence {
        Presence {
            nick: nick.into(),
            node: node.into(),
            inc,
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn who_rooms_and_holders() {
        let t = Instant::now();
        let mut d = Directory::default();
        d.put("k1".into(), p("bob", "b", 1, &["lobby", "x"]), t);
        d.put("k2".into(), p("cy", "c", 1, &["lobby"]), t);
        let mut w = d.who("lobby");
        w.sort();
        assert_eq!(w, ["bob", "cy"]);
        assert_eq!(d.who("x"), ["bob"]);
        let mut r = d.rooms();
        r.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(r[0].name, "lobby");
        assert_eq!(r[0].members, 2);
        assert_eq!(d.holder("k1").map(|p| p.nick.as_str()), Some("bob"));
        d.remove("k1");
        assert!(d.holder("k1").is_none());
    }

    #[test]
    fn a_silent_node_is_lost_with_its_users_and_only_it() {
        let t = Instant::now();
        let to = Duration::from_secs(5);
        let mut d = Directory::default();
        d.put("k1".into(), p("bob", "b", 1, &["lobby"]), t);
        d.put("k2".into(), p("cy", "c", 1, &["lobby"]), t);
        d.heard("c", 1, t + Duration::from_secs(4));
        assert!(d.expire(t + Duration::from_secs(4), to).is_empty());
        let lost = d.expire(t + Duration::from_secs(5), to);
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].node, "b");
        assert_eq!(lost[0].users, vec![p("bob", "b", 1, &["lobby"])]);
        assert_eq!(d.who("lobby"), ["cy"]);
        // A restarted node is a new incarnation: the old one still expires.
        d.heard("c", 2, t + Duration::from_secs(6));
        let lost = d.expire(t + Duration::from_secs(9), to);
        assert_eq!(lost.len(), 1);
        assert_eq!((lost[0].node.as_str(), lost[0].inc), ("c", 1));
    }
}
