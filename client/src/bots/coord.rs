//! The coordinator of an in-process run: ramp, settle, send phase, drain,
//! stop; with a live progress line (indicatif, on stderr) throughout.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::engine::{Engine, Slice};
use super::plan::Plan;
use super::report::cpu_now;
use super::schedule::mono_ns;
use super::stats::Stats;

/// What a run produced: merged numbers and the send window in seconds.
pub struct Outcome {
    pub stats: Stats,
    pub window_s: f64,
    /// The drain hit `--drain` while deliveries were still arriving: part
    /// of `lost` may be late rather than lost.
    pub drain_timed_out: bool,
    /// CPU seconds the bots used from Go to the end of the drain (every
    /// process): the send phase's cost without the ramp's.
    pub send_cpu_s: Option<f64>,
}

/// Poll period of the coordinator loops.
const TICK: Duration = Duration::from_millis(50);
/// The drain ends early once nothing has arrived for this long. Longer
/// than the worst stalls seen on a contended machine (p99.9 ~1 s): a shorter
/// quiet period cut off deliveries that were late, and counted them lost.
pub const QUIET: Duration = Duration::from_secs(2);
/// A live snapshot older than this is stale.
pub const STALE: Duration = Duration::from_millis(200);

pub fn progress_bar(plan: &Plan, total: u64) -> ProgressBar {
    if !plan.progress {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix:7} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb
}

pub fn ramp_msg(s: &Stats, total: usize) -> String {
    format!(
        "{}/{} attempted, {} connected, {} failed, {} open",
        s.attempted, total, s.connected, s.connect_errors, s.open
    )
}

pub fn run_msg(s: &Stats, prev: &Stats, dt: f64) -> String {
    let rate = (s.delivered.saturating_sub(prev.delivered)) as f64 / dt.max(1e-3);
    format!(
        "open {} | sent {} | delivered {}/{} | {:.0} deliveries/s | dup {} | pending {} KiB",
        s.open,
        s.sent + s.sent_unmeasured,
        s.delivered,
        s.expected,
        rate,
        s.duplicated,
        s.pending_out / 1024
    )
}

/// Run every bot of the plan in this process.
pub fn run_local(plan: Arc<Plan>) -> anyhow::Result<Outcome> {
    let total = plan.total_bots();
    let t0 = mono_ns() + 20_000_000;
    let engine = Engine::start(
        plan.clone(),
        Slice {
            index: 0,
            workers: 1,
        },
        t0,
    )?;
    let pb = progress_bar(&plan, total as u64);
    pb.set_prefix("ramp");

    // Ramp: until every bot has tried, or the schedule plus the connect
    // timeout (and a margin) has passed.
    let ramp_s = if plan.connect_rate > 0.0 {
        total as f64 / plan.connect_rate
    } else {
        0.0
    };
    let ramp_deadline = t0 + ((ramp_s + plan.connect_timeout.as_secs_f64() + 2.0) * 1e9) as u64;
    loop {
        let s = engine.live();
        pb.set_position(s.attempted);
        pb.set_message(ramp_msg(&s, total));
        if s.attempted as usize >= total || mono_ns() >= ramp_deadline {
            break;
        }
        std::thread::sleep(TICK);
    }
    // Let the server finish the joins before anyone sends. With no bot
    // connected there is nothing to run: report the connect errors at once.
    let nobody = engine.live().connected == 0;
    if !nobody {
        std::thread::sleep(plan.settle);
    }
    let members = engine.live().members;
    let start = mono_ns() + 10_000_000;
    let end = if nobody {
        start
    } else {
        start + plan.duration.as_nanos() as u64
    };
    let cpu0 = cpu_now();
    engine.go(start, end, members);
    pb.set_prefix("run");
    let mut prev = engine.live();
    let mut prev_t = mono_ns();
    while mono_ns() < end {
        std::thread::sleep(TICK.min(Duration::from_nanos(end.saturating_sub(mono_ns()))));
        let s = engine.live();
        let now = mono_ns();
        if now - prev_t >= 250_000_000 {
            pb.set_message(run_msg(&s, &prev, (now - prev_t) as f64 / 1e9));
            prev = s;
            prev_t = now;
        }
    }
    // Drain: wait for what is in flight, until everything expected arrived
    // and nothing is left to write, nothing arrived for QUIET, or --drain.
    pb.set_prefix("drain");
    let drain_end = mono_ns() + plan.drain.as_nanos() as u64;
    let mut last = engine.live();
    let mut last_change = mono_ns();
    let mut drain_timed_out = false;
    loop {
        std::thread::sleep(TICK);
        let s = engine.live();
        let now = mono_ns();
        pb.set_message(run_msg(&s, &last, TICK.as_secs_f64()));
        if s.delivered >= s.expected && s.pending_out == 0 {
            break;
        }
        // A stale snapshot (a starved shard thread) proves nothing: only
        // fresh numbers that stopped moving count as quiet.
        if s.delivered != last.delivered
            || s.pending_out != last.pending_out
            || now.saturating_sub(s.published_ns) > STALE.as_nanos() as u64
        {
            last_change = now;
        }
        if now - last_change >= QUIET.as_nanos() as u64 {
            break;
        }
        if now >= drain_end {
            drain_timed_out = true;
            break;
        }
        last = s;
    }
    let send_cpu_s = cpu_now() - cpu0;
    pb.finish_and_clear();
    let stats = engine.stop()?;
    let last_ns = stats.last_delivery_ns.max(end);
    Ok(Outcome {
        window_s: (last_ns.saturating_sub(start)) as f64 / 1e9,
        stats,
        drain_timed_out,
        send_cpu_s: Some(send_cpu_s),
    })
}
