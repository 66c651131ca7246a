//! The UDP transport of the session driver: a [`UdpLink`] (socket, sequence
//! numbers, cookie handshake, fault injector) behind the [`Link`] trait, plus
//! what only UDP needs on a timer: releasing held-back datagrams, the
//! counters for the socket panel, and a new Hello when the server no longer
//! knows us.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use sockchat_shared::{ClientMsg, ServerMsg};
use tokio::time::{Interval, MissedTickBehavior};

use super::link::{HelloError, Link, OpenError, Outbox, Up, Welcome};
use super::udp::{HandshakeError, Received, SendError, UdpLink};
use super::{CloseReason, Fault, NetConfig, SocketEvent, SysError, Transport};

/// How often a reordered (held-back) datagram is released at the latest.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// The first Hello is repeated after this long (then less often).
const HELLO_EVERY: Duration = Duration::from_millis(500);

/// One UDP session with the server.
pub(super) struct UdpTransport {
    link: UdpLink,
    /// The nick of our last Hello: said again when the server forgot us.
    nick: String,
    /// We said Hello again (the server forgot us) and no Welcome came yet.
    rehello: bool,
    /// How long the handshake may repeat its Hello.
    hello_limit: Duration,
    info: Interval,
    flush: Interval,
    out: Outbox,
}

/// A kernel error as events: its errno (the UI explains it), and for
/// ECONNREFUSED what it means for UDP; then the reason.
fn sys_events(syscall: &'static str, e: &io::Error) -> (Vec<SocketEvent>, CloseReason) {
    match SysError::from_io(syscall, e) {
        Some(se) => {
            let reason = CloseReason::Peer(se.reason());
            let mut report = vec![SocketEvent::Error(se)];
            if e.raw_os_error() == Some(libc::ECONNREFUSED) {
                report.push(SocketEvent::Local(
                    "UDP has no handshake: this ICMP error, reported because our UDP socket \
                     is connected, is the only sign that no server listens on that UDP port"
                        .into(),
                ));
            }
            (report, reason)
        }
        None => {
            let text = format!("{syscall}: {e}");
            (
                vec![SocketEvent::Local(text.clone())],
                CloseReason::Local(text),
            )
        }
    }
}

impl UdpTransport {
    fn fail(&mut self, syscall: &'static str, e: &io::Error) {
        let (report, reason) = sys_events(syscall, e);
        for e in report {
            self.out.report(e);
        }
        self.out.close(reason);
    }
}

impl Link for UdpTransport {
    fn is_over(&self) -> bool {
        self.out.is_over()
    }

    const TRANSPORT: Transport = Transport::Udp;

    async fn open(addr: SocketAddr, cfg: &NetConfig) -> Result<Self, OpenError> {
        let link = UdpLink::connect(addr, cfg.udp.unwrap_or_default())
            .await
            .map_err(|e| {
                let (report, reason) = sys_events("connect", &e);
                OpenError {
                    report,
                    reason,
                    permanent: false,
                }
            })?;
        let mut info = tokio::time::interval(cfg.info_poll.max(Duration::from_millis(10)));
        info.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(Self {
            link,
            nick: String::new(),
            rehello: false,
            hello_limit: cfg.ping_timeout,
            info,
            flush,
            out: Outbox::default(),
        })
    }

    fn addrs(&self) -> (SocketAddr, SocketAddr) {
        (self.link.local, self.link.peer)
    }

    /// The handshake of [`UdpLink::handshake`] (the bots use it too).
    async fn hello(&mut self, nick: &str) -> Result<Welcome, HelloError> {
        self.nick = nick.to_owned();
        let over = |early: Vec<Up>, reason| HelloError::Over { early, reason };
        match self
            .link
            .handshake(nick, HELLO_EVERY, self.hello_limit)
            .await
        {
            Ok(w) => Ok(Welcome {
                nick: w.nick,
                room: w.room,
                server: w.server,
                early: w.early.into_iter().map(Up::Msg).collect(),
            }),
            Err(HandshakeError::Refused { code, text }) if code.refuses_hello() => {
                Err(HelloError::Refused { code, text })
            }
            Err(HandshakeError::Refused { code, text }) => Err(over(
                vec![Up::Msg(ServerMsg::Error {
                    code,
                    text: text.clone(),
                })],
                CloseReason::Local(format!("refused: {text}")),
            )),
            Err(HandshakeError::Io(e)) => {
                let (report, reason) = sys_events("recv", &e);
                Err(over(report.into_iter().map(Up::Report).collect(), reason))
            }
            Err(e) => {
                let text = e.to_string();
                Err(over(
                    vec![Up::Report(SocketEvent::Local(text.clone()))],
                    CloseReason::Local(text),
                ))
            }
        }
    }

