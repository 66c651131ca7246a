//! `sockchat bots`: scripted bots for load tests. One process runs tens of
//! thousands of bots (shards of current-thread runtimes, see `engine`),
//! speaking the sockchat protocol (framed), plain text lines (sockchat text
//! mode or any line-based chat such as `ncat --broker --chat`), and reports
//! end-to-end latency, loss, duplicates, reordering and errors by reason.
//!
//! Module map: `parse` (values on the command line), `plan` (who does what),
//! `scenario` (TOML files), `schedule` (clock, rates), `wire` (bytes),
//! `seq` (loss/dup/reorder), `bot` (one connection's task), `wake` (what
//! wakes a bot: the shard's control generation, re-armable timers),
//! `pump` (one loop per shard over every socket, for plain loads),
//! `engine` (shards), `coord` (phases, progress), `workers` (several
//! processes), `stats`, `report`, `limits` (RLIMIT_NOFILE).

mod bot;
mod coord;
mod engine;
pub mod group;
mod limits;
mod live;
pub mod parse;
pub mod plan;
mod pump;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod seq;
mod stats;
pub mod timeline;
mod udp;
mod wake;
pub mod wire;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `sockchat bots` flags. Values like rates and durations are parsed by
/// [`parse`] so the scenario files accept the same spellings. Flags left out
/// fall back to the scenario file, then to the defaults shown.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BotsArgs {
    /// Server address (HOST:PORT), loopback only [default: 127.0.0.1:7878];
    /// several, comma-separated (cluster nodes), spread as `--spread` says.
    #[arg(long)]
    pub server: Option<String>,
    /// With several `--server`s: `bots` (bot N connects to server N mod
    /// count) or `roles` (senders to the first, the others spread over the
    /// rest: every delivery crosses nodes) [default: bots].
    #[arg(long, value_enum)]
    pub spread: Option<plan::Spread>,
    /// Print the final report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Scenario file (TOML) with groups of bots and faults.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Number of bots (`20k` works) [default: 10].
    #[arg(long)]
    pub count: Option<String>,
    /// How many of the bots send [default: 1].
    #[arg(long)]
    pub senders: Option<String>,
    /// Messages per second, all senders together (`5000/s`) [default: 100/s].
    #[arg(long)]
    pub rate: Option<String>,
    /// New connections per second during the ramp; 0 = all at once [default: 2000/s].
    #[arg(long)]
    pub connect_rate: Option<String>,
    /// Length of the send phase (`60s`, `500ms`) [default: 10s].
    #[arg(long)]
    pub duration: Option<String>,
    /// Chat text size in bytes: `64`, `32..512`, `64:90,1024:10` [default: 64].
    #[arg(long)]
    pub size: Option<String>,
    /// Number of rooms the bots are spread over [default: 1].
    #[arg(long)]
    pub rooms: Option<usize>,
    /// Room names are PREFIX0, PREFIX1, ... [default: bots].
    #[arg(long)]
    pub room_prefix: Option<String>,
    /// Wire: framed (sockchat protocol), lines (text), udp [default: framed].
    #[arg(long, value_enum)]
    pub wire: Option<wire::Wire>,
    /// Lines mode: a first line to send; `{id}` bot number, `{run}` run tag (e.g. "/nick bot{id}").
    #[arg(long)]
    pub first_line: Option<String>,
    /// Lines mode: line(s) that join the room; `{room}`, `{id}`; "none" for
    /// servers without rooms [default: "/join {room}" "/leave lobby"].
    #[arg(long)]
    pub join_line: Vec<String>,
    /// Framed/UDP: nick template; `{id}` bot number, `{run}` run tag [default: b{run}-{id}].
    #[arg(long)]
    pub nick: Option<String>,
    /// Framed mode: room to leave after joining ours; "none" to stay [default: lobby].
    #[arg(long)]
    pub leave_room: Option<String>,
    /// UDP: drop this fraction (0..1) of the bots' outgoing datagrams on
    /// purpose; the loss report should find them.
    #[arg(long)]
    pub udp_drop: Option<f64>,
    /// The server echoes a sender's own room messages back to it
    /// [default: true for framed and udp (sockchat does), false for lines].
    #[arg(long, value_name = "BOOL")]
    pub echo: Option<bool>,
    /// Source addresses to spread connections over (`127.0.0.1-127.0.0.16`).
    #[arg(long)]
    pub source_ips: Option<String>,
    /// Threads (shards) per process [default: number of CPUs; half of them
    /// for plain TCP loads (chatters, lurkers, flooders)].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Worker processes (each with its own RLIMIT_NOFILE).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Give up on a connect after this long [default: 5s].
    #[arg(long)]
    pub connect_timeout: Option<String>,
    /// Pause between the end of the ramp and the first message [default: 500ms].
    #[arg(long)]
    pub settle: Option<String>,
    /// Longest wait for in-flight deliveries after the send phase; it ends
    /// earlier once all expected deliveries arrived or nothing arrives for
    /// 2 s [default: 10s].
    #[arg(long)]
    pub drain: Option<String>,
    /// Fail (exit 1) if p99 latency is above this (`5ms`).
    #[arg(long)]
    pub max_p99: Option<String>,
    /// Fail (exit 1) if more than this many deliveries are lost (`0`, `0.1%`).
    #[arg(long)]
    pub max_loss: Option<String>,
    /// Fail (exit 1) if fewer bots than this connected.
    #[arg(long)]
    pub min_connected: Option<usize>,
    /// No live progress line.
    #[arg(long)]
    pub no_progress: bool,
    /// Report latency per slice of scheduled send time (`100ms`, `1s`):
    /// deliveries, mean, max, and how many were over 1 ms and 10 ms —
    /// when the tail happened, not only how bad it was.
    #[arg(long, value_name = "WIDTH")]
    pub timeline: Option<String>,
    /// Internal: run id shared by worker processes.
    #[arg(long, hide = true)]
    pub run_id: Option<u32>,
    /// Internal: this process is worker N of --workers (driven over stdio).
    #[arg(long, hide = true)]
    pub worker_index: Option<usize>,
    /// Internal: the ramp's start (CLOCK_MONOTONIC ns) shared by workers.
    #[arg(long, hide = true)]
    pub worker_t0: Option<u64>,
}

