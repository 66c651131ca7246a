//! TLS for the TCP link (`--tls`): rustls's sans-IO client driven by the
//! link's own readiness loop, so the TCP socket, TCP_INFO and the `/fault`
//! actions stay exactly as without TLS.
//!
//! Trust is on first use, like SSH: the server's certificate is not checked
//! against any authority; its SHA-256 fingerprint is compared with the one
//! pinned for this server in `known_servers` (or given with
//! `--tls-fingerprint`). First contact pins it and says so; a different one
//! is refused with a warning and the command that accepts it. The handshake
//! signature is still verified, so the server must hold the key of the
//! certificate it shows.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConnection, DigitallySignedStruct, SignatureScheme};
use sockchat_shared::fingerprint::Fingerprint;
use tokio::net::TcpStream;

use super::known_servers;

/// `--tls` and how the server's certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--tls-fingerprint`: the certificate must be this one (and it is
    /// then pinned, replacing an older pin).
    pub fingerprint: Option<Fingerprint>,
    /// The pins; `None` when no path could be found (no HOME): then only
    /// `--tls-fingerprint` can make a connection trusted.
    pub known_servers: Option<PathBuf>,
    /// The fingerprint the server announced on the LAN (the TUI's picker):
    /// checked and pinned as a first use is, when nothing is pinned for
    /// the server yet; an existing pin still wins (an announcement comes
    /// from anyone on the link).
    pub announced: Option<Fingerprint>,
}

/// What the handshake found out about the certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Trust {
    /// It matches the pin (or `--tls-fingerprint`).
    Pinned,
    /// First contact: pinned now.
    New,
    /// It is the one `--tls-fingerprint` gave (pinned now).
    Given,
}

/// A finished handshake, for the panel and the event log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    pub fingerprint: Fingerprint,
    pub trust: Trust,
}

