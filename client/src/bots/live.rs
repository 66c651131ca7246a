//! What a shard has besides its bots, the same for both engines (the task
//! engine in `engine`, the shard loop in `pump`): the current-thread tokio
//! runtime it runs on and the slot where it publishes its counters for the
//! live view. Kept apart from both so that `engine` (which starts shard
//! loops) and `pump` (which needs these) do not import each other.

use std::sync::Mutex;

use anyhow::Context;

use super::bot::Shard;
use super::schedule::mono_ns;
use super::stats::Stats;

/// A shard's runtime: current-thread, one per OS thread.
pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build a tokio runtime")
}

/// Publish a shard's counters for the live view; `false` when the
/// coordinator holds the slot (it is reading it): try again soon.
///
/// Never waits for the lock: the coordinator thread can be preempted while
/// it holds it (on a busy machine for milliseconds), and a shard blocked
/// here sends late, which the bots would report as the server's latency
/// (`--timeline` showed 3-5 ms stalls about every 100 ms, the coordinator's
/// tick).
pub(super) fn publish(si: usize, sh: &Shard, live: &[Mutex<Stats>]) -> bool {
    let Some(m) = live.get(si) else { return true };
    let mut snap = sh.stats.borrow().counters();
    snap.published_ns = mono_ns();
    match m.try_lock() {
        Ok(mut slot) => {
            *slot = snap;
            true
        }
        Err(std::sync::TryLockError::Poisoned(_)) => true,
        Err(std::sync::TryLockError::WouldBlock) => false,
    }
}
