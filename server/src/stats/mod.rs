//! What the server holds and has done, for its operators: [`snapshot`]
//! gathers the numbers (users, rooms, UDP sessions, messages and
//! deliveries with their rates, slow consumers cut, drops, the kernel's
//! UDP drops, uptime, live tokio tasks); they are shown to a server
//! operator's `/stats` ([`render::fields`]), logged as one INFO line
//! `stats users=N rooms=N ... tasks=N` on `SIGUSR1` and every
//! `log.stats_interval_secs` (`--stats SECS`), and served as Prometheus
//! text on `[metrics] listen` ([`http`]). The soak test
//! (tests/tests/soak.rs) reads the SIGUSR1 line to check that a long
//! churning run leaves nothing behind. Read-only.
//!
//! The totals come from [`crate::counters`] (a leaf the hot paths add
//! to); [`render`] turns a [`Snapshot`] into fields, a log line or
//! exposition text; [`http`] is the metrics endpoint.

pub mod http;
pub mod render;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sockchat_shared::udp::procfs;
use tokio::signal::unix::{SignalKind, signal};
use tracing::warn;

use crate::ctx::Ctx;

/// The server's numbers at one moment ([`snapshot`]): what
/// `/stats`, the log line and the metrics endpoint show.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Users with a nick (every transport).
    pub users: usize,
    pub rooms: usize,
    pub udp_sessions: u64,
    /// Totals since start (see `Counters`).
    pub messages: u64,
    pub deliveries: u64,
    /// `None` until the first sample (the server's first second).
    pub messages_per_sec: Option<f64>,
    pub deliveries_per_sec: Option<f64>,
    pub slow_consumers_cut: u64,
    /// Frames dropped under `slow_consumer = "drop"`, ended sessions and
    /// live ones together.
    pub dropped: u64,
    /// The kernel's `drops` of the server's UDP sockets; `None` without UDP.
    pub kernel_udp_drops: Option<u64>,
    pub uptime: Duration,
    /// Live tokio tasks (two per TCP connection, plus the server's own).
    pub tasks: usize,
    /// Log lines dropped because stderr did not take them (see
    /// [`crate::logging`]).
    pub log_lines_dropped: u64,
}

/// The server's numbers now. Rates are over the last
/// [`crate::counters::Rates::WINDOW`] (from the sampler, [`spawn_sampler`]).
pub fn snapshot(ctx: &Ctx) -> Snapshot {
    let c = ctx.hub.counters();
    let peers = ctx.hub.peers();
    let live_drops: u64 = peers.iter().map(|p| p.outbox.dropped()).sum();
    let (messages, deliveries) = (c.messages(), c.deliveries());
    let rates = c.rates.per_sec(Instant::now(), messages, deliveries);
    Snapshot {
        users: peers.len(),
        rooms: ctx.hub.room_count(),
        udp_sessions: c.udp_sessions(),
        messages,
        deliveries,
        messages_per_sec: rates.map(|r| r.0),
        deliveries_per_sec: rates.map(|r| r.1),
        slow_consumers_cut: c.slow_cut(),
        dropped: c.dropped_ended() + live_drops,
        kernel_udp_drops: kernel_udp_drops(&c.udp_inodes()),
        uptime: c.uptime(),
        tasks: tokio::runtime::Handle::try_current()
            .map(|h| h.metrics().num_alive_tasks())
            .unwrap_or(0),
        log_lines_dropped: crate::logging::dropped_lines(),
    }
}

/// The kernel's `drops` for the server's UDP sockets (the rows of
/// `/proc/net/udp{,6}` with their inodes), summed; `None` without UDP or
/// when the table cannot be read.
fn kernel_udp_drops(inodes: &[u64]) -> Option<u64> {
    if inodes.is_empty() {
        return None;
    }
    let rows = procfs::read_tables().ok()?;
    Some(
        rows.iter()
            .filter(|r| inodes.contains(&r.inode))
            .map(|r| r.drops)
            .sum(),
    )
}

/// Listen for `SIGUSR1` for the life of the runtime and log the numbers
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
            render::log(&snapshot(&ctx));
        }
    });
}

/// Sample the totals once a second (for the rates) until the server
/// stops; one timer wake-up a second, nothing per message.
pub fn spawn_sampler(ctx: Arc<Ctx>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ctx.shutdown.input_stopped() => break,
                _ = tick.tick() => {
                    let c = ctx.hub.counters();
                    c.rates.sample(Instant::now(), c.messages(), c.deliveries());
                }
            }
        }
    });
}

/// Log the numbers every `secs` seconds (`log.stats_interval_secs`,
/// `--stats SECS`) until the server stops; the rates of each line are over
/// its own interval.
pub fn spawn_periodic(ctx: Arc<Ctx>, secs: u64) {
    if secs == 0 {
        return;
    }
    tokio::spawn(async move {
        let every = Duration::from_secs(secs);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let c = ctx.hub.counters();
        let mut last = (Instant::now(), c.messages(), c.deliveries());
        loop {
            tokio::select! {
                _ = ctx.shutdown.input_stopped() => break,
                _ = tick.tick() => {
                    let mut s = snapshot(&ctx);
                    let now = Instant::now();
                    let secs = now.saturating_duration_since(last.0).as_secs_f64().max(1e-3);
                    s.messages_per_sec = Some(s.messages.saturating_sub(last.1) as f64 / secs);
                    s.deliveries_per_sec = Some(s.deliveries.saturating_sub(last.2) as f64 / secs);
                    last = (now, s.messages, s.deliveries);
                    render::log(&s);
                }
            }
        }
    });
}
