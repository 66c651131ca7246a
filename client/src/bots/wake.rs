//! What wakes a bot, built once per bot or session instead of once per
//! turn of its `select!` loop: the coordinator's control value as a
//! shard-wide generation (one waker slot per bot, woken by one control task
//! per shard), and a re-armable timer.
//!
//! Why: in the 10,000-client load every delivery is one turn of a bot's
//! loop. A `watch::Receiver::changed()` future made each turn registers in
//! and, when dropped, unregisters from the channel's waiter list (a lock
//! each way), and a `sleep` made each turn inserts and removes a timer
//! entry; the profile put ~10 % of the bots' CPU there. Here a turn reads
//! one `Cell` and compares one waker.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::schedule::mono_ns;

/// What the coordinator tells every bot (a `watch` channel: bots see the
/// latest value).
#[derive(Debug, Clone)]
pub enum Control {
    /// Connect on schedule and join; do not send yet.
    Ramp,
    /// Send phase from `start_ns` to `end_ns` (monotonic). `members` is the
    /// number of measured members per room over all shards and workers.
    Go {
        start_ns: u64,
        end_ns: u64,
        members: Arc<Vec<u32>>,
    },
    /// Close everything and report.
    Stop,
}

/// The coordinator's control value as one shard sees it.
pub struct ShardControl {
    rx: watch::Receiver<Control>,
    /// Bumped by [`ShardControl::run`] each time the value changes (or the
    /// coordinator goes away).
    generation: Cell<u64>,
    /// The coordinator dropped its sender: every bot stops.
    closed: Cell<bool>,
    /// The waker of each bot waiting for a change, by the bot's slot.
    wakers: RefCell<Vec<Option<Waker>>>,
}

impl ShardControl {
    pub fn new(rx: watch::Receiver<Control>, bots: usize) -> Self {
        Self {
            rx,
            generation: Cell::new(0),
            closed: Cell::new(false),
            wakers: RefCell::new(vec![None; bots]),
        }
    }

    /// The shard's control task: follows the channel and wakes every bot
    /// that waits, once per change. Ends with the channel or at `Stop`.
    pub async fn run(&self) {
        let mut rx = self.rx.clone();
        loop {
            let closed = rx.changed().await.is_err();
            let stop = closed || matches!(&*rx.borrow_and_update(), Control::Stop);
            self.closed.set(self.closed.get() || closed);
            self.generation.set(self.generation.get() + 1);
            for w in self.wakers.borrow_mut().iter_mut() {
                if let Some(w) = w.take() {
                    w.wake();
                }
            }
            if stop {
                return;
            }
        }
    }

    /// The current generation: a bot re-reads [`ShardControl::value`] when
    /// it differs from the one it saw.
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// The latest value (`Stop` once the coordinator is gone).
    pub fn value(&self) -> Control {
        if self.closed.get() {
            Control::Stop
        } else {
            self.rx.borrow().clone()
        }
    }

    /// Completes once the generation differs from `seen`. Cheap to make
    /// and to drop; while pending it keeps the task's waker in `slot`
    /// (one clone per bot task, replaced only if the task's waker changed).
    pub fn changed(&self, slot: usize, seen: u64) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| {
            if self.generation.get() != seen {
                return Poll::Ready(());
            }
            if let Some(w) = self.wakers.borrow_mut().get_mut(slot) {
                match w {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
            }
            Poll::Pending
        })
    }

    /// Completes at `Stop` (or when the coordinator is gone).
    pub async fn stopped(&self, slot: usize) {
        loop {
            let seen = self.generation();
            if matches!(self.value(), Control::Stop) {
                return;
            }
            self.changed(slot, seen).await;
        }
    }
}

