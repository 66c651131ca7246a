//! What server operators decide that outlives one command: the bans
//! (`/ban NICK|ADDR|CIDR [TIME]`, `/unban`), with their expiry. Address
//! and CIDR bans are checked at admission (`Ctx::admit`, next to the
//! `[access]` lists), nick bans when a nick is taken (`Hello`, `Nick`).
//! Bans outlive a restart: each change rewrites the bans file beside the
//! nicks file (`DATA_DIR/bans`, [`crate::auth::Auth::bans_file`]: one ban
//! a line, mode 0600, through a temporary file and a rename, so a crash
//! leaves the old list or the new one); bans that expired while the server
//! was down are dropped when it is read. `/bans` lists them. Kicks and
//! mutes act on a live member (`Peer::remove`, `Peer::set_mute`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// `None`: until `/unban`.
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

    /// One line of `/bans`: `address 10.0.0.7 by op, 55 s left: flood`.
    pub fn describe(&self, now: Instant) -> String {
        let left = match self.until {
            Some(u) => format!(
                ", {} s left",
                u.saturating_duration_since(now).as_secs().max(1)
            ),
            None => ", until /unban".to_string(),
        };
        let why = if self.why.is_empty() {
            String::new()
        } else {
            format!(": {}", self.why)
        };
        format!("{} by {}{left}{why}", self.target, self.by)
    }
}

/// Cluster mode: where the bans set and lifted here go so every node keeps
/// them ([`crate::cluster`]). Only queues.
pub trait ShareBans: Send + Sync + std::fmt::Debug {
    fn banned(&self, ban: &Ban);
    fn unbanned(&self, target: &BanTarget);
}

/// The live bans, and the file they are kept in (`None`: memory only).
#[derive(Debug, Default)]
pub struct Bans {
    list: Mutex<Vec<Ban>>,
    /// Cluster mode: told of each ban set or lifted here.
    share: OnceLock<Arc<dyn ShareBans>>,
    file: Option<PathBuf>,
}

/// Seconds since the Unix epoch.
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Bans {
    /// The bans kept in `file` (missing: none), those expired by `wall`
    /// dropped. A damaged file is an error naming the line: starting
    /// without the bans would let everyone in.
    pub fn load(file: PathBuf, now: Instant, wall: SystemTime) -> Result<Self, String> {
        let (list, expired) = read_bans(&file, now, unix_secs(wall))?;
        let bans = Bans {
            list: Mutex::new(list),
            share: OnceLock::new(),
            file: Some(file),
        };
        if expired > 0 {
            bans.save(&bans.list(now), now);
        }
        Ok(bans)
    }

    /// Rewrite the bans file (if there is one) with `list`. A failure is
    /// logged: the ban holds in memory, but not across a restart.
    fn save(&self, list: &[Ban], now: Instant) {
        if let Some(f) = &self.file
            && let Err(e) = write_bans(f, list, now, unix_secs(SystemTime::now()))
        {
            tracing::warn!(file = %f.display(), error = %e, "cannot save the bans file");
        }
    }

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
        self.save(&l, now);
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
        let lifted = l.len() != before;
        if lifted {
            self.save(&l, now);
        }
        lifted
    }

    /// Cluster mode: tell `s` of every ban set or lifted from now on.
    pub fn share_with(&self, s: Arc<dyn ShareBans>) {
        let _ = self.share.set(s);
    }

    /// The live bans, oldest first (`/bans`, the cluster's sync).
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

/// The first line of the bans file.
const HEADER: &str = "# sockchat-server bans: KIND<TAB>TARGET<TAB>UNTIL (Unix s, 0: until /unban)<TAB>SECS<TAB>BY<TAB>WHY (written by the server)";

