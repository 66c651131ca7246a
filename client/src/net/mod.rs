//! The network task: owns the socket, reports every state change and error
//! as a [`SocketEvent`], polls TCP_INFO on a tick, reconnects with backoff.
//!
//! **Boundary:** the UI (TUI or plain mode) never touches the socket. It sends
//! [`NetCmd`]s and receives [`SocketEvent`]s; everything it shows comes from
//! those events, so tests can replay them without a network.
//!
//! **Invariant:** strings from the server are passed on exactly as they
//! arrived (a room whose name holds an escape must stay addressable); the
//! UI sanitises them when it displays them.

mod after_close;
pub mod backoff;
mod driver;
mod fault;
pub mod known_servers;
mod lines;
mod link;
mod remembered;
mod save;
pub mod sock_diag;
mod tcp;
pub mod tls;
pub mod transfer;
pub mod udp;
mod udp_transport;

use std::net::SocketAddr;
use std::time::Duration;

use sockchat_shared::sockopt::TcpSnapshot;
use sockchat_shared::{DisconnectReason, ServerMsg, errno};
use tokio::sync::mpsc;

pub use fault::Fault;

/// How the net task connects and behaves. Built from config + flags.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// `HOST:PORT`, resolved again on every attempt (DNS may change).
    pub server: String,
    /// Nick to ask for; empty lets the server pick `guestN`.
    pub nick: String,
    /// Room to join after the welcome if the server put us elsewhere.
    pub room: String,
    pub reconnect: bool,
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
    /// TCP_INFO poll period.
    pub info_poll: Duration,
    /// How often we ping the server to measure application-level latency
    /// (at most a third of `ping_timeout`).
    pub ping_every: Duration,
    /// A ping unanswered this long (or a Welcome that does not come) ends
    /// the connection with `idle-timeout`, and we reconnect: a hung server
    /// is noticed even though the kernel still ACKs for it. Lines wait this
    /// long for their echo at most.
    pub ping_timeout: Duration,
    /// Give up a connect attempt after this long (the kernel's SYN retries
    /// take minutes; a user wants to see ETIMEDOUT sooner).
    pub connect_timeout: Duration,
    /// Client socket keepalive (so a silent dead server is found):
    /// (idle, interval, count) in seconds; None leaves keepalive off.
    pub keepalive: Option<(u32, u32, u32)>,
    /// TCP_USER_TIMEOUT in ms (0: the kernel's default): how long sent data
    /// may stay unacknowledged before the kernel gives up with ETIMEDOUT.
    pub user_timeout_ms: u32,
    /// Longest chat text we send (bytes); longer input is refused locally.
    pub max_message_len: usize,
    /// Largest frame we accept from the server.
    pub max_frame: usize,
    /// `Some`: chat over UDP (`--udp`) with these options instead of TCP.
    pub udp: Option<udp::UdpOptions>,
    /// `Some`: TLS over TCP (`--tls`). With `--udp` it only earns the
    /// warning that UDP is not encrypted.
    pub tls: Option<tls::TlsOptions>,
    /// Where accepted files are saved (`--download-dir`, `[client]
    /// download_dir`, the XDG download folder).
    pub download_dir: std::path::PathBuf,
    /// Capture this connection's own packets ([`SocketEvent::Wire`]): the
    /// TUI always does (its wire view), plain mode with `--wire`. TCP only.
    pub wire: bool,
    /// Offers from these nicks are accepted without asking (`[client]
    /// auto_accept`).
    pub auto_accept: Vec<String>,
}

impl Default for NetConfig {
    fn default() -> Self {
        let c = sockchat_shared::config::ClientConfig::default();
        let l = sockchat_shared::config::LimitsConfig::default();
        Self {
            server: c.server,
            nick: c.nick,
            room: c.room,
            reconnect: c.reconnect,
            reconnect_initial: Duration::from_millis(c.reconnect_initial_ms),
            reconnect_max: Duration::from_millis(c.reconnect_max_ms),
            info_poll: Duration::from_millis(c.info_poll_ms),
            ping_every: Duration::from_secs(2),
            ping_timeout: Duration::from_millis(c.ping_timeout_ms),
            connect_timeout: Duration::from_secs(10),
            keepalive: Some((60, 10, 5)),
            user_timeout_ms: 0,
            max_message_len: l.max_message_len,
            max_frame: l.max_frame,
            udp: None,
            tls: None,
            download_dir: save::download_dir(&c.download_dir),
            wire: false,
            auto_accept: c.auto_accept,
        }
    }
}