/// A sleep that is made once and re-armed: resetting a pinned `Sleep`
/// only when its deadline changes costs one timer update per deadline
/// instead of one timer entry per loop turn.
pub struct Timer {
    sleep: Pin<Box<Sleep>>,
    /// The deadline armed (monotonic ns), None: disarmed.
    armed: Option<u64>,
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer {
    pub fn new() -> Self {
        Self {
            // Never polled while disarmed.
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            armed: None,
        }
    }

    /// Arm for the monotonic time `at` (None: disarm). A deadline equal
    /// to the armed one changes nothing.
    pub fn set(&mut self, at: Option<u64>) {
        if at == self.armed {
            return;
        }
        self.armed = at;
        if let Some(ns) = at {
            let now = mono_ns();
            // tokio's Instant is CLOCK_MONOTONIC too; the offset from now
            // carries the deadline over.
            self.sleep
                .as_mut()
                .reset(Instant::now() + Duration::from_nanos(ns.saturating_sub(now)));
        }
    }

    pub fn is_armed(&self) -> bool {
        self.armed.is_some()
    }

    /// Completes when the armed deadline passes; then the timer is
    /// disarmed (the next [`Timer::set`] re-arms it, even for the same
    /// deadline). Poll only while armed.
    pub fn fired(&mut self) -> impl Future<Output = ()> + '_ {
        poll_fn(move |cx| match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.armed = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// A bot waiting on `changed` is woken by every value the coordinator
    /// sends, sees `Stop` through `stopped`, and a closed channel reads as
    /// `Stop`.
    #[test]
    fn control_wakes_waiting_bots_once_per_change() {
        rt().block_on(async {
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async {
                    let (tx, rx) = watch::channel(Control::Ramp);
                    let c = Rc::new(ShardControl::new(rx, 2));
                    let runner = tokio::task::spawn_local({
                        let c = c.clone();
                        async move { c.run().await }
                    });
                    let seen = c.generation();
                    let waiter = tokio::task::spawn_local({
                        let c = c.clone();
                        async move {
                            c.changed(0, seen).await;
                            c.value()
                        }
                    });
                    let stopper = tokio::task::spawn_local({
                        let c = c.clone();
                        async move { c.stopped(1).await }
                    });
                    tokio::task::yield_now().await;
                    tx.send(Control::Go {
                        start_ns: 1,
                        end_ns: 2,
                        members: Default::default(),
                    })
                    .expect("send");
                    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
                        .await
                        .expect("woken")
                        .expect("task");
                    assert!(matches!(got, Control::Go { start_ns: 1, .. }));
                    assert!(!stopper.is_finished(), "Go is not Stop");
                    tx.send(Control::Stop).expect("send");
                    tokio::time::timeout(Duration::from_secs(5), stopper)
                        .await
                        .expect("stopped")
                        .expect("task");
                    tokio::time::timeout(Duration::from_secs(5), runner)
                        .await
                        .expect("the control task ends at Stop")
                        .expect("task");

                    // The coordinator gone: Stop.
                    let (tx, rx) = watch::channel(Control::Ramp);
                    let c = Rc::new(ShardControl::new(rx, 1));
                    let runner = tokio::task::spawn_local({
                        let c = c.clone();
                        async move { c.run().await }
                    });
                    let stopper = tokio::task::spawn_local({
                        let c = c.clone();
                        async move { c.stopped(0).await }
                    });
                    tokio::task::yield_now().await;
                    drop(tx);
                    tokio::time::timeout(Duration::from_secs(5), stopper)
                        .await
                        .expect("stopped when the sender is gone")
                        .expect("task");
                    runner.await.expect("task");
                    assert!(matches!(c.value(), Control::Stop));
                })
                .await;
        });
    }

    /// The timer fires at its deadline, disarms itself, and re-arms for a
    /// new (or the same) deadline.
    #[test]
    fn timer_fires_and_rearms() {
        rt().block_on(async {
            let mut t = Timer::new();
            assert!(!t.is_armed());
            let start = mono_ns();
            t.set(Some(start + 20_000_000));
            assert!(t.is_armed());
            tokio::time::timeout(Duration::from_secs(5), t.fired())
                .await
                .expect("fires");
            assert!(mono_ns() >= start + 19_000_000, "not before its deadline");
            assert!(!t.is_armed(), "disarmed once fired");
            // A deadline in the past fires at once.
            t.set(Some(start));
            tokio::time::timeout(Duration::from_secs(5), t.fired())
                .await
                .expect("fires again");
            // Moved later: waits for the new deadline, not the old one.
            let now = mono_ns();
            t.set(Some(now + 1_000_000_000));
            t.set(Some(now + 30_000_000));
            tokio::time::timeout(Duration::from_secs(5), t.fired())
                .await
                .expect("fires at the moved deadline");
            assert!(mono_ns() < now + 900_000_000);
        });
    }
}
