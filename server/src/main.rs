//! `sockchat-server`: parse flags, load config, init tracing, bind, print the
//! "listening on" lines, serve until Ctrl-C/SIGTERM. The logic lives in the
//! library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sockchat_server::{Overrides, RuntimeFlavor, Settings};

/// A LAN chat server that tells the truth about its sockets.
#[derive(Debug, Parser)]
#[command(
    name = "sockchat-server",
    version,
    about,
    after_help = "Exit codes: 0 ok (stopped by SIGINT/SIGTERM), 1 runtime failure (cannot bind, \
cannot start), 2 usage or config error (bad flag, invalid or out-of-range value, \
unreadable TLS certificate or key)."
)]
struct Args {
    /// Listen on ADDR:PORT: binds TCP *and* UDP on that port (UDP on the
    /// port TCP got, so `:0` works). Repeatable; replaces `server.listen`.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<String>,
    /// Load settings from this TOML file (see config.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Turn off per-connection message rate limits and per-address caps
    /// (trusted load tests). The global cap and slow-consumer policy stay.
    #[arg(long)]
    no_rate_limits: bool,
    /// Log filter: a level (`info`) or TARGET=LEVEL directives
    /// (`sockchat_server=debug,warn`). Wins over RUST_LOG, which wins over
    /// `log.level`; a bad filter in any of them is an error.
    #[arg(long, value_name = "FILTER")]
    log: Option<String>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long)]
    log_json: bool,
    /// Also listen for TLS (port 7879 on every --listen address unless
    /// --tls-listen or `tls.listen` says otherwise), as a `[tls]` section
    /// would. Without a certificate in the config, a self-signed one is made
    /// on first run and kept in the data dir; its fingerprint is printed.
    #[arg(long)]
    tls: bool,
    /// Listen for TLS on ADDR:PORT (repeatable; implies --tls); replaces
    /// `tls.listen`.
    #[arg(long, value_name = "ADDR:PORT")]
    tls_listen: Vec<String>,
    /// Where the self-signed certificate lives (replaces `tls.data_dir`;
    /// default $XDG_DATA_HOME/sockchat-server).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// SO_REUSEPORT: several sockchat-server processes listen on one port
    /// and the kernel spreads connections between them (with --cluster,
    /// each process is a node). Sets `server.reuse_port`.
    #[arg(long)]
    reuse_port: bool,
    /// Cluster mode: join the cluster through this NATS server
    /// (`nats://127.0.0.1:4222`; replaces `cluster.nats_url`).
    #[arg(long, value_name = "NATS_URL")]
    cluster: Option<String>,
    /// This node's name in the cluster (replaces `cluster.node`; default
    /// HOSTNAME-PID).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Log one `stats users=N rooms=N messages_per_sec=...` line every SECS
    /// seconds (replaces `log.stats_interval_secs`; 0: off). SIGUSR1 logs
    /// it at any time.
    #[arg(long, value_name = "SECS")]
    stats: Option<u64>,
    /// Serve the server's numbers as Prometheus text on
    /// http://ADDR:PORT/metrics (replaces `metrics.listen`); a
    /// non-loopback address needs `metrics.allow_remote = true`.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let settings = match Settings::load(
        args.config.as_deref(),
        Overrides {
            listen: args.listen,
            no_rate_limits: args.no_rate_limits,
            log: args.log,
            env_log: std::env::var("RUST_LOG").ok(),
            log_json: args.log_json,
            tls: args.tls,
            tls_listen: args.tls_listen,
            data_dir: args.data_dir,
            reuse_port: args.reuse_port,
            cluster: args.cluster,
            node: args.node,
            stats: args.stats,
            metrics: args.metrics,
        },
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sockchat-server: {e}");
            return ExitCode::from(2);
        }
    };
    // Kept to the end of main: dropping it writes out the queued lines.
    let _log = sockchat_server::logging::init(&settings.log_filter, settings.log_json);
    // Before the runtime: a certificate named in the config that cannot be
    // read is a config error (exit 2), like the config file itself.
    let tls = match sockchat_server::tls::TlsServer::from_config(&settings.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sockchat-server: {e}");
            return ExitCode::from(if e.is_config() { 2 } else { 1 });
        }
    };
    raise_fd_limit();
    let rt = match settings.runtime {
        RuntimeFlavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        RuntimeFlavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_all()
    .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sockchat-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(settings, tls)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sockchat-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Raise the soft RLIMIT_NOFILE to the hard limit: every connection is a
/// descriptor, and the usual soft default (1024) would hit EMFILE long
/// before `limits.max_connections`.
fn raise_fd_limit() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return;
        }
        let before = r.rlim_cur;
        // An "unlimited" hard limit is still capped by fs.nr_open.
        let target = r.rlim_max.min(1 << 20);
        if r.rlim_cur < target {
            r.rlim_cur = target;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                tracing::warn!(soft = before, "could not raise the open file limit");
                return;
            }
        }
        tracing::info!(
            soft = r.rlim_cur,
            was = before,
            "open file limit (each connection uses one descriptor)"
        );
    }
}

async fn serve(
    settings: Settings,
    tls_server: Option<sockchat_server::tls::TlsServer>,
) -> anyhow::Result<()> {
    use sockchat_server::tls;
    // TCP, then UDP on the port each TCP listener got (so `:0` works for
    // both; a port-0 collision on UDP is retried on fresh ports). With
    // tls_only neither: both are plaintext.
    let sockchat_server::bind::Bound {
        tcp: listeners,
        udp,
    } = if tls::tls_only(&settings.config) {
        sockchat_server::bind::Bound {
            tcp: Vec::new(),
            udp: Vec::new(),
        }
    } else {
        sockchat_server::bind::bind_listen_set(&settings)?
    };
    let tls = match tls_server {
        Some(server) => Some(sockchat_server::TlsListeners {
            server: std::sync::Arc::new(server),
            listeners: tls::bind(&settings)?,
        }),
        None => None,
    };
    let metrics = match settings.metrics {
        Some(a) => Some(
            sockchat_server::stats::http::bind(a)
                .map_err(|e| anyhow::anyhow!("cannot listen on {a} (metrics): {e}"))?,
        ),
        None => None,
    };
    {
        // The stdout contract test harnesses rely on: one line per listener.
        let mut out = std::io::stdout().lock();
        for l in &listeners {
            writeln!(out, "listening on {} (tcp)", l.local_addr()?)?;
        }
        if let Some(t) = &tls {
            for l in &t.listeners {
                writeln!(out, "listening on {} (tls)", l.local_addr()?)?;
            }
            writeln!(
                out,
                "tls certificate {} ({})",
                t.server.fingerprint, t.server.source
            )?;
        }
        for u in &udp {
            writeln!(out, "listening on {} (udp)", u.local_addr()?)?;
        }
        if let Some(m) = &metrics {
            writeln!(out, "listening on {} (metrics)", m.local_addr()?)?;
        }
        out.flush()?;
    }
    if let Some(t) = &tls {
        tracing::info!(fingerprint = %t.server.fingerprint, source = %t.server.source, "tls certificate");
    }
    tracing::info!(runtime = ?settings.runtime, "sockchat-server started");
    sockchat_server::run_all(settings, listeners, udp, tls, metrics, shutdown_signal()).await?;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
