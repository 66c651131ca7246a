//! The engine: shards (one OS thread + current-thread tokio runtime each,
//! many bots per shard) and the coordinator that ramps, starts the send
//! phase, drains and stops them.
//!
//! Why shards of current-thread runtimes rather than one multi-thread
//! runtime: every bot of a shard shares its counters, histograms and read
//! buffer through `Rc<RefCell<..>>` with no atomics or locks on the receive
//! path; the shards are merged once at the end.

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::bot::{self, BotSpec, FaultBox, Shard};
use super::live::{publish, runtime};
use super::plan::Plan;
use super::schedule::{mono_ns, ramp_at};
use super::stats::Stats;
use super::timeline::Timeline;
use super::wake::Control;
use super::wake::ShardControl;
use super::wire::Wire;

/// Which bots this process runs: `n % workers == index`.
#[derive(Debug, Clone, Copy)]
pub struct Slice {
    pub index: usize,
    pub workers: usize,
}

/// A running set of shards.
pub struct Engine {
    control: watch::Sender<Control>,
    live: Arc<Vec<Mutex<Stats>>>,
    shards: Vec<JoinHandle<anyhow::Result<Stats>>>,
    /// Wakes each shard loop (`pump`) when the control value changes.
    wakers: Vec<Arc<mio::Waker>>,
    /// Bots this process runs.
    pub bots: usize,
}

/// One bot before it is placed in a shard.
struct Proto {
    n: usize,
    group: usize,
    room: usize,
    sender_k: Option<usize>,
    measured: bool,
}

impl Proto {
    fn spec(self, slot: usize, fault: Rc<FaultBox>) -> BotSpec {
        BotSpec {
            n: self.n,
            slot,
            group: self.group,
            room: self.room,
            sender_k: self.sender_k,
            measured: self.measured,
            fault,
        }
    }
}

fn protos(plan: &Plan, slice: Slice) -> Vec<Proto> {
    let mut out = Vec::new();
    let mut n = 0;
    for (gi, g) in plan.groups.iter().enumerate() {
        let span = g.rooms.len().max(1);
        for i in 0..g.count {
            if n % slice.workers == slice.index {
                out.push(Proto {
                    n,
                    group: gi,
                    room: g.rooms.start + n % span,
                    sender_k: (i < g.senders).then_some(i),
                    measured: g.measured,
                });
            }
            n += 1;
        }
    }
    out
}

impl Engine {
    /// Start the shards; bots begin connecting at `t0_ns` on the global
    /// ramp schedule.
    pub fn start(plan: Arc<Plan>, slice: Slice, t0_ns: u64) -> anyhow::Result<Engine> {
        let (tx, rx) = watch::channel(Control::Ramp);
        let all = protos(&plan, slice);
        let bots = all.len();
        let threads = plan.threads.min(bots.max(1));
        let mut per: Vec<Vec<Proto>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, p) in all.into_iter().enumerate() {
            per[i % threads].push(p);
        }
        let live: Arc<Vec<Mutex<Stats>>> = Arc::new(
            (0..threads)
                .map(|_| Mutex::new(Stats::new(plan.rooms.len(), plan.groups.len())))
                .collect(),
        );
        let mut shards = Vec::new();
        let mut wakers = Vec::new();
        let pump = super::pump::fits(&plan);
        for (si, protos) in per.into_iter().enumerate() {
            let plan = plan.clone();
            let rx = rx.clone();
            let live = live.clone();
            let poll = if pump {
                let poll = mio::Poll::new().context("cannot make an epoll instance")?;
                wakers.push(Arc::new(
                    mio::Waker::new(poll.registry(), super::pump::WAKE)
                        .context("cannot make an eventfd")?,
                ));
                Some(poll)
            } else {
                None
            };
            let h = std::thread::Builder::new()
                .name(format!("bots-{si}"))
                .spawn(move || run_shard(si, plan, protos, rx, live, t0_ns, poll))
                .context("cannot start a bots thread")?;
            shards.push(h);
        }
        Ok(Engine {
            control: tx,
            live,
            shards,
            wakers,
            bots,
        })
    }

    /// Counters summed over shards (updated every ~50 ms).
    pub fn live(&self) -> Stats {
        let mut sum = Stats::new(0, 0);
        for m in self.live.iter() {
            if let Ok(s) = m.lock() {
                sum.merge(&s);
            }
        }
        sum
    }

    pub fn go(&self, start_ns: u64, end_ns: u64, members: Vec<u32>) {
        let _ = self.control.send(Control::Go {
            start_ns,
            end_ns,
            members: Arc::new(members),
        });
        self.wake();
    }

    /// Tell the shard loops to look at the control value.
    fn wake(&self) {
        for w in &self.wakers {
            let _ = w.wake();
        }
    }

    /// Stop every bot and collect the merged numbers.
    pub fn stop(self) -> anyhow::Result<Stats> {
        let _ = self.control.send(Control::Stop);
        self.wake();
        let mut total: Option<Stats> = None;
        for h in self.shards {
            let s = h
                .join()
                .map_err(|_| anyhow::anyhow!("a bots thread panicked"))??;
            match &mut total {
                None => total = Some(s),
                Some(t) => t.merge(&s),
            }
        }
        total.context("no shards ran")
    }
}

