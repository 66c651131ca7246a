//! The bounded per-member outbound queue, and who writes it to the socket.
//!
//! Producers (any code fanning out a room message) push a shared `Bytes`
//! handle and never wait: a full queue is reported to the caller, which
//! applies the slow-consumer policy. Exactly one party owns a member's
//! socket for writing at any time ([`Owner`]), which keeps per-member order:
//!
//! - **Producer** ("write before sleep", as Redis does once per event-loop
//!   turn): inside a [`crate::owed`] scope (a reader handling one read), the
//!   first push to an idle member makes the scope owe it a flush; later
//!   pushes — from this scope or from any other task meanwhile — only queue.
//!   When the scope ends, [`Outbox::flush`] swaps out everything queued and
//!   writes it with as few non-blocking vectored sends as it takes. So a member
//!   gets one syscall per turn however many messages it was owed, nobody's
//!   task is woken per delivery, and no socket is written under a room lock.
//! - **Writer**: what the socket did not take (`EAGAIN`, a partial write),
//!   every push made outside a scope, and the members of a turn that owes
//!   too many to write itself ([`Outbox::hand_off`]) go to the writer task,
//!   woken only on the idle -> owned edge; it drains the queue with vectored
//!   writes, waiting for write readiness, and parks when it is empty.
//!
//! **Two lanes.** File-transfer chunks go to a lower-priority lane
//! ([`Lane::Bulk`]): every take (a flush, the writer's turn, a UDP
//! writer's batch) moves all queued chat first, then at most
//! [`BULK_TAKE`] bytes of chunks, so a chat line to a member receiving a
//! file waits behind at most that much of it, not behind the transfer's
//! whole window. Each lane keeps its own order; both count against the
//! one bound.
//!
//! A producer's hard write error is kept for the writer, so the connection
//! ends with that errno (the kernel reports some errors, e.g. ECONNRESET,
//! only once). An idle outbox owns no heap memory (an empty `VecDeque` does
//! not allocate).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;

use bytes::{Buf, Bytes};
use futures_util::task::AtomicWaker;
use tokio::net::TcpStream;

use crate::spare;

/// Result of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// Queued, and the caller now owes this member a [`Outbox::flush`]
    /// (it was idle): see [`Outbox::push_owed`].
    Owed,
    /// The queue holds `outbox_frames` items: the member is a slow consumer.
    Full,
    /// The connection is closing; the item was discarded.
    Closed,
}

/// Which queue of a member's outbox an item goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Everything but file chunks: written first.
    Chat,
    /// File-transfer chunks: written when no chat is waiting, at most
    /// [`BULK_TAKE`] bytes per take.
    Bulk,
}

/// Most bytes of bulk items one take moves (at least one item): what a chat
/// line queued just after a take may have to wait behind. Two TCP chunks,
/// or ~45 chunk datagrams (one `sendmmsg` batch).
pub const BULK_TAKE: usize = 64 * 1024;

/// Who may write this member's socket now (one at a time: per-member order).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// Nothing queued, nobody writing.
    #[default]
    Idle,
    /// A producer's scope owes (or is doing) the flush; others only queue.
    Producer,
    /// The writer task drains the queue.
    Writer,
}

#[derive(Debug, Default)]
struct State {
    q: VecDeque<Bytes>,
    /// The bulk lane (file chunks), taken only behind `q`.
    bulk: VecDeque<Bytes>,
    owner: Owner,
    /// The writer stops once the queue is empty.
    closed: bool,
    /// Ordinary pushes are refused (the member was cut off as a slow
    /// consumer); only the final notice may still be queued.
    refuse: bool,
    /// A hard error from a producer's write, kept for the writer.
    error: Option<std::io::Error>,
}