/// Read the bans file: the live bans, and how many had expired.
fn read_bans(path: &Path, now: Instant, wall: u64) -> Result<(Vec<Ban>, usize), String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut list = Vec::new();
    let mut expired = 0;
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("{} line {}: {why}", path.display(), i + 1);
        let f: Vec<&str> = line.splitn(6, '\t').collect();
        let [kind, target, until, secs, by, why] = f[..] else {
            return Err(bad("expected KIND, TARGET, UNTIL, SECS, BY, WHY"));
        };
        let target = match (kind, BanTarget::parse(target)) {
            ("nick", _) if !target.is_empty() => BanTarget::Nick(target.to_string()),
            ("addr", t @ BanTarget::Addr(_)) | ("net", t @ BanTarget::Net(_)) => t,
            _ => return Err(bad(&format!("not a {kind} ban: {target:?}"))),
        };
        let until: u64 = until.parse().map_err(|_| bad("UNTIL is not a number"))?;
        let secs: u32 = secs.parse().map_err(|_| bad("SECS is not a number"))?;
        if until != 0 && until <= wall {
            expired += 1;
            continue;
        }
        if list.len() >= MAX_BANS {
            list.remove(0);
        }
        list.push(Ban {
            target,
            by: by.to_string(),
            why: why.to_string(),
            secs,
            until: (until != 0).then(|| now + Duration::from_secs(until - wall)),
        });
    }
    Ok((list, expired))
}

/// Write the whole bans file atomically (as the nicks file: a temporary
/// file beside it, mode 0600, synced, renamed over the old one).
/// `now` and `wall` are the same moment on both clocks (an end is kept
/// as Unix seconds: an `Instant` does not survive a restart).
fn write_bans(path: &Path, list: &[Ban], now: Instant, wall: u64) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let mut f = format!("{HEADER}\n");
    for b in list {
        let (kind, target) = match &b.target {
            BanTarget::Nick(key) => ("nick", key.clone()),
            BanTarget::Addr(a) => ("addr", a.to_string()),
            BanTarget::Net(n) => ("net", n.to_string()),
        };
        // A reason is sanitised (no control character, so no tab or
        // newline) and a nick cannot hold one: each ban stays one line.
        writeln!(
            f,
            "{kind}\t{target}\t{}\t{}\t{}\t{}",
            b.until.map_or(0, |u| {
                // Rounded up: a ban never ends early for being saved.
                let left = u.saturating_duration_since(now);
                wall + left.as_secs() + u64::from(left.subsec_nanos() > 0)
            }),
            b.secs,
            b.by,
            b.why
        )
        .map_err(std::io::Error::other)?;
    }
    crate::private_file::rewrite(path, &f)
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
    fn bans_survive_a_restart_and_expire_while_it_is_down() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sockchat-bans-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let file = dir.join("bans");
        let (t0, wall) = (Instant::now(), SystemTime::now());
        let b = Bans::load(file.clone(), t0, wall).expect("no file yet: no bans");
        assert!(b.live(t0).is_empty());
        b.ban(BanTarget::parse("10.0.0.0/8"), "op", "spam", 0, t0);
        b.ban(BanTarget::parse("Bob"), "op", "flood", 60, t0);
        b.ban(BanTarget::parse("192.168.1.9"), "op", "", 5, t0);
        let mode = std::fs::metadata(&file)
            .expect("written")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.join("bans.tmp").exists(), "renamed into place");

        // Restarted 10 s later: the 5 s ban expired meanwhile, the others
        // hold (the 60 s one with what was left of it).
        let t1 = Instant::now();
        let r = Bans::load(file.clone(), t1, wall + Duration::from_secs(10)).expect("reload");
        let kept: Vec<String> = r.live(t1).iter().map(|b| b.describe(t1)).collect();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert_eq!(kept[0], "block 10.0.0.0/8 by op, until /unban: spam");
        let left = r
            .find(Some("BOB"), ip("1.2.3.4"), t1)
            .expect("nick ban kept");
        let secs = left
            .until
            .expect("timed")
            .saturating_duration_since(t1)
            .as_secs();
        assert!((49..=50).contains(&secs), "{secs} s left of 60 after 10");
        assert!(r.find(None, ip("192.168.1.9"), t1).is_none());
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(
            !text.contains("192.168.1.9"),
            "expired bans are dropped from the file: {text}"
        );

        // An unban is kept too.
        assert!(r.unban(&BanTarget::parse("10.0.0.0/8"), t1));
        let again = Bans::load(file.clone(), t1, wall).expect("reload");
        assert!(again.find(None, ip("10.9.9.9"), t1).is_none());
        assert!(again.find(Some("bob"), ip("10.9.9.9"), t1).is_some());

        // A damaged file is refused, naming the line.
        std::fs::write(&file, "# bans\naddr\tnot-an-address\t0\t0\top\t\n").expect("write");
        let e = Bans::load(file.clone(), t1, wall).expect_err("bad line");
        assert!(e.contains("line 2"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
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
