//! Several worker processes, for more connections than one process's
//! RLIMIT_NOFILE allows (the hard limit here is 20,000 per process).
//!
//! The parent re-runs its own executable as `sockchat bots <same flags>
//! --worker-index I`; worker I runs bots `n % workers == I` on the shared
//! global ramp schedule. Parent and workers talk in lines over stdio:
//!
//! ```text
//! worker -> parent   LIVE {counters}        every 100 ms
//! worker -> parent   READY {counters}       ramp done (carries members per room)
//! parent -> worker   GO start end m0,m1,..  send phase (monotonic ns; members summed)
//! parent -> worker   STOP                   drain over
//! worker -> parent   RESULT {stats, histograms}
//! ```
//! Timestamps are CLOCK_MONOTONIC, the same clock in every process, so
//! latency between a sender in one worker and a receiver in another is exact.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::BotsArgs;
use super::coord::{Outcome, QUIET, STALE, progress_bar, ramp_msg, run_msg};
use super::engine::{Engine, Slice};
use super::plan::Plan;
use super::report::cpu_now;
use super::schedule::mono_ns;
use super::stats::{Stats, hist_from_string, hist_to_string};

const TICK: Duration = Duration::from_millis(100);

#[derive(Serialize, Deserialize)]
struct WorkerResult {
    stats: Stats,
    latency: String,
    connect: String,
    /// This worker's CPU seconds from GO to STOP.
    #[serde(default)]
    send_cpu_s: f64,
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn counters_json(s: &Stats) -> String {
    serde_json::to_string(&s.counters()).unwrap_or_default()
}

/// The worker side: run our slice, follow the parent's phases.
pub fn worker_main(plan: Arc<Plan>, index: usize, t0_ns: u64) -> anyhow::Result<ExitCode> {
    let slice = Slice {
        index,
        workers: plan.workers,
    };
    let engine = Engine::start(plan.clone(), slice, t0_ns)?;
    // stdin lines arrive through a thread so the loops below can poll.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let total = engine.bots;
    let ramp_s = if plan.connect_rate > 0.0 {
        plan.total_bots() as f64 / plan.connect_rate
    } else {
        0.0
    };
    let ramp_deadline = t0_ns + ((ramp_s + plan.connect_timeout.as_secs_f64() + 2.0) * 1e9) as u64;
    loop {
        let s = engine.live();
        if s.attempted as usize >= total || mono_ns() >= ramp_deadline {
            break;
        }
        say(&format!("LIVE {}", counters_json(&s)));
        std::thread::sleep(TICK);
    }
    say(&format!("READY {}", counters_json(&engine.live())));
    let mut cpu_go = None;
    loop {
        let line = match rx.recv_timeout(TICK) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                say(&format!("LIVE {}", counters_json(&engine.live())));
                continue;
            }
            // The parent went away: stop.
            Err(mpsc::RecvTimeoutError::Disconnected) => "STOP".to_string(),
        };
        let mut parts = line.split_whitespace();
        match parts.next() {
            Some("GO") => {
                let start: u64 = parts
                    .next()
                    .and_then(|v| v.parse().ok())
                    .context("bad GO")?;
                let end: u64 = parts
                    .next()
                    .and_then(|v| v.parse().ok())
                    .context("bad GO")?;
                let members: Vec<u32> = parts
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .filter(|v| !v.is_empty())
                    .map(|v| v.parse().unwrap_or(0))
                    .collect();
                cpu_go = Some(cpu_now());
                engine.go(start, end, members);
            }
            Some("STOP") => break,
            _ => {}
        }
    }
    let send_cpu_s = cpu_go.map_or(0.0, |c| cpu_now() - c);
    let stats = engine.stop()?;
    let res = WorkerResult {
        send_cpu_s,
        latency: hist_to_string(&stats.latency),
        connect: hist_to_string(&stats.connect),
        stats,
    };
    say(&format!("RESULT {}", serde_json::to_string(&res)?));
    Ok(ExitCode::SUCCESS)
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
}

