//! The tasks that move cluster traffic over NATS: the publisher (one
//! queue, so per sender per room order holds, numbered for
//! de-duplication; heartbeats), the receiver (room traffic, nick changes,
//! heartbeats, private messages and `/sockinfo` questions for this node,
//! link state, lost nodes) and the presence writer (nick claims and rooms
//! in the JetStream KV bucket, and the watch that mirrors it).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use sockchat_shared::config::ClusterConfig;
use sockchat_shared::{DisconnectReason, ErrorCode, ServerMsg, codec, fold};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::envelope::{self, Dedupe, Heartbeat, Lane, NickChange, Origin, Presence, SockInfoAsk};
use super::kv_bucket;
use super::{ClusterError, LINK_BACK, LINK_LOST, Link, Op, Out, lock, presence_of, subject};
use crate::owed;

/// How long a `/sockinfo` question to another node may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// NATS connection options from `[cluster]`: credentials, TLS, reconnect
/// for ever, and connection events into `events`.
pub(super) async fn connect_options(
    cfg: &ClusterConfig,
    node: &str,
    events: mpsc::UnboundedSender<async_nats::Event>,
) -> Result<async_nats::ConnectOptions, ClusterError> {
    let mut o = async_nats::ConnectOptions::new();
    if !cfg.credentials_file.is_empty() {
        o = o
            .credentials_file(&cfg.credentials_file)
            .await
            .map_err(|source| ClusterError::Credentials {
                path: cfg.credentials_file.clone(),
                source,
            })?;
    }
    if !cfg.token.is_empty() {
        o = o.token(cfg.token.clone());
    }
    if !cfg.user.is_empty() {
        o = o.user_and_password(cfg.user.clone(), cfg.password.clone());
    }
    if cfg.tls_required {
        o = o.require_tls(true);
    }
    if !cfg.tls_ca.is_empty() {
        o = o.add_root_certificates(cfg.tls_ca.clone().into());
    }
    if !cfg.tls_cert.is_empty() {
        o = o.add_client_certificate(cfg.tls_cert.clone().into(), cfg.tls_key.clone().into());
    }
    Ok(o.name(format!("sockchat-server {node}"))
        // Our own publications are not sent back to us.
        .no_echo()
        // Start even when NATS is down, and keep trying.
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(2))
        .reconnect_delay_callback(|n| Duration::from_millis((100 * n as u64).min(2000)))
        .event_callback(move |e| {
            let events = events.clone();
            async move {
                let _ = events.send(e);
            }
        }))
}

pub(super) async fn spawn(
    link: &Arc<Link>,
    out: mpsc::Receiver<Out>,
    ops: mpsc::UnboundedReceiver<Op>,
    events: mpsc::UnboundedReceiver<async_nats::Event>,
) {
    tokio::spawn(publisher(link.clone(), out));
    tokio::spawn(presence(link.clone(), ops));
    tokio::spawn(receiver(link.clone(), events));
}

/// One queue, one task: publications leave in the order the hub queued
/// them, numbered per [`Lane`].
async fn publisher(link: Arc<Link>, mut out: mpsc::Receiver<Out>) {
    let mut seqs = [0u64; 4];
    let mut hb = tokio::time::interval(link.heartbeat);
    hb.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let beat = envelope::json(&Heartbeat {
        node: link.node.clone(),
        inc: link.inc,
    });
    loop {
        let mut sender = None;
        let (lane, subject, payload) = tokio::select! {
            o = out.recv() => match o {
                None => return,
                Some(Out::Room { room, frames }) => (Lane::Room, link.subjects.room(&room), frames),
                Some(Out::Presence { room, frames }) => {
                    (Lane::Room, link.subjects.presence(&room), frames)
                }
                Some(Out::Nick(json)) => (Lane::Nick, link.subjects.nick(), json),
                Some(Out::Pm { node, sender: id, frames }) => {
                    sender = Some(id);
                    (Lane::Pm, link.subjects.pm(&node), frames)
                }
            },
            _ = hb.tick() => (Lane::Beat, link.subjects.heartbeat(), beat.clone()),
        };
        let seq = &mut seqs[lane as usize];
        *seq += 1;
        let mut h = Origin {
            node: link.node.clone(),
            inc: link.inc,
            seq: *seq,
        }
        .to_headers();
        if let Some(id) = sender {
            h.insert(envelope::SENDER, id.to_string().as_str());
        }
        if let Err(e) = link.client.publish_with_headers(subject, h, payload).await {
            debug!(error = %e, "cluster: publish failed");
        }
    }
}

