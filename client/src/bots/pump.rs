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
//! When the server keeps up, deliveries still arrive one at a time, and
//! each `epoll_wait` that sleeps costs a context switch: after a turn that
//! found fewer than [`SPARSE`] sockets ready the loop naps (until the next
//! send is due, at most [`NAP_NS`]) so the next turn finds several ready.
//! A busy loop (the server sending in bursts) does not nap: its
//! `epoll_wait`s already return many events, often without sleeping, and
//! a nap would only add a sleep per turn.
//! The latency the bots report includes that wait (a delivery's time is
//! taken when `read` returns): at most `NAP_NS` more.
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
use super::live::publish;
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
/// The coordinator held the slot: try again this soon.
const RETRY_PUBLISH_NS: u64 = 1_000_000;
/// Longest wait between two turns during the ramp.
const RAMP_TICK_NS: u64 = 1_000_000;
/// Events taken per `epoll_wait`.
const EVENTS: usize = 1024;
/// Longest nap between two turns of a small batch (see [`Pump::nap_ns`]).
const NAP_NS: u64 = 500_000;
/// Longest `epoll_wait` (a send or the publication is normally due first).
const MAX_WAIT: Duration = Duration::from_secs(1);
/// A turn with fewer events than this is followed by a nap.
const SPARSE: usize = 4;

/// Shards for a plan that fits the loop when `--threads` is not given:
/// half the CPUs, at least one. The loop is cheap enough that fewer
/// threads carry it, and each thread's wake-ups cost: at load (b) one
/// thread instead of two spent 16 % less CPU per delivery (fewer context
/// switches; BENCHMARKS.md stop 23), and the server under test usually
/// needs the other cores.
pub fn default_threads(cpus: usize) -> usize {
    cpus.div_ceil(2).max(1)
}

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
    /// The peer closed or the socket failed (epoll said so): read to the
    /// end, past short reads, since no new edge will come for it.
    hup: bool,
    /// The turn that last read it: a bot in `again` and in the events of
    /// one turn is read once.
    read_turn: u64,
}

/// A shard's loop state.
struct Pump {
    si: usize,
    sh: Rc<Shard>,
    live: Arc<Vec<Mutex<Stats>>>,
    poll: Poll,
    events: Events,
    /// Tokens of the last `epoll_wait` (readable, closed or failed,
    /// writable), reused.
    ready: Vec<(usize, bool, bool, bool)>,
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
    /// Turns so far (numbers `Bot::read_turn`).
    turns: u64,
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
    let pump = Rc::new(RefCell::new(Pump::new(
        si,
        sh.clone(),
        live.clone(),
        poll,
        rx,
        bots.len(),
    )));
    let rt = super::live::runtime()?;
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
        let n = p
            .turn(MAX_WAIT)
            .map_err(|e| anyhow::anyhow!("bots shard {si}: epoll: {e}"))?;
        if n < SPARSE {
            let nap = p.nap_ns(NAP_NS);
            if nap > 0 {
                std::thread::sleep(Duration::from_nanos(nap));
            }
        }
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
        match pump.borrow_mut().turn(Duration::ZERO) {
            Ok(n) => full = n == EVENTS,
            Err(_) => return,
        }
        tokio::task::yield_now().await;
    }
}

impl Pump {
    fn new(
        si: usize,
        sh: Rc<Shard>,
        live: Arc<Vec<Mutex<Stats>>>,
        poll: Poll,
        rx: watch::Receiver<Control>,
        bots: usize,
    ) -> Pump {
        Pump {
            si,
            sh,
            live,
            poll,
            events: Events::with_capacity(EVENTS),
            ready: Vec::with_capacity(EVENTS),
            rx,
            seen_control: false,
            bots: Vec::with_capacity(bots),
            timers: BinaryHeap::new(),
            again: Vec::new(),
            go: None,
            stopped: false,
            next_publish: 0,
            turns: 0,
        }
    }

    /// Take a connected bot into the loop.
    fn add(&mut self, spec: BotSpec, conn: Conn) {
        match conn.into_std() {
            Ok(c) => self.add_std(spec, c),
            Err(e) => {
                self.sh.stats.borrow_mut().open -= 1;
                self.count_lost(&spec, bot::code(&e));
            }
        }
    }

