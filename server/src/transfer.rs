//! The file-transfer relay (PROTOCOL.md "File transfer"): offers, answers,
//! chunks and acks between two sessions, whatever their transports (TCP to
//! UDP and back), with the limits of `[transfer]`.
//!
//! Flow control: the server forwards a chunk only while the transfer's
//! unacknowledged bytes (highest byte forwarded − receiver's cumulative
//! ack) stay within the window it told the sender in Accept. A sender that
//! overruns it is cut off with `protocol`; so the most the server ever
//! holds for one transfer is one window, however slow the receiver.
//!
//! Rate: with `transfer.rate_per_user` set, a token bucket per sending
//! user decides which chunks go on at once; the others wait in their
//! transfer's queue (still inside its window, so still bounded) and a
//! pacer task releases them as the bucket refills. The sender, starved of
//! acks, slows to the rate: the server acts as a slower link.
//!
//! Ids: a sender's own id is mapped to a server id the receiver sees.
//!
//! Repeats (PROTOCOL.md "Over UDP"): a datagram carrying an Offer, an
//! Accept or a Done can be lost, so the clients say them again until
//! answered; the relay answers a repeat instead of treating it as a new
//! message: an Offer not yet accepted goes to the receiver again, an
//! Accept before any chunk to the sender again, and a transfer that ended
//! with Done or Decline is remembered (the last [`ENDED`]) so that the
//! sender's repeat (its Offer, or the empty Chunk it probes with) is
//! answered with that end again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use sockchat_shared::config::TransferConfig;
use sockchat_shared::transfer::{CHUNK_OVERHEAD, COPY_IDS, TCP_CHUNK, Xfer, XferError};
use sockchat_shared::{ServerMsg, udp};

use crate::hub::{Format, Hub, Peer, Transport};

/// How many ended transfers the relay remembers for repeats.
const ENDED: usize = 256;

/// One relayed transfer.
struct Relay {
    sender: Arc<Peer>,
    /// The sender's id for it.
    local: u64,
    receiver: Arc<Peer>,
    size: u64,
    /// What the offer said, for a repeated Offer.
    name: String,
    sha256: [u8; 32],
    active: bool,
    /// The offset the receiver accepted from (a repeated Accept is passed
    /// on while nothing was forwarded since).
    start: u64,
    /// Highest byte forwarded + 1, and the receiver's cumulative ack.
    forwarded: u64,
    acked: u64,
    window: u64,
    max_chunk: u64,
    /// Chunks waiting for the sender's rate (offset, data), in order.
    held: VecDeque<(u64, Bytes)>,
    /// The room offer this is a copy of (the copies of one room offer
    /// count once against the sender's `max_per_user`).
    group: Option<u64>,
}

/// What an Offer says about the file.
struct Offered {
    name: String,
    size: u64,
    sha256: [u8; 32],
}

/// Open transfers `pid` is in: as a sender (a room offer's copies once),
/// and as a receiver.
fn count(g: &Inner, pid: u64) -> usize {
    let mut groups: Vec<u64> = Vec::new();
    let mut n = 0;
    for r in g.relays.values() {
        if r.receiver.id == pid {
            n += 1;
        } else if r.sender.id == pid {
            match r.group {
                Some(gr) if groups.contains(&gr) => {}
                Some(gr) => {
                    groups.push(gr);
                    n += 1;
                }
                None => n += 1,
            }
        }
    }
    n
}

#[derive(Default)]
struct Inner {
    next: u64,
    relays: HashMap<u64, Relay>,
    /// (sender peer id, sender's id) → server id.
    by_sender: HashMap<(u64, u64), u64>,
    /// Transfers that ended with Done or Decline, newest last: (sender
    /// peer id, sender's id) and what the sender was told.
    ended: VecDeque<((u64, u64), Xfer)>,
    /// Sender peer id → its rate bucket (only with `rate_per_user`).
    buckets: HashMap<u64, Bucket>,
    /// The pacer task is running.
    pacing: bool,
}

