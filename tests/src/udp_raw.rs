//! A minimal UDP client written from PROTOCOL.md ("UDP") with only the
//! shared datagram codec: the padded Hello, the cookie retry, then one
//! message per datagram. Tests use it to see exactly which datagrams the
//! server sends (sequence numbers included), without the sockchat client's
//! own logic in between.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use sockchat_shared::udp::{self, ServerBody};
use sockchat_shared::{ClientMsg, ErrorCode, ServerMsg};
use tokio::net::UdpSocket;

/// One raw UDP session to a server.
#[derive(Debug)]
pub struct RawUdp {
    pub sock: UdpSocket,
    /// Next client→server sequence number.
    pub seq: u32,
    /// Largest datagram we send and accept.
    pub max: usize,
    /// The session token: the cookie our last Hello echoed, carried by
    /// every later datagram (PROTOCOL.md, "UDP").
    pub token: Option<u64>,
}

/// One datagram from the server: its sequence number, its size on the
/// wire, and what it carried.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub seq: u32,
    pub len: usize,
    pub body: ServerBody,
}

impl RawUdp {
    /// A connected UDP socket to `server`, no datagram sent yet.
    pub async fn bind(server: SocketAddr, max: usize) -> std::io::Result<RawUdp> {
        Self::bind_from(server, IpAddr::V4(Ipv4Addr::LOCALHOST), max).await
    }

    /// [`Self::bind`] from local address `from` (a 127.0.0.x playing
    /// another host for per-address rules).
    pub async fn bind_from(
        server: SocketAddr,
        from: IpAddr,
        max: usize,
    ) -> std::io::Result<RawUdp> {
        let sock = UdpSocket::bind(SocketAddr::new(from, 0)).await?;
        sock.connect(server).await?;
        Ok(RawUdp {
            sock,
            seq: 0,
            max,
            token: None,
        })
    }

    /// From local address `from`: the handshake ([`Self::handshake`]);
    /// the welcomed session, or the refusal's code and text.
    pub async fn join_from(
        server: SocketAddr,
        from: IpAddr,
        nick: &str,
        d: Duration,
    ) -> Result<RawUdp, (ErrorCode, String)> {
        Self::bind_from(server, from, udp::DEFAULT_MAX_PAYLOAD)
            .await
            .expect("bind udp")
            .handshake(nick, d)
            .await
    }

    /// Bind and shake hands ([`Self::handshake`]); panics (test helper)
    /// unless welcomed within `d`.
    pub async fn join(server: SocketAddr, nick: &str, d: Duration) -> RawUdp {
        let c = Self::bind(server, udp::DEFAULT_MAX_PAYLOAD)
            .await
            .expect("bind udp");
        match c.handshake(nick, d).await {
            Ok(c) => c,
            Err(refused) => panic!("expected Welcome, got Error {refused:?}"),
        }
    }

    /// Hello, the cookie retry, Hello with the cookie; the welcomed
    /// session, or the refusal's code and text. Panics (test helper) on
    /// anything else or nothing within `d`.
    async fn handshake(mut self, nick: &str, d: Duration) -> Result<RawUdp, (ErrorCode, String)> {
        self.hello(nick, None).await;
        let cookie = match self.recv(d).await {
            Some(Datagram {
                body: ServerBody::Retry { cookie },
                ..
            }) => cookie,
            other => panic!("expected a retry, got {other:?}"),
        };
        self.hello(nick, Some(cookie)).await;
        match self.recv(d).await {
            Some(Datagram {
                body: ServerBody::Msg(ServerMsg::Welcome { .. }),
                ..
            }) => Ok(self),
            Some(Datagram {
                body: ServerBody::Msg(ServerMsg::Error { code, text }),
                ..
            }) => Err((code, text)),
            other => panic!("expected Welcome or Error, got {other:?}"),
        }
    }

    /// Send a padded Hello (with the cookie once we have one).
    pub async fn hello(&mut self, nick: &str, cookie: Option<u64>) {
        let d = udp::encode_hello(self.seq, nick, cookie, self.max).expect("hello fits");
        if cookie.is_some() {
            self.token = cookie;
        }
        self.seq = self.seq.wrapping_add(1);
        self.sock.send(&d).await.expect("send hello");
    }

    /// Send one message in one datagram (with the session token once we
    /// have one).
    pub async fn send(&mut self, msg: &ClientMsg) {
        let d = udp::encode_in_session(self.seq, self.token, msg, self.max).expect("message fits");
        self.seq = self.seq.wrapping_add(1);
        self.sock.send(&d).await.expect("send datagram");
    }

    /// The next datagram within `d` (`None` on timeout); panics on a
    /// receive error or a datagram that does not decode.
    pub async fn recv(&mut self, d: Duration) -> Option<Datagram> {
        let mut buf = vec![0u8; 65536];
        let n = match tokio::time::timeout(d, self.sock.recv(&mut buf)).await {
            Err(_) => return None,
            Ok(r) => r.expect("udp recv"),
        };
        let dg = udp::decode_server(&buf[..n], self.max)
            .unwrap_or_else(|e| panic!("undecodable datagram of {n} bytes: {e}"));
        Some(Datagram {
            seq: dg.seq,
            len: n,
            body: dg.body,
        })
    }

    /// Messages until one matches `pred` (returned with the ones before
    /// it), each within `d`; panics when none comes.
    pub async fn recv_until(
        &mut self,
        d: Duration,
        mut pred: impl FnMut(&ServerMsg) -> bool,
    ) -> (ServerMsg, Vec<ServerMsg>) {
        let mut before = Vec::new();
        loop {
            match self.recv(d).await {
                Some(Datagram {
                    body: ServerBody::Msg(m),
                    ..
                }) => {
                    if pred(&m) {
                        return (m, before);
                    }
                    before.push(m);
                }
                Some(_) => {}
                None => panic!("expected message not received over UDP; got {before:?}"),
            }
        }
    }
}