/// The parent side: start the workers and drive the phases.
pub fn run_parent(_args: &BotsArgs, plan: &Plan) -> anyhow::Result<Outcome> {
    let exe = std::env::current_exe().context("cannot find our own executable")?;
    let argv: Vec<String> = std::env::args().collect();
    let at = argv
        .iter()
        .position(|a| a == "bots")
        .context("worker mode needs the `bots` subcommand in argv")?;
    // Our own flags go to the workers, minus the ones we set for them.
    let mut passthrough = Vec::new();
    let mut it = argv[at + 1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-progress" | "--json" => {}
            "--run-id" | "--worker-index" | "--worker-t0" => {
                it.next();
            }
            s if s.starts_with("--run-id=") || s.starts_with("--worker-") => {}
            _ => passthrough.push(a.clone()),
        }
    }
    let t0 = mono_ns() + 500_000_000;
    let (tx, rx) = mpsc::channel::<(usize, String)>();
    let mut workers = Vec::new();
    for i in 0..plan.workers {
        let mut child = Command::new(&exe)
            .arg("bots")
            .args(&passthrough)
            .args(["--worker-index", &i.to_string()])
            .args(["--run-id", &plan.run_id.to_string()])
            .args(["--worker-t0", &t0.to_string()])
            .arg("--no-progress")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start a worker process")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((i, line)).is_err() {
                    break;
                }
            }
            let _ = tx.send((i, "EXIT".into()));
        });
        workers.push(Worker { child, stdin });
    }
    drop(tx);
    let n = plan.workers;
    let total = plan.total_bots();
    let mut live: Vec<Stats> = (0..n).map(|_| Stats::new(0, 0)).collect();
    let mut ready = vec![false; n];
    let mut results: Vec<Option<WorkerResult>> = (0..n).map(|_| None).collect();
    let pb = progress_bar(plan, total as u64);
    pb.set_prefix("ramp");
    let sum = |v: &[Stats]| {
        let mut s = Stats::new(0, 0);
        for x in v {
            s.merge(x);
        }
        s
    };
    // Phase machine driven by worker lines.
    let mut go_sent: Option<(u64, u64)> = None;
    // The parent's own CPU from GO to STOP (the workers report theirs).
    let mut parent_cpu = 0.0;
    let mut stop_sent = false;
    let mut drain_deadline = u64::MAX;
    let mut drain_timed_out = false;
    let mut last_delivered = 0;
    let mut last_pending = 0;
    let mut last_change = mono_ns();
    let mut prev = Stats::new(0, 0);
    let mut prev_t = mono_ns();
    let hard_deadline = mono_ns()
        + (plan.duration + plan.drain + plan.settle + plan.connect_timeout).as_nanos() as u64
        + (if plan.connect_rate > 0.0 {
            total as f64 / plan.connect_rate
        } else {
            0.0
        } * 1e9) as u64
        + 30_000_000_000;
    loop {
        if mono_ns() > hard_deadline {
            for w in &mut workers {
                let _ = w.child.kill();
            }
            bail!("workers did not finish in time");
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((i, line)) => {
                let (kind, body) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                match kind {
                    "LIVE" | "READY" => {
                        if let Ok(s) = serde_json::from_str::<Stats>(body) {
                            live[i] = s;
                        }
                        if kind == "READY" {
                            ready[i] = true;
                        }
                    }
                    "RESULT" => {
                        results[i] = Some(serde_json::from_str(body).context("bad worker result")?);
                    }
                    "EXIT" if results[i].is_none() => {
                        bail!("worker {i} exited without a result");
                    }
                    _ => {}
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if results.iter().all(Option::is_some) {
            break;
        }
        let s = sum(&live);
        let now = mono_ns();
        match go_sent {
            None => {
                pb.set_position(s.attempted);
                pb.set_message(ramp_msg(&s, total));
                if ready.iter().all(|r| *r) {
                    std::thread::sleep(plan.settle);
                    let members = sum(&live).members;
                    let start = mono_ns() + 20_000_000;
                    let end = start + plan.duration.as_nanos() as u64;
                    let m: Vec<String> = members.iter().map(u32::to_string).collect();
                    for w in &mut workers {
                        writeln!(w.stdin, "GO {start} {end} {}", m.join(","))?;
                        w.stdin.flush()?;
                    }
                    go_sent = Some((start, end));
                    parent_cpu = cpu_now();
                    drain_deadline = end + plan.drain.as_nanos() as u64;
                    pb.set_prefix("run");
                }
            }
            Some((_, end)) if !stop_sent => {
                if now - prev_t >= 250_000_000 {
                    pb.set_message(run_msg(&s, &prev, (now - prev_t) as f64 / 1e9));
                    prev = s.clone();
                    prev_t = now;
                }
                if now < end {
                    last_change = now;
                    continue;
                }
                pb.set_prefix("drain");
                // Worker snapshots travel through a pipe: allow for that.
                if s.delivered != last_delivered
                    || s.pending_out != last_pending
                    || now.saturating_sub(s.published_ns) > 2 * STALE.as_nanos() as u64
                {
                    last_delivered = s.delivered;
                    last_pending = s.pending_out;
                    last_change = now;
                }
                let done = s.delivered >= s.expected && s.pending_out == 0;
                if !done && now - last_change < QUIET.as_nanos() as u64 && now >= drain_deadline {
                    drain_timed_out = true;
                }
                if done || now - last_change >= QUIET.as_nanos() as u64 || now >= drain_deadline {
                    for w in &mut workers {
                        let _ = writeln!(w.stdin, "STOP");
                        let _ = w.stdin.flush();
                    }
                    stop_sent = true;
                    parent_cpu = cpu_now() - parent_cpu;
                }
            }
            _ => {}
        }
    }
    pb.finish_and_clear();
    for w in &mut workers {
        let _ = w.child.wait();
    }
    let mut total_stats: Option<Stats> = None;
    let mut send_cpu_s = parent_cpu;
    for r in results.into_iter().flatten() {
        send_cpu_s += r.send_cpu_s;
        let mut s = r.stats;
        if let Some(h) = hist_from_string(&r.latency) {
            s.latency = h;
        }
        if let Some(h) = hist_from_string(&r.connect) {
            s.connect = h;
        }
        match &mut total_stats {
            None => total_stats = Some(s),
            Some(t) => t.merge(&s),
        }
    }
    let stats = total_stats.context("no worker results")?;
    let (start, end) = go_sent.unwrap_or((0, 0));
    Ok(Outcome {
        window_s: stats.last_delivery_ns.max(end).saturating_sub(start) as f64 / 1e9,
        stats,
        drain_timed_out,
        send_cpu_s: stop_sent.then_some(send_cpu_s),
    })
}
