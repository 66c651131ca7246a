//! Cluster mode (`[cluster]`, off unless `nats_url` is set): several
//! server processes (nodes) share rooms, nicks and presence through a NATS
//! server. The hub only sees the [`Uplink`] seam: it hands over local room
//! traffic encoded once, membership and nick changes, and asks about other
//! nodes' members; [`Link`] implements it and [`tasks`] moves it over NATS
//! (subjects and payloads in PROTOCOL.md "Cluster mode").
//!
//! - [`subject`]: subject, token and bucket names.
//! - [`envelope`]: payloads, origin headers, de-duplication.
//! - [`directory`]: other nodes' users and liveness.
//! - [`history`]: the history stream, read back when a room is created.
//! - [`registry`]: registered nicks and bans on every node.
//! - `kv_bucket`: opening (creating) a JetStream key-value bucket.
//! - [`tasks`]: the publisher, the receiver and the presence writer.
//!
//! **Invariant:** NATS being slow, down or restarted never blocks a local
//! room and never ends the process: every hub call only queues (bounded;
//! what does not fit is counted and dropped), and every NATS error is
//! logged and retried.

pub mod directory;
pub mod envelope;
pub mod history;
mod kv_bucket;
pub mod registry;
pub mod subject;
mod tasks;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use sockchat_shared::config::ClusterConfig;
use sockchat_shared::{RoomInfo, ServerMsg, codec, fold};
use tokio::sync::mpsc;
use tracing::warn;

use crate::access::Access;
use crate::auth::{Auth, ShareNicks};
use crate::hub::{Hub, Peer, Uplink};
use crate::operators::{Ban, Bans, ShareBans};
use directory::Directory;
use envelope::{NickChange, Presence};
use sockchat_shared::ban::BanTarget;
use subject::Subjects;

/// What the publisher queue holds at most before local traffic for the
/// other nodes is dropped (and counted): a NATS outage must not grow
/// memory without bound.
const OUT_QUEUE: usize = 65_536;

pub use sockchat_shared::cluster::{LINK_BACK, LINK_LOST};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Something for the publisher to send.
#[derive(Debug)]
enum Out {
    /// A room's chat (frames).
    Room { room: String, frames: Bytes },
    /// A room's `Joined` or `Left` (one frame).
    Presence { room: String, frames: Bytes },
    /// A `NickChange` (JSON).
    Nick(Bytes),
    /// A private message (one `Private` frame) for a nick on `node`, from
    /// local session `sender`.
    Pm {
        node: String,
        sender: u64,
        frames: Bytes,
    },
}

/// Work for the presence writer (the KV bucket), done in order.
#[derive(Debug)]
enum Op {
    /// Claim a local user's nick (create-if-absent) and store its rooms.
    Claim(u64),
    /// Store a local user's rooms again.
    Put(u64),
    /// Free a nick key, if this node holds it.
    Release(String),
    /// Delete keys a lost node held (if it still holds them).
    Purge(Vec<String>, String, u64),
    /// The link is (back) up: bucket, watch, and every local claim again.
    Resync,
}

/// A local registered user as the presence writer sees it.
#[derive(Debug)]
struct Local {
    peer: Weak<Peer>,
    nick: String,
    rooms: Vec<String>,
    /// The bucket holds our claim (so a rooms update may overwrite it).
    claimed: bool,
}

/// This node's end of the cluster: the hub's [`Uplink`] and the state the
/// NATS tasks share.
pub struct Link {
    node: String,
    inc: u64,
    subjects: Subjects,
    timeout: Duration,
    heartbeat: Duration,
    out: mpsc::Sender<Out>,
    ops: mpsc::UnboundedSender<Op>,
    /// Work for the history reader ([`history::Job`]).
    hist: mpsc::UnboundedSender<history::Job>,
    /// Work for the registry ([`registry::Job`]); its task starts at
    /// [`Link::attach`].
    reg: mpsc::UnboundedSender<registry::Job>,
    reg_rx: Mutex<Option<mpsc::UnboundedReceiver<registry::Job>>>,
    local: Mutex<HashMap<u64, Local>>,
    dir: Mutex<Directory>,
    /// Whether NATS is connected right now.
    up: AtomicBool,
    /// Local traffic dropped because the publisher queue was full.
    dropped: AtomicU64,
    hub: Weak<Hub>,
    access: Access,
    client: async_nats::Client,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("node", &self.node)
            .field("up", &self.up)
            .finish()
    }
}

