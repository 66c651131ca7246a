//! The client's file transfers, for the one session driver (TCP or UDP):
//! `/send` hashes the file (SHA-256, on a blocking thread) and offers it;
//! an offer received waits for `/accept` (nothing is written before) or
//! `/decline`; chunks go out as `shared::rudp`'s sender allows (the
//! server's window; over UDP also its congestion window and
//! retransmissions) and come back in order through its receiver into a
//! temporary file that gets its final, safe name (`save.rs`) only when the
//! SHA-256 matches. Progress is reported once a second and at the end.
//!
//! Resume (PROTOCOL.md "Resume"): when our session ends, or the server says
//! the other side's did (`peer-gone`), a moving transfer pauses instead of
//! failing. The sender offers the same file again — at once on its next
//! session, every [`RESUME_RETRY`] while the receiver is away — and the
//! receiver, recognising name, size and SHA-256 of a paused transfer,
//! accepts at once from the offset it has (its partial file and running
//! hash are kept). A pause not resumed within [`RESUME_WAIT`] fails.
//!
//! The driver calls in with what happened and the time; what to send and
//! what to report accumulate here and the driver drains them
//! ([`Transfers::drain`]). No socket is touched here.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use sockchat_shared::ClientMsg;
use sockchat_shared::fold::{nick_key, same_nick};
use sockchat_shared::rudp::{self, ReceiverStats, SenderStats};
use sockchat_shared::transfer::{SHA256_LEN, Xfer, XferError, hex};
use tokio::sync::mpsc;

use super::Transport;
use super::save;

pub use save::download_dir;

/// What the user asks (`/send`, `/accept`, `/decline`, `/cancel`). An
/// omitted id means the oldest offer waiting (accept, decline) or the only
/// transfer (cancel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XferCmd {
    Send { path: PathBuf, to: String },
    Accept(Option<u64>),
    Decline(Option<u64>),
    Cancel(Option<u64>),
}

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Send,
    Receive,
}

/// Where a transfer stands: bytes, time, the reliability layer's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub id: u64,
    pub dir: Dir,
    pub peer: String,
    pub name: String,
    pub size: u64,
    /// Bytes acknowledged (sending) or written in order (receiving).
    pub bytes: u64,
    /// Since the accept.
    pub elapsed: Duration,
    pub transport: Transport,
    pub sender: Option<SenderStats>,
    pub receiver: Option<ReceiverStats>,
}

impl Progress {
    /// Bytes per second since the accept.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.bytes as f64 / s } else { 0.0 }
    }

    /// Time left at the current rate.
    pub fn eta(&self) -> Option<Duration> {
        let r = self.rate();
        (r > 0.0).then(|| Duration::from_secs_f64(self.size.saturating_sub(self.bytes) as f64 / r))
    }
}

/// What happened to a transfer, for the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum XferEvent {
    /// Someone offers us a file: `/accept ID` or `/decline ID`.
    Offered {
        id: u64,
        from: String,
        name: String,
        size: u64,
        sha256: String,
    },
    /// Our offer went out (after hashing the file).
    OfferSent {
        id: u64,
        to: String,
        name: String,
        size: u64,
        sha256: String,
    },
    /// Accepted: bytes start moving.
    Started {
        id: u64,
        dir: Dir,
        peer: String,
        name: String,
        size: u64,
        transport: Transport,
    },
    /// Once a second while bytes move.
    Progress(Progress),
    /// All bytes arrived and the SHA-256 matched; `saved` is where the
    /// receiver put the file.
    Done {
        progress: Progress,
        sha256: String,
        saved: Option<PathBuf>,
    },
    /// The connection (ours or the peer's) was lost mid-transfer: it waits
    /// to resume from `bytes` (up to [`RESUME_WAIT`]).
    Paused {
        id: u64,
        dir: Dir,
        peer: String,
        name: String,
        bytes: u64,
        why: String,
    },
    /// A paused transfer goes on from `offset` (what the receiver had).
    Resumed {
        id: u64,
        dir: Dir,
        peer: String,
        name: String,
        offset: u64,
    },
    /// It ended otherwise, and why in words.
    Failed {
        id: u64,
        dir: Dir,
        peer: String,
        name: String,
        why: String,
    },
}