/// Chosen by the UI for each line the user typed (Say, Me, Private); unique
/// per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineId(pub u64);

/// What the UI asks the net task to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetCmd {
    /// `id` is Some for a line the user typed (Say / Me / Private): the
    /// driver then reports exactly one of [`SocketEvent::LineConfirmed`] /
    /// [`SocketEvent::LineFailed`] for it. Commands (Join, Who, Nick...) are
    /// sent with `id: None`.
    Send {
        id: Option<LineId>,
        msg: sockchat_shared::ClientMsg,
    },
    /// Demonstrate an abrupt disconnect (see [`Fault`]).
    Fault(Fault),
    /// `/send`, `/accept`, `/decline`, `/cancel`.
    Transfer(transfer::XferCmd),
    /// Say goodbye, close cleanly and end the task.
    Quit(String),
}

/// Which transport carries the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        })
    }
}

/// A failed system call with its real errno: the data behind every line of
/// the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    /// `connect`, `read`, `write`, `setsockopt`...
    pub syscall: &'static str,
    pub errno: i32,
}

impl SysError {
    /// From an I/O error; errors without an errno (std/tokio wrappers) are
    /// not kernel errors and return `None`.
    pub fn from_io(syscall: &'static str, e: &std::io::Error) -> Option<Self> {
        e.raw_os_error().map(|errno| Self { syscall, errno })
    }
    pub fn name(&self) -> String {
        errno::name(self.errno)
    }
    pub fn reason(&self) -> DisconnectReason {
        DisconnectReason::from_errno(self.errno)
    }
}

impl std::fmt::Display for SysError {
    /// `write: EPIPE (32) broken pipe — peer already closed; ...`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} ({}) {}",
            self.syscall,
            errno::name(self.errno),
            self.errno,
            errno::describe(self.errno)
        )?;
        let why = errno::explain(self.syscall, self.errno);
        if !why.is_empty() {
            write!(f, " — {why}")?;
        }
        Ok(())
    }
}

/// Why our own connection ended: the peer/kernel decided, or we did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The kernel or the server ended it (the one disconnect reason).
    Peer(DisconnectReason),
    /// We closed it on purpose (a `/fault` or `/quit`); the text says how.
    Local(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Peer(r) => write!(f, "{r}"),
            CloseReason::Local(s) => f.write_str(s),
        }
    }
}

/// Which side of a TCP connection has sent its FIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HalfClose {
    WeSentFin,
    PeerSentFin,
}

/// Application-level counters kept by the net task for the current
/// connection (reset on every connect).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// One TCP_INFO poll plus our counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SocketInfo {
    pub snap: TcpSnapshot,
    pub stats: Stats,
    /// True while `/fault stop-reading` is in effect.
    pub reading_paused: bool,
    /// TLS version, cipher and certificate (`--tls`).
    pub tls: Option<tls::TlsInfo>,
}

/// Everything the net task reports. The UI's whole picture of the socket is
/// built from these.
#[derive(Debug, Clone, PartialEq)]
pub enum SocketEvent {
    /// A connect attempt starts (attempt 1 is the first).
    Connecting { addr: String, attempt: u32 },
    /// The TCP handshake completed.
    Connected {
        local: SocketAddr,
        peer: SocketAddr,
        transport: Transport,
    },
    /// A message from the server, its strings as the server sent them.
    Server(ServerMsg),
    /// A system call failed (connect, read, write, setsockopt...).
    Error(SysError),
    /// One side sent FIN; the connection is half-closed.
    HalfClosed(HalfClose),
    /// The connection is over, with its one reason.
    Closed(CloseReason),
    /// Waiting before the next attempt.
    Reconnecting { delay: Duration, attempt: u32 },
    /// TCP_INFO poll.
    Info(Box<SocketInfo>),
    /// UDP poll (instead of TCP_INFO): datagrams, loss/dup/reorder, RTT,
    /// SO_RCVBUF, kernel drops.
    UdpInfo(Box<udp::UdpInfo>),
    /// The kernel's TCP state changed between two polls.
    TcpState {
        from: &'static str,
        to: &'static str,
    },
    /// Round trip of our own Ping/Pong (application latency).
    Latency(Duration),
    /// A `/fault` action was carried out.
    FaultDone {
        fault: Fault,
        did: String,
        peer_sees: String,
    },
    /// Something local went wrong or needs saying (not a kernel error).
    Local(String),
    /// The server's echo of this line arrived (Chat from our nick in that
    /// room with that text, or the Private echo from us to that nick): it
    /// is delivered.
    LineConfirmed { id: LineId },
    /// The line was not delivered, and why in plain words. Never silent.
    LineFailed { id: LineId, why: String },
    /// Sent on every tick while a ping to the server is unanswered: how
    /// long it has waited.
    Lag { waiting_ms: u64 },
    /// A file transfer's news (offer, start, progress once a second, done,
    /// failed).
    Transfer(Box<transfer::XferEvent>),
    /// Packets of our own TCP connection (with [`NetConfig::wire`]), or
    /// why there are none.
    Wire(Box<WireNews>),
    /// After our close: the socket the kernel still keeps for the
    /// connection (TIME_WAIT, FIN_WAIT2...) and its timer, read with
    /// sock_diag; sent after the close and whenever it changes or goes.
    AfterClose(Box<AfterClose>),
    /// The task ended (after /quit, or with reconnect off). `quit`: the
    /// last session ended by our Quit (the user's /quit or end of input),
    /// not by the network, a /fault or the server — what a script's exit
    /// status is made of.
    Finished { quit: bool },
}