/// Why cluster mode could not start (a bad setting; NATS being down is
/// not an error: the node starts and connects when it can).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster.credentials_file {path}: {source}")]
    Credentials {
        path: String,
        source: std::io::Error,
    },
    #[error("cluster.nats_url {url:?}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
}

impl Link {
    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Where this node's guest numbers start: spread by its incarnation
    /// over 1..=90,000 (in steps of 1,000), so concurrent guests on
    /// different nodes rarely collide (and a collision is resolved).
    pub fn guest_base(&self) -> u64 {
        1 + (self.inc % 90) * 1000
    }

    /// Whether NATS is connected.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// One line for users and logs: node, link state, nodes heard.
    pub fn describe(&self) -> String {
        let nodes = lock(&self.dir).node_count();
        sockchat_shared::cluster::describe(&self.node, self.is_up(), nodes)
    }

    fn queue(&self, o: Out) {
        if self.out.try_send(o).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                warn!(
                    dropped = n + 1,
                    "cluster: publisher queue full, local traffic not sent to other nodes"
                );
            }
        }
    }

    /// A private message to `to` if another node holds that nick: queued
    /// for that node, and returned (as the sender's confirmation). If the
    /// nick is gone when it arrives, that node sends it back and `from` is
    /// told it was not delivered.
    pub fn private(&self, from: &Peer, to: &str, text: &str) -> Option<ServerMsg> {
        let key = subject::nick_kv_key(&fold::nick_key(to));
        let holder = lock(&self.dir).holder(&key).cloned()?;
        let m = ServerMsg::Private {
            from: from.nick().to_string(),
            to: holder.nick,
            text: text.to_string(),
            ts_ms: sockchat_shared::now_ms(),
        };
        self.queue(Out::Pm {
            node: holder.node,
            sender: from.id,
            frames: codec::server_frame(&m),
        });
        Some(m)
    }

    /// `/sockinfo NICK` for a nick on another node: asked of that node; its
    /// answer (or an error) goes to `asker` through `reply` when it comes.
    /// False when no other node holds the nick.
    pub fn sockinfo(
        self: &Arc<Self>,
        nick: &str,
        reply: impl FnOnce(ServerMsg) + Send + 'static,
    ) -> bool {
        let key = subject::nick_kv_key(&fold::nick_key(nick));
        let Some(holder) = lock(&self.dir).holder(&key).cloned() else {
            return false;
        };
        let me = self.clone();
        tokio::spawn(async move { tasks::ask_sockinfo(me, holder, reply).await });
        true
    }

    /// Share this node's registered nicks and bans with the cluster, and
    /// keep the other nodes' (once, when the server's state exists).
    pub fn attach(self: &Arc<Self>, auth: &Arc<Auth>, bans: &Arc<Bans>) {
        auth.share_with(self.clone());
        bans.share_with(self.clone());
        if let Some(rx) = lock(&self.reg_rx).take() {
            tokio::spawn(registry::run(
                self.clone(),
                Arc::downgrade(auth),
                Arc::downgrade(bans),
                rx,
            ));
        }
    }

    /// Let the last departures reach the other nodes and free this node's
    /// claims (bounded by `grace`).
    pub async fn close(&self, grace: Duration) {
        let _ = tokio::time::timeout(grace, async {
            // The publisher queue and the presence writer drain in order.
            while self.out.capacity() < OUT_QUEUE {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _ = self.client.flush().await;
        })
        .await;
    }
}

impl ShareNicks for Link {
    fn registered(&self, nick: &str, hash: &str) {
        let _ = self.reg.send(registry::Job::Registered {
            nick: nick.to_string(),
            hash: hash.to_string(),
        });
    }
}

impl ShareBans for Link {
    fn banned(&self, ban: &Ban) {
        let _ = self.reg.send(registry::Job::Banned(ban.clone()));
    }

    fn unbanned(&self, target: &BanTarget) {
        let _ = self.reg.send(registry::Job::Unbanned(target.clone()));
    }
}

impl Uplink for Link {
    fn room_event(&self, room: &str, frames: Bytes) {
        self.queue(Out::Room {
            room: room.to_string(),
            frames,
        });
    }

    fn room_presence(&self, room: &str, frames: Bytes) {
        self.queue(Out::Presence {
            room: room.to_string(),
            frames,
        });
    }

