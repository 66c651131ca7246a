//! TLS (rustls with the ring provider): the certificate (from `[tls]`, or a
//! self-signed one made on first run and kept in the data dir), the
//! listener addresses, and one TLS connection from handshake to close.
//!
//! A TLS user runs through exactly the same [`crate::tcp`] code as a plain
//! one (format detection, framing, text mode, session, outbox, owed
//! flushes): after the handshake this module relays the decrypted bytes
//! over a socketpair whose other end [`crate::tcp::serve_with_view`]
//! treats as its socket. That keeps the plain-TCP path's types and
//! syscalls unchanged (no generic, no box on the fan-out path) at the cost
//! of two more descriptors and one copy per TLS user (measured on a debug
//! build with 300 idle users: +26.5 kB and 3 fds per TLS user, +7.3 kB and
//! 1 fd per plain one). `/sockinfo` still reads TCP_INFO from the user's
//! real socket ([`TlsView`]).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sockchat_shared::config::{Config, TlsConfig};
use sockchat_shared::fingerprint::Fingerprint;
use sockchat_shared::{DisconnectReason, ErrorCode, sockopt};
use socket2::SockRef;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use crate::bind::BindError;
use crate::ctx::Ctx;
use crate::hub::SocketView;
use crate::refusal::{AcceptCtx, refusal_bytes};
use crate::tcp::{self, Guards};

/// How long the relay waits for the user's side after the session has
/// closed its own (Bye sent, FIN): the same bound as the plain drain.
const LINGER: Duration = Duration::from_secs(5);

/// The TLS listener could not be set up: the message names the file or key.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("tls: cannot read {path}: {err}")]
    Read { path: PathBuf, err: io::Error },
    #[error("tls: {path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("tls: cannot write {path}: {err}")]
    Write { path: PathBuf, err: io::Error },
    #[error("tls: {0}")]
    Other(String),
}

impl TlsError {
    /// The configuration names something unusable (a missing or bad
    /// certificate or key file): a config error (exit 2), not a failure
    /// while running.
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Read { .. } | Self::Pem { .. })
    }
}

/// The server's TLS identity, ready to accept.
pub struct TlsServer {
    acceptor: TlsAcceptor,
    /// SHA-256 of the leaf certificate, printed at start.
    pub fingerprint: Fingerprint,
    /// Where the certificate came from, for the start-up line.
    pub source: String,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("fingerprint", &self.fingerprint.to_string())
            .field("source", &self.source)
            .finish()
    }
}

/// TLS listeners ([`bind`]) and the identity they serve.
#[derive(Debug)]
pub struct TlsListeners {
    pub server: Arc<TlsServer>,
    pub listeners: Vec<std::net::TcpListener>,
}

/// Bind the TLS listeners (the same socket options as the plain ones).
pub fn bind(s: &crate::config::Settings) -> Result<Vec<std::net::TcpListener>, BindError> {
    s.tls_listen
        .iter()
        .map(|&addr| {
            crate::bind::bind_tcp(addr, s).map_err(|source| BindError {
                addr,
                transport: "tls",
                source,
            })
        })
        .collect()
}

/// True when `tls.tls_only`: no plain TCP listener and no UDP.
pub fn tls_only(c: &Config) -> bool {
    c.tls.as_ref().is_some_and(|t| t.tls_only)
}

/// The data dir: `tls.data_dir`, else `$XDG_DATA_HOME/sockchat-server`,
/// else `~/.local/share/sockchat-server`.
pub fn data_dir(t: &TlsConfig) -> Result<PathBuf, TlsError> {
    if !t.data_dir.is_empty() {
        return Ok(PathBuf::from(&t.data_dir));
    }
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(x) = nonempty("XDG_DATA_HOME") {
        return Ok(PathBuf::from(x).join("sockchat-server"));
    }
    match nonempty("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/sockchat-server")),
        None => Err(TlsError::Other(
            "no data dir: set tls.data_dir (or --data-dir), XDG_DATA_HOME or HOME".into(),
        )),
    }
}

impl TlsServer {
    /// The TLS identity `[tls]` describes; `None` when TLS is off.
    pub fn from_config(c: &Config) -> Result<Option<Self>, TlsError> {
        let Some(t) = &c.tls else {
            return Ok(None);
        };
        let (certs, key, source) = if t.cert.is_empty() {
            let dir = data_dir(t)?;
            let (cert, key) = self_signed(&dir)?;
            let (c, k) = read_pem(&cert, &key)?;
            (c, k, format!("self-signed, {}", cert.display()))
        } else {
            let (cert, key) = (PathBuf::from(&t.cert), PathBuf::from(&t.key));
            let (c, k) = read_pem(&cert, &key)?;
            (c, k, cert.display().to_string())
        };
        let fingerprint = Fingerprint::of_der(&certs[0]);
        #[allow(
            deprecated,
            reason = "ring is the provider that builds here without cmake; it lacks only the post-quantum key exchange"
        )]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Other(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Other(format!("certificate and key: {e}")))?;
        Ok(Some(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            fingerprint,
            source,
        }))
    }
}