/// Chunks one [`Transfers::pump`] hands out at most, so chat and acks
/// interleave with a large transfer.
pub const PUMP_BUDGET: usize = 32;
/// Out-of-order bytes a receiver keeps at most (the server's window is
/// 1 MiB by default).
const MAX_HELD: u64 = 8 << 20;
/// Progress events come this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// A paused transfer fails if it has not resumed within this.
pub const RESUME_WAIT: Duration = Duration::from_secs(120);
/// A sender whose receiver went away offers again this often.
pub const RESUME_RETRY: Duration = Duration::from_secs(1);
/// A control message not yet answered is said again after this long,
/// then twice as long each time up to [`RESEND_MAX`] (see [`Resend`]).
pub const RESEND_FIRST: Duration = Duration::from_millis(500);
const RESEND_MAX: Duration = Duration::from_secs(4);
/// Transfers a receiver finished that it still answers a probe for.
const FINISHED_KEPT: usize = 64;

/// A control message said again until answered: over UDP any datagram may
/// be lost, and a lost Offer, Accept or Done would leave both sides
/// waiting for ever. Our Offer until the receiver's answer, our Accept
/// until the first chunk, and, once every byte is acknowledged over a
/// lossy path, an empty Chunk at the end of the file (a probe that the
/// receiver, or the server once the transfer ended, answers with Done).
/// The server answers repeats (PROTOCOL.md "Over UDP").
struct Resend {
    at: Instant,
    every: Duration,
    msg: Xfer,
}

impl Resend {
    fn new(msg: Xfer, now: Instant) -> Self {
        Self {
            at: now + RESEND_FIRST,
            every: RESEND_FIRST,
            msg,
        }
    }
}

enum State {
    /// Ours: the file is being hashed.
    Hashing,
    /// Ours: offered, waiting for the answer. `resume`: offered again
    /// after a pause (a `no-such-user` answer means the receiver is not
    /// back yet).
    OfferedOut {
        file: File,
        resume: bool,
    },
    /// Ours, paused: offer again on our next session (`retry_at` None) or
    /// at `retry_at` (the receiver went away).
    SendPaused {
        file: File,
        retry_at: Option<Instant>,
    },
    /// Ours, offered to a room: the server made one copy per member
    /// (each its own transfer); this keeps the file for the copies still
    /// to come.
    RoomOffered {
        file: File,
    },
    /// Theirs: waiting for our user.
    OfferedIn,
    Sending {
        file: File,
        tx: rudp::Sender,
    },
    Receiving(Recv),
    /// Theirs, paused: the partial file and hash wait for the offer again.
    RecvPaused(Recv),
}

/// What a receiver keeps while bytes arrive (and across a pause).
struct Recv {
    file: File,
    tmp: PathBuf,
    rx: rudp::Receiver,
    hash: Sha256,
}

struct Entry {
    /// Wire id: ours for what we send, the server's for what we receive.
    wire: u64,
    dir: Dir,
    peer: String,
    name: String,
    size: u64,
    sha: [u8; SHA256_LEN],
    started: Option<Instant>,
    last_report: Instant,
    /// When it paused (see [`RESUME_WAIT`]), and the bytes done then.
    paused: Option<(Instant, u64)>,
    state: State,
    /// What we say again until answered.
    resend: Option<Resend>,
    /// Sending over a path that may lose datagrams (the Accept's
    /// `lossless` was false): the end is probed for.
    lossy: bool,
}

type Hashed = (u64, io::Result<(File, u64, [u8; SHA256_LEN])>);

/// Every transfer of this client (ids are ours, shown to the user).
pub struct Transfers {
    entries: BTreeMap<u64, Entry>,
    next_id: u64,
    download_dir: PathBuf,
    transport: Transport,
    /// Largest chunk our own link carries.
    own_max_chunk: u64,
    /// Wire ids of the last transfers we received whole (their Done is
    /// said again when the sender probes).
    finished: VecDeque<u64>,
    hashed_tx: mpsc::UnboundedSender<Hashed>,
    hashed_rx: mpsc::UnboundedReceiver<Hashed>,
    out: Vec<ClientMsg>,
    events: Vec<XferEvent>,
    /// Offers from these nicks (`nick_key`s) are accepted at once.
    auto_accept: Vec<String>,
}

fn msg(x: Xfer) -> ClientMsg {
    ClientMsg::Transfer(x)
}

/// A write error in words, and its code (ENOSPC is `disk-full`).
fn write_error(e: &io::Error) -> (XferError, String) {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        (
            XferError::DiskFull,
            format!("disk full (ENOSPC) while writing: {e}"),
        )
    } else {
        (XferError::Io, format!("cannot write the file: {e}"))
    }
}

/// Open and hash a file (runs on a blocking thread).
fn hash_file(path: &Path) -> io::Result<(File, u64, [u8; SHA256_LEN])> {
    let mut f = File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((f, size, h.finalize().into()))
}