async fn subscribe(link: &Link, subject: String) -> Option<async_nats::Subscriber> {
    match link.client.subscribe(subject.clone()).await {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(%subject, error = %e, "cluster: cannot subscribe; cluster traffic off");
            None
        }
    }
}

/// Everything that comes in, plus the link state and the lost-node sweep.
async fn receiver(link: Arc<Link>, mut events: mpsc::UnboundedReceiver<async_nats::Event>) {
    // Subscriptions survive reconnects (the client re-subscribes).
    let (Some(mut rooms), Some(mut nicks), Some(mut beats), Some(mut mine)) = (
        subscribe(&link, link.subjects.all_rooms()).await,
        subscribe(&link, link.subjects.nick()).await,
        subscribe(&link, link.subjects.heartbeat()).await,
        subscribe(&link, link.subjects.mine()).await,
    ) else {
        return;
    };
    let mut dedupe = Dedupe::new(&link.node, link.inc);
    let mut sweep = tokio::time::interval(link.heartbeat.min(Duration::from_millis(500)));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_up = false;
    loop {
        tokio::select! {
            Some(m) = rooms.next() => on_room(&link, &mut dedupe, m),
            Some(m) = nicks.next() => on_nick(&link, &mut dedupe, m),
            Some(m) = beats.next() => {
                if let Ok(h) = serde_json::from_slice::<Heartbeat>(&m.payload)
                    && !(h.node == link.node && h.inc == link.inc)
                {
                    lock(&link.dir).heard(&h.node, h.inc, Instant::now());
                }
            }
            Some(m) = mine.next() => on_mine(&link, &mut dedupe, m).await,
            Some(e) = events.recv() => on_event(&link, e, &mut was_up),
            _ = sweep.tick() => {
                if link.is_up() {
                    sweep_lost(&link, &mut dedupe);
                }
            }
            else => return,
        }
    }
}

fn on_event(link: &Link, e: async_nats::Event, was_up: &mut bool) {
    let Some(hub) = link.hub.upgrade() else {
        return;
    };
    match e {
        async_nats::Event::Connected => {
            link.up.store(true, Ordering::Relaxed);
            if *was_up {
                info!(node = %link.node, "cluster link restored");
                hub.notice_everyone(LINK_BACK);
            } else {
                info!(node = %link.node, "cluster link up");
            }
            *was_up = true;
            let _ = link.ops.send(Op::Resync);
            let _ = link.reg.send(super::registry::Job::Ready);
            let _ = link.hist.send(super::history::Job::Ready);
        }
        async_nats::Event::Disconnected => {
            if link.up.swap(false, Ordering::Relaxed) {
                warn!(node = %link.node, "cluster link lost: serving local rooms only");
                lock(&link.dir).clear();
                let _in = owed::scope();
                hub.notice_everyone(LINK_LOST);
            }
        }
        other => debug!(event = %other, "cluster: nats event"),
    }
}

fn origin_ok(dedupe: &mut Dedupe, m: &async_nats::Message, lane: Lane) -> bool {
    m.headers
        .as_ref()
        .and_then(Origin::from_headers)
        .is_some_and(|o| dedupe.accept(&o, lane))
}

/// Another node's room traffic: chat of one room on its chat subject,
/// joins and leaves of one room on its presence subject.
fn on_room(link: &Link, dedupe: &mut Dedupe, m: async_nats::Message) {
    if !origin_ok(dedupe, &m, Lane::Room) {
        return;
    }
    let msgs = match envelope::decode_frames(&m.payload) {
        Ok(v) => v,
        Err(e) => {
            debug!(subject = %m.subject, error = %e, "cluster: bad room payload dropped");
            return;
        }
    };
    let room = match msgs.first() {
        Some(
            ServerMsg::Chat { room, .. }
            | ServerMsg::Joined { room, .. }
            | ServerMsg::Left { room, .. },
        ) => room.clone(),
        _ => return,
    };
    let chat = matches!(msgs.first(), Some(ServerMsg::Chat { .. }));
    let same_room = msgs.iter().all(|x| match x {
        ServerMsg::Chat { room: r, .. } => chat && *r == room,
        ServerMsg::Joined { room: r, .. } | ServerMsg::Left { room: r, .. } => !chat && *r == room,
        _ => false,
    });
    let subject = if chat {
        link.subjects.room(&room)
    } else {
        link.subjects.presence(&room)
    };
    if !same_room || m.subject.as_str() != subject {
        debug!(subject = %m.subject, "cluster: room payload for another room dropped");
        return;
    }
    if let Some(hub) = link.hub.upgrade() {
        let _in = owed::scope();
        hub.deliver_remote(&room, &msgs);
    }
}

