//! The metrics endpoint (`[metrics] listen`, off by default): a minimal,
//! bounded HTTP/1.1 responder on its own listener. `GET /metrics` answers
//! the server's numbers as Prometheus text ([`super::render::prometheus`]);
//! anything else is 404 or 405. One request per connection, then close.
//!
//! Bounded on purpose, since anything local can connect: at most
//! [`MAX_CLIENTS`] connections at once (more are closed at accept), a
//! request head of at most [`MAX_REQUEST`] bytes (parsed by `httparse`),
//! and [`TIMEOUT`] for a whole exchange. It has no authentication, so
//! `config.rs` refuses a non-loopback address unless
//! `metrics.allow_remote` says otherwise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::{render, snapshot};
use crate::ctx::Ctx;

/// Connections served at once.
pub const MAX_CLIENTS: usize = 8;
/// Largest request head read.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Longest one exchange may take (a client that stops sending is cut).
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Bind the endpoint's listener (non-blocking, for tokio).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Serve the endpoint until the server stops.
pub async fn serve(listener: std::net::TcpListener, ctx: Arc<Ctx>) {
    let l = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "metrics listener unusable");
            return;
        }
    };
    if let Ok(a) = l.local_addr() {
        info!(addr = %a, "metrics endpoint: GET /metrics");
    }
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        tokio::select! {
            _ = ctx.shutdown.input_stopped() => break,
            r = l.accept() => match r {
                Ok((sock, peer)) => {
                    // Over the limit: closed at once, nothing read.
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        debug!(%peer, "metrics: too many connections");
                        continue;
                    };
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        if let Err(e) = tokio::time::timeout(TIMEOUT, exchange(sock, &ctx)).await
                            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
                        {
                            debug!(%peer, error = %e, "metrics request");
                        }
                    });
                }
                Err(e) => {
                    // EMFILE and friends: breathe instead of spinning.
                    debug!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Read one request head, answer it, close.
async fn exchange(mut sock: TcpStream, ctx: &Ctx) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    let reply = loop {
        let n = sock.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        match route(&buf[..len]) {
            Route::Incomplete if len == buf.len() => break Reply::status(431, "request too large"),
            Route::Incomplete => continue,
            Route::Metrics { head_only } => {
                let body = render::prometheus(&snapshot(ctx));
                break Reply {
                    status: 200,
                    content_type: render::PROMETHEUS_CONTENT_TYPE,
                    body,
                    head_only,
                };
            }
            Route::Status(code, why) => break Reply::status(code, why),
        }
    };
    sock.write_all(&reply.bytes()).await?;
    sock.shutdown().await
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// The head has not ended yet.
    Incomplete,
    /// `GET /metrics` (`HEAD`: the same without the body).
    Metrics { head_only: bool },
    /// Refused with this status.
    Status(u16, &'static str),
}

/// Decide from the bytes read so far.
fn route(head: &[u8]) -> Route {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Partial) => Route::Incomplete,
        Err(_) => Route::Status(400, "bad request"),
        Ok(httparse::Status::Complete(_)) => {
            let path = req.path.unwrap_or("");
            let path = path.split('?').next().unwrap_or("");
            match (req.method.unwrap_or(""), path) {
                ("GET", "/metrics") => Route::Metrics { head_only: false },
                ("HEAD", "/metrics") => Route::Metrics { head_only: true },
                (_, "/metrics") => Route::Status(405, "only GET"),
                _ => Route::Status(404, "not found: try /metrics"),
            }
        }
    }
}

/// One response.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    head_only: bool,
}

impl Reply {
    fn status(status: u16, why: &str) -> Self {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{why}\n"),
            head_only: false,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Request Header Fields Too Large",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.status == 405 {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        out.push_str("\r\n");
        let mut b = out.into_bytes();
        if !self.head_only {
            b.extend_from_slice(self.body.as_bytes());
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x"),
            Route::Incomplete
        );
        assert_eq!(
            route(b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.0\r\n\r\n"),
            Route::Metrics { head_only: true }
        );
        assert!(matches!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::Status(405, _)
        ));
        assert!(matches!(
            route(b"GET / HTTP/1.1\r\n\r\n"),
            Route::Status(404, _)
        ));
        assert!(matches!(
            route(b"\x00\x01 junk\r\n\r\n"),
            Route::Status(400, _)
        ));
    }

    #[test]
    fn reply_bytes() {
        let r = Reply::status(404, "nope");
        let t = String::from_utf8(r.bytes()).expect("utf-8");
        assert!(t.starts_with("HTTP/1.1 404 Not Found\r\n"), "{t}");
        assert!(
            t.contains("Content-Length: 5\r\n") && t.ends_with("\r\n\r\nnope\n"),
            "{t}"
        );
    }
}