impl Transfers {
    pub fn new(
        download_dir: PathBuf,
        transport: Transport,
        own_max_chunk: u64,
        auto_accept: Vec<String>,
    ) -> Self {
        let (hashed_tx, hashed_rx) = mpsc::unbounded_channel();
        Transfers {
            entries: BTreeMap::new(),
            next_id: 1,
            download_dir,
            transport,
            own_max_chunk: own_max_chunk.max(1),
            finished: VecDeque::new(),
            hashed_tx,
            hashed_rx,
            out: Vec::new(),
            events: Vec::new(),
            auto_accept: auto_accept.iter().map(|n| nick_key(n)).collect(),
        }
    }

    /// A transfer of ours is under way (hashing, offered, moving): a
    /// /quit waits for it. An offer we have not answered does not count.
    pub fn busy(&self) -> bool {
        self.entries
            .values()
            .any(|e| !matches!(e.state, State::OfferedIn | State::RoomOffered { .. }))
    }

    /// What to send and what to report since the last call.
    pub fn drain(&mut self) -> (Vec<ClientMsg>, Vec<XferEvent>) {
        (
            std::mem::take(&mut self.out),
            std::mem::take(&mut self.events),
        )
    }

    fn fail(&mut self, id: u64, why: impl Into<String>) {
        if let Some(e) = self.entries.remove(&id) {
            if let State::Receiving(r) | State::RecvPaused(r) = &e.state {
                let _ = std::fs::remove_file(&r.tmp);
            }
            self.events.push(XferEvent::Failed {
                id,
                dir: e.dir,
                peer: e.peer,
                name: e.name,
                why: why.into(),
            });
        }
    }

    fn progress(&self, id: u64, e: &Entry, now: Instant) -> Progress {
        let (bytes, sender, receiver) = match &e.state {
            State::Sending { tx, .. } => (tx.acked(), Some(tx.stats()), None),
            State::Receiving(r) | State::RecvPaused(r) => (r.rx.offset(), None, Some(r.rx.stats())),
            _ => (e.paused.map_or(0, |p| p.1), None, None),
        };
        Progress {
            id,
            dir: e.dir,
            peer: e.peer.clone(),
            name: e.name.clone(),
            size: e.size,
            bytes,
            elapsed: e.started.map(|s| now - s).unwrap_or_default(),
            transport: self.transport,
            sender,
            receiver,
        }
    }