    async fn send(&mut self, msg: &ClientMsg) -> Result<(), String> {
        match self.link.send(msg).await {
            Ok(()) => Ok(()),
            Err(SendError::TooLarge(e)) => Err(e.to_string()),
            Err(SendError::Io(e)) => {
                self.fail("send", &e);
                Ok(())
            }
        }
    }

    async fn ping(&mut self) {
        if let Err(SendError::Io(e)) = self.link.ping().await {
            self.fail("send", &e);
        }
    }

    async fn next(&mut self) -> Up {
        loop {
            if let Some(u) = self.out.take().await {
                return u;
            }
            tokio::select! {
                r = self.link.recv() => match r {
                    // Answered by the link.
                    Ok(Received::Msg(ServerMsg::Ping { .. })) => {}
                    Ok(Received::Msg(ServerMsg::Pong { .. })) => {
                        if let Some(rtt) = self.link.rtt() {
                            return Up::Pong(rtt);
                        }
                    }
                    Ok(Received::Msg(ServerMsg::Bye { reason })) => {
                        self.out.push(Up::Msg(ServerMsg::Bye { reason: reason.clone() }));
                        self.out.close(CloseReason::Peer(reason));
                    }
                    Ok(Received::Msg(m @ ServerMsg::Welcome { .. })) => {
                        self.rehello = false;
                        return Up::Msg(m);
                    }
                    // Our Hello again was refused (a registered nick, a ban,
                    // a taken nick): this link has no session and will get
                    // none. End it, so the driver connects again and its
                    // Hello handles the refusal (a guest nick, then identify).
                    Ok(Received::Msg(ServerMsg::Error { code, text }))
                        if self.rehello && code.refuses_hello() =>
                    {
                        self.rehello = false;
                        self.out.push(Up::Msg(ServerMsg::Error { code, text: text.clone() }));
                        self.out.close(CloseReason::Local(format!(
                            "the server refused our Hello again: {text}"
                        )));
                    }
                    Ok(Received::Msg(m)) => return Up::Msg(m),
                    Ok(Received::Retry { cookie }) => {
                        // The server no longer knows us (it restarted, or
                        // timed us out): prove our address and say hello
                        // again; its Welcome restores the session.
                        self.out.push(Up::Report(SocketEvent::Local(
                            "the server does not know this UDP session any more (restarted or timed out?): saying hello again".into(),
                        )));
                        self.link.new_session(cookie);
                        self.rehello = true;
                        let hello = ClientMsg::Hello { nick: self.nick.clone() };
                        if let Err(SendError::Io(e)) = self.link.send(&hello).await {
                            self.fail("send", &e);
                        }
                    }
                    Err(e) => self.fail("recv", &e),
                },
                _ = self.info.tick() => {
                    return Up::Report(SocketEvent::UdpInfo(Box::new(self.link.info())));
                }
                _ = self.flush.tick(), if self.link.holding() => {
                    if let Err(e) = self.link.flush_faults().await {
                        self.fail("send", &e);
                    }
                }
            }
        }
    }

    async fn fault(&mut self, f: Fault) {
        self.out.push(Up::Report(SocketEvent::Local(format!(
            "/fault {f} is a TCP experiment; over UDP use --udp-drop/--udp-dup/--udp-reorder"
        ))));
    }

    async fn quit(&mut self, message: String) {
        let _ = self.link.send(&ClientMsg::Quit { message }).await;
        let _ = self.link.flush_faults().await;
        self.out.close(CloseReason::Local(
            "quit (UDP: one Quit datagram, no FIN; if it is lost the server times us out)".into(),
        ));
    }
}
