//! The transport trait between the one session driver ([`super::driver`])
//! and a transport (TCP in [`super::tcp`], UDP in [`super::udp_transport`]).
//!
//! A link carries one connection (TCP) or one session (UDP) to one server
//! address: it opens, says Hello, sends and receives protocol messages,
//! answers the server's pings and reports what only its transport knows
//! (TCP_INFO and `/fault` for TCP; datagram accounting for UDP). Everything
//! the two transports share — reconnecting, nick retry, rooms, typed lines,
//! liveness, back-off — is the driver's.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use sockchat_shared::{ClientMsg, ErrorCode, ServerMsg};

use super::{CloseReason, Fault, NetConfig, SocketEvent, Transport};

/// What a link reports from [`Link::next`].
#[derive(Debug)]
pub(super) enum Up {
    /// A message from the server (its Pings are answered by the link and
    /// not reported; Pongs come as [`Up::Pong`]).
    Msg(ServerMsg),
    /// The answer to one of our pings, with its round trip.
    Pong(Duration),
    /// A transport event for the UI (TCP_INFO poll, UDP counters, a kernel
    /// error, a fault carried out...).
    Report(SocketEvent),
    /// The link is over, with its one reason. Nothing follows.
    Closed(CloseReason),
}

/// What the server said in its Welcome and what came with it.
#[derive(Debug)]
pub(super) struct Welcome {
    pub nick: String,
    pub room: String,
    pub server: String,
    /// What arrived before the Welcome (or with it), in order.
    pub early: Vec<Up>,
}

/// Why a Hello got no Welcome.
#[derive(Debug)]
pub(super) enum HelloError {
    /// The server refused the Hello with this error. After `NickTaken` and
    /// `BadName` it waits for another Hello.
    Refused { code: ErrorCode, text: String },
    /// The link is over: what arrived first (a kernel error, the
    /// server's Error and Bye...), then the reason.
    Over { early: Vec<Up>, reason: CloseReason },
}

/// Why a link could not be opened: these events, then the reason.
#[derive(Debug)]
pub(super) struct OpenError {
    pub report: Vec<SocketEvent>,
    pub reason: CloseReason,
    /// Trying again cannot help (the server shows a certificate other
    /// than the pinned one): the driver stops for good instead of
    /// reconnecting.
    pub permanent: bool,
}

/// One transport's connection to a server, driven by the session driver.
///
/// `next` and `hello` must be cancel-safe where the driver selects on them:
/// `next` is (all state lives in the link); `hello` is never cancelled
/// except to drop the link.
pub(super) trait Link: Sized {
    const TRANSPORT: Transport;

    /// Connect to `addr` (nothing of the protocol is said yet).
    async fn open(addr: SocketAddr, cfg: &NetConfig) -> Result<Self, OpenError>;

    /// Our address and the server's, for [`SocketEvent::Connected`].
    fn addrs(&self) -> (SocketAddr, SocketAddr);

    /// Say Hello with `nick` (empty: the server picks) and wait for the
    /// Welcome, answering what the transport needs on the way.
    async fn hello(&mut self, nick: &str) -> Result<Welcome, HelloError>;

    /// Send one message. `Err` is a refusal before anything was sent (too
    /// large, or too much already waits), in words for the user; a kernel
    /// error ends the link and comes from [`Link::next`].
    async fn send(&mut self, msg: &ClientMsg) -> Result<(), String>;

    /// Send a liveness ping; its Pong comes back as [`Up::Pong`].
    async fn ping(&mut self);

    /// False while the link cannot hear the server on purpose (`/fault
    /// stop-reading`, our FIN sent): no ping is expected back then.
    fn can_hear(&self) -> bool {
        true
    }

    /// Bytes queued in the link and not yet handed to the kernel: the
    /// driver sends file chunks only while this is small, so a chat line
    /// typed during a transfer waits behind little.
    fn backlog(&self) -> usize {
        0
    }

    /// True once the link has ended (a kernel error, a `/fault` that
    /// closed it...) even if [`Link::next`] has not handed out its
    /// [`Up::Closed`] yet: a Quit can no longer be said on it.
    fn is_over(&self) -> bool;

    /// The next thing that happened. Cancel-safe.
    async fn next(&mut self) -> Up;

    /// Carry out a `/fault`; what it did comes from [`Link::next`].
    async fn fault(&mut self, f: Fault);

    /// Say goodbye; [`Link::next`] ends with [`Up::Closed`] soon after.
    async fn quit(&mut self, message: String);

    /// The capture of this link's packets, handed over before the link
    /// is dropped so the packets its close sets off are still reported
    /// ([`super::after_close`]). TCP only.
    fn take_tap(&mut self) -> Option<crate::wire::Tap> {
        None
    }
}

/// What a link has to report and not yet handed out, and whether it is
/// over: both transports answer [`Link::next`] from it first.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    queue: VecDeque<Up>,
    over: bool,
}

impl Outbox {
    pub(super) fn push(&mut self, u: Up) {
        self.queue.push_back(u);
    }

    pub(super) fn report(&mut self, e: SocketEvent) {
        self.queue.push_back(Up::Report(e));
    }

    /// Whether [`Outbox::close`] was called.
    pub(super) fn is_over(&self) -> bool {
        self.over
    }

    /// The link is over with this reason: nothing follows it.
    pub(super) fn close(&mut self, reason: CloseReason) {
        self.queue.push_back(Up::Closed(reason));
        self.over = true;
    }

    /// The oldest queued report; `None` when the link must wait on its
    /// socket. After the close, once the queue is empty, never returns
    /// (the driver drops the link on [`Up::Closed`]).
    pub(super) async fn take(&mut self) -> Option<Up> {
        if let Some(u) = self.queue.pop_front() {
            return Some(u);
        }
        if self.over {
            std::future::pending::<()>().await;
        }
        None
    }
}