/// `cert.pem` and `key.pem` in `dir`, made now if neither exists (the key
/// readable by its owner only). One without the other is an error: making a
/// new pair would silently change the identity clients have pinned.
fn self_signed(dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok((cert, key)),
        (false, false) => {}
        (c, _) => {
            let (have, missing) = if c { (&cert, &key) } else { (&key, &cert) };
            return Err(TlsError::Other(format!(
                "{} exists but {} does not: restore it, or remove both to make a new certificate (clients will see a changed fingerprint)",
                have.display(),
                missing.display()
            )));
        }
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |err| TlsError::Write { path, err }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let mut names = vec!["localhost".to_string()];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() && h != "localhost" {
            names.push(h.to_string());
        }
    }
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::Other(format!("cannot make a certificate: {e}")))?;
    write_new(&key, made.signing_key.serialize_pem().as_bytes(), 0o600).map_err(write_err(&key))?;
    write_new(&cert, made.cert.pem().as_bytes(), 0o644).map_err(write_err(&cert))?;
    info!(cert = %cert.display(), "made a self-signed TLS certificate");
    Ok((cert, key))
}

/// Create `path` (it must not exist) with `mode` and write `data`.
fn write_new(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn read_pem(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    let pem_err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: rustls::pki_types::pem::Error| match e {
            rustls::pki_types::pem::Error::Io(err) => TlsError::Read { path, err },
            e => TlsError::Pem {
                path,
                message: e.to_string(),
            },
        }
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(pem_err(cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err(cert))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: cert.to_path_buf(),
            message: "no CERTIFICATE in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem_err(key))?;
    Ok((certs, key))
}

/// The user's real TCP socket, shared by the TLS stream (through
/// [`Shared`]) and `/sockinfo` (through [`TlsView`]), as the plain path
/// shares its `Arc<TcpStream>`.
struct Shared(Arc<TcpStream>);

impl AsyncRead for Shared {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was cleared: the next poll registers the waker.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write))
    }
}

/// What `/sockinfo` shows for a TLS user and where an owed flush writes.
struct TlsView {
    /// The session's end of the socketpair: writes go to the relay.
    plain: Arc<TcpStream>,
    /// The user's TCP socket: TCP_INFO and queues come from here.
    real: Arc<TcpStream>,
    version: String,
    cipher: String,
    /// Set by the relay when the user's side ended with an error.
    ended: Arc<Mutex<Option<DisconnectReason>>>,
}

impl SocketView for TlsView {
    fn fields(&self) -> Vec<(String, String)> {
        let mut f = sockopt::tcp_snapshot(self.real.as_raw_fd()).to_fields();
        f.push(("tls_version".into(), self.version.clone()));
        f.push(("tls_cipher".into(), self.cipher.clone()));
        f
    }

    fn try_writev_now(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.plain.try_write_vectored(bufs)
    }

    fn end_reason(&self) -> Option<DisconnectReason> {
        self.ended.lock().ok()?.clone()
    }
}

/// What a read error on the user's side means for the session: a kernel
/// error keeps its errno (`reset`...), a bad TLS record is a protocol
/// error, and a close without close_notify is an ordinary EOF.
fn relay_end(e: &io::Error) -> Option<DisconnectReason> {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return None;
    }
    match e.raw_os_error() {
        Some(_) => Some(DisconnectReason::from_io_error(e)),
        None => Some(DisconnectReason::ProtocolError {
            detail: format!("tls: {e}"),
        }),
    }
}

