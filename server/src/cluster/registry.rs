//! Registered nicks and operators' bans on every node (PROTOCOL.md
//! "Cluster mode"): two JetStream key-value buckets (file storage: they
//! outlive a NATS restart), `P_nicks` (a registration: nick and argon2
//! hash, created if absent) and `P_bans` (a ban: target, operator, reason,
//! expiry as wall-clock time; deleted when lifted). Each node writes what
//! its operators and users do, and watches both buckets: a nick registered
//! on one node is protected on all, a ban set on one refuses and ends
//! matching sessions on all, an unban on any lifts it everywhere.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sockchat_shared::ban::BanTarget;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Link, subject};
use super::{envelope, kv_bucket};
use crate::auth::Auth;
use crate::operators::{self, Ban, Bans};
use crate::owed;

/// How often learned registrations are written to the nicks file (one
/// write for a burst, not one per nick).
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Work for the registry task.
#[derive(Debug)]
pub enum Job {
    /// The link is (back) up: open the buckets, watch them, and share what
    /// this node has.
    Ready,
    /// A nick registered here.
    Registered { nick: String, hash: String },
    /// A ban set here.
    Banned(Ban),
    /// A ban lifted here.
    Unbanned(BanTarget),
}

/// A registration in `P_nicks` (key: the folded nick in hex).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NickRecord {
    pub nick: String,
    /// Its argon2 PHC string.
    pub hash: String,
    pub node: String,
    pub inc: u64,
}

/// A ban in `P_bans` (key: [`target_text`] in hex).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BanRecord {
    /// [`target_text`].
    pub target: String,
    pub by: String,
    pub why: String,
    /// Its length as set (0: until lifted).
    pub secs: u32,
    /// When it ends, Unix milliseconds (0: until lifted).
    pub until_ms: u64,
    pub node: String,
    pub inc: u64,
}

/// A ban target as text: `nick:KEY` (the folded key), `addr:IP`,
/// `net:CIDR`.
pub fn target_text(t: &BanTarget) -> String {
    match t {
        BanTarget::Nick(key) => format!("nick:{key}"),
        BanTarget::Addr(a) => format!("addr:{a}"),
        BanTarget::Net(n) => format!("net:{n}"),
    }
}

/// The inverse of [`target_text`].
pub fn parse_target(s: &str) -> Option<BanTarget> {
    let (kind, v) = s.split_once(':')?;
    match kind {
        "nick" if !v.is_empty() => Some(BanTarget::Nick(v.to_string())),
        "addr" => v.parse().ok().map(BanTarget::Addr),
        "net" => v.parse().ok().map(BanTarget::Net),
        _ => None,
    }
}

/// A ban as the bucket keeps it.
pub fn record(b: &Ban, node: &str, inc: u64, now: Instant, now_ms: u64) -> BanRecord {
    BanRecord {
        target: target_text(&b.target),
        by: b.by.clone(),
        why: b.why.clone(),
        secs: b.secs,
        until_ms: b.until.map_or(0, |u| {
            now_ms.saturating_add(u.saturating_duration_since(now).as_millis() as u64)
        }),
        node: node.to_string(),
        inc,
    }
}

/// The ban a record holds, if it is still in force.
pub fn ban_of(r: &BanRecord, now: Instant, now_ms: u64) -> Option<Ban> {
    let until = match r.until_ms {
        0 => None,
        u if u <= now_ms => return None,
        u => Some(now + Duration::from_millis(u - now_ms)),
    };
    Some(Ban {
        target: parse_target(&r.target)?,
        by: r.by.clone(),
        why: r.why.clone(),
        secs: r.secs,
        until,
    })
}

fn ban_key(t: &BanTarget) -> String {
    subject::nick_kv_key(&target_text(t))
}

/// The server state the registry keeps in step.
struct Local {
    auth: Weak<Auth>,
    bans: Weak<Bans>,
}

/// The registry task: writes in order, and the two watches.
pub(super) async fn run(
    link: Arc<Link>,
    auth: Weak<Auth>,
    bans: Weak<Bans>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    let local = Local { auth, bans };
    let js = jetstream::new(link.client.clone());
    let mut stores: Option<(kv::Store, kv::Store)> = None;
    let mut nick_watch: Option<kv::Watch> = None;
    let mut ban_watch: Option<kv::Watch> = None;
    let mut unsaved = false;
    let mut save = tokio::time::interval(SAVE_EVERY);
    save.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { return };
                if let Job::Ready = job {
                    stores = open(&link, &js).await;
                    if let Some((n, b)) = &stores {
                        nick_watch = watch(n).await;
                        ban_watch = watch(b).await;
                        share_all(&link, &local, n, b).await;
                    }
                } else if let Some((n, b)) = &stores {
                    write(&link, n, b, job).await;
                }
            }
            Some(e) = async { nick_watch.as_mut()?.next().await } => match e {
                Ok(e) => unsaved |= on_nick(&link, &local, e),
                Err(err) => {
                    debug!(error = %err, "cluster: registered nicks watch error");
                    nick_watch = None;
                }
            },
            Some(e) = async { ban_watch.as_mut()?.next().await } => match e {
                Ok(e) => on_ban(&link, &local, e),
                Err(err) => {
                    debug!(error = %err, "cluster: bans watch error");
                    ban_watch = None;
                }
            },
            _ = save.tick(), if unsaved => {
                unsaved = false;
                if let Some(a) = local.auth.upgrade() {
                    a.save();
                }
            }
        }
    }
}