/// A token bucket of bytes for one sending user.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// How often the pacer releases waiting chunks.
const PACE_TICK: Duration = Duration::from_millis(5);

impl Bucket {
    /// May `len` bytes go now? Refills at `rate` up to `burst`; may go
    /// negative by one chunk (so any chunk size passes, at the rate).
    fn take(&mut self, len: usize, now: Instant, rate: u64, burst: f64) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * rate as f64).min(burst);
        if self.tokens > 0.0 {
            self.tokens -= len as f64;
            true
        } else {
            false
        }
    }
}

/// Every transfer the server relays.
pub struct Registry {
    cfg: TransferConfig,
    udp_max_payload: usize,
    outbox_frames: usize,
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// Messages to queue once the lock is released.
type Out = Vec<(Arc<Peer>, Xfer)>;

fn err(id: u64, code: XferError, text: impl Into<String>) -> Xfer {
    Xfer::Error {
        id,
        code,
        text: text.into(),
    }
}

impl Registry {
    pub fn new(cfg: TransferConfig, udp_max_payload: usize, outbox_frames: usize) -> Self {
        Registry {
            cfg,
            udp_max_payload,
            outbox_frames,
            inner: Arc::new(Mutex::new(Inner {
                next: 1,
                ..Inner::default()
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Bytes a sender may send at once before the rate applies.
    fn burst(&self) -> f64 {
        (self.cfg.rate_per_user / 20).max(64 * 1024) as f64
    }

    /// Largest chunk `p`'s transport carries in one message.
    fn chunk_for(&self, p: &Peer) -> u64 {
        match p.transport {
            Transport::Tcp => TCP_CHUNK as u64,
            Transport::Udp => self
                .udp_max_payload
                // A UDP sender's chunks also carry its session token.
                .saturating_sub(udp::SESSION_HEADER_LEN + CHUNK_OVERHEAD)
                .max(1) as u64,
        }
    }

    /// Open transfers, for tests and sockinfo.
    pub fn len(&self) -> usize {
        self.lock().relays.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A transfer message from `from`.
    pub fn handle(&self, hub: &Hub, from: &Arc<Peer>, x: Xfer) {
        let mut out: Out = Vec::new();
        let start_pacer = {
            let mut g = self.lock();
            self.step(&mut g, hub, from, x, &mut out);
            let waiting = g.relays.values().any(|r| !r.held.is_empty());
            let start = waiting && !g.pacing;
            g.pacing |= start;
            start
        };
        if start_pacer {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(pace(
                        self.inner.clone(),
                        self.cfg.rate_per_user,
                        self.burst(),
                    ));
                }
                // No runtime (never in the server): nothing may wait.
                Err(_) => {
                    let mut g = self.lock();
                    release(&mut g.relays, |_, _| true, &mut out);
                    g.pacing = false;
                }
            }
        }
        send_all(out);
    }

    fn step(&self, g: &mut Inner, hub: &Hub, from: &Arc<Peer>, x: Xfer, out: &mut Out) {
        let id = x.id();
        if let Xfer::Offer {
            peer,
            name,
            size,
            sha256,
            ..
        } = x
        {
            return self.offer(g, hub, from, id, peer, name, size, sha256, out);
        }
        // Is `from` the sender (its own id) or the receiver (ours)?
        let sid = match g.by_sender.get(&(from.id, id)) {
            Some(&sid) => sid,
            None => match g.relays.get(&id) {
                Some(r) if r.receiver.id == from.id => id,
                _ => {
                    // The sender's probe after a Done or Decline it did
                    // not hear: the same answer again.
                    if let Some(answer) = ended(g, from.id, id) {
                        if matches!(x, Xfer::Chunk { .. }) {
                            out.push((from.clone(), answer));
                        }
                        return;
                    }
                    // Late messages after an end are normal (chunks in
                    // flight when the receiver cancelled): an Error only
                    // for what starts something.
                    if matches!(x, Xfer::Accept { .. }) {
                        out.push((
                            from.clone(),
                            err(id, XferError::Cancelled, "no such transfer (it ended)"),
                        ));
                    }
                    return;
                }
            },
        };
        let Some(r) = g.relays.get_mut(&sid) else {
            return;
        };
        let from_sender = r.sender.id == from.id && r.local == id;
        let (to_sender, to_receiver) = ((r.sender.clone(), r.local), (r.receiver.clone(), sid));
        let mut end = false;
        let mut remember = None;
        match x {
            Xfer::Offer { .. } => {}
            Xfer::Accept { offset, .. } if !from_sender && !r.active => {
                let offset = offset.min(r.size);
                r.active = true;
                r.start = offset;
                r.forwarded = offset;
                r.acked = offset;
                out.push((
                    to_sender.0,
                    Xfer::Accept {
                        id: to_sender.1,
                        offset,
                        window: r.window.min(u64::from(u32::MAX)) as u32,
                        max_chunk: r.max_chunk as u32,
                        lossless: r.sender.transport == Transport::Tcp
                            && r.receiver.transport == Transport::Tcp,
                    },
                ));
            }
            // The receiver says Accept again (its first, or our answer to
            // the sender, may have been lost) and no chunk came since:
            // the sender hears it again.
            Xfer::Accept { .. } if !from_sender && r.forwarded == r.start => {
                out.push((
                    to_sender.0,
                    Xfer::Accept {
                        id: to_sender.1,
                        offset: r.start,
                        window: r.window.min(u64::from(u32::MAX)) as u32,
                        max_chunk: r.max_chunk as u32,
                        lossless: r.sender.transport == Transport::Tcp
                            && r.receiver.transport == Transport::Tcp,
                    },
                ));
            }
            Xfer::Decline { .. } if !from_sender && !r.active => {
                let answer = Xfer::Decline { id: to_sender.1 };
                remember = Some(answer.clone());
                out.push((to_sender.0, answer));
                end = true;
            }
            Xfer::Chunk { offset, data, .. } if from_sender && r.active => {
                let len = data.len() as u64;
                let chunk_end = offset.saturating_add(len);
                let problem = if chunk_end > r.size {
                    Some("chunk past the end of the file")
                } else if len > r.max_chunk {
                    Some("chunk larger than max_chunk")
                } else if chunk_end.saturating_sub(r.acked) > r.window {
                    Some("window overrun: more unacknowledged bytes than the window")
                } else {
                    None
                };
                if let Some(why) = problem {
                    out.push((to_sender.0, err(to_sender.1, XferError::Protocol, why)));
                    out.push((to_receiver.0, err(sid, XferError::Protocol, why)));
                    end = true;
                } else {
                    r.forwarded = r.forwarded.max(chunk_end);
                    let rate = self.cfg.rate_per_user;
                    let now_ok = rate == 0
                        || (r.held.is_empty()
                            && g.buckets
                                .entry(r.sender.id)
                                .or_insert_with(|| Bucket {
                                    tokens: self.burst(),
                                    at: Instant::now(),
                                })
                                .take(data.len(), Instant::now(), rate, self.burst()));
                    if now_ok {
                        out.push((
                            to_receiver.0,
                            Xfer::Chunk {
                                id: sid,
                                offset,
                                data,
                            },
                        ));
                    } else {
                        r.held.push_back((offset, data));
                    }
                }
            }
            Xfer::Ack { offset, sack, .. } if !from_sender && r.active => {
                r.acked = r.acked.max(offset.min(r.forwarded));
                out.push((
                    to_sender.0,
                    Xfer::Ack {
                        id: to_sender.1,
                        offset,
                        sack,
                    },
                ));
            }
            Xfer::Done { .. } if !from_sender && r.active => {
                let answer = Xfer::Done { id: to_sender.1 };
                remember = Some(answer.clone());
                out.push((to_sender.0, answer));
                end = true;
            }
            Xfer::Cancel { .. } => {
                let (p, i) = if from_sender { to_receiver } else { to_sender };
                out.push((p, Xfer::Cancel { id: i }));
                end = true;
            }
            Xfer::Error { code, text, .. } => {
                let (p, i) = if from_sender { to_receiver } else { to_sender };
                out.push((p, Xfer::Error { id: i, code, text }));
                end = true;
            }
            // A message out of turn (a chunk before Accept, an Accept
            // twice, a receiver's message from the sender): ignored when
            // harmless, but a chunk before Accept is a rule broken.
            Xfer::Chunk { .. } if from_sender => {
                out.push((
                    to_sender.0,
                    err(to_sender.1, XferError::Protocol, "chunk before accept"),
                ));
                out.push((
                    to_receiver.0,
                    err(sid, XferError::Protocol, "sender broke the rules"),
                ));
                end = true;
            }
            _ => {}
        }
        if end
            && let Some(r) = remove(g, sid)
            && let Some(answer) = remember
        {
            if g.ended.len() >= ENDED {
                g.ended.pop_front();
            }
            g.ended.push_back(((r.sender.id, r.local), answer));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn offer(
        &self,
        g: &mut Inner,
        hub: &Hub,
        from: &Arc<Peer>,
        id: u64,
        to: String,
        name: String,
        size: u64,
        sha256: [u8; 32],
        out: &mut Out,
    ) {
        let refuse = |code, text: String| (from.clone(), err(id, code, text));
        if !self.cfg.enabled {
            out.push(refuse(
                XferError::Other(0),
                "file transfer is off on this server".into(),
            ));
            return;
        }
        if id >= COPY_IDS {
            out.push(refuse(
                XferError::Protocol,
                format!("transfer ids from {COPY_IDS} up are the server's"),
            ));
            return;
        }
        // A repeated Offer (the sender cannot know whether its first
        // arrived): an unanswered one goes to the receiver again; one
        // that ended gets its end again; one under way is answered by
        // its chunks' acks.
        if let Some(sid) = g.by_sender.get(&(from.id, id)).copied() {
            if let Some(r) = g.relays.get(&sid)
                && !r.active
            {
                out.push((
                    r.receiver.clone(),
                    Xfer::Offer {
                        id: sid,
                        peer: from.nick().to_string(),
                        name: r.name.clone(),
                        size: r.size,
                        sha256: r.sha256,
                    },
                ));
            }
            return;
        }
        if let Some(answer) = ended(g, from.id, id) {
            out.push((from.clone(), answer));
            return;
        }
        if size > self.cfg.max_file_size {
            out.push(refuse(
                XferError::TooBig,
                format!(
                    "file of {size} B is larger than this server's limit of {} B",
                    self.cfg.max_file_size
                ),
            ));
            return;
        }
        let max = self.cfg.max_per_user;
        if count(g, from.id) >= max {
            out.push(refuse(
                XferError::TooMany,
                format!("too many transfers (at most {max} per user)"),
            ));
            return;
        }
        let file = Offered { name, size, sha256 };
        if to.starts_with('#') {
            return self.room_offer(g, hub, from, id, &to, file, out);
        }
        let Some(target) = hub.find(&to) else {
            out.push(refuse(XferError::NoSuchUser, format!("no such nick: {to}")));
            return;
        };
        self.open(g, from, id, &target, &file, None, out);
    }

    /// An offer to `#room`: one copy per other member (a `Copy` tells the
    /// sender each one's id), each accepted or declined on its own. The
    /// sender must be in the room; at most `transfer.room_recipients`
    /// members; the copies count once against the sender's
    /// `max_per_user`, once each against their receiver's.
    #[allow(clippy::too_many_arguments)]
    fn room_offer(
        &self,
        g: &mut Inner,
        hub: &Hub,
        from: &Arc<Peer>,
        id: u64,
        to: &str,
        file: Offered,
        out: &mut Out,
    ) {
        let refuse = |code, text: String| (from.clone(), err(id, code, text));
        let Some(room) = hub.room(to) else {
            out.push(refuse(XferError::NoSuchUser, format!("no such room: {to}")));
            return;
        };
        let me = from.nick();
        let who = room.who();
        if !who.iter().any(|n| **n == *me) {
            out.push(refuse(
                XferError::NoSuchUser,
                format!("you are not in #{}: join it to offer it a file", room.name),
            ));
            return;
        }
        let others: Vec<String> = who.into_iter().filter(|n| **n != *me).collect();
        if others.is_empty() {
            out.push(refuse(
                XferError::NoSuchUser,
                format!("nobody else is in #{}", room.name),
            ));
            return;
        }
        let most = self.cfg.room_recipients;
        if others.len() > most {
            out.push(refuse(
                XferError::TooMany,
                format!(
                    "#{} has {} other members: a room offer reaches at most {most} (transfer.room_recipients)",
                    room.name,
                    others.len()
                ),
            ));
            return;
        }
        let group = g.next;
        g.next += 1;
        for nick in others {
            let cid = COPY_IDS | g.next;
            g.next += 1;
            out.push((
                from.clone(),
                Xfer::Copy {
                    id: cid,
                    of: id,
                    peer: nick.clone(),
                },
            ));
            match hub.find(&nick) {
                Some(target) => self.open(g, from, cid, &target, &file, Some(group), out),
                // Left meanwhile.
                None => out.push((
                    from.clone(),
                    err(cid, XferError::NoSuchUser, format!("no such nick: {nick}")),
                )),
            }
        }
    }

    /// Offer `file` to `target` as the sender's transfer `local` (its own
    /// id, or a room copy's), unless the target cannot take it: each
    /// refusal is an Error on `local` in words.
    #[allow(clippy::too_many_arguments)]
    fn open(
        &self,
        g: &mut Inner,
        from: &Arc<Peer>,
        local: u64,
        target: &Arc<Peer>,
        file: &Offered,
        group: Option<u64>,
        out: &mut Out,
    ) {
        let refuse = |code, text: String| (from.clone(), err(local, code, text));
        if target.id == from.id {
            out.push(refuse(XferError::NoSuchUser, "that is you".into()));
            return;
        }
        if target.format == Format::Text {
            out.push(refuse(
                XferError::NoSuchUser,
                format!(
                    "{} is a text-mode user: files need the sockchat client",
                    target.nick()
                ),
            ));
            return;
        }
        let max = self.cfg.max_per_user;
        if count(g, target.id) >= max {
            out.push(refuse(
                XferError::TooMany,
                format!(
                    "{} has too many transfers (at most {max} per user)",
                    target.nick()
                ),
            ));
            return;
        }
        if g.relays.len() >= self.cfg.max_per_server {
            out.push(refuse(
                XferError::TooMany,
                format!(
                    "too many transfers on the server (at most {})",
                    self.cfg.max_per_server
                ),
            ));
            return;
        }
        let max_chunk = self.chunk_for(from).min(self.chunk_for(target));
        // The receiver's outbox must hold every transfer's window in
        // chunks with room for chat, or a full window would make it a slow
        // consumer: a quarter of the outbox, shared by its transfers.
        let frames = (self.outbox_frames / 4 / max.max(1)).max(4) as u64;
        let window = u64::from(self.cfg.window)
            .min(frames * max_chunk)
            .max(max_chunk);
        let sid = g.next;
        g.next += 1;
        g.by_sender.insert((from.id, local), sid);
        g.relays.insert(
            sid,
            Relay {
                sender: from.clone(),
                local,
                receiver: target.clone(),
                size: file.size,
                name: file.name.clone(),
                sha256: file.sha256,
                active: false,
                start: 0,
                forwarded: 0,
                acked: 0,
                window,
                max_chunk,
                held: VecDeque::new(),
                group,
            },
        );
        out.push((
            target.clone(),
            Xfer::Offer {
                id: sid,
                peer: from.nick().to_string(),
                name: file.name.clone(),
                size: file.size,
                sha256: file.sha256,
            },
        ));
    }

    /// `p`'s session ended: every transfer it was in ends, and the other
    /// side hears `peer-gone`.
    pub fn peer_gone(&self, p: &Peer) {
        let mut out: Out = Vec::new();
        {
            let mut g = self.lock();
            g.buckets.remove(&p.id);
            let ids: Vec<u64> = g
                .relays
                .iter()
                .filter(|(_, r)| r.sender.id == p.id || r.receiver.id == p.id)
                .map(|(id, _)| *id)
                .collect();
            for sid in ids {
                if let Some(r) = remove(&mut g, sid) {
                    let text = format!("{} disconnected", p.nick());
                    if r.sender.id == p.id {
                        out.push((r.receiver, err(sid, XferError::PeerGone, text)));
                    } else {
                        out.push((r.sender, err(r.local, XferError::PeerGone, text)));
                    }
                }
            }
        }
        send_all(out);
    }
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic while holding it leaves plain maps: still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Queue what the relay decided, outside the lock. Chunks take the bulk
/// lane: chat to the receiver is written before them (outbox.rs, "Two
/// lanes").
fn send_all(out: Out) {
    for (p, m) in out {
        if matches!(m, Xfer::Chunk { .. }) {
            p.send_bulk(&ServerMsg::Transfer(m));
        } else {
            p.send(&ServerMsg::Transfer(m));
        }
    }
}

/// Release each transfer's waiting chunks, in order, while `may(sender
/// peer id, bytes)` allows; true if some still wait.
fn release(
    relays: &mut HashMap<u64, Relay>,
    mut may: impl FnMut(u64, usize) -> bool,
    out: &mut Out,
) -> bool {
    let mut waiting = false;
    for (sid, r) in relays.iter_mut() {
        while let Some((_, data)) = r.held.front() {
            if !may(r.sender.id, data.len()) {
                waiting = true;
                break;
            }
            if let Some((offset, data)) = r.held.pop_front() {
                out.push((
                    r.receiver.clone(),
                    Xfer::Chunk {
                        id: *sid,
                        offset,
                        data,
                    },
                ));
            }
        }
    }
    waiting
}

/// The pacer: every [`PACE_TICK`], release the waiting chunks their
/// senders' buckets allow; ends when nothing waits (a chunk held later
/// starts it again).
async fn pace(inner: Arc<Mutex<Inner>>, rate: u64, burst: f64) {
    let mut tick = tokio::time::interval(PACE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut out: Out = Vec::new();
        let done = {
            let mut g = lock(&inner);
            let now = Instant::now();
            let Inner {
                relays,
                buckets,
                pacing,
                ..
            } = &mut *g;
            let waiting = release(
                relays,
                |pid, len| {
                    buckets
                        .entry(pid)
                        .or_insert(Bucket {
                            tokens: 0.0,
                            at: now,
                        })
                        .take(len, now, rate, burst)
                },
                &mut out,
            );
            if !waiting {
                *pacing = false;
            }
            !waiting
        };
        send_all(out);
        if done {
            return;
        }
    }
}

/// True for the transfer messages paced by the window (everything after
/// the offer): they do not cost a rate-limit token.
pub(crate) fn is_paced(m: &sockchat_shared::ClientMsg) -> bool {
    matches!(m, sockchat_shared::ClientMsg::Transfer(x) if !matches!(x, Xfer::Offer { .. }))
}

/// How a remembered transfer of the sender's `(peer id, local id)` ended.
fn ended(g: &Inner, sender: u64, local: u64) -> Option<Xfer> {
    g.ended
        .iter()
        .rev()
        .find(|(k, _)| *k == (sender, local))
        .map(|(_, answer)| answer.clone())
}

fn remove(g: &mut Inner, sid: u64) -> Option<Relay> {
    let r = g.relays.remove(&sid)?;
    g.by_sender.remove(&(r.sender.id, r.local));
    Some(r)
}
