//! `sockchat lab`: the classic abrupt-disconnect experiments on real sockets.
//!
//! Every scenario builds fresh sockets (its own listener on 127.0.0.1 port 0,
//! its own child processes, its own network namespaces), makes one side do
//! something abrupt, and records what the *other* side's syscalls returned,
//! in the reason vocabulary of [`sockchat_shared::DisconnectReason`], next to
//! what Linux is expected to do. Nothing is simulated: a scenario that cannot
//! run here (no root for namespaces) says so and is reported as skipped.
//!
//! Module map (no module imports this one, and none imports another in a
//! circle): `outcome` (result type, table, JSON), `probe` (what scenarios
//! observe with: deadlines, read ends, queue and state waits), `tcp`
//! (loopback TCP cases), `procs` (local cases that need a real process to
//! die: kill -9, server restart), `child` (spawning and running those
//! processes, the hidden `--child` entry point), `window` (zero window),
//! `netns` (pulled cable across two namespaces), `udp`, `remote` (the same
//! cases' actor side against a live sockchat-server, observed by a second
//! text connection), `textconn` (that text connection), `cleanup` (nothing
//! outlives the lab, not even on Ctrl-C); the seeds' socket-API claims:
//! `reuseaddr`, `reuseport`, `accept_later`, `backlog`, `sendall`,
//! `udp_naive`, and `tcptable` (the kernel's TCP table, for sockets
//! without a descriptor, and its counters). Each scenario has a local
//! function and, where it makes sense, a remote one; `run` picks.

mod accept_later;
mod backlog;
mod child;
mod cleanup;
mod netns;
mod nsenter;
pub mod outcome;
mod probe;
mod procs;
pub mod remote;
mod reuseaddr;
mod reuseport;
mod sendall;
mod tcp;
mod tcptable;
mod textconn;
mod udp;
mod udp_naive;
mod window;
pub mod wire;

use std::io::Write as _;
use std::process::ExitCode;

use outcome::{Outcome, Status};
use wire::{Wire, WireResult};

/// `sockchat lab` flags. The hidden `--child*` flags exist because the
/// kill -9 and restart scenarios need a real process of their own to kill:
/// the lab re-executes its own binary with them.
#[derive(Debug, Clone, clap::Args)]
pub struct LabArgs {
    /// Print one JSON object per scenario (one per line).
    #[arg(long)]
    pub json: bool,
    /// Run only this scenario (see --list). Repeatable.
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Run the actor side of the client scenarios against this live
    /// sockchat-server (HOST:PORT); a second connection in the same room
    /// observes the reason the server announces. Other scenarios run locally.
    #[arg(long, value_name = "ADDR")]
    pub server: Option<String>,
    /// Capture each TCP scenario's packets (on lo; the pulled cable's on its
    /// veth; needs CAP_NET_RAW), show
    /// them in tcpdump's notation and check their pattern (FIN, RST, ...).
    #[arg(long)]
    pub wire: bool,
    /// With --wire (implied): write one pcap file per scenario into DIR.
    #[arg(long, value_name = "DIR")]
    pub pcap: Option<std::path::PathBuf>,
    /// Internal: run as a lab child process (used by the kill -9 and server
    /// restart scenarios, which need a real process to die).
    #[arg(long, hide = true)]
    pub child: Option<String>,
    /// Internal: address for --child.
    #[arg(long, hide = true)]
    pub child_addr: Option<String>,
    /// Internal: nick for --child in text mode against a live server.
    #[arg(long, hide = true)]
    pub child_nick: Option<String>,
    /// Internal: room for --child in text mode against a live server.
    #[arg(long, hide = true)]
    pub child_room: Option<String>,
}

/// One experiment: a name for `--only`, a one-line summary for `--list`,
/// the local run, and the run of its actor side against a live server
/// (`--server`), if it has one (the others need control of both ends, or
/// of the server process, and run locally even with `--server`).
struct Scenario {
    name: &'static str,
    summary: &'static str,
    local: fn(&Wire) -> Outcome,
    remote: Option<fn(&str) -> Outcome>,
    /// Why `--wire` does not capture this scenario (`None`: it does).
    no_wire: Option<&'static str>,
}