async fn open(link: &Link, js: &jetstream::Context) -> Option<(kv::Store, kv::Store)> {
    let n = kv_bucket::open(&link.client, js, &link.subjects.nicks_bucket(), "file").await?;
    let b = kv_bucket::open(&link.client, js, &link.subjects.bans_bucket(), "file").await?;
    Some((n, b))
}

async fn watch(s: &kv::Store) -> Option<kv::Watch> {
    match s.watch_with_history(">").await {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(error = %e, "cluster: cannot watch a bucket");
            None
        }
    }
}

/// After a (re)connect: this node's registrations (created if absent: an
/// older one elsewhere wins) and live bans (the same).
async fn share_all(link: &Link, local: &Local, n: &kv::Store, b: &kv::Store) {
    if let Some(a) = local.auth.upgrade() {
        for (nick, hash) in a.registrations() {
            create_nick(link, n, &nick, &hash).await;
        }
    }
    if let Some(bans) = local.bans.upgrade() {
        let now = Instant::now();
        for ban in bans.live(now) {
            let r = record(&ban, &link.node, link.inc, now, sockchat_shared::now_ms());
            let _ = b.create(&ban_key(&ban.target), envelope::json(&r)).await;
        }
    }
}

async fn create_nick(link: &Link, n: &kv::Store, nick: &str, hash: &str) {
    let r = NickRecord {
        nick: nick.to_string(),
        hash: hash.to_string(),
        node: link.node.clone(),
        inc: link.inc,
    };
    let key = subject::nick_kv_key(&sockchat_shared::fold::nick_key(nick));
    match n.create(&key, envelope::json(&r)).await {
        Ok(_) => {}
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
        Err(e) => debug!(error = %e, "cluster: registration not shared (retried on reconnect)"),
    }
}

async fn write(link: &Link, n: &kv::Store, b: &kv::Store, job: Job) {
    match job {
        Job::Ready => {}
        Job::Registered { nick, hash } => create_nick(link, n, &nick, &hash).await,
        Job::Banned(ban) => {
            let r = record(
                &ban,
                &link.node,
                link.inc,
                Instant::now(),
                sockchat_shared::now_ms(),
            );
            if let Err(e) = b.put(ban_key(&ban.target), envelope::json(&r)).await {
                debug!(error = %e, "cluster: ban not shared");
            }
        }
        Job::Unbanned(t) => {
            if let Err(e) = b.delete(ban_key(&t)).await {
                debug!(error = %e, "cluster: unban not shared");
            }
        }
    }
}

/// A registration seen in the bucket; true when it was new here.
fn on_nick(link: &Link, local: &Local, e: kv::Entry) -> bool {
    if e.operation != kv::Operation::Put {
        return false;
    }
    let Ok(r) = serde_json::from_slice::<NickRecord>(&e.value) else {
        return false;
    };
    if r.node == link.node && r.inc == link.inc {
        return false;
    }
    let learned = local
        .auth
        .upgrade()
        .is_some_and(|a| a.learn(&r.nick, &r.hash));
    if learned {
        debug!(nick = %r.nick, node = %r.node, "cluster: registered nick learned");
    }
    learned
}

/// A ban set or lifted on another node.
fn on_ban(link: &Link, local: &Local, e: kv::Entry) {
    let Some(bans) = local.bans.upgrade() else {
        return;
    };
    let now = Instant::now();
    match e.operation {
        kv::Operation::Put => {
            let Ok(r) = serde_json::from_slice::<BanRecord>(&e.value) else {
                return;
            };
            if r.node == link.node && r.inc == link.inc {
                return;
            }
            let Some(ban) = ban_of(&r, now, sockchat_shared::now_ms()) else {
                return;
            };
            bans.from_cluster(ban.clone(), now);
            let ended = match link.hub.upgrade() {
                Some(hub) => {
                    let _in = owed::scope();
                    operators::end_banned(&hub, &ban)
                }
                None => 0,
            };
            info!(target = %ban.target, by = %ban.by, node = %r.node, ended, "ban from the cluster");
        }
        kv::Operation::Delete | kv::Operation::Purge => {
            if let Some(t) = subject::from_kv_key(&e.key).and_then(|s| parse_target(&s))
                && bans.lift(&t, now)
            {
                info!(target = %t, "unban from the cluster");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip() {
        for t in [
            BanTarget::parse("Erin"),
            BanTarget::parse("10.0.0.7"),
            BanTarget::parse("::1"),
            BanTarget::parse("10.0.0.0/8"),
        ] {
            assert_eq!(parse_target(&target_text(&t)), Some(t));
        }
        assert_eq!(parse_target("nick:"), None);
        assert_eq!(parse_target("addr:nope"), None);
        assert_eq!(parse_target("what:x"), None);
    }

    #[test]
    fn expiry_crosses_as_wall_clock_time() {
        let now = Instant::now();
        let ban = Ban {
            target: BanTarget::parse("10.0.0.7"),
            by: "op".into(),
            why: "flood".into(),
            secs: 60,
            until: Some(now + Duration::from_secs(60)),
        };
        let r = record(&ban, "a", 1, now, 1_000_000);
        assert_eq!(r.until_ms, 1_060_000);
        // Read 10 s later on another node: 50 s left.
        let later = now + Duration::from_secs(10);
        let b = ban_of(&r, later, 1_010_000).unwrap();
        assert_eq!(b.until, Some(later + Duration::from_secs(50)));
        assert_eq!(ban_of(&r, later, 1_060_000), None, "expired");
        let forever = Ban { until: None, ..ban };
        let r = record(&forever, "a", 1, now, 5);
        assert_eq!(r.until_ms, 0);
        assert_eq!(ban_of(&r, now, 10).unwrap().until, None);
    }
}
