//! Binding the TCP listeners (socket2: SO_REUSEADDR, IPV6_V6ONLY, buffer
//! sizes, backlog) and the accept loop with the global connection cap, the
//! per-address cap and back-off when the process runs out of descriptors.
//!
//! **Boundary:** connection errors never reach the accept loop: each
//! connection classifies and logs its own end in its own task.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sockchat_shared::{ErrorCode, ServerMsg, codec, errno};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::config::Settings;
use crate::connection::{self, Ctx, Guards};
use crate::limits::PerIpLimit;

/// A listener (TCP) or its UDP socket could not be bound.
#[derive(Debug, Error)]
#[error("cannot listen on {addr} ({transport}): {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    /// "tcp" or "udp".
    pub transport: &'static str,
    pub source: io::Error,
}

/// Bind one TCP listener with the configured socket options.
pub fn bind_tcp(addr: SocketAddr, s: &Settings) -> io::Result<std::net::TcpListener> {
    let c = &s.config.server;
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // "[::]:7878" must not also grab IPv4: "0.0.0.0:7878" is its own
        // listener, and with dual-stack the second bind would fail.
        sock.set_only_v6(true)?;
    }
    // Restart without waiting out TIME_WAIT from the previous run.
    sock.set_reuse_address(c.reuse_address)?;
    // Accepted sockets inherit the buffer sizes; the receive buffer must be
    // set before listen() for the window scale to match it.
    if c.send_buffer > 0 {
        sock.set_send_buffer_size(c.send_buffer as usize)?;
    }
    if c.recv_buffer > 0 {
        sock.set_recv_buffer_size(c.recv_buffer as usize)?;
    }
    sock.set_tcp_nodelay(c.nodelay)?;
    sock.bind(&addr.into())?;
    sock.listen(c.backlog.min(i32::MAX as u32) as i32)?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

/// Bind every configured address. An IPv6 address that cannot be bound
/// (IPv6 disabled on this host) is skipped with a warning when another
/// address was bound.
pub fn bind_all(s: &Settings) -> Result<Vec<std::net::TcpListener>, BindError> {
    let mut out = Vec::new();
    let mut v6_failures = Vec::new();
    for &addr in &s.listen {
        match bind_tcp(addr, s) {
            Ok(l) => out.push(l),
            Err(e)
                if addr.is_ipv6()
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                    ) =>
            {
                v6_failures.push(BindError {
                    addr,
                    transport: "tcp",
                    source: e,
                })
            }
            Err(source) => {
                return Err(BindError {
                    addr,
                    transport: "tcp",
                    source,
                });
            }
        }
    }
    if out.is_empty() && !v6_failures.is_empty() {
        return Err(v6_failures.swap_remove(0));
    }
    for e in v6_failures {
        warn!(addr = %e.addr, error = %e.source, "IPv6 listener skipped");
    }
    Ok(out)
}

/// Shared by every accept loop.
pub(crate) struct AcceptCtx {
    pub ctx: Arc<Ctx>,
    pub slots: Arc<Semaphore>,
    pub per_ip: Option<PerIpLimit>,
    /// Bounds the short tasks that tell a refused client why.
    pub reject_slots: Arc<Semaphore>,
}

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Accept until shutdown. Out of descriptors (EMFILE) is not fatal: log it
/// clearly and back off (10 ms doubling to 1 s) so existing connections keep
/// being served; a close elsewhere frees a descriptor.
pub(crate) async fn accept_loop(listener: TcpListener, a: Arc<AcceptCtx>) {
    let shutdown = a.ctx.shutdown.clone();
    let mut backoff = Duration::ZERO;
    loop {
        let r = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.input_stopped() => break,
        };
        match r {
            Ok((stream, addr)) => {
                backoff = Duration::ZERO;
                admit(stream, addr, &a);
            }
            Err(e) if is_resource_exhaustion(&e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                let n = e.raw_os_error().unwrap_or(0);
                warn!(
                    errno = n,
                    "accept failed: {} {} ({}); backing off {} ms. Raise the fd limit (ulimit -n) or lower limits.max_connections",
                    errno::name(n),
                    n,
                    errno::describe(n),
                    backoff.as_millis()
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.input_stopped() => break,
                }
            }
            // ECONNABORTED and friends: that one connection is gone, the
            // listener is fine.
            Err(e) => debug!(error = %e, "accept error"),
        }
    }
    debug!("accept loop stopped");
}

fn admit(stream: TcpStream, addr: SocketAddr, a: &Arc<AcceptCtx>) {
    let ctx = &a.ctx;
    let max = ctx.settings.config.limits.max_connections;
    let Ok(permit) = a.slots.clone().try_acquire_owned() else {
        info!(peer = %addr, max, "refused: server full");
        reject(
            stream,
            a,
            ErrorCode::ServerFull,
            format!("server full ({max} connections); try again later"),
        );
        return;
    };
    let ip_slot = match &a.per_ip {
        None => None,
        Some(l) => match l.try_acquire(addr.ip()) {
            Some(s) => Some(s),
            None => {
                info!(peer = %addr, max = l.max(), "refused: too many connections from address");
                reject(
                    stream,
                    a,
                    ErrorCode::TooManyFromAddress,
                    format!("too many connections from {} (max {})", addr.ip(), l.max()),
                );
                return;
            }
        },
    };
    let id = ctx.next_id.fetch_add(1, Ordering::Relaxed);
    let guards = Guards {
        permit: Some(permit),
        ip_slot,
        input: ctx.shutdown.input_guard(),
    };
    ctx.shutdown
        .tracker
        .spawn(connection::serve(stream, addr, id, ctx.clone(), guards));
}

/// Tell a refused client why (in its own format), then close politely.
fn reject(stream: TcpStream, a: &Arc<AcceptCtx>, code: ErrorCode, text: String) {
    let Ok(slot) = a.reject_slots.clone().try_acquire_owned() else {
        // Too many refusals in flight: just close.
        return;
    };
    let detect = Duration::from_millis(a.ctx.settings.config.server.detect_timeout_ms);
    a.ctx.shutdown.tracker.spawn(async move {
        let _slot = slot;
        let mut stream = stream;
        let mut first = [0u8; 1];
        let framed = matches!(
            tokio::time::timeout(detect, stream.peek(&mut first)).await,
            Ok(Ok(1)) if first[0] == 0
        );
        let msg = ServerMsg::Error { code, text };
        let mut bytes = Vec::new();
        if framed {
            bytes.extend_from_slice(&sockchat_shared::proto::preamble());
            bytes.extend_from_slice(&codec::server_frame(&msg));
        } else if let Some(line) = crate::text::render(&msg) {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&bytes)).await;
        let _ = SockRef::from(&stream).shutdown(std::net::Shutdown::Write);
        // Drain briefly so unread bytes do not turn the close into RST.
        let mut buf = [0u8; 512];
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                match tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    });
}