    /// A command from the user. `connected`: a session is up.
    pub fn command(&mut self, cmd: XferCmd, connected: bool) {
        let pick = |want: Option<u64>, ok: &dyn Fn(&Entry) -> bool| -> Result<u64, String> {
            match want {
                Some(id) => match self.entries.get(&id) {
                    Some(e) if ok(e) => Ok(id),
                    Some(_) => Err(format!("transfer {id} cannot do that now")),
                    None => Err(format!("no transfer {id}")),
                },
                None => self
                    .entries
                    .iter()
                    .find(|(_, e)| ok(e))
                    .map(|(id, _)| *id)
                    .ok_or_else(|| "no such transfer".to_string()),
            }
        };
        match cmd {
            XferCmd::Send { path, to } => {
                if !connected {
                    return self.local_error("not connected: no file can be offered now");
                }
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if name.is_empty() {
                    return self.local_error(&format!("{}: not a file name", path.display()));
                }
                let id = self.next_id;
                self.next_id += 1;
                self.entries.insert(
                    id,
                    Entry {
                        wire: id,
                        dir: Dir::Send,
                        peer: to,
                        name,
                        size: 0,
                        sha: [0; SHA256_LEN],
                        started: None,
                        last_report: Instant::now(),
                        paused: None,
                        state: State::Hashing,
                        resend: None,
                        lossy: true,
                    },
                );
                let tx = self.hashed_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let _ = tx.send((id, hash_file(&path)));
                });
            }
            XferCmd::Accept(want) => match pick(want, &|e| matches!(e.state, State::OfferedIn)) {
                Ok(id) => self.accept(id),
                Err(why) => self.local_error(&why),
            },
            XferCmd::Decline(want) => match pick(want, &|e| matches!(e.state, State::OfferedIn)) {
                Ok(id) => {
                    if let Some(e) = self.entries.get(&id) {
                        self.out.push(msg(Xfer::Decline { id: e.wire }));
                    }
                    self.fail(id, "declined by you");
                }
                Err(why) => self.local_error(&why),
            },
            XferCmd::Cancel(want) => match pick(want, &|_| true) {
                Ok(id) => {
                    if let Some(e) = self.entries.get(&id)
                        && !matches!(e.state, State::Hashing)
                    {
                        self.out.push(msg(Xfer::Cancel { id: e.wire }));
                    }
                    self.fail(id, "cancelled by you");
                }
                Err(why) => self.local_error(&why),
            },
        }
    }

    fn local_error(&mut self, why: &str) {
        self.events.push(XferEvent::Failed {
            id: 0,
            dir: Dir::Send,
            peer: String::new(),
            name: String::new(),
            why: why.to_string(),
        });
    }

    fn accept(&mut self, id: u64) {
        let dir = self.download_dir.clone();
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let safe = save::safe_name(&e.name);
        match save::create_temp(&dir, &safe, id) {
            Ok((file, tmp)) => {
                e.state = State::Receiving(Recv {
                    file,
                    tmp,
                    rx: rudp::Receiver::new(e.size, 0, MAX_HELD),
                    hash: Sha256::new(),
                });
                e.started = Some(Instant::now());
                let accept = Xfer::Accept {
                    id: e.wire,
                    offset: 0,
                    window: 0,
                    max_chunk: 0,
                    lossless: false,
                };
                e.resend = Some(Resend::new(accept.clone(), Instant::now()));
                self.out.push(msg(accept));
                self.events.push(XferEvent::Started {
                    id,
                    dir: Dir::Receive,
                    peer: e.peer.clone(),
                    name: e.name.clone(),
                    size: e.size,
                    transport: self.transport,
                });
                if e.size == 0 {
                    self.finish_receive(id, Instant::now());
                }
            }
            Err(err) => {
                let (code, why) = write_error(&err);
                let why = format!("{why} (download folder {})", dir.display());
                self.out.push(msg(Xfer::Error {
                    id: e.wire,
                    code,
                    text: why.clone(),
                }));
                self.fail(id, why);
            }
        }
    }

    /// Wait for a hash to finish (cancel-safe); hand it to [`Self::hashed`].
    pub async fn next_hashed(&mut self) -> Hashed {
        match self.hashed_rx.recv().await {
            Some(h) => h,
            // We hold a sender, so this never ends.
            None => std::future::pending().await,
        }
    }

    /// A file's hash is ready: offer it.
    pub fn hashed(&mut self, h: Hashed) {
        let (id, r) = h;
        let Some(e) = self.entries.get_mut(&id) else {
            return; // cancelled meanwhile
        };
        match r {
            Ok((file, size, sha)) => {
                e.size = size;
                e.sha = sha;
                e.state = State::OfferedOut {
                    file,
                    resume: false,
                };
                let offer = Xfer::Offer {
                    id,
                    peer: e.peer.clone(),
                    name: e.name.clone(),
                    size,
                    sha256: sha,
                };
                // A room offer is answered by copies, never repeated (a
                // repeat would be a second room offer).
                if !e.peer.starts_with('#') {
                    e.resend = Some(Resend::new(offer.clone(), Instant::now()));
                }
                self.out.push(msg(offer));
                self.events.push(XferEvent::OfferSent {
                    id,
                    to: e.peer.clone(),
                    name: e.name.clone(),
                    size,
                    sha256: hex(&sha),
                });
            }
            Err(err) => {
                let why = format!("cannot read {}: {err}", e.name);
                self.fail(id, why);
            }
        }
    }

    fn find(&self, dir: Dir, wire: u64) -> Option<u64> {
        self.entries
            .iter()
            .find(|(_, e)| e.dir == dir && e.wire == wire)
            .map(|(id, _)| *id)
    }

    /// A transfer message from the server.
    pub fn on_msg(&mut self, x: Xfer, now: Instant) {
        let wire = x.id();
        match x {
            Xfer::Offer {
                id: _,
                peer,
                name,
                size,
                sha256,
            } => {
                // The same offer again (the sender did not hear our
                // answer): say our Accept again at once, if we gave one.
                if let Some(id) = self.find(Dir::Receive, wire) {
                    if let Some(e) = self.entries.get_mut(&id)
                        && let Some(r) = e.resend.as_mut()
                    {
                        r.at = now;
                    }
                    return;
                }
                if self.resume_receive(wire, &peer, &name, size, &sha256) {
                    return;
                }
                let id = self.next_id;
                self.next_id += 1;
                self.entries.insert(
                    id,
                    Entry {
                        wire,
                        dir: Dir::Receive,
                        peer: peer.clone(),
                        name: name.clone(),
                        size,
                        sha: sha256,
                        started: None,
                        last_report: now,
                        paused: None,
                        state: State::OfferedIn,
                        resend: None,
                        lossy: true,
                    },
                );
                let auto = self.auto_accept.contains(&nick_key(&peer));
                self.events.push(XferEvent::Offered {
                    id,
                    from: peer,
                    name,
                    size,
                    sha256: hex(&sha256),
                });
                if auto {
                    self.accept(id);
                }
            }
            Xfer::Accept {
                offset,
                window,
                max_chunk,
                lossless,
                ..
            } => {
                let Some(id) = self.find(Dir::Send, wire) else {
                    return;
                };
                let own = self.own_max_chunk;
                let Some(e) = self.entries.get_mut(&id) else {
                    return;
                };
                let old = std::mem::replace(&mut e.state, State::Hashing);
                let State::OfferedOut { file, resume } = old else {
                    e.state = old;
                    return;
                };
                let chunk = u64::from(max_chunk).min(own).max(1);
                e.lossy = !lossless;
                // Nothing to send (an empty file, or a resume from the
                // end): only Done is missing, probe for it.
                e.resend = (offset >= e.size && e.lossy).then(|| {
                    let probe = Xfer::Chunk {
                        id: e.wire,
                        offset: e.size,
                        data: Bytes::new(),
                    };
                    Resend::new(probe, now)
                });
                e.state = State::Sending {
                    file,
                    tx: rudp::Sender::new(e.size, offset, chunk, u64::from(window), lossless),
                };
                if resume && e.paused.take().is_some() {
                    self.events.push(XferEvent::Resumed {
                        id,
                        dir: Dir::Send,
                        peer: e.peer.clone(),
                        name: e.name.clone(),
                        offset,
                    });
                    return;
                }
                e.started = Some(now);
                self.events.push(XferEvent::Started {
                    id,
                    dir: Dir::Send,
                    peer: e.peer.clone(),
                    name: e.name.clone(),
                    size: e.size,
                    transport: self.transport,
                });
            }
            Xfer::Ack { offset, sack, .. } => {
                if let Some(id) = self.find(Dir::Send, wire)
                    && let Some(Entry {
                        state: State::Sending { tx, .. },
                        resend,
                        lossy,
                        wire,
                        size,
                        ..
                    }) = self.entries.get_mut(&id)
                {
                    tx.on_ack(offset, &sack, now);
                    // Every byte acknowledged: now only Done is missing.
                    if tx.finished() && *lossy && resend.is_none() {
                        let probe = Xfer::Chunk {
                            id: *wire,
                            offset: *size,
                            data: Bytes::new(),
                        };
                        *resend = Some(Resend::new(probe, now));
                    }
                }
            }
            Xfer::Chunk { offset, data, .. } => {
                if let Some(id) = self.find(Dir::Receive, wire) {
                    self.chunk(id, offset, data, now);
                } else if self.finished.contains(&wire) {
                    // The sender's probe: our Done was lost.
                    self.out.push(msg(Xfer::Done { id: wire }));
                }
            }
            Xfer::Done { .. } => {
                if let Some(id) = self.find(Dir::Send, wire)
                    && let Some(e) = self.entries.remove(&id)
                {
                    let mut progress = self.progress(id, &e, now);
                    progress.bytes = e.size;
                    self.events.push(XferEvent::Done {
                        progress,
                        sha256: hex(&e.sha),
                        saved: None,
                    });
                }
            }
            Xfer::Decline { .. } => {
                if let Some(id) = self.find(Dir::Send, wire) {
                    self.fail(id, "declined");
                }
            }
            Xfer::Cancel { .. } => {
                let id = self
                    .find(Dir::Send, wire)
                    .or_else(|| self.find(Dir::Receive, wire));
                if let Some(id) = id {
                    let peer = self.entries.get(&id).map(|e| e.peer.clone());
                    self.fail(id, format!("cancelled by {}", peer.unwrap_or_default()));
                }
            }
            Xfer::Copy { id: copy, of, peer } => self.copy(copy, of, peer, now),
            Xfer::Error { code, text, .. } => {
                // An error about our offer carries our id; one about an
                // incoming transfer the server's. Ours first: an error
                // answering an Offer can only be about ours.
                let id = self
                    .find(Dir::Send, wire)
                    .or_else(|| self.find(Dir::Receive, wire));
                let Some(id) = id else { return };
                let why = format!("{}: {text}", code.as_str());
                match (code, self.entries.get(&id).map(|e| &e.state)) {
                    // The other side's connection was lost mid-transfer:
                    // wait for it (the sender offers again).
                    (XferError::PeerGone, Some(State::Sending { .. } | State::Receiving(_))) => {
                        self.pause(id, Some(now + RESUME_RETRY), why)
                    }
                    // Our offer again, and the receiver is not back yet.
                    (XferError::NoSuchUser, Some(State::OfferedOut { resume: true, .. })) => {
                        if let Some(e) = self.entries.get_mut(&id) {
                            let old = std::mem::replace(&mut e.state, State::Hashing);
                            e.state = match old {
                                State::OfferedOut { file, .. } => State::SendPaused {
                                    file,
                                    retry_at: Some(now + RESUME_RETRY),
                                },
                                other => other,
                            };
                        }
                    }
                    _ => self.fail(id, why),
                }
            }
        }
    }

    fn chunk(&mut self, id: u64, offset: u64, data: Bytes, now: Instant) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let State::Receiving(Recv { file, rx, hash, .. }) = &mut e.state else {
            return;
        };
        // A chunk: our Accept arrived.
        e.resend = None;
        let mut failed = None;
        for b in rx.on_chunk(offset, data) {
            if let Err(err) = file.write_all(&b) {
                failed = Some(write_error(&err));
                break;
            }
            hash.update(&b);
        }
        if let Some((code, why)) = failed {
            self.out.push(msg(Xfer::Error {
                id: e.wire,
                code,
                text: why.clone(),
            }));
            return self.fail(id, why);
        }
        // Ack every chunk: a sender limited by a small window (or a small
        // congestion window after a loss) would otherwise wait for its
        // retransmission timer to learn that its last chunks arrived.
        // (Cheap: a 32 KiB chunk over TCP, ~1.4 kB over UDP, each a few
        // dozen bytes of ack.)
        let (offset, sack) = rx.ack();
        self.out.push(msg(Xfer::Ack {
            id: e.wire,
            offset,
            sack,
        }));
        if rx.complete() {
            self.finish_receive(id, now);
        }
    }

    /// Every byte is here: check the SHA-256, give the file its name, say
    /// Done (or why not).
    fn finish_receive(&mut self, id: u64, now: Instant) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let State::Receiving(Recv {
            file, tmp, hash, ..
        }) = &mut e.state
        else {
            return;
        };
        let got: [u8; SHA256_LEN] = std::mem::take(hash).finalize().into();
        let (wire, tmp) = (e.wire, tmp.clone());
        if got != e.sha {
            let why = format!(
                "checksum mismatch: received SHA-256 {}, offered {}",
                hex(&got),
                hex(&e.sha)
            );
            self.out.push(msg(Xfer::Error {
                id: wire,
                code: XferError::ChecksumMismatch,
                text: why.clone(),
            }));
            return self.fail(id, why);
        }
        let placed = file
            .flush()
            .and_then(|()| save::place(&tmp, &self.download_dir, &save::safe_name(&e.name)));
        match placed {
            Ok(path) => {
                self.out.push(msg(Xfer::Done { id: wire }));
                if self.finished.len() >= FINISHED_KEPT {
                    self.finished.pop_front();
                }
                self.finished.push_back(wire);
                if let Some(e) = self.entries.remove(&id) {
                    let mut progress = self.progress(id, &e, now);
                    progress.bytes = e.size;
                    self.events.push(XferEvent::Done {
                        progress,
                        sha256: hex(&e.sha),
                        saved: Some(path),
                    });
                }
            }
            Err(err) => {
                let (code, why) = write_error(&err);
                self.out.push(msg(Xfer::Error {
                    id: wire,
                    code,
                    text: why.clone(),
                }));
                self.fail(id, why);
            }
        }
    }

    /// Chunks the windows allow now, at most [`PUMP_BUDGET`]. True when
    /// the budget ran out (call again soon).
    pub fn pump(&mut self, now: Instant) -> bool {
        let mut budget = PUMP_BUDGET;
        let mut failed = Vec::new();
        for (id, e) in self.entries.iter_mut() {
            let State::Sending { file, tx } = &mut e.state else {
                continue;
            };
            while budget > 0 {
                let Some(c) = tx.poll(now) else { break };
                budget -= 1;
                let mut buf = vec![0u8; c.len as usize];
                if let Err(err) = file.read_exact_at(&mut buf, c.offset) {
                    failed.push((*id, e.wire, format!("cannot read {}: {err}", e.name)));
                    break;
                }
                self.out.push(msg(Xfer::Chunk {
                    id: e.wire,
                    offset: c.offset,
                    data: Bytes::from(buf),
                }));
            }
        }
        for (id, wire, why) in failed {
            self.out.push(msg(Xfer::Error {
                id: wire,
                code: XferError::Io,
                text: why.clone(),
            }));
            self.fail(id, why);
        }
        budget == 0
    }

    /// When a retransmission may be due.
    pub fn deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| match &e.state {
                State::Sending { tx, .. } => tx.deadline(),
                _ => None,
            })
            .min()
    }

    /// On the driver's tick: a progress event a second per moving
    /// transfer; paused senders offer again when due; a pause too long
    /// fails.
    pub fn tick(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.paused
                    .is_some_and(|(at, _)| now.duration_since(at) >= RESUME_WAIT)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.fail(
                id,
                format!(
                    "not resumed within {} s: the other side did not come back",
                    RESUME_WAIT.as_secs()
                ),
            );
        }
        let retry: Vec<u64> = self
            .entries
            .iter()
            .filter(
                |(_, e)| matches!(e.state, State::SendPaused { retry_at: Some(t), .. } if t <= now),
            )
            .map(|(id, _)| *id)
            .collect();
        for id in retry {
            self.offer_again(id);
        }
        for e in self.entries.values_mut() {
            let Some(r) = e.resend.as_mut() else { continue };
            // Only while still unanswered in the state that said it (a
            // pause, for one, ends the repeats).
            let waiting = matches!(
                (&e.state, &r.msg),
                (State::OfferedOut { .. }, Xfer::Offer { .. })
                    | (State::Receiving(_), Xfer::Accept { .. })
                    | (State::Sending { .. }, Xfer::Chunk { .. })
            );
            if !waiting {
                e.resend = None;
            } else if r.at <= now {
                self.out.push(msg(r.msg.clone()));
                r.every = (r.every * 2).min(RESEND_MAX);
                r.at = now + r.every;
            }
        }
        let due: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                matches!(e.state, State::Sending { .. } | State::Receiving { .. })
                    && now.duration_since(e.last_report) >= PROGRESS_EVERY
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(e) = self.entries.get(&id) {
                let p = self.progress(id, e, now);
                self.events.push(XferEvent::Progress(p));
            }
            if let Some(e) = self.entries.get_mut(&id) {
                e.last_report = now;
            }
        }
    }

    /// Our link refused to send a message of transfer `wire` (too much
    /// waits): the transfer cannot go on.
    pub fn refused(&mut self, wire: u64, why: &str) {
        let id = self
            .find(Dir::Send, wire)
            .or_else(|| self.find(Dir::Receive, wire));
        if let Some(id) = id {
            self.out.push(msg(Xfer::Cancel { id: wire }));
            self.fail(id, format!("not sent: {why}"));
        }
    }

    /// The session is gone: the server forgot every transfer. Moving ones
    /// pause (they resume on the next session); an offer to us ends (the
    /// sender offers again); our offers are made again on the next
    /// session.
    pub fn session_lost(&mut self) {
        let ids: Vec<u64> = self.entries.keys().copied().collect();
        for id in ids {
            match self.entries.get_mut(&id).map(|e| &mut e.state) {
                Some(State::OfferedIn) => self.fail(id, "connection to the server lost"),
                // Its copies are transfers of their own.
                Some(State::RoomOffered { .. }) => {
                    self.entries.remove(&id);
                }
                Some(State::Sending { .. } | State::Receiving(_)) => {
                    self.pause(id, None, "connection to the server lost".into())
                }
                // Wait for our next session, not for a retry time.
                Some(State::SendPaused { retry_at, .. }) => *retry_at = None,
                _ => {}
            }
        }
    }

    /// A new session: offer again everything of ours the server forgot.
    pub fn resume(&mut self) {
        let ids: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.state, State::OfferedOut { .. } | State::SendPaused { .. }))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.offer_again(id);
        }
    }

    /// No session will come again: every transfer ends.
    pub fn give_up(&mut self, why: &str) {
        let ids: Vec<u64> = self.entries.keys().copied().collect();
        for id in ids {
            self.fail(id, why);
        }
    }

    /// Pause a moving transfer (keeping the file, and on the receiving side
    /// the partial file and hash); `retry_at`: when a sender offers again
    /// without waiting for a session of its own.
    fn pause(&mut self, id: u64, retry_at: Option<Instant>, why: String) {
        let now = Instant::now();
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut e.state, State::Hashing);
        let bytes;
        e.state = match old {
            State::Sending { file, tx } => {
                bytes = tx.acked();
                State::SendPaused { file, retry_at }
            }
            State::Receiving(r) => {
                bytes = r.rx.offset();
                State::RecvPaused(r)
            }
            other => {
                e.state = other;
                return;
            }
        };
        e.paused = Some((now, bytes));
        self.events.push(XferEvent::Paused {
            id,
            dir: e.dir,
            peer: e.peer.clone(),
            name: e.name.clone(),
            bytes,
            why: format!("{why}; waiting up to {} s to resume", RESUME_WAIT.as_secs()),
        });
    }

    /// Offer one of our files again (a new wire id: the server forgot the
    /// old one, or gave it to the failed offer), marked as a resume when it
    /// was paused.
    fn offer_again(&mut self, id: u64) {
        let wire = self.next_id;
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut e.state, State::Hashing);
        let file = match old {
            State::OfferedOut { file, .. } | State::SendPaused { file, .. } => file,
            other => {
                e.state = other;
                return;
            }
        };
        self.next_id += 1;
        e.wire = wire;
        e.state = State::OfferedOut {
            file,
            resume: e.paused.is_some(),
        };
        let offer = Xfer::Offer {
            id: wire,
            peer: e.peer.clone(),
            name: e.name.clone(),
            size: e.size,
            sha256: e.sha,
        };
        e.resend = Some(Resend::new(offer.clone(), Instant::now()));
        self.out.push(msg(offer));
    }

    /// The server made a copy of our room offer `of` for member `peer`:
    /// a transfer of its own (wire id `copy`), reading the same file.
    fn copy(&mut self, copy: u64, of: u64, peer: String, now: Instant) {
        let Some(room) = self.find(Dir::Send, of) else {
            return;
        };
        let Some(e) = self.entries.get_mut(&room) else {
            return;
        };
        let old = std::mem::replace(&mut e.state, State::Hashing);
        let file = match old {
            State::OfferedOut { file, .. } | State::RoomOffered { file } => file,
            other => {
                e.state = other;
                return;
            }
        };
        let cloned = file.try_clone();
        e.state = State::RoomOffered { file };
        let (name, size, sha) = (e.name.clone(), e.size, e.sha);
        let file = match cloned {
            Ok(f) => f,
            Err(err) => {
                let why = format!("cannot open {name} again: {err}");
                self.out.push(msg(Xfer::Error {
                    id: copy,
                    code: XferError::Io,
                    text: why.clone(),
                }));
                return self.local_error(&why);
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(
            id,
            Entry {
                wire: copy,
                dir: Dir::Send,
                peer: peer.clone(),
                name: name.clone(),
                size,
                sha,
                started: None,
                last_report: now,
                paused: None,
                state: State::OfferedOut {
                    file,
                    resume: false,
                },
                resend: None,
                lossy: true,
            },
        );
        self.events.push(XferEvent::OfferSent {
            id,
            to: peer,
            name,
            size,
            sha256: hex(&sha),
        });
    }

    /// An offer of what a paused receive of ours is (same name, size and
    /// SHA-256): accept it at once from the offset we have. True if so.
    fn resume_receive(
        &mut self,
        wire: u64,
        peer: &str,
        name: &str,
        size: u64,
        sha: &[u8; SHA256_LEN],
    ) -> bool {
        let found = self
            .entries
            .iter()
            .filter(|(_, e)| {
                matches!(e.state, State::RecvPaused(_))
                    && e.name == name
                    && e.size == size
                    && e.sha == *sha
            })
            // The same sender first (it may come back under another nick).
            .min_by_key(|(_, e)| !same_nick(&e.peer, peer))
            .map(|(id, _)| *id);
        let Some(id) = found else {
            return false;
        };
        let Some(e) = self.entries.get_mut(&id) else {
            return false;
        };
        let old = std::mem::replace(&mut e.state, State::Hashing);
        let State::RecvPaused(r) = old else {
            e.state = old;
            return false;
        };
        let offset = r.rx.offset();
        e.state = State::Receiving(r);
        e.wire = wire;
        e.paused = None;
        e.peer = peer.to_string();
        let accept = Xfer::Accept {
            id: wire,
            offset,
            window: 0,
            max_chunk: 0,
            lossless: false,
        };
        e.resend = Some(Resend::new(accept.clone(), Instant::now()));
        self.out.push(msg(accept));
        self.events.push(XferEvent::Resumed {
            id,
            dir: Dir::Receive,
            peer: e.peer.clone(),
            name: e.name.clone(),
            offset,
        });
        if offset >= size {
            self.finish_receive(id, Instant::now());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_rate_and_eta() {
        let p = Progress {
            id: 1,
            dir: Dir::Send,
            peer: "b".into(),
            name: "f".into(),
            size: 1000,
            bytes: 250,
            elapsed: Duration::from_secs(1),
            transport: Transport::Tcp,
            sender: None,
            receiver: None,
        };
        assert_eq!(p.rate(), 250.0);
        assert_eq!(p.eta(), Some(Duration::from_secs(3)));
    }
}
