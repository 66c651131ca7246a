//! The bounded per-member outbound queue and the writer that drains it.
//!
//! Producers (any task fanning out a room message) `push` a shared `Bytes`
//! handle and never wait: a full queue is reported to the caller, which
//! applies the slow-consumer policy. The writer is woken only when the queue
//! goes from empty to non-empty, takes *everything* queued in one lock, and
//! writes it with vectored writes (one `writev` per wake-up in the common
//! case).
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
        s.closed
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
}