const UDP_NO_WIRE: &str = "a UDP scenario: no TCP packet pattern to check";

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "normal-close",
        summary: "close() with nothing unread: FIN, peer reads EOF",
        local: tcp::normal_close,
        remote: Some(remote::normal_close),
        no_wire: None,
    },
    Scenario {
        name: "close-unread",
        summary: "close() with unread data in the receive buffer: RST, peer gets ECONNRESET",
        local: tcp::close_unread,
        remote: Some(remote::close_unread),
        no_wire: None,
    },
    Scenario {
        name: "linger-zero",
        summary: "SO_LINGER {on, 0} then close(): RST, peer gets ECONNRESET",
        local: tcp::linger_zero,
        remote: Some(remote::linger_zero),
        no_wire: None,
    },
    Scenario {
        name: "kill9-sending",
        summary: "process killed with SIGKILL while sending, nothing unread: peer drains, then EOF",
        local: procs::kill9_sending,
        remote: Some(remote::kill9_sending),
        no_wire: None,
    },
    Scenario {
        name: "kill9-unread",
        summary: "process killed with SIGKILL while sending, with unread data: RST, ECONNRESET",
        local: procs::kill9_unread,
        remote: Some(remote::kill9_unread),
        no_wire: None,
    },
    Scenario {
        name: "write-after-close",
        summary: "peer closed, we write twice: first write ok, second EPIPE (SIGPIPE ignored)",
        local: tcp::write_after_close,
        remote: None,
        no_wire: None,
    },
    Scenario {
        name: "connect-refused",
        summary: "connect where nothing listens: ECONNREFUSED",
        local: tcp::connect_refused,
        remote: None,
        no_wire: None,
    },
    Scenario {
        name: "half-close",
        summary: "shutdown(Write): peer reads EOF but can still send, and we still receive",
        local: tcp::half_close,
        remote: Some(remote::half_close),
        no_wire: None,
    },
    Scenario {
        name: "zero-window",
        summary: "receiver stops reading: send queue and window fill, timed write fails (EAGAIN)",
        local: window::zero_window,
        remote: None,
        no_wire: None,
    },
    Scenario {
        name: "cable-pulled-send",
        summary: "path disappears while data is in flight: TCP_USER_TIMEOUT gives ETIMEDOUT",
        local: netns::cable_pulled_send,
        remote: None,
        no_wire: None,
    },
    Scenario {
        name: "cable-pulled-idle",
        summary: "path disappears on an idle connection: keepalive gives ETIMEDOUT",
        local: netns::cable_pulled_idle,
        remote: None,
        no_wire: None,
    },
    Scenario {
        name: "server-restart",
        summary: "server process stops and comes back: EOF, ECONNREFUSED while down, reconnect",
        local: procs::server_restart,
        remote: None,
        no_wire: None,
    },
    Scenario {
        name: "reuseaddr-timewait",
        summary: "a port held by TIME_WAIT: bind() fails with EADDRINUSE, with SO_REUSEADDR it succeeds",
        local: reuseaddr::reuseaddr_time_wait,
        remote: None,
        no_wire: None,
    },
    Scenario {
        name: "reuseport-spread",
        summary: "two SO_REUSEPORT listeners on one port: how the kernel spreads new connections",
        local: reuseport::reuseport_spread,
        remote: None,
        no_wire: None,
    },
    Scenario {
        name: "accept-later",
        summary: "handshake and data complete before accept(); accept() returns them already there",
        local: accept_later::accept_later,
        remote: None,
        no_wire: None,
    },
    Scenario {
        name: "backlog-full",
        summary: "accept queue full: SYNs dropped and retried, connect() takes seconds or times out",
        local: backlog::backlog_full,
        remote: None,
        no_wire: None,
    },
    Scenario {
        name: "send-vs-sendall",
        summary: "non-blocking send() of 1 MiB to a peer not reading takes part, then EAGAIN; sendall loops until all is queued",
        local: sendall::send_vs_sendall,
        remote: None,
        no_wire: None,
    },
    Scenario {
        name: "udp-peer-gone",
        summary: "UDP peer disappears: no signal at all, only our own timeout",
        local: |_| udp::peer_gone(),
        remote: None,
        no_wire: Some(UDP_NO_WIRE),
    },
    Scenario {
        name: "udp-refused",
        summary: "connected UDP socket, nothing listening: ECONNREFUSED on the next receive",
        local: |_| udp::connected_refused(),
        remote: None,
        no_wire: Some(UDP_NO_WIRE),
    },
    Scenario {
        name: "udp-naive-sender",
        summary: "8,000-byte datagrams fired at a receiver that cannot keep up: the fraction that arrived, the kernel's drops",
        local: |_| udp_naive::naive_sender(),
        remote: None,
        no_wire: Some(UDP_NO_WIRE),
    },
];