fn on_nick(link: &Link, dedupe: &mut Dedupe, m: async_nats::Message) {
    if !origin_ok(dedupe, &m, Lane::Nick) {
        return;
    }
    let Ok(c) = serde_json::from_slice::<NickChange>(&m.payload) else {
        return;
    };
    if let Some(hub) = link.hub.upgrade() {
        let _in = owed::scope();
        hub.tell_remote_rooms(
            &c.rooms,
            &ServerMsg::NickChanged {
                old: c.old,
                new: c.new,
            },
        );
    }
}

/// A private message for a local nick (or one of ours sent back), or a
/// `/sockinfo` question.
async fn on_mine(link: &Link, dedupe: &mut Dedupe, m: async_nats::Message) {
    let Some(hub) = link.hub.upgrade() else {
        return;
    };
    if m.subject.as_str() == link.subjects.pm(&link.node) {
        if !origin_ok(dedupe, &m, Lane::Pm) {
            return;
        }
        if let Ok([pm @ ServerMsg::Private { to, .. }]) =
            envelope::decode_frames(&m.payload).as_deref()
        {
            match hub.find(to) {
                Some(target) => {
                    let _in = owed::scope();
                    target.send(pm);
                }
                None => bounce(link, m).await,
            }
        }
    } else if m.subject.as_str() == link.subjects.pm_bounce(&link.node) {
        on_bounce(link, &m);
    } else if m.subject.as_str() == link.subjects.sockinfo(&link.node) {
        let Some(reply) = m.reply.clone() else {
            return;
        };
        let answer = match serde_json::from_slice::<SockInfoAsk>(&m.payload) {
            Ok(ask) => match hub.find(&ask.nick) {
                Some(t) => ServerMsg::SockInfo {
                    nick: t.nick().to_string(),
                    fields: link.access.sockinfo_for(t.sockinfo(), false),
                },
                None => no_such_nick(&ask.nick, ""),
            },
            Err(_) => return,
        };
        if let Err(e) = link
            .client
            .publish(reply, codec::server_frame(&answer))
            .await
        {
            debug!(error = %e, "cluster: sockinfo reply failed");
        }
    }
}

/// A private message whose nick left before it arrived: back to the
/// sending node, with its headers (which name the sender).
async fn bounce(link: &Link, m: async_nats::Message) {
    let Some(o) = m.headers.as_ref().and_then(Origin::from_headers) else {
        return;
    };
    let h = m.headers.unwrap_or_default();
    if let Err(e) = link
        .client
        .publish_with_headers(link.subjects.pm_bounce(&o.node), h, m.payload)
        .await
    {
        debug!(error = %e, "cluster: private message bounce failed");
    }
}

/// One of our private messages came back: its sender (if still here) is
/// told it was not delivered.
fn on_bounce(link: &Link, m: &async_nats::Message) {
    let Some(h) = m.headers.as_ref() else {
        return;
    };
    let mine = Origin::from_headers(h).is_some_and(|o| o.node == link.node && o.inc == link.inc);
    let sender = h
        .get(envelope::SENDER)
        .and_then(|v| v.as_str().parse::<u64>().ok());
    let (true, Some(id)) = (mine, sender) else {
        return;
    };
    let Some(peer) = lock(&link.local).get(&id).and_then(|u| u.peer.upgrade()) else {
        return;
    };
    if let Ok([ServerMsg::Private { to, .. }]) = envelope::decode_frames(&m.payload).as_deref() {
        let _in = owed::scope();
        peer.send(&no_such_nick(
            to,
            " (left before your private message reached it: not delivered)",
        ));
    }
}

/// `Error` NoSuchNick `no such nick: NICK` and why (`""`, or what the
/// sender of a private message reads when its nick left before it arrived
/// on the nick's node).
fn no_such_nick(nick: &str, why: &str) -> ServerMsg {
    ServerMsg::Error {
        code: ErrorCode::NoSuchNick,
        text: format!(
            "no such nick: {}{why}",
            sockchat_shared::sanitize::sanitize(nick)
        ),
    }
}