    /// Take a connected bot whose stream is already out of tokio.
    fn add_std(&mut self, spec: BotSpec, conn: Conn<TcpStream>) {
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
            hup: false,
            read_turn: 0,
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

    /// How long to sleep after a turn that found few sockets ready,
    /// so that the next `epoll_wait` finds several sockets ready instead of
    /// waking for each delivery (at 10 msg/s per room every delivery
    /// arrives alone, and each wake-up of the thread cost more than the
    /// `recv`). Never past the next send (sends stay on schedule) nor
    /// `max`; nothing when a socket is still to be read. A delivery can
    /// sit in its socket for the nap: the measured latency includes it
    /// (the receive time is taken when `read` returns), so the nap adds at
    /// most `max` to it.
    fn nap_ns(&self, max: u64) -> u64 {
        if !self.again.is_empty() || self.stopped {
            return 0;
        }
        let next_send = self.timers.peek().map_or(u64::MAX, |Reverse((t, _))| *t);
        next_send.saturating_sub(mono_ns()).min(max)
    }

    /// One turn: control, sends due, publication, then what epoll reports
    /// until the next send or publication is due (at most `max_wait`).
    /// Returns how many events epoll gave.
    ///
    /// The wait is computed here, after `control`: a Go seen this turn arms
    /// the senders' timers, and a wait computed before it (up to the next
    /// publication, 50 ms) held the first sends of every run back by up
    /// to that long — a start-up stall the bots reported as the server's
    /// latency (`--timeline` showed it: sends 10-30 ms late in the first
    /// 30 ms of the send phase).
    fn turn(&mut self, max_wait: Duration) -> io::Result<usize> {
        self.control();
        if self.stopped {
            return Ok(0);
        }
        self.send_due();
        let now = mono_ns();
        if now >= self.next_publish {
            let done = publish(self.si, &self.sh, &self.live);
            self.next_publish = now + if done { PUBLISH_NS } else { RETRY_PUBLISH_NS };
        }
        let timeout = Duration::from_nanos(self.wait_ns()).min(max_wait);
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        }
        self.turns += 1;
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().filter(|e| e.token() != WAKE).map(|e| {
            let hup = e.is_read_closed() || e.is_error();
            (e.token().0, e.is_readable() || hup, hup, e.is_writable())
        }));
        for i in std::mem::take(&mut self.again) {
            self.read(i, false);
        }
        // Sends falling due while this turn reads wait for the next turn's
        // `send_due`, with the others due by then: writing each as soon as
        // it is due (checked per ready socket, or every 64) made the
        // 100-member load's p99 and mean 8 % worse or far worse (the server
        // reads and fans out more, smaller batches) for no less lateness.
        for &(i, readable, hup, writable) in &ready {
            if readable {
                self.read(i, hup);
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

    /// Read bot `i`'s socket until it is empty (or `READS_PER_TURN`);
    /// `hup`: epoll reported the peer's close or an error.
    fn read(&mut self, i: usize, hup: bool) {
        let Some(b) = self.bots.get_mut(i).and_then(|b| b.as_mut()) else {
            return;
        };
        if b.read_turn == self.turns {
            // Read from `again` this turn already: it was read to empty or
            // is queued again; data that came since raises a new event.
            return;
        }
        b.read_turn = self.turns;
        b.hup |= hup;
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
                        if n < scratch.len() && !b.hup {
                            // Short: the socket is empty; new data or a
                            // close raises a new edge (a close that came
                            // before this turn's `epoll_wait` is `hup`, and
                            // is read to the end).
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{Shutdown, TcpListener};
    use std::time::Instant;

    use bytes::BytesMut;

    use super::*;
    use crate::bots::bot::FaultBox;
    use crate::bots::wake::ShardControl;
    use crate::bots::wire::{Mark, write_line_msg};

    /// `count` lines-mode deliveries from `sender`, sequence 0.., as a
    /// server would relay them.
    fn lines(run: u32, sender: u32, count: u64) -> BytesMut {
        let mut b = BytesMut::new();
        for seq in 0..count {
            let m = Mark {
                measured: true,
                run,
                sender,
                seq,
                sched_us: mono_ns() / 1000,
            };
            write_line_msg(&mut b, &m, 64);
        }
        b
    }

    /// A shard and its loop for `bots` bots of the plan `args` make, before
    /// any bot is added; the sender drives its control value.
    fn test_pump(
        args: &crate::bots::BotsArgs,
        bots: usize,
    ) -> (Rc<Shard>, Pump, watch::Sender<Control>) {
        let plan = Arc::new(Plan::from_args(args).expect("plan"));
        let (tx, rx) = watch::channel(Control::Ramp);
        let sh = Rc::new(Shard {
            plan: plan.clone(),
            stats: RefCell::new(Stats::new(plan.rooms.len(), plan.groups.len())),
            scratch: RefCell::new(vec![0u8; 4096]),
            control: ShardControl::new(rx.clone(), bots),
        });
        let live = Arc::new(vec![Mutex::new(Stats::new(0, 0))]);
        let p = Pump::new(0, sh.clone(), live, Poll::new().expect("epoll"), rx, bots);
        (sh, p, tx)
    }

    /// Every delivery the "server" writes is counted once: many small
    /// writes, a burst far larger than one turn reads from a socket
    /// (`READS_PER_TURN` reads of a 4 KiB buffer here, so the rest must come
    /// back through `again` with no new edge), lines split across reads,
    /// and on a second bot data with the close right behind it (read past
    /// the short read to see the EOF). Real loopback sockets.
    #[test]
    fn every_delivery_is_counted_once() {
        let args = crate::bots::BotsArgs {
            count: Some("2".into()),
            wire: Some(Wire::Lines),
            workers: 1,
            ..Default::default()
        };
        let (sh, mut p, _tx) = test_pump(&args, 2);
        let run = sh.plan.run_id;
        sh.stats.borrow_mut().open = 2;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut servers = Vec::new();
        for n in 0..2 {
            let c = TcpStream::connect(addr).expect("connect");
            c.set_nonblocking(true).expect("non-blocking");
            servers.push(listener.accept().expect("accept").0);
            let spec = BotSpec {
                n,
                slot: n,
                group: 0,
                room: 0,
                sender_k: None,
                measured: true,
                fault: Rc::new(FaultBox::default()),
            };
            p.add_std(spec, Conn::new(c));
        }
        let mut a = servers.remove(0);
        let mut b = servers.remove(0);
        // Bot 1: data and FIN queued before the first epoll_wait.
        b.write_all(&lines(run, 9, 50)).expect("write b");
        b.shutdown(Shutdown::Write).expect("shutdown");
        // Bot 0: 300 small writes, then a 1 MiB burst, from a thread.
        let small = 300u64;
        let burst = 16_384u64;
        let writer = std::thread::spawn(move || {
            for one in lines(run, 7, small).chunks(64) {
                a.write_all(one).expect("write a");
            }
            a.write_all(&lines(run, 8, burst)).expect("burst");
            a
        });
        let want = small + burst + 50;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut writer = Some(writer);
        let mut _a = None;
        for _ in 0..1_000_000 {
            p.turn(Duration::from_millis(20)).expect("turn");
            if writer.as_ref().is_some_and(|w| w.is_finished()) {
                _a = writer.take().map(|w| w.join().expect("writer"));
            }
            let st = sh.stats.borrow();
            let eof = st.groups[0].errors.get("eof").copied().unwrap_or(0);
            if (st.delivered >= want && eof == 1) || Instant::now() > deadline {
                break;
            }
        }
        let st = sh.stats.borrow();
        assert_eq!(st.delivered, want, "every delivery, once");
        assert_eq!(st.duplicated, 0);
        assert_eq!(st.reordered, 0);
        assert_eq!(st.other_deliveries, 0);
        assert_eq!(st.bytes_in, want * 64);
        assert_eq!(
            st.groups[0].errors.get("eof"),
            Some(&1),
            "the close behind the data is seen: {:?}",
            st.groups[0].errors
        );
    }

    /// The turn that sees Go waits only until the first send, not until
    /// the next publication or the caller's cap: the first messages of a
    /// run go out on time. (The wait used to be computed before the turn
    /// looked at the control value.)
    #[test]
    fn the_first_send_after_go_is_not_held_back() {
        let args = crate::bots::BotsArgs {
            count: Some("1".into()),
            senders: Some("1".into()),
            rate: Some("10/s".into()),
            wire: Some(Wire::Lines),
            workers: 1,
            ..Default::default()
        };
        let (sh, mut p, tx) = test_pump(&args, 1);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let c = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        c.set_nonblocking(true).expect("non-blocking");
        let _server = listener.accept().expect("accept").0;
        let spec = BotSpec {
            n: 0,
            slot: 0,
            group: 0,
            room: 0,
            sender_k: Some(0),
            measured: true,
            fault: Rc::new(FaultBox::default()),
        };
        p.add_std(spec, Conn::new(c));
        // A turn in the ramp; the next publication far away (10 s).
        p.turn(Duration::ZERO).expect("turn");
        p.next_publish = mono_ns() + 10_000_000_000;
        let start_ns = mono_ns() + 20_000_000;
        tx.send(Control::Go {
            start_ns,
            end_ns: start_ns + 1_000_000_000,
            members: Arc::new(vec![1]),
        })
        .expect("go");
        let t = Instant::now();
        p.turn(Duration::from_secs(5)).expect("turn");
        // The turn returns when the first send is due (20 ms; the cap is
        // 5 s, the publication 10 s): generous for a busy machine.
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "the turn that saw Go waited {:?}",
            t.elapsed()
        );
        p.turn(Duration::from_secs(5)).expect("turn");
        assert_eq!(sh.stats.borrow().sent, 1, "the first message is written");
    }
}