/// What the capture of our own connection has to say.
#[derive(Debug, Clone, PartialEq)]
pub enum WireNews {
    /// Segments since the last report, oldest first; `lost`: packets the
    /// capture could not keep meanwhile (0: none missing).
    Packets {
        segments: Vec<crate::wire::Segment>,
        lost: u64,
    },
    /// No packets will come for this connection: why, and what to run.
    Off(String),
}

/// The kernel's own socket for a connection we closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterClose {
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// `None`: the kernel keeps nothing (an RST, or the peer closed first
    /// and acknowledged our FIN).
    pub socket: Option<sock_diag::KernelSocket>,
    /// sock_diag could not be asked (the socket is then unknown).
    pub error: Option<String>,
}

/// The warning for `--udp` with TLS asked for (flag or config).
pub const UDP_NOT_ENCRYPTED: &str = "WARNING: UDP is not encrypted. --tls applies to TCP only: \
over --udp everything you type, your nick and your rooms cross the network in the clear, \
and anyone on the path can read or forge it (SECURITY.md). Leave out --udp to chat over TLS.";

/// Start the net task on the current tokio runtime. The event channel is
/// bounded: if the UI falls behind, the task stops reading the socket and
/// TCP flow control pushes back on the server, instead of memory growing.
pub fn spawn(cfg: NetConfig) -> (mpsc::Sender<NetCmd>, mpsc::Receiver<SocketEvent>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(256);
    let (ev_tx, ev_rx) = mpsc::channel(4096);
    if cfg.udp.is_some() {
        if cfg.tls.is_some() {
            // Said first, before anything is sent: the user asked for
            // encryption and UDP gives none.
            let _ = ev_tx.try_send(SocketEvent::Local(UDP_NOT_ENCRYPTED.into()));
        }
        tokio::spawn(driver::run::<udp_transport::UdpTransport>(
            cfg, cmd_rx, ev_tx,
        ));
    } else {
        tokio::spawn(driver::run::<tcp::TcpLink>(cfg, cmd_rx, ev_tx));
    }
    (cmd_tx, ev_rx)
}

// ------------------------------------------- shared by the TCP and UDP tasks

/// The UI went away: nobody is listening, the task ends.
struct UiGone;

type Events = mpsc::Sender<SocketEvent>;

async fn emit(ev: &Events, e: SocketEvent) -> Result<(), UiGone> {
    // The tracing log (a file, never the screen) gets the same story.
    match &e {
        SocketEvent::Error(se) => {
            tracing::warn!(syscall = se.syscall, errno = se.errno, name = %se.name(), "socket error")
        }
        SocketEvent::Closed(r) => tracing::info!(reason = %r, "connection closed"),
        SocketEvent::Connected { local, peer, .. } => {
            tracing::info!(%local, %peer, "connected")
        }
        SocketEvent::FaultDone { fault, did, .. } => tracing::info!(%fault, did, "fault"),
        SocketEvent::Reconnecting { delay, attempt } => {
            tracing::info!(?delay, attempt, "reconnecting")
        }
        _ => {}
    }
    ev.send(e).await.map_err(|_| UiGone)
}
