//! The bounded per-member outbound queue and the writer that drains it.
//!
//! Producers (any task fanning out a room message) `push` a shared `Bytes`
//! handle and never wait: a full queue is reported to the caller, which
//! applies the slow-consumer policy. The writer is woken only when the queue
//! goes from empty to non-empty, takes *everything* queued in one lock, and
//! writes it with vectored writes (one `writev` per wake-up in the common
//! case).
//!
//! Fast path ([`Outbox::push_or_write`]): when nothing is queued and the
//! writer holds nothing unwritten, the producer writes the chunk to the
//! socket itself (non-blocking), under the outbox lock. That keeps the byte
//! order (nobody can queue or write this member's bytes meanwhile) and saves
//! the writer task's wake-up, which at low per-member rates (many small
//! rooms) cost more CPU than the write. Whatever the socket does not take
//! at once is queued and the writer takes over, as before.
//!
//! An idle outbox owns no heap memory (an empty `VecDeque` does not allocate).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, Bytes};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Result of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The queue holds `outbox_frames` items: the member is a slow consumer.
    Full,
    /// The connection is closing; the item was discarded.
    Closed,
}

#[derive(Debug, Default)]
struct State {
    q: VecDeque<Bytes>,
    /// The writer stops once the queue is empty.
    closed: bool,
    /// Ordinary pushes are refused (the member was cut off as a slow
    /// consumer); only the final notice may still be queued.
    refuse: bool,
    /// The writer holds chunks it took but has not fully written: a
    /// producer must not write past them (see [`Outbox::push_or_write`]).
    busy: bool,
    /// A hard error from a producer's direct write, kept for the writer so
    /// the connection ends with that errno (the kernel reports some errors,
    /// e.g. ECONNRESET, only once; the next write would say EPIPE).
    error: Option<std::io::Error>,
}

/// A bounded queue of encoded chunks for one member.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
    cap: usize,
    /// Chunks dropped by the `drop` slow-consumer policy.
    dropped: AtomicU64,
}

