//! What server operators decide that outlives one command: the bans
//! (`/ban NICK|ADDR|CIDR [TIME]`, `/unban`), with their expiry. Address
//! and CIDR bans are checked at admission (`Ctx::admit`, next to the
//! `[access]` lists), nick bans when a nick is taken (`Hello`, `Nick`).
//! Bans are kept in memory: a restart lifts them (`[access] deny` is the
//! permanent list). Kicks and mutes act on a live member
//! (`Peer::remove`, `Peer::set_mute`).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sockchat_shared::DisconnectReason;
use sockchat_shared::ban::BanTarget;

use crate::hub::Hub;

/// Most bans kept at once (a new one past it replaces the oldest).
pub const MAX_BANS: usize = 10_000;

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub target: BanTarget,
    /// The operator's nick.
    pub by: String,
    /// Why (may be empty).
    pub why: String,
    /// Its length in seconds (0: until lifted).
    pub secs: u32,
    /// `None`: until `/unban` or a restart.
    pub until: Option<Instant>,
}

impl Ban {
    /// What a refused user reads: `you are banned from this server (by
    /// op, 55 s left): flood`.
    pub fn refusal(&self, now: Instant) -> String {
        let left = match self.until {
            Some(u) => format!(
                ", {} s left",
                u.saturating_duration_since(now).as_secs().max(1)
            ),
            None => String::new(),
        };
        let why = if self.why.is_empty() {
            String::new()
        } else {
            format!(": {}", self.why)
        };
        format!(
            "you are banned from this server (by {}{left}){why}",
            self.by
        )
    }
}

/// Cluster mode: where the bans set and lifted here go so every node keeps
/// them ([`crate::cluster`]). Only queues.
pub trait ShareBans: Send + Sync + std::fmt::Debug {
    fn banned(&self, ban: &Ban);
    fn unbanned(&self, target: &BanTarget);
}

/// The live bans.
#[derive(Debug, Default)]
pub struct Bans {
    list: Mutex<Vec<Ban>>,
    /// Cluster mode: told of each ban set or lifted here.
    share: OnceLock<Arc<dyn ShareBans>>,
}

impl Bans {
    fn list(&self, now: Instant) -> std::sync::MutexGuard<'_, Vec<Ban>> {
        let mut l = self.list.lock().unwrap_or_else(|p| p.into_inner());
        l.retain(|b| b.until.is_none_or(|u| u > now));
        l
    }

    /// Add a ban (replacing one on the same target); the ban.
    pub fn ban(&self, target: BanTarget, by: &str, why: &str, secs: u32, now: Instant) -> Ban {
        let ban = Ban {
            target,
            by: by.to_string(),
            why: why.to_string(),
            secs,
            until: (secs > 0).then(|| now + Duration::from_secs(u64::from(secs))),
        };
        self.put(ban.clone(), now);
        if let Some(s) = self.share.get() {
            s.banned(&ban);
        }
        ban
    }

    /// Cluster mode: a ban set on another node.
    pub fn from_cluster(&self, ban: Ban, now: Instant) {
        self.put(ban, now);
    }

    fn put(&self, ban: Ban, now: Instant) {
        let mut l = self.list(now);
        l.retain(|b| b.target != ban.target);
        if l.len() >= MAX_BANS {
            l.remove(0);
        }
        l.push(ban);
    }

    /// Lift the ban on exactly this target; false when there was none.
    pub fn unban(&self, target: &BanTarget, now: Instant) -> bool {
        let lifted = self.lift(target, now);
        if lifted && let Some(s) = self.share.get() {
            s.unbanned(target);
        }
        lifted
    }

    /// Lift a ban without telling the cluster (it came from there).
    pub fn lift(&self, target: &BanTarget, now: Instant) -> bool {
        let mut l = self.list(now);
        let before = l.len();
        l.retain(|b| b.target != *target);
        l.len() != before
    }

    /// Cluster mode: tell `s` of every ban set or lifted from now on.
    pub fn share_with(&self, s: Arc<dyn ShareBans>) {
        let _ = self.share.set(s);
    }

    /// The live bans.
    pub fn live(&self, now: Instant) -> Vec<Ban> {
        self.list(now).clone()
    }

    /// The ban that keeps out a user from `ip` with `nick` (`None` at
    /// admission: address bans only), if any.
    pub fn find(&self, nick: Option<&str>, ip: IpAddr, now: Instant) -> Option<Ban> {
        self.list(now)
            .iter()
            .find(|b| b.target.matches(nick, ip))
            .cloned()
    }
}

/// End every session `ban` matches with reason `banned`; how many.
pub fn end_banned(hub: &Hub, ban: &Ban) -> usize {
    let mut ended = 0;
    for p in hub.peers() {
        if ban.target.matches(Some(&p.nick()), p.addr.ip())
            && p.remove(DisconnectReason::Banned {
                by: ban.by.clone(),
                why: ban.why.clone(),
                secs: ban.secs,
            })
        {
            ended += 1;
        }
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn bans_match_expire_and_lift() {
        let b = Bans::default();
        let t0 = Instant::now();
        b.ban(BanTarget::parse("127.0.0.0/30"), "op", "flood", 60, t0);
        b.ban(BanTarget::parse("bob"), "op", "", 0, t0);
        let hit = b.find(None, ip("127.0.0.2"), t0).expect("in the block");
        assert_eq!(
            hit.refusal(t0),
            "you are banned from this server (by op, 60 s left): flood"
        );
        assert!(b.find(None, ip("127.0.0.4"), t0).is_none());
        assert!(
            b.find(None, ip("10.0.0.1"), t0).is_none(),
            "nick bans need a nick"
        );
        let bob = b.find(Some("BOB"), ip("10.0.0.1"), t0).expect("nick ban");
        assert_eq!(bob.refusal(t0), "you are banned from this server (by op)");
        // Expiry: the block's ban is gone after 60 s, the nick's is not.
        let later = t0 + Duration::from_secs(60);
        assert!(b.find(None, ip("127.0.0.2"), later).is_none());
        assert!(b.find(Some("bob"), ip("1.2.3.4"), later).is_some());
        assert!(b.unban(&BanTarget::parse("Bob"), later));
        assert!(!b.unban(&BanTarget::parse("bob"), later), "already lifted");
        assert!(b.find(Some("bob"), ip("1.2.3.4"), later).is_none());
    }

    #[test]
    fn a_new_ban_replaces_the_old_one_on_its_target() {
        let b = Bans::default();
        let t0 = Instant::now();
        b.ban(BanTarget::parse("127.0.0.5"), "a", "", 10, t0);
        b.ban(BanTarget::parse("127.0.0.5"), "b", "", 0, t0);
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(
            b.find(None, ip("127.0.0.5"), later).map(|x| x.by),
            Some("b".into())
        );
        assert!(b.unban(&BanTarget::parse("127.0.0.5"), later));
        assert!(b.find(None, ip("127.0.0.5"), later).is_none());
    }
}
