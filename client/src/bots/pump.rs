//! The shard loop for plain TCP loads (chatters, lurkers, flooders; no
//! churn, faults or slow readers): once a bot is connected and joined (the
//! async code in `bot` does that), its socket is handed to one `mio::Poll`
//! per shard, and one loop reads every ready socket until it is empty into
//! the shard's buffer, parses frames or lines, records latencies, and sends
//! on every sender's schedule. No tokio task per bot.
//!
//! Why: at 10,000 clients each delivery arrived alone and cost one tokio
//! wake-up, one task poll through a `select!` and one `epoll_wait` of its
//! own (~8.8 µs of the bots' CPU per delivery); here one `epoll_wait`
//! returns every socket that became readable, and a delivery costs its
//! `recv` and the parse.
//!
//! During the ramp the tokio runtime still runs (the connect tasks); the
//! loop then turns inside it every millisecond without blocking, so early
//! bots read what arrives while later ones connect. After the ramp
//! the loop blocks in `epoll_wait` on its own. The coordinator wakes it
//! with a `mio::Waker` on every control change.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tokio::sync::watch;

use super::bot::{
    self, BotSpec, Conn, Go, OUT_CAP, Ramped, Rx, Shard, close_count, finish, flush, generate,
    on_data, on_go,
};
use super::engine::publish;
use super::plan::{Behaviour, Plan};
use super::schedule::{Schedule, mono_ns};
use super::stats::Stats;
use super::wake::Control;
use super::wire::Wire;

/// The coordinator's waker.
pub const WAKE: Token = Token(usize::MAX);
/// Reads of one socket per turn; a socket still full after them is read
/// again next turn (edge-triggered: no new event would come for it).
const READS_PER_TURN: usize = 16;
/// Live counters are published this often (as the task engine does).
const PUBLISH_NS: u64 = 50_000_000;
/// Longest wait between two turns during the ramp.
const RAMP_TICK_NS: u64 = 1_000_000;
/// Events taken per `epoll_wait`.
const EVENTS: usize = 1024;

/// Whether the plan's bots can all run in the shard loop: TCP, and only
/// behaviours that keep one connection for the whole run.
pub fn fits(plan: &Plan) -> bool {
    plan.wire != Wire::Udp
        && plan.faults.is_empty()
        && plan.groups.iter().all(|g| {
            matches!(
                g.behaviour,
                Behaviour::Chatter | Behaviour::Lurker | Behaviour::Flooder
            )
        })
}

/// One connected bot in the loop.
struct Bot {
    spec: BotSpec,
    conn: Conn<TcpStream>,
    rx: Rx,
    sched: Option<Schedule>,
    /// Its send timer is not armed because `OUT_CAP` is unwritten; a
    /// writable event re-arms it.
    stalled: bool,
}

/// A shard's loop state.
struct Pump {
    si: usize,
    sh: Rc<Shard>,
    live: Arc<Vec<Mutex<Stats>>>,
    poll: Poll,
    events: Events,
    /// Tokens of the last `epoll_wait` (readable, writable), reused.
    ready: Vec<(usize, bool, bool)>,
    rx: watch::Receiver<Control>,
    seen_control: bool,
    bots: Vec<Option<Bot>>,
    /// (next send time, bot index) of every armed sender.
    timers: BinaryHeap<Reverse<(u64, usize)>>,
    /// Bots whose socket may still hold data (read `READS_PER_TURN` times).
    again: Vec<usize>,
    go: Option<Go>,
    stopped: bool,
    next_publish: u64,
}