/// Node incarnations not heard within the timeout: their users leave
/// every room with `server-lost`, and their claims are freed.
fn sweep_lost(link: &Link, dedupe: &mut Dedupe) {
    let lost = lock(&link.dir).expire(Instant::now(), link.timeout);
    let Some(hub) = link.hub.upgrade() else {
        return;
    };
    for l in lost {
        warn!(node = %l.node, users = l.users.len(), "cluster: node lost");
        dedupe.forget(&l.node, l.inc);
        announce_lost(&hub, &l.users);
        let keys = super::directory::Directory::keys_of(&l.users).collect();
        let _ = link.ops.send(Op::Purge(keys, l.node, l.inc));
    }
}

/// Tell the local members of their rooms that these users' node is lost.
fn announce_lost(hub: &crate::hub::Hub, users: &[Presence]) {
    let _in = owed::scope();
    for u in users {
        for room in &u.rooms {
            hub.deliver_remote(
                room,
                &[ServerMsg::Left {
                    room: room.clone(),
                    nick: u.nick.clone(),
                    reason: Some(DisconnectReason::ServerLost),
                }],
            );
        }
    }
}

/// Ask the node holding `holder` for its `/sockinfo`.
pub(super) async fn ask_sockinfo(
    link: Arc<Link>,
    holder: Presence,
    reply: impl FnOnce(ServerMsg) + Send + 'static,
) {
    let ask = envelope::json(&SockInfoAsk {
        nick: holder.nick.clone(),
    });
    let req = link
        .client
        .request(link.subjects.sockinfo(&holder.node), ask);
    let answer = match tokio::time::timeout(ASK_TIMEOUT, req).await {
        Ok(Ok(m)) => match envelope::decode_frames(&m.payload).as_deref() {
            Ok([a @ (ServerMsg::SockInfo { .. } | ServerMsg::Error { .. })]) => a.clone(),
            _ => no_answer(&holder),
        },
        _ => no_answer(&holder),
    };
    reply(answer);
}

fn no_answer(holder: &Presence) -> ServerMsg {
    ServerMsg::Error {
        code: ErrorCode::NoSuchNick,
        text: format!(
            "no answer from node {} about {} (cluster)",
            holder.node, holder.nick
        ),
    }
}

/// The presence writer: KV operations in order, and the watch that keeps
/// the directory.
async fn presence(link: Arc<Link>, mut ops: mpsc::UnboundedReceiver<Op>) {
    let js = jetstream::new(link.client.clone());
    let mut store: Option<kv::Store> = None;
    let mut watch: Option<kv::Watch> = None;
    loop {
        tokio::select! {
            op = ops.recv() => {
                let Some(op) = op else { return };
                if let Op::Resync = op {
                    store = open_bucket(&link, &js).await;
                    watch = match &store {
                        Some(s) => match s.watch_with_history(">").await {
                            Ok(w) => Some(w),
                            Err(e) => {
                                warn!(error = %e, "cluster: cannot watch presence");
                                None
                            }
                        },
                        None => None,
                    };
                    if let Some(s) = &store {
                        let ids: Vec<u64> = lock(&link.local).keys().copied().collect();
                        for id in ids {
                            claim(&link, s, id).await;
                        }
                    }
                    continue;
                }
                if let Some(s) = &store {
                    apply(&link, s, op).await;
                }
            }
            Some(e) = async { watch.as_mut()?.next().await } => match e {
                Ok(e) => on_entry(&link, e),
                Err(err) => {
                    debug!(error = %err, "cluster: presence watch error");
                    watch = None;
                }
            },
        }
    }
}

async fn open_bucket(link: &Link, js: &jetstream::Context) -> Option<kv::Store> {
    kv_bucket::open(&link.client, js, &link.subjects.bucket(), "memory").await
}

fn on_entry(link: &Link, e: kv::Entry) {
    match e.operation {
        kv::Operation::Put => {
            let Ok(p) = serde_json::from_slice::<Presence>(&e.value) else {
                return;
            };
            if p.node == link.node && p.inc == link.inc {
                return;
            }
            lock(&link.dir).put(e.key, p, Instant::now());
        }
        // A user who left: its node announced it in its rooms.
        kv::Operation::Delete => {
            lock(&link.dir).remove(&e.key);
        }
        // A lost node's user, purged by the node that noticed first: the
        // same announcement as our own sweep would make (whichever comes
        // first takes the user out of the directory: one announcement).
        kv::Operation::Purge => {
            let gone = lock(&link.dir).remove(&e.key);
            if let (Some(p), Some(hub)) = (gone, link.hub.upgrade()) {
                announce_lost(&hub, &[p]);
            }
            // Our own claim, purged while we were too slow to beat in
            // time: claim it again.
            let mine: Vec<u64> = lock(&link.local)
                .iter()
                .filter(|(_, u)| subject::nick_kv_key(&fold::nick_key(&u.nick)) == e.key)
                .map(|(id, _)| *id)
                .collect();
            for id in mine {
                let _ = link.ops.send(Op::Claim(id));
            }
        }
    }
}