/// Checks the certificate against the expected fingerprint and records
/// what it saw (the link reports it after the handshake).
#[derive(Debug)]
struct PinVerifier {
    expected: Option<Fingerprint>,
    seen: Mutex<Option<Fingerprint>>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = Fingerprint::of_der(end_entity);
        if let Ok(mut s) = self.seen.lock() {
            *s = Some(fp);
        }
        match self.expected {
            Some(e) if e != fp => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// One TLS session over the link's TCP socket.
pub(super) struct TlsSession {
    conn: ClientConnection,
    verifier: Arc<PinVerifier>,
    /// The server as the user named it (the key in `known_servers`).
    server: String,
    opts: TlsOptions,
    /// The pin the handshake was checked against (for the warning).
    pinned: Option<Fingerprint>,
    /// `pinned` is only the announced fingerprint: pin it on success.
    announced_only: bool,
    info: Option<TlsInfo>,
    /// The server's close_notify came with data: the data was handed out,
    /// the EOF comes with the next read.
    closed: bool,
}

/// The socket as `io::Read`/`io::Write` without blocking: rustls's
/// `read_tls`/`write_tls` get `WouldBlock` when the kernel has nothing.
struct Sock<'a>(&'a TcpStream);

impl Read for Sock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Sock<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsSession {
    /// Start a client session to `server` (HOST:PORT as typed): the pin is
    /// `--tls-fingerprint`, else `known_servers`'s line for it.
    pub(super) fn new(server: &str, opts: &TlsOptions) -> Result<Self, String> {
        let kept = match (opts.fingerprint, &opts.known_servers) {
            (Some(fp), _) => Some(fp),
            (None, Some(p)) => known_servers::lookup(p, server)
                .map_err(|e| format!("tls: cannot read {}: {e}", p.display()))?,
            (None, None) => None,
        };
        let announced_only = kept.is_none() && opts.announced.is_some();
        let pinned = kept.or(opts.announced);
        #[allow(
            deprecated,
            reason = "ring is the provider that builds here without cmake; it lacks only the post-quantum key exchange"
        )]
        let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(PinVerifier {
            expected: pinned,
            seen: Mutex::new(None),
            algs: provider.signature_verification_algorithms,
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let host = server
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(server);
        let name = ServerName::try_from(host.to_string())
            .or_else(|_| ServerName::try_from("sockchat".to_string()))
            .map_err(|e| format!("tls: server name {host:?}: {e}"))?;
        let conn =
            ClientConnection::new(Arc::new(config), name).map_err(|e| format!("tls: {e}"))?;
        Ok(Self {
            conn,
            verifier,
            server: server.to_string(),
            opts: opts.clone(),
            pinned,
            announced_only,
            info: None,
            closed: false,
        })
    }

    /// The finished handshake's version, cipher and trust.
    pub(super) fn info(&self) -> Option<&TlsInfo> {
        self.info.as_ref()
    }

    /// TLS records wait to be written (handshake, encrypted data, alerts).
    pub(super) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Say close_notify; it goes out with the next write.
    pub(super) fn close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    /// Read what the kernel has, decrypt it and append the plaintext to
    /// `rbuf`. Returns the bytes read from the socket (0: EOF, as for a
    /// plain read; a close_notify counts as EOF too). A TLS error (a bad
    /// record, a refused certificate) is `InvalidData` with its text.
    pub(super) fn read(&mut self, stream: &TcpStream, rbuf: &mut BytesMut) -> io::Result<usize> {
        if self.closed {
            return Ok(0);
        }
        let before = rbuf.len();
        let n = self.conn.read_tls(&mut Sock(stream))?;
        let state = self
            .conn
            .process_new_packets()
            .map_err(|e| self.tls_error(e))?;
        if n > 0 && self.info.is_none() && !self.conn.is_handshaking() {
            self.finish_handshake()?;
        }
        let mut plain = state.plaintext_bytes_to_read();
        while plain > 0 {
            let at = rbuf.len();
            rbuf.resize(at + plain, 0);
            let got = self.conn.reader().read(&mut rbuf[at..])?;
            rbuf.truncate(at + got);
            if got == 0 {
                break;
            }
            plain -= got;
        }
        if n > 0 && state.peer_has_closed() {
            if rbuf.len() == before {
                return Ok(0);
            }
            // The last frames (a Bye, an Error) arrived with the
            // close_notify: hand them out first.
            self.closed = true;
        }
        Ok(n)
    }

    /// Hand the plaintext in `wbuf` to TLS (all of it: rustls buffers) and
    /// write what records the socket takes. Returns bytes written to the
    /// socket.
    pub(super) fn write(&mut self, stream: &TcpStream, wbuf: &mut BytesMut) -> io::Result<usize> {
        if !wbuf.is_empty() {
            self.conn.writer().write_all(wbuf)?;
            wbuf.clear();
        }
        let mut total = 0;
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut Sock(stream)) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && total > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// The handshake is done: record version and cipher, pin a new
    /// certificate.
    fn finish_handshake(&mut self) -> io::Result<()> {
        let fp = self
            .verifier
            .seen
            .lock()
            .ok()
            .and_then(|s| *s)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "tls: no certificate"))?;
        let trust = if self.opts.fingerprint.is_some() {
            Trust::Given
        } else if self.pinned == Some(fp) && !self.announced_only {
            Trust::Pinned
        } else {
            Trust::New
        };
        // First use, or --tls-fingerprint (which replaces an older pin).
        if trust != Trust::Pinned
            && let Some(p) = &self.opts.known_servers
        {
            known_servers::pin(p, &self.server, fp)
                .map_err(|e| io::Error::other(format!("tls: cannot write {}: {e}", p.display())))?;
        }
        let version = self
            .conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .replace('_', ".");
        let cipher = self
            .conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("?")
            .to_string();
        self.info = Some(TlsInfo {
            version,
            cipher,
            fingerprint: fp,
            trust,
        });
        Ok(())
    }

    /// True when the server showed a certificate other than the pinned
    /// one (the handshake was refused for it).
    pub(super) fn certificate_changed(&self) -> bool {
        let seen = self.verifier.seen.lock().ok().and_then(|s| *s);
        matches!((seen, self.pinned), (Some(now), Some(pin)) if now != pin)
    }

    /// A TLS error in words; a changed certificate gets the whole warning.
    fn tls_error(&self, e: rustls::Error) -> io::Error {
        let seen = self.verifier.seen.lock().ok().and_then(|s| *s);
        let text = match (seen, self.pinned) {
            (Some(now), Some(pin)) if now != pin => self.changed_warning(pin, now),
            _ => format!("tls: {e}"),
        };
        io::Error::new(io::ErrorKind::InvalidData, text)
    }

    fn changed_warning(&self, pin: Fingerprint, now: Fingerprint) -> String {
        let s = &self.server;
        let whose = if self.opts.fingerprint.is_some() {
            "the fingerprint given with --tls-fingerprint".to_string()
        } else if self.announced_only {
            "the fingerprint it announced on the LAN".to_string()
        } else {
            match &self.opts.known_servers {
                Some(p) => format!("the one pinned in {}", p.display()),
                None => "the pinned one".to_string(),
            }
        };
        format!(
            "WARNING: THE TLS CERTIFICATE OF {s} HAS CHANGED. Refusing to connect. \
             It is not {whose} ({pin}); the server now shows {now}. \
             Someone may be intercepting the connection, or the server got a new certificate. \
             Ask its operator for the fingerprint it prints at start; if it is {now}, accept it with: \
             sockchat --server {s} --tls --tls-fingerprint {now}"
        )
    }
}