fn run_shard(
    si: usize,
    plan: Arc<Plan>,
    protos: Vec<Proto>,
    rx: watch::Receiver<Control>,
    live: Arc<Vec<Mutex<Stats>>>,
    t0_ns: u64,
    poll: Option<mio::Poll>,
) -> anyhow::Result<Stats> {
    let sh = Rc::new(Shard {
        plan: plan.clone(),
        stats: std::cell::RefCell::new(Stats {
            timeline: Timeline::new(plan.timeline_us),
            ..Stats::new(plan.rooms.len(), plan.groups.len())
        }),
        scratch: std::cell::RefCell::new(vec![0u8; bot::SCRATCH]),
        control: ShardControl::new(rx.clone(), protos.len()),
    });
    if let Some(poll) = poll {
        let bots = protos
            .into_iter()
            .enumerate()
            .map(|(slot, p)| {
                let ramp = ramp_at(t0_ns, p.n, plan.connect_rate);
                (p.spec(slot, Rc::new(FaultBox::default())), ramp)
            })
            .collect();
        return super::pump::run_shard(si, sh, bots, rx, live, poll);
    }
    let rt = runtime()?;
    let local = tokio::task::LocalSet::new();
    let stats = local.block_on(&rt, async move {
        // One task follows the coordinator and wakes the bots that wait.
        let ctl_sh = sh.clone();
        let control = tokio::task::spawn_local(async move { ctl_sh.control.run().await });
        let mut fault_boxes: Vec<Vec<Rc<FaultBox>>> = vec![Vec::new(); plan.groups.len()];
        let mut handles = Vec::with_capacity(protos.len());
        for (slot, p) in protos.into_iter().enumerate() {
            let fb = Rc::new(FaultBox::default());
            fault_boxes[p.group].push(fb.clone());
            let ramp = ramp_at(t0_ns, p.n, plan.connect_rate);
            let spec = p.spec(slot, fb);
            handles.push(if plan.wire == Wire::Udp {
                tokio::task::spawn_local(super::udp::run_udp_bot(sh.clone(), spec, ramp))
            } else {
                tokio::task::spawn_local(bot::run_bot(sh.clone(), spec, ramp))
            });
        }
        for f in plan.faults.clone() {
            let boxes = std::mem::take(&mut fault_boxes[f.group]);
            let mut ctl = rx.clone();
            tokio::task::spawn_local(async move {
                let mut tick = tokio::time::interval(f.every);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        r = ctl.changed() => if r.is_err() { return },
                    }
                    let end = match &*ctl.borrow() {
                        Control::Stop => return,
                        Control::Ramp => continue,
                        Control::Go { end_ns, .. } => *end_ns,
                    };
                    if mono_ns() >= end {
                        continue;
                    }
                    for b in &boxes {
                        if rand::random_bool(f.fraction) {
                            b.pending.set(Some((f.method, f.reconnect_after)));
                            b.notify.notify_one();
                        }
                    }
                }
            });
        }
        // Publish counters for the live view until every bot is done.
        let pub_sh = sh.clone();
        let pub_live = live.clone();
        let publisher = tokio::task::spawn_local(async move {
            loop {
                let again = if publish(si, &pub_sh, &pub_live) {
                    50
                } else {
                    1
                };
                tokio::time::sleep(Duration::from_millis(again)).await;
            }
        });
        for h in handles {
            let _ = h.await;
        }
        publisher.abort();
        control.abort();
        let st = sh.stats.replace(Stats::new(0, 0));
        if let Ok(mut slot) = live[si].lock() {
            *slot = st.counters();
        }
        st
    });
    Ok(stats)
}
