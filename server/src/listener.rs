//! The TCP accept loop: admission (the global connection cap and the
//! per-address cap, shared with UDP sessions through [`Ctx::admit`]), the
//! refusal a refused client reads, and back-off when the process runs out
//! of descriptors. Binding is in [`crate::bind`].
//!
//! **Boundary:** connection errors never reach the accept loop: each
//! connection classifies and logs its own end in its own task.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sockchat_shared::{ErrorCode, errno};
use socket2::SockRef;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::ctx::Refusal;
use crate::refusal::{AcceptCtx, refusal_bytes};
use crate::tcp::{self, Guards};

fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}

/// Accept until shutdown. Out of descriptors (EMFILE) is not fatal: log it
/// clearly and back off (10 ms doubling to 1 s) so existing connections keep
/// being served; a close elsewhere frees a descriptor.
///
/// With `tls`, every accepted connection is a TLS one ([`crate::tls`]).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    a: Arc<AcceptCtx>,
    tls: Option<Arc<crate::tls::TlsServer>>,
) {
    let shutdown = a.ctx.shutdown.clone();
    // Made once: a fresh cancellation future per accept would register
    // with the shutdown token (a lock every connection shares) and leave
    // it again, twice per connection under churn.
    let stopping = shutdown.input_stopped();
    tokio::pin!(stopping);
    let mut backoff = Duration::ZERO;
    loop {
        let r = tokio::select! {
            r = listener.accept() => r,
            _ = &mut stopping => break,
        };
        match r {
            Ok((stream, addr)) => {
                backoff = Duration::ZERO;
                admit(stream, addr, &a, tls.as_ref());
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
                    _ = &mut stopping => break,
                }
            }
            // ECONNABORTED and friends: that one connection is gone, the
            // listener is fine.
            Err(e) => debug!(error = %e, "accept error"),
        }
    }
    debug!("accept loop stopped");
}

fn admit(
    stream: TcpStream,
    addr: SocketAddr,
    a: &Arc<AcceptCtx>,
    tls: Option<&Arc<crate::tls::TlsServer>>,
) {
    let ctx = &a.ctx;
    let admission = match ctx.admit(addr.ip()) {
        Ok(adm) => adm,
        Err(Refusal { code, text }) => {
            info!(peer = %addr, %text, "refused");
            match tls {
                Some(t) => crate::tls::reject(stream, a, t.clone(), code, text),
                None => reject(stream, a, code, text),
            }
            return;
        }
    };
    let id = ctx.next_id.fetch_add(1, Ordering::Relaxed);
    let guards = Guards {
        admission: Some(admission),
        input: ctx.shutdown.input_guard(),
    };
    match tls {
        Some(t) => {
            ctx.shutdown.tracker.spawn(crate::tls::serve(
                stream,
                addr,
                id,
                ctx.clone(),
                guards,
                t.clone(),
            ));
        }
        None => {
            ctx.shutdown
                .tracker
                .spawn(tcp::serve(stream, addr, id, ctx.clone(), guards));
        }
    }
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
        let bytes = refusal_bytes(framed, code, text);
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
