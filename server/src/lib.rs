//! sockchat-server library: listeners, connections, rooms, limits, shutdown.
//!
//! `main.rs` only parses flags, initialises tracing, binds and calls
//! [`run`]; tests call [`start`] to run a real server in-process on
//! `127.0.0.1:0`.
//!
//! Code map (ARCHITECTURE.md has the long form): [`bind`] binds TCP and
//! UDP; [`listener`] accepts TCP; [`ctx`] is the shared state and
//! admission; [`connection`] is a TCP socket and its framing; [`tcp`] one
//! TCP user from accept to close; [`session`] the transport-neutral session
//! (every command, and the one end of a session); [`udp`] the UDP
//! transport; [`text`] the nc/telnet line protocol; [`hub`] rooms, nicks,
//! history and fan-out; [`outbox`] the bounded per-member queue and its
//! vectored writer; [`limits`] the token bucket and per-address cap;
//! [`shutdown`] the two-phase graceful stop; [`sockinfo`] the server's view
//! of a socket; [`config`] loads and validates settings; [`logging`] the
//! log's writer thread (a stderr nobody reads never stops a worker).

pub mod access;
pub mod announce;
pub mod auth;
pub mod bind;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod counters;
pub mod ctx;
pub mod hub;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod mmsg;
pub mod operators;
pub mod outbox;
pub mod owed;
pub mod password;
pub mod private_file;
pub mod refusal;
pub mod room_quota;
pub mod session;
pub mod shutdown;
pub mod sockinfo;
pub mod spare;
pub mod stats;
pub mod tcp;
pub mod text;
pub mod tls;
pub mod transfer;
pub mod udp;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use bind::BindError;
pub use config::{ConfigError, Overrides, RuntimeFlavor, Settings};
pub use ctx::server_name;
pub use tls::TlsListeners;

use crate::ctx::Ctx;
use crate::hub::{Hub, HubConfig};
use crate::refusal::AcceptCtx;
use crate::shutdown::Shutdown;

/// Serve on already-bound listeners until `signal` completes, then shut
/// down gracefully (bounded by `server.shutdown_grace_secs`).
pub async fn run(
    settings: Settings,
    listeners: Vec<std::net::TcpListener>,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run_with_udp(settings, listeners, Vec::new(), signal).await
}

/// [`run`] plus already-bound UDP sockets ([`bind::bind_listen_set`]), served by
/// [`udp::serve`] into the same hub.
pub async fn run_with_udp(
    settings: Settings,
    listeners: Vec<std::net::TcpListener>,
    udp_sockets: Vec<std::net::UdpSocket>,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    run_all(settings, listeners, udp_sockets, None, None, signal).await
}