/// The scenario names, in run order.
pub fn scenario_names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|s| s.name).collect()
}

pub fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    let r = run_scenarios(args);
    // A Ctrl-C may be removing this run's namespaces right now: its exit
    // status (128 + signal) is the one that counts.
    cleanup::hold_exit();
    r
}

fn run_scenarios(args: LabArgs) -> anyhow::Result<ExitCode> {
    if let Some(mode) = &args.child {
        return child::child_main(
            mode,
            args.child_addr.as_deref(),
            args.child_nick.as_deref(),
            args.child_room.as_deref(),
        );
    }
    if args.list {
        for s in SCENARIOS {
            let remote = if s.remote.is_some() {
                " [--server]"
            } else {
                ""
            };
            println!("{:<18} {}{remote}", s.name, s.summary);
        }
        return Ok(ExitCode::SUCCESS);
    }
    for name in &args.only {
        if !SCENARIOS.iter().any(|s| s.name == name) {
            return Err(crate::usage::usage(format!(
                "unknown scenario {name:?}; known: {}",
                scenario_names().join(", ")
            )));
        }
    }
    if let Some(server) = &args.server {
        remote::check_reachable(server)?;
    }
    // Before any thread exists: Ctrl-C must not leave namespaces behind.
    cleanup::install();
    let wire = Wire::new(args.wire, args.pcap.clone());
    if let Wire::Unavailable(why) = &wire {
        eprintln!("lab: --wire: {why}");
    }
    let selected = SCENARIOS
        .iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|n| n == s.name));
    let mut outcomes = Vec::new();
    let mut stdout = std::io::stdout();
    for s in selected {
        // A panicking scenario is a failed scenario, not a failed lab; its
        // guards have already cleaned up while unwinding.
        let o = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match (&args.server, s.remote) {
                (Some(server), Some(remote)) => remote(server),
                _ => (s.local)(&wire),
            }
        }))
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Outcome::setup_failed(s.name, "no-panic", &anyhow::anyhow!("panicked: {msg}"))
        });
        let mut o = match (&o.wire, wire.why_not()) {
            (None, Some(why)) => {
                let why = match (s.no_wire, &args.server) {
                    (Some(no), _) => no.to_string(),
                    (None, Some(server)) if s.remote.is_some() => {
                        format!("ran against {server}, not on this machine's loopback")
                    }
                    _ => why,
                };
                o.with_wire(Some(WireResult::NotCaptured(why)))
            }
            _ => o,
        };
        if let (Some(dir), Some(w)) = (wire.pcap_dir(), o.wire.as_mut()) {
            w.write_pcap(dir, s.name);
            if !w.ok() {
                o.status = Status::Fail;
            }
        }
        if args.json {
            // Streamed: one line per scenario as soon as it finishes.
            writeln!(stdout, "{}", o.to_json())?;
            stdout.flush()?;
        } else {
            eprintln!("lab: {:<18} {}", o.scenario, short_status(&o));
        }
        outcomes.push(o);
    }
    if !args.json {
        print!("{}", outcome::render_table(&outcomes));
    }
    let failed = outcomes.iter().any(|o| o.status == Status::Fail);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn short_status(o: &Outcome) -> &'static str {
    match o.status {
        Status::Pass => "pass",
        Status::Fail => "FAIL",
        Status::Skipped(_) => "skipped",
    }
}