/// The writer's wake-up: one waiter (the member's writer task) and one
/// stored permit, as `tokio::sync::Notify::notify_one` gives — but waiting
/// is a future of one reference instead of `Notified`'s 64 bytes, carried
/// by every idle connection's writer task (with it the task's cell is 384
/// bytes, without it 256: issue 10's 2.5 KiB per idle connection).
#[derive(Debug, Default)]
struct Wake {
    permit: AtomicBool,
    waker: AtomicWaker,
}

impl Wake {
    /// Leave the permit and wake the waiter, if one is parked.
    fn notify(&self) {
        self.permit.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Until the permit is there; takes it. (Registering before the second
    /// look is what makes a `notify` between the two looks wake us.)
    fn wait(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            if self.permit.swap(false, Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.permit.swap(false, Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// A bounded queue of encoded chunks for one member.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer task (the only one that waits).
    wake: Wake,
    cap: usize,
    /// Chunks dropped by the `drop` slow-consumer policy.
    dropped: AtomicU64,
}

/// Most iovecs per vectored send (IOV_MAX is 1024 on Linux).
const MAX_IOV: usize = 256;
/// A producer's flush makes at most this many vectored sends (taking what was
/// queued meanwhile again) before it leaves the rest to the writer task: a
/// member that keeps receiving must not hold the flushing reader forever.
const FLUSH_WRITES: usize = 4;

/// What the writer task should do next.
enum Next {
    Write,
    Wait,
    Done,
    Failed(std::io::Error),
}

impl Outbox {
    pub fn new(cap: usize) -> Self {
        Self {
            state: Mutex::default(),
            wake: Wake::default(),
            cap,
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a chunk unless the queue is full or closed; an idle member's
    /// writer task is woken (the only wake-up until it parks again). Never
    /// blocks.
    pub fn push(&self, b: Bytes, lane: Lane) -> Push {
        let mut s = self.lock();
        if s.closed || s.refuse {
            return Push::Closed;
        }
        if s.len() >= self.cap {
            return Push::Full;
        }
        s.queue(lane).push_back(b);
        if s.owner == Owner::Idle {
            s.owner = Owner::Writer;
            drop(s);
            self.wake.notify();
        }
        Push::Queued
    }

    /// Like [`Outbox::push`], but an idle member is not handed to its
    /// writer task: the caller gets [`Push::Owed`] and must call
    /// [`Outbox::flush`] soon (at the end of its turn, see `owed`).
    /// Pushes to a member already owed, or being written, only queue.
    pub fn push_owed(&self, b: Bytes, lane: Lane) -> Push {
        let mut s = self.lock();
        if s.closed || s.refuse {
            return Push::Closed;
        }
        if s.len() >= self.cap {
            return Push::Full;
        }
        s.queue(lane).push_back(b);
        if s.owner == Owner::Idle {
            s.owner = Owner::Producer;
            return Push::Owed;
        }
        Push::Queued
    }

    /// The owed flush: take what is queued (all chat, then at most
    /// [`BULK_TAKE`] of chunks) and write it with
    /// non-blocking vectored writes (`write` is one `send`/`sendmsg`, see [`try_send`]), at most
    /// [`FLUSH_WRITES`] of them. Whatever is left (`WouldBlock`, a partial
    /// write, more queued meanwhile than the writes allowed) goes back to
    /// the front of the queue for the writer task, which is woken; a hard
    /// error is kept for it. Does nothing unless a producer owns the member.
    pub fn flush(&self, mut write: impl FnMut(&[IoSlice<'_>]) -> std::io::Result<usize>) {
        let mut batch = {
            let mut s = self.lock();
            if s.owner != Owner::Producer {
                return;
            }
            let mut batch = std::mem::take(&mut s.q);
            take_bulk(&mut s, &mut batch);
            batch
        };
        let mut error = None;
        let mut writes = 0;
        loop {
            while !batch.is_empty() && writes < FLUSH_WRITES {
                writes += 1;
                match writev(&batch, &mut write) {
                    Ok(n) => consume(&mut batch, n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            let mut s = self.lock();
            if batch.is_empty() && error.is_none() {
                if s.is_empty() {
                    s.owner = Owner::Idle;
                    // An idle member holds no queue memory.
                    s.release();
                    let closed = s.closed;
                    drop(s);
                    spare::give(batch);
                    if closed {
                        // The writer may be waiting for us to finish.
                        self.wake.notify();
                    }
                    return;
                }
                if writes < FLUSH_WRITES {
                    // More was queued while we wrote: it is ours too (the
                    // emptied batch's buffer becomes the queue's).
                    std::mem::swap(&mut s.q, &mut batch);
                    take_bulk(&mut s, &mut batch);
                    continue;
                }
            }
            // Hand over: our unwritten bytes go before what was queued since
            // (chunks among them before the chunks still in the bulk lane).
            if !batch.is_empty() {
                batch.append(&mut s.q);
                s.q = batch;
            }
            if error.is_some() {
                s.error = error;
            }
            s.owner = Owner::Writer;
            drop(s);
            self.wake.notify();
            return;
        }
    }

    /// An owed member goes to its writer task instead (woken now).
    pub fn hand_off(&self) {
        let mut s = self.lock();
        if s.owner == Owner::Producer {
            s.owner = Owner::Writer;
            drop(s);
            self.wake.notify();
        }
    }

    /// Queue a chunk even past the cap (the final notice before a close).
    pub fn push_force(&self, b: Bytes) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        s.queue(Lane::Chat).push_back(b);
        if s.owner == Owner::Idle {
            s.owner = Owner::Writer;
            drop(s);
            self.wake.notify();
        }
    }

    /// Slow consumer: drop what is queued (whole chunks, so the stream stays
    /// well-formed) and refuse further pushes, but keep the writer going so
    /// a final notice can still reach a peer that is merely slow.
    pub fn cut_off(&self) {
        let mut s = self.lock();
        s.q = VecDeque::new();
        s.bulk = VecDeque::new();
        s.refuse = true;
    }

    /// No more pushes; the writer finishes what is queued and stops.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify();
    }

    /// Close and throw away what is queued (the socket is dead or stuck).
    pub fn abort(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.q = VecDeque::new();
        s.bulk = VecDeque::new();
        drop(s);
        self.wake.notify();
    }

    /// Items waiting to be written.
    pub fn depth(&self) -> usize {
        self.lock().len()
    }

    /// Items waiting in the bulk lane (file chunks).
    pub fn bulk_depth(&self) -> usize {
        self.lock().bulk.len()
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
    /// other than [`run_writer`] (UDP sessions, whose members are never
    /// owed). Cancel-safe: nothing is taken before the wait ends.
    pub async fn next_batch(&self, into: &mut VecDeque<Bytes>) -> bool {
        loop {
            let closed = self.take_all(into);
            if closed || !into.is_empty() {
                return closed;
            }
            self.wake.wait().await;
        }
    }

    /// Move what is queued into `into` (all chat, swapping buffers, O(1)
    /// under the lock; then at most [`BULK_TAKE`] of chunks) for the
    /// writer. Returns true when the outbox is closed.
    pub(crate) fn take_all(&self, into: &mut VecDeque<Bytes>) -> bool {
        let mut s = self.lock();
        take_into(&mut s, into);
        s.closed
    }

    /// The writer task's turn: fail with a producer's error, wait while a
    /// producer owns the member or nothing is queued, or take everything.
    fn writer_next(&self, into: &mut VecDeque<Bytes>) -> Next {
        let mut s = self.lock();
        if let Some(e) = s.error.take() {
            return Next::Failed(e);
        }
        if s.owner == Owner::Producer {
            return Next::Wait;
        }
        take_into(&mut s, into);
        if !into.is_empty() {
            Next::Write
        } else if s.closed {
            Next::Done
        } else {
            // Parking: an idle member holds no queue memory.
            s.release();
            Next::Wait
        }
    }
}

impl State {
    fn queue(&mut self, lane: Lane) -> &mut VecDeque<Bytes> {
        let q = match lane {
            Lane::Chat => &mut self.q,
            Lane::Bulk => &mut self.bulk,
        };
        if q.capacity() == 0 {
            // Idle until now: a buffer this thread kept (see `spare`).
            *q = spare::take();
        }
        q
    }

    fn len(&self) -> usize {
        self.q.len() + self.bulk.len()
    }

    fn is_empty(&self) -> bool {
        self.q.is_empty() && self.bulk.is_empty()
    }

    /// Give both lanes' (empty) buffers back to this thread's pool.
    fn release(&mut self) {
        spare::give(std::mem::take(&mut self.q));
        spare::give(std::mem::take(&mut self.bulk));
    }
}

/// Take what is queued — all chat, then at most [`BULK_TAKE`] bytes of
/// chunks (at least one) — after what `into` holds: the writer owns the
/// member while it holds something, and an empty take makes the member
/// idle again.
fn take_into(s: &mut State, into: &mut VecDeque<Bytes>) {
    if into.is_empty() {
        // Swap buffers: while the member is busy the two deques trade
        // places and no allocation happens per wake-up.
        std::mem::swap(&mut s.q, into);
    } else {
        into.append(&mut s.q);
    }
    if s.q.capacity() > spare::MAX_SLOTS {
        s.q = VecDeque::new();
    }
    take_bulk(s, into);
    if s.owner != Owner::Producer {
        s.owner = if into.is_empty() {
            Owner::Idle
        } else {
            Owner::Writer
        };
    }
}

/// After the chat: at most [`BULK_TAKE`] bytes of chunks (at least one).
fn take_bulk(s: &mut State, into: &mut VecDeque<Bytes>) {
    if s.bulk.is_empty() {
        return;
    }
    let mut taken = 0;
    while taken < BULK_TAKE {
        let Some(b) = s.bulk.pop_front() else { break };
        taken += b.len();
        into.push_back(b);
    }
    if s.bulk.is_empty() {
        spare::give(std::mem::take(&mut s.bulk));
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

/// The writer task body: drain the outbox into the socket until it is
/// closed and empty, or a write fails. (An async block, not an async fn:
/// that would keep its arguments twice in the future every idle writer
/// task carries, see `Wake`.)
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub fn run_writer<'a>(
    stream: &'a TcpStream,
    outbox: &'a Outbox,
) -> impl std::future::Future<Output = WriterEnd> + 'a {
    async move {
        let mut batch: VecDeque<Bytes> = VecDeque::new();
        let mut rounds: u32 = 0;
        loop {
            match outbox.writer_next(&mut batch) {
                Next::Failed(e) => return WriterEnd::Failed(e),
                Next::Done => return WriterEnd::Flushed,
                Next::Wait => {
                    // Parking: give the batch buffer back (idle connections own
                    // no queue memory; the next busy member reuses it).
                    spare::give(std::mem::take(&mut batch));
                    outbox.wake.wait().await;
                    continue;
                }
                Next::Write => {}
            }
            // Written here rather than in a helper async fn: that one's future
            // (72 bytes) would sit in every idle writer task's (see `Wake`).
            while !batch.is_empty() {
                match writev(&batch, |iov| try_send(stream, iov)) {
                    Ok(n) => consume(&mut batch, n),
                    // Only the writer waits for write readiness on this socket,
                    // so the small poll_fn future is enough.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        let ready = std::future::poll_fn(|cx| stream.poll_write_ready(cx)).await;
                        if let Err(e) = ready {
                            return WriterEnd::Failed(e);
                        }
                    }
                    Err(e) => return WriterEnd::Failed(e),
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
}

/// One non-blocking send of `iov` on a connected TCP socket: `send(2)` for
/// one chunk, `sendmsg(2)` for several. Not `writev(2)` (what tokio's
/// `try_write_vectored` makes): that reaches the same `tcp_sendmsg` through
/// the VFS write path, and on load b, where nearly every write is one chat
/// frame, `vfs_writev` + `fdget_pos` + `sock_write_iter` were ~9 % of the
/// server's CPU samples against ~5 % for 9f4d9df's `send` (perf, send
/// phase). `WouldBlock` without a syscall while tokio knows the socket is
/// not writable; an `EAGAIN` clears that readiness, as tokio's own writes do.
pub fn try_send(stream: &TcpStream, iov: &[IoSlice<'_>]) -> std::io::Result<usize> {
    stream.try_io(tokio::io::Interest::WRITABLE, || {
        let sock = socket2::SockRef::from(stream);
        match iov {
            [one] => sock.send_with_flags(one, libc::MSG_NOSIGNAL),
            _ => sock.send_vectored_with_flags(iov, libc::MSG_NOSIGNAL),
        }
    })
}

/// One vectored write of up to [`MAX_IOV`] chunks from the front of
/// `batch`. A plain function, so the iovec array lives on the stack, not in
/// every writer task's future.
fn writev(
    batch: &VecDeque<Bytes>,
    write: impl FnOnce(&[IoSlice<'_>]) -> std::io::Result<usize>,
) -> std::io::Result<usize> {
    let mut iov: [IoSlice<'_>; MAX_IOV] = [IoSlice::new(&[]); MAX_IOV];
    let mut k = 0;
    for b in batch.iter().take(MAX_IOV) {
        iov[k] = IoSlice::new(b);
        k += 1;
    }
    match write(&iov[..k])? {
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
        assert_eq!(o.push(Bytes::from_static(b"a"), Lane::Chat), Push::Queued);
        assert_eq!(o.push(Bytes::from_static(b"b"), Lane::Bulk), Push::Queued);
        assert_eq!(o.push(Bytes::from_static(b"c"), Lane::Chat), Push::Full);
        o.push_force(Bytes::from_static(b"bye"));
        assert_eq!(o.depth(), 3);
        o.close();
        assert_eq!(o.push(Bytes::from_static(b"d"), Lane::Chat), Push::Closed);
        let mut v = VecDeque::new();
        assert!(o.take_all(&mut v));
        assert_eq!(v.len(), 3);
    }

    /// A fake socket: records each `writev` (the chunks it was offered)
    /// and answers from a script.
    struct Sock {
        calls: Vec<Vec<Vec<u8>>>,
        answers: VecDeque<std::io::Result<usize>>,
    }

    impl Sock {
        fn new(answers: Vec<std::io::Result<usize>>) -> Self {
            Self {
                calls: Vec::new(),
                answers: answers.into(),
            }
        }

        fn writev(&mut self, iov: &[IoSlice<'_>]) -> std::io::Result<usize> {
            self.calls.push(iov.iter().map(|s| s.to_vec()).collect());
            let all = iov.iter().map(|s| s.len()).sum();
            self.answers.pop_front().unwrap_or(Ok(all))
        }
    }

    fn b(s: &'static [u8]) -> Bytes {
        Bytes::from_static(s)
    }

    /// Only the first push to an idle member is owed; everything queued
    /// until the flush (from any producer) goes out in one `writev`, in
    /// order, and the member is idle again afterwards.
    #[test]
    fn an_owed_member_gets_one_writev_for_everything_queued() {
        let o = Outbox::new(8);
        assert_eq!(o.push_owed(b(b"a"), Lane::Chat), Push::Owed);
        assert_eq!(o.push_owed(b(b"b"), Lane::Chat), Push::Queued);
        assert_eq!(
            o.push(b(b"c"), Lane::Chat),
            Push::Queued,
            "owed: the writer is not woken"
        );
        let mut sock = Sock::new(vec![]);
        o.flush(|iov| sock.writev(iov));
        assert_eq!(
            sock.calls,
            vec![vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]]
        );
        assert_eq!(o.depth(), 0);
        assert_eq!(o.lock().owner, Owner::Idle);
        assert_eq!(
            o.lock().q.capacity(),
            0,
            "an idle member holds no queue memory"
        );
        assert_eq!(
            o.push_owed(b(b"d"), Lane::Chat),
            Push::Owed,
            "idle again: owed again"
        );
    }

    /// What the socket does not take goes back to the front of the queue,
    /// before what was queued since, and the writer task takes over; while
    /// it owns the member, producers only queue.
    #[test]
    fn the_rest_goes_to_the_writer_in_order() {
        let o = Outbox::new(8);
        o.push_owed(b(b"abc"), Lane::Chat);
        o.push_owed(b(b"de"), Lane::Chat);
        let mut sock = Sock::new(vec![Ok(1), Err(std::io::ErrorKind::WouldBlock.into())]);
        o.flush(|iov| sock.writev(iov));
        assert_eq!(sock.calls.len(), 2);
        assert_eq!(o.lock().owner, Owner::Writer);
        assert_eq!(
            o.push_owed(b(b"f"), Lane::Chat),
            Push::Queued,
            "the writer owns it"
        );
        let mut v = VecDeque::new();
        assert!(matches!(o.writer_next(&mut v), Next::Write));
        assert_eq!(v, [b(b"bc"), b(b"de"), b(b"f")]);
        v.clear();
        assert!(matches!(o.writer_next(&mut v), Next::Wait));
        assert_eq!(
            o.lock().owner,
            Owner::Idle,
            "an empty take parks the writer"
        );
    }

    /// A big turn hands an owed member to its writer task, which takes
    /// everything.
    #[test]
    fn a_handed_off_member_is_written_by_the_writer() {
        let o = Outbox::new(8);
        assert_eq!(o.push_owed(b(b"a"), Lane::Chat), Push::Owed);
        o.hand_off();
        assert_eq!(o.lock().owner, Owner::Writer);
        assert_eq!(o.push_owed(b(b"b"), Lane::Chat), Push::Queued);
        let mut v = VecDeque::new();
        assert!(matches!(o.writer_next(&mut v), Next::Write));
        assert_eq!(v, [b(b"a"), b(b"b")]);
    }

    /// The writer never writes a member a producer owes: it would overtake
    /// the producer's bytes.
    #[test]
    fn the_writer_waits_while_a_producer_owns_the_member() {
        let o = Outbox::new(8);
        o.push_owed(b(b"a"), Lane::Chat);
        o.close();
        let mut v = VecDeque::new();
        assert!(matches!(o.writer_next(&mut v), Next::Wait));
        assert!(v.is_empty());
        let mut sock = Sock::new(vec![]);
        o.flush(|iov| sock.writev(iov));
        assert!(matches!(o.writer_next(&mut v), Next::Done));
    }

    /// A hard error is kept for the writer (the real errno ends the
    /// connection), with the unwritten bytes still queued.
    #[test]
    fn a_flush_error_reaches_the_writer() {
        let o = Outbox::new(8);
        o.push_owed(b(b"a"), Lane::Chat);
        let mut sock = Sock::new(vec![Err(std::io::Error::from_raw_os_error(
            libc::ECONNRESET,
        ))]);
        o.flush(|iov| sock.writev(iov));
        let mut v = VecDeque::new();
        match o.writer_next(&mut v) {
            Next::Failed(e) => assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET)),
            _ => panic!("the error was lost"),
        }
        assert_eq!(o.depth(), 1);
    }

    /// Chat queued behind file chunks is taken first; a take moves at most
    /// BULK_TAKE bytes of chunks (at least one), in their order.
    #[test]
    fn chat_overtakes_the_bulk_lane() {
        let o = Outbox::new(64);
        let chunk = Bytes::from(vec![7u8; BULK_TAKE / 2 + 1]);
        for _ in 0..4 {
            o.push(chunk.clone(), Lane::Bulk);
        }
        o.push(b(b"hi"), Lane::Chat);
        assert_eq!(o.depth(), 5);
        assert_eq!(o.bulk_depth(), 4);
        let mut v = VecDeque::new();
        assert!(matches!(o.writer_next(&mut v), Next::Write));
        assert_eq!(v.len(), 3, "the line and two chunks (BULK_TAKE reached)");
        assert_eq!(v[0], b(b"hi"));
        assert_eq!(o.bulk_depth(), 2);
        // A line queued now goes before the remaining chunks.
        o.push(b(b"again"), Lane::Chat);
        v.clear();
        assert!(matches!(o.writer_next(&mut v), Next::Write));
        assert_eq!(v[0], b(b"again"));
        assert_eq!(v.len(), 3);
        v.clear();
        assert!(matches!(o.writer_next(&mut v), Next::Wait));
        assert_eq!(o.lock().owner, Owner::Idle);
        assert_eq!(
            o.lock().bulk.capacity(),
            0,
            "an idle member holds no memory"
        );
        // One chunk larger than BULK_TAKE still moves.
        o.push(Bytes::from(vec![0u8; BULK_TAKE * 2]), Lane::Bulk);
        assert!(matches!(o.writer_next(&mut v), Next::Write));
        assert_eq!(v.len(), 1);
    }

    /// The owed flush writes chat first too, and hands unwritten chunks
    /// back ahead of the chunks still queued (the lane's order holds).
    #[test]
    fn a_flush_keeps_each_lanes_order() {
        let o = Outbox::new(64);
        assert_eq!(o.push_owed(b(b"c1"), Lane::Bulk), Push::Owed);
        o.push_owed(b(b"c2"), Lane::Bulk);
        o.push_owed(b(b"line"), Lane::Chat);
        let mut sock = Sock::new(vec![Ok(5), Err(std::io::ErrorKind::WouldBlock.into())]);
        o.flush(|iov| sock.writev(iov));
        assert_eq!(
            sock.calls[0],
            vec![b"line".to_vec(), b"c1".to_vec(), b"c2".to_vec()]
        );
        o.push(b(b"c3"), Lane::Bulk);
        let mut v = VecDeque::new();
        assert!(matches!(o.writer_next(&mut v), Next::Write));
        assert_eq!(v, [b(b"1"), b(b"c2"), b(b"c3")]);
    }

    /// A member that keeps receiving while it is flushed is handed to the
    /// writer after FLUSH_WRITES writes: the flushing reader moves on.
    #[test]
    fn a_flush_is_bounded() {
        let o = Outbox::new(64);
        o.push_owed(b(b"0"), Lane::Chat);
        let mut n = 0;
        o.flush(|iov| {
            n += 1;
            // Another producer queues while we write.
            o.push_owed(b(b"x"), Lane::Chat);
            Ok(iov.iter().map(|s| s.len()).sum())
        });
        assert_eq!(n, FLUSH_WRITES);
        assert_eq!(o.lock().owner, Owner::Writer);
        assert_eq!(o.depth(), 1);
    }

    /// The writer's wake-up keeps one permit, like `Notify::notify_one`: a
    /// notify before the wait is not lost, two notifies are one wake-up,
    /// and a notify while parked wakes the waiter.
    #[tokio::test]
    async fn wake_keeps_one_permit() {
        use std::time::Duration;
        let w = std::sync::Arc::new(Wake::default());
        w.notify();
        w.notify();
        tokio::time::timeout(Duration::from_secs(5), w.wait())
            .await
            .expect("a stored permit");
        let second = tokio::time::timeout(Duration::from_millis(50), w.wait()).await;
        assert!(second.is_err(), "two notifies leave one permit");
        let parked = tokio::spawn({
            let w = w.clone();
            async move { w.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!parked.is_finished());
        w.notify();
        tokio::time::timeout(Duration::from_secs(5), parked)
            .await
            .expect("woken")
            .expect("joined");
    }
}