/// Run one shard: the ramp with the connect tasks, then the loop until
/// Stop. Returns the shard's numbers.
pub(super) fn run_shard(
    si: usize,
    sh: Rc<Shard>,
    bots: Vec<(BotSpec, u64)>,
    rx: watch::Receiver<Control>,
    live: Arc<Vec<Mutex<Stats>>>,
    poll: Poll,
) -> anyhow::Result<Stats> {
    let pump = Rc::new(RefCell::new(Pump {
        si,
        sh: sh.clone(),
        live: live.clone(),
        poll,
        events: Events::with_capacity(EVENTS),
        ready: Vec::with_capacity(EVENTS),
        rx,
        seen_control: false,
        bots: Vec::with_capacity(bots.len()),
        timers: BinaryHeap::new(),
        again: Vec::new(),
        go: None,
        stopped: false,
        next_publish: 0,
    }));
    let rt = super::engine::runtime()?;
    tokio::task::LocalSet::new().block_on(&rt, async {
        let ctl_sh = sh.clone();
        let control = tokio::task::spawn_local(async move { ctl_sh.control.run().await });
        let turner = tokio::task::spawn_local(turn_in_tokio(pump.clone()));
        let handles: Vec<_> = bots
            .into_iter()
            .map(|(spec, ramp_ns)| {
                let sh = sh.clone();
                let pump = pump.clone();
                tokio::task::spawn_local(async move {
                    if let Ramped::Up(conn) = bot::ramp(&sh, &spec, ramp_ns).await {
                        pump.borrow_mut().add(spec, *conn);
                    }
                })
            })
            .collect();
        for h in handles {
            let _ = h.await;
        }
        turner.abort();
        control.abort();
    });
    let mut p = pump.borrow_mut();
    while !p.stopped {
        let wait = p.wait_ns();
        p.turn(Some(Duration::from_nanos(wait)))
            .map_err(|e| anyhow::anyhow!("bots shard {si}: epoll: {e}"))?;
    }
    p.finish();
    drop(p);
    let st = sh.stats.replace(Stats::new(0, 0));
    if let Ok(mut slot) = live[si].lock() {
        *slot = st.counters();
    }
    Ok(st)
}

/// The loop while tokio runs the ramp: a non-blocking turn every
/// millisecond at most (nothing is measured before the send phase, which
/// starts after the ramp), so the connect tasks keep the thread.
async fn turn_in_tokio(pump: Rc<RefCell<Pump>>) {
    let mut full = false;
    loop {
        let wait = pump.borrow().wait_ns().min(RAMP_TICK_NS);
        // A full batch of events may leave more ready: take them first.
        if !full {
            tokio::time::sleep(Duration::from_nanos(wait)).await;
        }
        match pump.borrow_mut().turn(Some(Duration::ZERO)) {
            Ok(n) => full = n == EVENTS,
            Err(_) => return,
        }
        tokio::task::yield_now().await;
    }
}

impl Pump {
    /// Take a connected bot into the loop.
    fn add(&mut self, spec: BotSpec, conn: Conn) {
        let conn = match conn.into_std() {
            Ok(c) => c,
            Err(e) => {
                self.sh.stats.borrow_mut().open -= 1;
                self.count_lost(&spec, bot::code(&e));
                return;
            }
        };
        if self.stopped {
            finish(&self.sh, &spec, conn);
            return;
        }
        let i = self.bots.len();
        let fd = conn.stream.as_raw_fd();
        if let Err(e) = self.poll.registry().register(
            &mut SourceFd(&fd),
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            close_count(&self.sh, &conn);
            self.count_lost(&spec, bot::code(&e));
            return;
        }
        let mut sched = None;
        if let Some(g) = self.go.clone() {
            on_go(
                &self.sh,
                &spec,
                &mut self.go,
                &mut sched,
                g.start_ns,
                g.end_ns,
                g.members,
            );
        }
        // What came while it was not watched: epoll reports it at once.
        self.bots.push(Some(Bot {
            spec,
            conn,
            rx: Rx::default(),
            sched,
            stalled: false,
        }));
        self.arm(i);
    }

    /// How long the loop may block: until the next send or publication.
    fn wait_ns(&self) -> u64 {
        if !self.again.is_empty() {
            return 0;
        }
        let next = self
            .timers
            .peek()
            .map_or(self.next_publish, |Reverse((t, _))| {
                (*t).min(self.next_publish)
            });
        next.saturating_sub(mono_ns())
    }