/// Run the bots; exit 0 when every threshold passed, 1 when one failed.
pub fn run(args: BotsArgs) -> anyhow::Result<ExitCode> {
    let mut plan = plan::Plan::from_args(&args)?;
    if args.threads.is_none() && pump::fits(&plan) {
        plan.threads = pump::default_threads(plan.threads);
    }
    let (soft, hard) = limits::raise_nofile();
    let per_process = (plan.total_bots() as u64).div_ceil(plan.workers as u64);
    let mut notes = Vec::new();
    if let Some(w) = limits::check(per_process, soft, hard, plan.workers) {
        eprintln!("sockchat bots: warning: {w}");
        notes.push(w);
    }
    if let Some(index) = args.worker_index {
        let t0 = args
            .worker_t0
            .unwrap_or_else(|| schedule::mono_ns() + 100_000_000);
        return workers::worker_main(Arc::new(plan), index, t0);
    }
    let outcome = if plan.workers > 1 {
        workers::run_parent(&args, &plan)?
    } else {
        coord::run_local(Arc::new(plan.clone()))?
    };
    if outcome.drain_timed_out {
        notes.push(format!(
            "the drain ended at --drain {:?} while deliveries were still arriving: \
             part of `lost` is late (still in flight), not lost",
            plan.drain
        ));
    }
    let report = report::Report::build(&plan, &outcome.stats, outcome.window_s, notes)
        .with_send_cpu(outcome.send_cpu_s, outcome.stats.delivered);
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(if report.thresholds.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
