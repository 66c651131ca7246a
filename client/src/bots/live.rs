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

/// Publish a shard's counters for the live view.
pub(super) fn publish(si: usize, sh: &Shard, live: &[Mutex<Stats>]) {
    let mut snap = sh.stats.borrow().counters();
    snap.published_ns = mono_ns();
    if let Some(Ok(mut slot)) = live.get(si).map(|m| m.lock()) {
        *slot = snap;
    }
}