impl Outbox {
    pub fn new(cap: usize) -> Self {
        Self {
            state: Mutex::default(),
            notify: Notify::new(),
            cap,
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a chunk unless the queue is full or closed. Never blocks.
    pub fn push(&self, b: Bytes) -> Push {
        let mut s = self.lock();
        if s.closed || s.refuse {
            return Push::Closed;
        }
        if s.q.len() >= self.cap {
            return Push::Full;
        }
        let was_empty = s.q.is_empty();
        s.q.push_back(b);
        drop(s);
        if was_empty {
            // Only the empty -> non-empty edge wakes the writer: it drains
            // everything when it runs.
            self.notify.notify_one();
        }
        Push::Queued
    }

    /// Like [`Outbox::push`], but when nothing is queued and the writer is
    /// idle, first try to hand the chunk to the socket with `write` (a
    /// non-blocking write returning the bytes taken). The lock is held
    /// during the write, so per-member order and the one-writer-at-a-time
    /// invariant hold. A partial write queues the rest; `WouldBlock` queues
    /// the whole chunk; another error is kept for the writer (which stops
    /// with it) and the chunk is queued. In every fallback the writer is
    /// woken, exactly as by `push`.
    pub fn push_or_write(
        &self,
        b: Bytes,
        write: impl FnOnce(&[u8]) -> std::io::Result<usize>,
    ) -> Push {
        let mut s = self.lock();
        if s.closed || s.refuse {
            return Push::Closed;
        }
        if s.q.len() >= self.cap {
            return Push::Full;
        }
        let was_empty = s.q.is_empty();
        let rest = if was_empty && !s.busy && s.error.is_none() && !b.is_empty() {
            match write(&b) {
                Ok(n) if n >= b.len() => return Push::Queued,
                Ok(n) => b.slice(n..),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => b,
                Err(e) => {
                    s.error = Some(e);
                    b
                }
            }
        } else {
            b
        };
        s.q.push_back(rest);
        drop(s);
        if was_empty {
            self.notify.notify_one();
        }
        Push::Queued
    }

    /// Queue a chunk even past the cap (the final notice before a close).
    pub fn push_force(&self, b: Bytes) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        let was_empty = s.q.is_empty();
        s.q.push_back(b);
        drop(s);
        if was_empty {
            self.notify.notify_one();
        }
    }

    /// Slow consumer: drop what is queued (whole chunks, so the stream stays
    /// well-formed) and refuse further pushes, but keep the writer going so
    /// a final notice can still reach a peer that is merely slow.
    pub fn cut_off(&self) {
        let mut s = self.lock();
        s.q = VecDeque::new();
        s.refuse = true;
    }

    /// No more pushes; the writer finishes what is queued and stops.
    pub fn close(&self) {
        self.lock().closed = true;
        self.notify.notify_one();
    }

    /// Close and throw away what is queued (the socket is dead or stuck).
    pub fn abort(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.q = VecDeque::new();
        drop(s);
        self.notify.notify_one();
    }

    /// Items waiting to be written.
    pub fn depth(&self) -> usize {
        self.lock().q.len()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn count_drop(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Wait until something is queued (or the outbox is closed), then move
    /// everything queued into `into`. Returns true when the outbox is
    /// closed: after writing `into` the writer should stop. For writers
    /// other than [`run_writer`] (UDP sessions). Cancel-safe: nothing is
    /// taken before the wait ends.
    pub async fn next_batch(&self, into: &mut VecDeque<Bytes>) -> bool {
        loop {
            let closed = self.take_all(into);
            if closed || !into.is_empty() {
                return closed;
            }
            self.notify.notified().await;
        }
    }

    /// Move everything queued into `into` (swapping buffers, O(1) under the
    /// lock). Returns true when the outbox is closed.
    pub(crate) fn take_all(&self, into: &mut VecDeque<Bytes>) -> bool {
        let mut s = self.lock();
        if into.is_empty() {
            // Swap buffers: while the member is busy the two deques trade
            // places and no allocation happens per wake-up.
            std::mem::swap(&mut s.q, into);
        } else {
            into.extend(s.q.drain(..));
        }
        if s.q.capacity() > 64 {
            s.q = VecDeque::new();
        }
        // Taking nothing (the writer's previous batch is fully written)
        // makes the member idle again: producers may write directly.
        s.busy = !into.is_empty();
        s.closed
    }

    /// The error a producer's direct write hit, if any (taken once).
    fn take_error(&self) -> Option<std::io::Error> {
        self.lock().error.take()
    }

    /// Free the queue's buffer if it is empty (the writer is about to park:
    /// an idle member holds no queue memory).
    fn release_if_empty(&self) {
        let mut s = self.lock();
        if s.q.is_empty() && s.q.capacity() > 0 {
            s.q = VecDeque::new();
        }
    }
}

/// Why the writer stopped.
#[derive(Debug)]
pub enum WriterEnd {
    /// The outbox was closed and everything queued was written.
    Flushed,
    /// A write failed (EPIPE, ECONNRESET, ...).
    Failed(std::io::Error),
}

/// Most iovecs per `writev` (IOV_MAX is 1024 on Linux).
const MAX_IOV: usize = 256;

/// The writer task body: drain the outbox into the socket until it is
/// closed and empty, or a write fails.
pub async fn run_writer(stream: &TcpStream, outbox: &Outbox) -> WriterEnd {
    let mut batch: VecDeque<Bytes> = VecDeque::new();
    let mut rounds: u32 = 0;
    loop {
        let closed = outbox.take_all(&mut batch);
        if let Some(e) = outbox.take_error() {
            return WriterEnd::Failed(e);
        }
        if batch.is_empty() {
            if closed {
                return WriterEnd::Flushed;
            }
            // Parking: free the batch buffer (idle connections own no
            // queue memory; a busy writer rarely parks).
            batch = VecDeque::new();
            outbox.release_if_empty();
            outbox.notify.notified().await;
            continue;
        }
        while !batch.is_empty() {
            if let Err(e) = write_some(stream, &mut batch).await {
                return WriterEnd::Failed(e);
            }
        }
        // Writing without ever parking (producers keep the queue full) would
        // bypass tokio's cooperative budget: give other tasks a turn.
        rounds += 1;
        if rounds.is_multiple_of(16) {
            tokio::task::yield_now().await;
        }
    }
}

/// One vectored write of (the front of) `batch`; consumes what was written.
async fn write_some(stream: &TcpStream, batch: &mut VecDeque<Bytes>) -> std::io::Result<()> {
    loop {
        match try_writev(stream, batch) {
            Ok(n) => {
                consume(batch, n);
                return Ok(());
            }
            // Only the writer waits for write readiness on this socket, so
            // the small poll_fn future is enough.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::future::poll_fn(|cx| stream.poll_write_ready(cx)).await?
            }
            Err(e) => return Err(e),
        }
    }
}

/// The synchronous part (kept out of the async fn so the iovec array lives
/// on the stack, not in every writer task's future).
fn try_writev(stream: &TcpStream, batch: &VecDeque<Bytes>) -> std::io::Result<usize> {
    let mut iov: [IoSlice<'_>; MAX_IOV] = [IoSlice::new(&[]); MAX_IOV];
    let mut k = 0;
    for b in batch.iter().take(MAX_IOV) {
        iov[k] = IoSlice::new(b);
        k += 1;
    }
    match stream.try_write_vectored(&iov[..k])? {
        0 => Err(std::io::ErrorKind::WriteZero.into()),
        n => Ok(n),
    }
}

/// Drop `n` written bytes from the front of the batch.
fn consume(batch: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = batch.front_mut() else {
            break;
        };
        if front.len() <= n {
            n -= front.len();
            batch.pop_front();
        } else {
            front.advance(n);
            n = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_closable() {
        let o = Outbox::new(2);
        assert_eq!(o.push(Bytes::from_static(b"a")), Push::Queued);
        assert_eq!(o.push(Bytes::from_static(b"b")), Push::Queued);
        assert_eq!(o.push(Bytes::from_static(b"c")), Push::Full);
        o.push_force(Bytes::from_static(b"bye"));
        assert_eq!(o.depth(), 3);
        o.close();
        assert_eq!(o.push(Bytes::from_static(b"d")), Push::Closed);
        let mut v = VecDeque::new();
        assert!(o.take_all(&mut v));
        assert_eq!(v.len(), 3);
    }

    /// The direct-write fast path: used only when nothing is queued and the
    /// writer holds nothing; a partial write queues the rest, WouldBlock the
    /// whole chunk, a hard error is kept for the writer.
    #[test]
    fn push_or_write_keeps_order_and_errors() {
        let o = Outbox::new(4);
        let mut written = Vec::new();
        let full = |buf: &[u8], out: &mut Vec<u8>| {
            out.extend_from_slice(buf);
            Ok(buf.len())
        };
        assert_eq!(
            o.push_or_write(Bytes::from_static(b"ab"), |b| full(b, &mut written)),
            Push::Queued
        );
        assert_eq!(written, b"ab");
        assert_eq!(o.depth(), 0);

        // Partial write: the rest is queued, and later chunks queue behind
        // it without touching the socket.
        assert_eq!(
            o.push_or_write(Bytes::from_static(b"cdef"), |b| {
                written.extend_from_slice(&b[..1]);
                Ok(1)
            }),
            Push::Queued
        );
        let mut called = false;
        o.push_or_write(Bytes::from_static(b"gh"), |_| {
            called = true;
            Ok(0)
        });
        assert!(!called, "wrote past queued bytes");
        let mut v = VecDeque::new();
        assert!(!o.take_all(&mut v));
        assert_eq!(v, [Bytes::from_static(b"def"), Bytes::from_static(b"gh")]);

        // The writer holds a batch (busy): producers must queue.
        o.push_or_write(Bytes::from_static(b"ij"), |_| {
            called = true;
            Ok(2)
        });
        assert!(!called, "wrote while the writer holds unwritten bytes");
        v.clear();
        o.take_all(&mut v);
        assert_eq!(v, [Bytes::from_static(b"ij")]);
        v.clear();
        o.take_all(&mut v); // nothing left: idle again
        assert!(v.is_empty());

        o.push_or_write(Bytes::from_static(b"kl"), |_| {
            Err(std::io::ErrorKind::WouldBlock.into())
        });
        assert_eq!(o.depth(), 1);
        o.take_all(&mut v);
        v.clear();
        o.take_all(&mut v);

        o.push_or_write(Bytes::from_static(b"mn"), |_| {
            Err(std::io::Error::from_raw_os_error(libc::ECONNRESET))
        });
        assert_eq!(o.depth(), 1);
        let e = o.take_error().map(|e| e.raw_os_error());
        assert_eq!(e, Some(Some(libc::ECONNRESET)));

        o.close();
        assert_eq!(
            o.push_or_write(Bytes::from_static(b"op"), |_| Ok(2)),
            Push::Closed
        );
    }
}
