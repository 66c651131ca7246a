//! The client's file transfers, for the one session driver (TCP or UDP):
//! `/send` hashes the file (SHA-256, on a blocking thread) and offers it;
//! an offer received waits for `/accept` (nothing is written before) or
//! `/decline`; chunks go out as `shared::rudp`'s sender allows (the
//! server's window; over UDP also its congestion window and
//! retransmissions) and come back in order through its receiver into a
//! temporary file that gets its final, safe name (`save.rs`) only when the
//! SHA-256 matches. Progress is reported once a second and at the end.
//!
//! The driver calls in with what happened and the time; what to send and
//! what to report accumulate here and the driver drains them
//! ([`Transfers::drain`]). No socket is touched here.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use sockchat_shared::ClientMsg;
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

enum State {
    /// Ours: the file is being hashed.
    Hashing,
    /// Ours: offered, waiting for the answer.
    OfferedOut {
        file: File,
    },
    /// Theirs: waiting for our user.
    OfferedIn,
    Sending {
        file: File,
        tx: rudp::Sender,
    },
    Receiving {
        file: File,
        tmp: PathBuf,
        rx: rudp::Receiver,
        hash: Sha256,
    },
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
    state: State,
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
    hashed_tx: mpsc::UnboundedSender<Hashed>,
    hashed_rx: mpsc::UnboundedReceiver<Hashed>,
    out: Vec<ClientMsg>,
    events: Vec<XferEvent>,
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
    pub fn new(download_dir: PathBuf, transport: Transport, own_max_chunk: u64) -> Self {
        let (hashed_tx, hashed_rx) = mpsc::unbounded_channel();
        Transfers {
            entries: BTreeMap::new(),
            next_id: 1,
            download_dir,
            transport,
            own_max_chunk: own_max_chunk.max(1),
            hashed_tx,
            hashed_rx,
            out: Vec::new(),
            events: Vec::new(),
        }
    }

    /// A transfer of ours is under way (hashing, offered, moving): a
    /// /quit waits for it. An offer we have not answered does not count.
    pub fn busy(&self) -> bool {
        self.entries
            .values()
            .any(|e| !matches!(e.state, State::OfferedIn))
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
            if let State::Receiving { tmp, .. } = &e.state {
                let _ = std::fs::remove_file(tmp);
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
            State::Receiving { rx, .. } => (rx.offset(), None, Some(rx.stats())),
            _ => (0, None, None),
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
                        state: State::Hashing,
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
                e.state = State::Receiving {
                    file,
                    tmp,
                    rx: rudp::Receiver::new(e.size, 0, MAX_HELD),
                    hash: Sha256::new(),
                };
                e.started = Some(Instant::now());
                self.out.push(msg(Xfer::Accept {
                    id: e.wire,
                    offset: 0,
                    window: 0,
                    max_chunk: 0,
                    lossless: false,
                }));
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
                e.state = State::OfferedOut { file };
                self.out.push(msg(Xfer::Offer {
                    id,
                    peer: e.peer.clone(),
                    name: e.name.clone(),
                    size,
                    sha256: sha,
                }));
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
                        state: State::OfferedIn,
                    },
                );
                self.events.push(XferEvent::Offered {
                    id,
                    from: peer,
                    name,
                    size,
                    sha256: hex(&sha256),
                });
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
                let State::OfferedOut { file } = old else {
                    e.state = old;
                    return;
                };
                let chunk = u64::from(max_chunk).min(own).max(1);
                e.state = State::Sending {
                    file,
                    tx: rudp::Sender::new(e.size, offset, chunk, u64::from(window), lossless),
                };
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
                        ..
                    }) = self.entries.get_mut(&id)
                {
                    tx.on_ack(offset, &sack, now);
                }
            }
            Xfer::Chunk { offset, data, .. } => {
                if let Some(id) = self.find(Dir::Receive, wire) {
                    self.chunk(id, offset, data, now);
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
            Xfer::Error { code, text, .. } => {
                // An error about our offer carries our id; one about an
                // incoming transfer the server's. Ours first: an error
                // answering an Offer can only be about ours.
                let id = self
                    .find(Dir::Send, wire)
                    .or_else(|| self.find(Dir::Receive, wire));
                if let Some(id) = id {
                    self.fail(id, format!("{}: {text}", code.as_str()));
                }
            }
        }
    }

    fn chunk(&mut self, id: u64, offset: u64, data: Bytes, now: Instant) {
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let State::Receiving { file, rx, hash, .. } = &mut e.state else {
            return;
        };
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
        let State::Receiving {
            file, tmp, hash, ..
        } = &mut e.state
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
    /// transfer.
    pub fn tick(&mut self, now: Instant) {
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

    /// The session is gone: the server forgot every transfer.
    pub fn session_lost(&mut self) {
        let ids: Vec<u64> = self.entries.keys().copied().collect();
        for id in ids {
            self.fail(id, "connection to the server lost");
        }
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