async fn apply(link: &Link, s: &kv::Store, op: Op) {
    match op {
        Op::Claim(id) => claim(link, s, id).await,
        Op::Put(id) => {
            let claimed = lock(&link.local).get(&id).is_some_and(|u| u.claimed);
            if claimed && let Some((p, _)) = presence_of(link, id) {
                let key = subject::nick_kv_key(&fold::nick_key(&p.nick));
                if let Err(e) = s.put(&key, envelope::json(&p)).await {
                    debug!(error = %e, "cluster: presence put failed");
                }
            }
        }
        Op::Release(key) => release(s, &key, &link.node, link.inc, false).await,
        Op::Purge(keys, node, inc) => {
            for k in keys {
                release(s, &k, &node, inc, true).await;
            }
        }
        Op::Resync => {}
    }
}

/// Free `key` if `node`/`inc` still holds it: a delete when its user
/// left, a purge when its node was lost (the other nodes announce a purge
/// as `server-lost`).
async fn release(s: &kv::Store, key: &str, node: &str, inc: u64, lost: bool) {
    if let Ok(Some(e)) = s.entry(key).await
        && e.operation == kv::Operation::Put
        && let Ok(p) = serde_json::from_slice::<Presence>(&e.value)
        && p.node == node
        && p.inc == inc
    {
        let r = if lost {
            s.purge_expect_revision(key, Some(e.revision))
                .await
                .err()
                .map(|e| e.to_string())
        } else {
            s.delete_expect_revision(key, Some(e.revision))
                .await
                .err()
                .map(|e| e.to_string())
        };
        if let Some(err) = r {
            debug!(error = %err, key, "cluster: presence delete failed");
        }
    }
}

/// Claim a local user's nick: create-if-absent. Held by this node already
/// (a resync): stored again. Held by another node (two nodes took the nick
/// at once, or during a link loss): the local user becomes a guest.
async fn claim(link: &Link, s: &kv::Store, id: u64) {
    let Some((p, peer)) = presence_of(link, id) else {
        return;
    };
    let key = subject::nick_kv_key(&fold::nick_key(&p.nick));
    let value = envelope::json(&p);
    let ok = match s.create(&key, value.clone()).await {
        Ok(_) => true,
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => match s.entry(&key).await {
            Ok(Some(cur)) => match serde_json::from_slice::<Presence>(&cur.value) {
                Ok(h) if h.node == link.node && h.inc == link.inc => {
                    s.update(&key, value, cur.revision).await.is_ok()
                }
                Ok(h) => {
                    lose_nick(link, peer, &p.nick, &h);
                    return;
                }
                Err(_) => false,
            },
            _ => false,
        },
        Err(e) => {
            debug!(error = %e, "cluster: nick claim failed (retried on resync)");
            false
        }
    };
    if ok
        && let Some(u) = lock(&link.local).get_mut(&id)
        && u.nick == p.nick
    {
        u.claimed = true;
    }
}

/// Two nodes claimed one nick: the one whose claim came second renames its
/// user to a guest nick, tells the user why, and tells the rooms.
fn lose_nick(link: &Link, peer: std::sync::Weak<crate::hub::Peer>, nick: &str, holder: &Presence) {
    let (Some(peer), Some(hub)) = (peer.upgrade(), link.hub.upgrade()) else {
        return;
    };
    if *peer.nick() != *nick {
        return;
    }
    let rooms: Vec<_> = lock(&link.local)
        .get(&peer.id)
        .map(|u| u.rooms.clone())
        .unwrap_or_default()
        .iter()
        .filter_map(|r| hub.room(r))
        .collect();
    let _in = owed::scope();
    if let Ok((old, new)) = hub.rename_to_guest(&peer) {
        warn!(nick = %old, holder_node = %holder.node, "cluster: nick claimed twice; the local user is now {new}");
        peer.send(&ServerMsg::Error {
            code: ErrorCode::NickTaken,
            text: format!(
                "nick already taken: {old} (on cluster node {}); you are now {new}",
                holder.node
            ),
        });
        hub.tell_rooms(
            &rooms,
            &ServerMsg::NickChanged {
                old: old.to_string(),
                new: new.to_string(),
            },
            &peer,
        );
    }
}
