//! `sockchat lab`: the classic abrupt-disconnect experiments on real sockets.
//!
//! Every scenario builds fresh sockets (its own listener on 127.0.0.1 port 0,
//! its own child processes, its own network namespaces), makes one side do
//! something abrupt, and records what the *other* side's syscalls returned,
//! in the reason vocabulary of [`sockchat_shared::DisconnectReason`], next to
//! what Linux is expected to do. Nothing is simulated: a scenario that cannot
//! run here (no root for namespaces) says so and is reported as skipped.
//!
//! Module map: `outcome` (result type, table, JSON), `tcp` (loopback TCP
//! cases), `procs` (cases that need a real process to die: kill -9, server
//! restart, and the hidden child entry point), `window` (zero window),
//! `netns` (pulled cable across two namespaces), `udp`, `remote` (the actor
//! side against a live sockchat-server, observed by a second chat client),
//! `cleanup` (nothing outlives the lab, not even on Ctrl-C).

mod cleanup;
mod netns;
pub mod outcome;
mod procs;
pub mod remote;
mod tcp;
mod udp;
mod window;

use std::io::Write as _;
use std::process::ExitCode;

use outcome::{Outcome, Status};

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

/// Where a scenario runs when `--server` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Remote {
    /// Only locally (needs control of both ends, or of the server process).
    LocalOnly,
    /// The actor side can run against a live sockchat-server.
    Supported,
}

/// One experiment: a name for `--only`, a one-line summary for `--list`.
struct Scenario {
    name: &'static str,
    summary: &'static str,
    remote: Remote,
    run: fn(&Ctx) -> Outcome,
}

/// What every scenario may need to know.
pub struct Ctx {
    /// `--server`: run the actor side against this live server.
    pub server: Option<String>,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "normal-close",
        summary: "close() with nothing unread: FIN, peer reads EOF",
        remote: Remote::Supported,
        run: tcp::normal_close,
    },
    Scenario {
        name: "close-unread",
        summary: "close() with unread data in the receive buffer: RST, peer gets ECONNRESET",
        remote: Remote::Supported,
        run: tcp::close_unread,
    },
    Scenario {
        name: "linger-zero",
        summary: "SO_LINGER {on, 0} then close(): RST, peer gets ECONNRESET",
        remote: Remote::Supported,
        run: tcp::linger_zero,
    },
    Scenario {
        name: "kill9-sending",
        summary: "process killed with SIGKILL while sending, nothing unread: peer drains, then EOF",
        remote: Remote::Supported,
        run: procs::kill9_sending,
    },
    Scenario {
        name: "kill9-unread",
        summary: "process killed with SIGKILL while sending, with unread data: RST, ECONNRESET",
        remote: Remote::Supported,
        run: procs::kill9_unread,
    },
    Scenario {
        name: "write-after-close",
        summary: "peer closed, we write twice: first write ok, second EPIPE (SIGPIPE ignored)",
        remote: Remote::LocalOnly,
        run: tcp::write_after_close,
    },
    Scenario {
        name: "connect-refused",
        summary: "connect where nothing listens: ECONNREFUSED",
        remote: Remote::LocalOnly,
        run: tcp::connect_refused,
    },
    Scenario {
        name: "half-close",
        summary: "shutdown(Write): peer reads EOF but can still send, and we still receive",
        remote: Remote::Supported,
        run: tcp::half_close,
    },
    Scenario {
        name: "zero-window",
        summary: "receiver stops reading: send queue and window fill, timed write fails (EAGAIN)",
        remote: Remote::LocalOnly,
        run: window::zero_window,
    },
    Scenario {
        name: "cable-pulled-send",
        summary: "path disappears while data is in flight: TCP_USER_TIMEOUT gives ETIMEDOUT",
        remote: Remote::LocalOnly,
        run: netns::cable_pulled_send,
    },
    Scenario {
        name: "cable-pulled-idle",
        summary: "path disappears on an idle connection: keepalive gives ETIMEDOUT",
        remote: Remote::LocalOnly,
        run: netns::cable_pulled_idle,
    },
    Scenario {
        name: "server-restart",
        summary: "server process stops and comes back: EOF, ECONNREFUSED while down, reconnect",
        remote: Remote::LocalOnly,
        run: procs::server_restart,
    },
    Scenario {
        name: "udp-peer-gone",
        summary: "UDP peer disappears: no signal at all, only our own timeout",
        remote: Remote::LocalOnly,
        run: udp::peer_gone,
    },
    Scenario {
        name: "udp-refused",
        summary: "connected UDP socket, nothing listening: ECONNREFUSED on the next receive",
        remote: Remote::LocalOnly,
        run: udp::connected_refused,
    },
];

/// The scenario names, in run order.
pub fn scenario_names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|s| s.name).collect()
}

pub fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    if let Some(mode) = &args.child {
        return procs::child_main(
            mode,
            args.child_addr.as_deref(),
            args.child_nick.as_deref(),
            args.child_room.as_deref(),
        );
    }
    if args.list {
        for s in SCENARIOS {
            let remote = match s.remote {
                Remote::Supported => " [--server]",
                Remote::LocalOnly => "",
            };
            println!("{:<18} {}{remote}", s.name, s.summary);
        }
        return Ok(ExitCode::SUCCESS);
    }
    for name in &args.only {
        if !SCENARIOS.iter().any(|s| s.name == name) {
            return Err(crate::cli::usage(format!(
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
    let ctx = Ctx {
        server: args.server.clone(),
    };
    let selected = SCENARIOS
        .iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|n| n == s.name));
    let mut outcomes = Vec::new();
    let mut stdout = std::io::stdout();
    for s in selected {
        // A panicking scenario is a failed scenario, not a failed lab; its
        // guards have already cleaned up while unwinding.
        let o = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (s.run)(&ctx)))
            .unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                Outcome::setup_failed(s.name, "no-panic", &anyhow::anyhow!("panicked: {msg}"))
            });
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