    /// One turn: control, sends due, publication, then what epoll reports
    /// within `timeout`.
    /// Returns how many events epoll gave.
    fn turn(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        self.control();
        if self.stopped {
            return Ok(0);
        }
        self.send_due();
        let now = mono_ns();
        if now >= self.next_publish {
            publish(self.si, &self.sh, &self.live);
            self.next_publish = now + PUBLISH_NS;
        }
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().filter(|e| e.token() != WAKE).map(|e| {
            (
                e.token().0,
                e.is_readable() || e.is_read_closed() || e.is_error(),
                e.is_writable(),
            )
        }));
        for i in std::mem::take(&mut self.again) {
            self.read(i);
        }
        for &(i, readable, writable) in &ready {
            if readable {
                self.read(i);
            }
            if writable {
                self.write(i);
            }
        }
        let n = self.events.iter().count();
        self.ready = ready;
        Ok(n)
    }

    /// Follow the coordinator: Go builds the senders' schedules, Stop ends
    /// the loop.
    fn control(&mut self) {
        let changed = match self.rx.has_changed() {
            Ok(c) => c,
            Err(_) => {
                self.stopped = true;
                return;
            }
        };
        if !changed && self.seen_control {
            return;
        }
        self.seen_control = true;
        let value = self.rx.borrow_and_update().clone();
        match value {
            Control::Stop => self.stopped = true,
            Control::Ramp => {}
            Control::Go {
                start_ns,
                end_ns,
                members,
            } => {
                for i in 0..self.bots.len() {
                    let Some(b) = self.bots[i].as_mut() else {
                        continue;
                    };
                    if b.sched.is_some() {
                        continue;
                    }
                    on_go(
                        &self.sh,
                        &b.spec,
                        &mut self.go,
                        &mut b.sched,
                        start_ns,
                        end_ns,
                        members.clone(),
                    );
                    self.arm(i);
                }
                if self.go.is_none() {
                    self.go = Some(Go {
                        start_ns,
                        end_ns,
                        members,
                    });
                }
            }
        }
    }

    /// Arm bot `i`'s send timer for its next message, unless its output is
    /// full (then a writable event re-arms it).
    fn arm(&mut self, i: usize) {
        let Some(b) = self.bots.get_mut(i).and_then(|b| b.as_mut()) else {
            return;
        };
        let Some(t) = b.sched.as_ref().and_then(|s| s.next_time()) else {
            return;
        };
        if b.conn.out.len() >= OUT_CAP {
            b.stalled = true;
        } else {
            b.stalled = false;
            self.timers.push(Reverse((t, i)));
        }
    }

    /// Generate and write every message due now.
    fn send_due(&mut self) {
        let now = mono_ns();
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(b) = self.bots.get_mut(i).and_then(|b| b.as_mut()) else {
                continue;
            };
            if let Some(s) = b.sched.as_mut() {
                generate(&self.sh, &b.spec, &mut b.conn, s);
            }
            match flush(&self.sh, &b.spec, &mut b.conn, self.go.as_ref()) {
                Ok(()) => self.arm(i),
                Err(c) => self.lose(i, c),
            }
        }
    }

    /// Read bot `i`'s socket until it is empty (or `READS_PER_TURN`).
    fn read(&mut self, i: usize) {
        let Some(b) = self.bots.get_mut(i).and_then(|b| b.as_mut()) else {
            return;
        };
        let mut result = Ok(());
        {
            let mut scratch = self.sh.scratch.borrow_mut();
            let mut reads = 0;
            loop {
                if reads == READS_PER_TURN {
                    self.again.push(i);
                    break;
                }
                reads += 1;
                match (&b.conn.stream).read(&mut scratch[..]) {
                    Ok(0) => {
                        result = Err(b.conn.eof_code());
                        break;
                    }
                    Ok(n) => {
                        if let Err(c) =
                            on_data(&self.sh, &b.spec, &mut b.conn, &mut b.rx, &scratch[..n])
                        {
                            result = Err(c);
                            break;
                        }
                        if n < scratch.len() {
                            // Short: the socket is empty; new data raises a
                            // new edge.
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        result = Err(bot::code(&e));
                        break;
                    }
                }
            }
        }
        if result.is_ok() && !b.conn.out.is_empty() {
            // Pongs.
            result = flush(&self.sh, &b.spec, &mut b.conn, self.go.as_ref());
        }
        if let Err(c) = result {
            self.lose(i, c);
        }
    }

    /// The socket took what it could not before: write the rest and re-arm
    /// a stalled sender.
    fn write(&mut self, i: usize) {
        let Some(b) = self.bots.get_mut(i).and_then(|b| b.as_mut()) else {
            return;
        };
        if !b.conn.out.is_empty()
            && let Err(c) = flush(&self.sh, &b.spec, &mut b.conn, self.go.as_ref())
        {
            self.lose(i, c);
            return;
        }
        if b.stalled {
            self.arm(i);
        }
    }

    /// The connection died under bot `i`: it stays down (its loss is the
    /// measurement), as in the task engine.
    fn lose(&mut self, i: usize, code: String) {
        let Some(b) = self.bots.get_mut(i).and_then(|b| b.take()) else {
            return;
        };
        let fd = b.conn.stream.as_raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        close_count(&self.sh, &b.conn);
        self.count_lost(&b.spec, code);
    }

    fn count_lost(&self, spec: &BotSpec, code: String) {
        *self.sh.stats.borrow_mut().groups[spec.group]
            .errors
            .entry(code)
            .or_default() += 1;
    }

    /// Stop: every connection closes and is counted.
    fn finish(&mut self) {
        for b in self.bots.iter_mut() {
            if let Some(b) = b.take() {
                finish(&self.sh, &b.spec, b.conn);
            }
        }
    }
}