/// [`run_with_udp`] plus TLS listeners, served by the same session code,
/// and the metrics endpoint's listener ([`stats::http::bind`]).
pub async fn run_all(
    settings: Settings,
    listeners: Vec<std::net::TcpListener>,
    udp_sockets: Vec<std::net::UdpSocket>,
    tls: Option<TlsListeners>,
    metrics: Option<std::net::TcpListener>,
    signal: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let settings = Arc::new(settings);
    let c = &settings.config;
    let hub = Arc::new(Hub::new(HubConfig {
        default_room: c.server.default_room.clone(),
        history: c.server.history,
        announce_max_members: c.server.announce_max_members,
        max_rooms: c.limits.max_rooms,
        room_quota: room_quota::QuotaConfig {
            per_user: (!settings.no_rate_limits).then_some(c.limits.max_rooms_created_per_user),
            per_ip: (!settings.no_rate_limits).then_some(c.limits.max_rooms_created_per_ip),
        },
        max_nick_len: c.limits.max_nick_len,
        max_room_len: c.limits.max_room_len,
        server_name: server_name(),
    }));
    // Cluster mode: the hub's uplink, set before any room exists. A bad
    // setting is an error; NATS being down is not (the node connects when
    // it can).
    let cluster = if c.cluster.nats_url.is_empty() {
        None
    } else {
        let link = cluster::start(&c.cluster, &c.access, &hub)
            .await
            .map_err(std::io::Error::other)?;
        info!(node = %link.node(), url = %c.cluster.nats_url, "cluster mode");
        hub.set_uplink(link.clone(), link.guest_base());
        Some(link)
    };
    let shutdown = Shutdown::new(Duration::from_secs(c.server.shutdown_grace_secs));
    // The registered nicks live in the data dir the TLS certificate uses.
    let auth = auth::Auth::load(&c.auth, || {
        tls::data_dir(c.tls.as_ref().unwrap_or(&Default::default())).ok()
    })
    .map_err(std::io::Error::other)?;
    // The operators' bans live beside the registered nicks.
    let bans = operators::Bans::load(
        auth.bans_file(),
        std::time::Instant::now(),
        std::time::SystemTime::now(),
    )
    .map_err(std::io::Error::other)?;
    let ctx = Arc::new(Ctx::new(
        settings.clone(),
        hub,
        shutdown.clone(),
        auth,
        bans,
        cluster.clone(),
    ));
    if let Some(link) = &cluster {
        link.attach(&ctx.auth, &ctx.bans);
    }
    let accept = Arc::new(AcceptCtx {
        ctx: ctx.clone(),
        reject_slots: Arc::new(Semaphore::new(64)),
    });
    let announcer = announce::start(
        &c.discovery,
        &announce::Listening::of(&listeners, tls.as_ref(), &udp_sockets),
        ctx.hub.clone(),
    );
    let mut loops = Vec::new();
    for l in listeners {
        let l = tokio::net::TcpListener::from_std(l)?;
        loops.push(tokio::spawn(listener::accept_loop(l, accept.clone(), None)));
    }
    if let Some(t) = tls {
        for l in t.listeners {
            let l = tokio::net::TcpListener::from_std(l)?;
            let server = Some(t.server.clone());
            loops.push(tokio::spawn(listener::accept_loop(
                l,
                accept.clone(),
                server,
            )));
        }
    }
    for u in udp_sockets {
        shutdown.tracker.spawn(udp::serve(u, ctx.clone()));
    }
    stats::spawn_on_sigusr1(ctx.clone());
    stats::spawn_sampler(ctx.clone());
    stats::spawn_periodic(ctx.clone(), c.log.stats_interval_secs);
    if let Some(m) = metrics {
        tokio::spawn(stats::http::serve(m, ctx.clone()));
    }
    signal.await;
    if let Some(a) = announcer {
        // Withdrawn first: a browser must not offer a server that is going.
        a.stop().await;
    }
    info!(
        users = ctx.hub.user_count(),
        grace_secs = c.server.shutdown_grace_secs,
        "shutting down: no new connections, telling every client"
    );
    let left = shutdown.run().await;
    for l in loops {
        let _ = l.await;
    }
    if let Some(link) = &cluster {
        // The departures reach the other nodes before the process ends.
        link.close(Duration::from_secs(2)).await;
    }
    if left > 0 {
        warn!(tasks = left, "grace period over; closing the rest");
    } else {
        info!("shutdown complete");
    }
    Ok(())
}

/// A server running in-process (tests, embedding).
#[derive(Debug)]
pub struct ServerHandle {
    /// Bound TCP addresses (with real ports when `:0` was asked).
    pub addrs: Vec<SocketAddr>,
    /// Bound UDP addresses (same ports as TCP; empty if UDP is off).
    pub udp_addrs: Vec<SocketAddr>,
    /// Bound TLS addresses (empty if TLS is off).
    pub tls_addrs: Vec<SocketAddr>,
    /// The metrics endpoint's address (`[metrics] listen`), if on.
    pub metrics_addr: Option<SocketAddr>,
    trigger: CancellationToken,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    /// The first bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Graceful shutdown, as on SIGTERM; returns when it is complete.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.trigger.cancel();
        self.done
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Why [`start`] could not start a server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot listen on {0} (metrics): {1}")]
    Metrics(SocketAddr, std::io::Error),
}

/// Bind and run a server on the current runtime; returns once it accepts.
pub async fn start(settings: Settings) -> Result<ServerHandle, StartError> {
    let tls = tls::TlsServer::from_config(&settings.config)?;
    let bind::Bound {
        tcp: listeners,
        udp: udp_sockets,
    } = if tls::tls_only(&settings.config) {
        bind::Bound {
            tcp: Vec::new(),
            udp: Vec::new(),
        }
    } else {
        bind::bind_listen_set(&settings)?
    };
    let tls = match tls {
        Some(server) => Some(TlsListeners {
            server: Arc::new(server),
            listeners: tls::bind(&settings)?,
        }),
        None => None,
    };
    let local = |l: &std::net::TcpListener| l.local_addr().ok();
    let addrs: Vec<SocketAddr> = listeners.iter().filter_map(local).collect();
    let tls_addrs = tls
        .as_ref()
        .map(|t| t.listeners.iter().filter_map(local).collect())
        .unwrap_or_default();
    let udp_addrs = udp_sockets
        .iter()
        .filter_map(|u| u.local_addr().ok())
        .collect();
    let metrics = match settings.metrics {
        Some(a) => Some(stats::http::bind(a).map_err(|e| StartError::Metrics(a, e))?),
        None => None,
    };
    let metrics_addr = metrics.as_ref().and_then(|m| m.local_addr().ok());
    let trigger = CancellationToken::new();
    let t = trigger.clone();
    let done = tokio::spawn(run_all(
        settings,
        listeners,
        udp_sockets,
        tls,
        metrics,
        async move { t.cancelled().await },
    ));
    Ok(ServerHandle {
        addrs,
        udp_addrs,
        tls_addrs,
        metrics_addr,
        trigger,
        done,
    })
}