    fn room_created(&self, room: &str) {
        let _ = self.hist.send(history::Job::Room(room.to_string()));
    }

    fn membership(&self, peer: &Peer, room: &str, joined: bool) {
        let mut l = lock(&self.local);
        if let Some(u) = l.get_mut(&peer.id) {
            if joined {
                if !u.rooms.iter().any(|r| r == room) {
                    u.rooms.push(room.to_string());
                }
            } else {
                u.rooms.retain(|r| r != room);
            }
            drop(l);
            let _ = self.ops.send(Op::Put(peer.id));
        }
    }

    fn nick(&self, peer: &Arc<Peer>, old: Option<&str>, new: Option<&str>) {
        let mut l = lock(&self.local);
        if let Some(old) = old {
            let _ = self
                .ops
                .send(Op::Release(subject::nick_kv_key(&fold::nick_key(old))));
        }
        match new {
            Some(new) => {
                let u = l.entry(peer.id).or_insert_with(|| Local {
                    peer: Arc::downgrade(peer),
                    nick: String::new(),
                    rooms: Vec::new(),
                    claimed: false,
                });
                u.nick = new.to_string();
                u.claimed = false;
                let _ = self.ops.send(Op::Claim(peer.id));
            }
            None => {
                l.remove(&peer.id);
            }
        }
    }

    fn nick_changed(&self, rooms: Vec<String>, frames: Bytes) {
        if let Ok([ServerMsg::NickChanged { old, new }]) =
            envelope::decode_frames(&frames).as_deref()
        {
            self.queue(Out::Nick(envelope::json(&NickChange {
                old: old.clone(),
                new: new.clone(),
                rooms,
            })));
        }
    }

    fn remote_holder(&self, key: &str) -> Option<String> {
        lock(&self.dir)
            .holder(&subject::nick_kv_key(key))
            .map(|p| p.nick.clone())
    }

    fn remote_who(&self, room: &str) -> Vec<String> {
        lock(&self.dir).who(room)
    }

    fn remote_rooms(&self) -> Vec<RoomInfo> {
        lock(&self.dir).rooms()
    }
}

/// Start cluster mode: connect to NATS (in the background: a node starts
/// even when NATS is down, and keeps trying), subscribe, and spawn the
/// tasks. The hub must not have rooms yet.
pub async fn start(
    cfg: &ClusterConfig,
    access: &sockchat_shared::config::AccessConfig,
    hub: &Arc<Hub>,
) -> Result<Arc<Link>, ClusterError> {
    let node = if cfg.node.is_empty() {
        subject::default_node_name()
    } else {
        cfg.node.clone()
    };
    // A new number each start: a restarted node is a new incarnation, so
    // its old users are lost and its sequence numbers start over.
    let inc = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 40);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let opts = tasks::connect_options(cfg, &node, events_tx).await?;
    let client = opts
        .connect(cfg.nats_url.as_str())
        .await
        .map_err(|source| ClusterError::Connect {
            url: cfg.nats_url.clone(),
            source,
        })?;
    let (out, out_rx) = mpsc::channel(OUT_QUEUE);
    let (ops, ops_rx) = mpsc::unbounded_channel();
    let (hist, hist_rx) = mpsc::unbounded_channel();
    let (reg, reg_rx) = mpsc::unbounded_channel();
    let link = Arc::new(Link {
        subjects: Subjects::new(&cfg.subject_prefix, &node),
        node,
        inc,
        timeout: Duration::from_secs(cfg.node_timeout_secs),
        heartbeat: Duration::from_millis(cfg.heartbeat_ms),
        out,
        ops,
        hist,
        reg,
        reg_rx: Mutex::new(Some(reg_rx)),
        local: Mutex::default(),
        dir: Mutex::default(),
        up: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
        hub: Arc::downgrade(hub),
        access: Access::new(access),
        client,
    });
    tasks::spawn(&link, out_rx, ops_rx, events_rx).await;
    tokio::spawn(history::reader(link.clone(), hist_rx));
    Ok(link)
}

/// The rooms and nick a local user has, as the bucket stores them.
fn presence_of(link: &Link, id: u64) -> Option<(Presence, Weak<Peer>)> {
    let l = lock(&link.local);
    let u = l.get(&id)?;
    Some((
        Presence {
            nick: u.nick.clone(),
            node: link.node.clone(),
            inc: link.inc,
            rooms: u.rooms.clone(),
        },
        u.peer.clone(),
    ))
}