/// Serve one accepted TLS connection: the handshake (within
/// `limits.handshake_timeout_secs`), then the plain session code over a
/// socketpair and the relay between the two.
pub(crate) fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    id: u64,
    ctx: Arc<Ctx>,
    guards: Guards,
    tls: Arc<TlsServer>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    Box::pin(async move {
        let real = Arc::new(stream);
        let secs = ctx.settings.config.limits.handshake_timeout_secs;
        let hs = tokio::time::timeout(
            Duration::from_secs(secs),
            tls.acceptor.accept(Shared(real.clone())),
        );
        let tls_stream = tokio::select! {
            r = hs => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    let reason = DisconnectReason::ProtocolError { detail: format!("tls handshake: {e}") };
                    return tcp::log_early_end(id, addr, &reason);
                }
                Err(_) => {
                    let reason = DisconnectReason::ProtocolError { detail: format!("tls handshake: not done within {secs} s") };
                    return tcp::log_early_end(id, addr, &reason);
                }
            },
            _ = ctx.shutdown.input_stopped() => {
                return tcp::log_early_end(id, addr, &DisconnectReason::ServerShutdown);
            }
        };
        let (version, cipher) = {
            let c = tls_stream.get_ref().1;
            let v = c
                .protocol_version()
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .replace('_', ".");
            let s = c
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("?")
                .to_string();
            (v, s)
        };
        debug!(conn_id = id, peer = %addr, %version, %cipher, "tls handshake done");
        let (relay_side, session_end) = match pair() {
            Ok(p) => p,
            Err(e) => {
                return tcp::log_early_end(id, addr, &DisconnectReason::from_io_error(&e));
            }
        };
        let ended = Arc::new(Mutex::new(None));
        let slot = ended.clone();
        let make_view: tcp::MakeView = Box::new(move |plain| {
            Arc::new(TlsView {
                plain,
                real,
                version,
                cipher,
                ended,
            })
        });
        let session = tcp::serve_with_view(session_end, addr, id, ctx.clone(), guards, make_view);
        ctx.shutdown
            .tracker
            .spawn(relay(tls_stream, relay_side, slot));
        session.await;
    })
}

/// A connected socketpair: the relay's end, and the session's end as the
/// `TcpStream` the plain path works with (its calls — read, writev,
/// shutdown, readiness — behave the same on an AF_UNIX stream socket).
fn pair() -> io::Result<(UnixStream, TcpStream)> {
    let (a, b) = UnixStream::pair()?;
    let b: OwnedFd = b.into_std()?.into();
    let b = std::net::TcpStream::from(b);
    b.set_nonblocking(true)?;
    Ok((a, TcpStream::from_std(b)?))
}

/// Relay between the TLS stream and the session's socketpair until both
/// directions are done. The session closing its side (FIN after Bye) ends
/// the TLS stream with close_notify and FIN; the user closing theirs (or a
/// TLS error) ends the session's input with EOF.
async fn relay(
    tls: tokio_rustls::server::TlsStream<Shared>,
    session: UnixStream,
    ended: Arc<Mutex<Option<DisconnectReason>>>,
) {
    let (mut tr, mut tw) = tokio::io::split(tls);
    let (mut sr, mut sw) = session.into_split();
    let up = async move {
        let r = tokio::io::copy(&mut tr, &mut sw).await;
        // The reason first, then the EOF the session will read.
        if let Err(e) = &r
            && let Some(reason) = relay_end(e)
            && let Ok(mut slot) = ended.lock()
        {
            *slot = Some(reason);
        }
        let _ = sw.shutdown().await;
        r
    };
    let down = async move {
        let r = tokio::io::copy(&mut sr, &mut tw).await;
        let _ = tw.shutdown().await;
        r
    };
    tokio::pin!(up, down);
    tokio::select! {
        r = &mut down => {
            debug!(result = ?r.map(|_| ()), "tls relay: session closed");
            let _ = tokio::time::timeout(LINGER, up).await;
        }
        r = &mut up => {
            debug!(result = ?r.map(|_| ()), "tls relay: user closed");
            // The session sees EOF and closes within its own bounds.
            let _ = tokio::time::timeout(LINGER * 2, down).await;
        }
    }
}

/// Tell a refused TLS client why, inside TLS (a plaintext line would be
/// garbage to it), then close. Bounded like [`crate::listener`]'s reject.
pub(crate) fn reject(
    stream: TcpStream,
    a: &Arc<AcceptCtx>,
    tls: Arc<TlsServer>,
    code: ErrorCode,
    text: String,
) {
    let Ok(slot) = a.reject_slots.clone().try_acquire_owned() else {
        return;
    };
    let detect = Duration::from_millis(a.ctx.settings.config.server.detect_timeout_ms);
    a.ctx.shutdown.tracker.spawn(async move {
        let _slot = slot;
        let limit = Duration::from_secs(2);
        let Ok(Ok(mut s)) =
            tokio::time::timeout(limit, tls.acceptor.accept(Shared(Arc::new(stream)))).await
        else {
            return;
        };
        let mut first = [0u8; 1];
        let framed = matches!(
            tokio::time::timeout(detect, s.read(&mut first)).await,
            Ok(Ok(1)) if first[0] == 0
        );
        let bytes = refusal_bytes(framed, code, text);
        let _ = tokio::time::timeout(limit, async {
            let _ = s.write_all(&bytes).await;
            let _ = s.shutdown().await;
        })
        .await;
    });
}
