//! What the server holds right now, on request: on `SIGUSR1` it logs one
//! INFO line `stats users=N rooms=N tasks=N`, so an operator (or the soak
//! test, tests/tests/soak.rs) can check that a long churning run leaves
//! nothing behind: registered users, rooms (the default room included),
//! and live tokio tasks (tokio's runtime metrics). Read-only.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::ctx::Ctx;

/// Listen for `SIGUSR1` for the life of the runtime and log the counts
/// each time it comes.
pub fn spawn_on_sigusr1(ctx: Arc<Ctx>) {
    let mut usr1 = match signal(SignalKind::user_defined1()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "no SIGUSR1 stats: cannot install the handler");
            return;
        }
    };
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            info!(
                users = ctx.hub.user_count(),
                rooms = ctx.hub.room_count(),
                tasks = tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks(),
                "stats"
            );
        }
    });
}
