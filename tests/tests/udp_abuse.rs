//! UDP abuse resistance against the real server binary on loopback: no
//! amplification towards addresses without a session (the spoofed-source
//! case), per-address limits on those replies, and random or malformed
//! datagrams that never panic the server or stop it serving.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::net::SocketAddr;
use std::time::Duration;

use sockchat::net::udp::{UdpLink, UdpOptions};
use sockchat_shared::udp::{self, SplitMix64};
use sockchat_shared::{ClientMsg, ServerMsg};
use sockchat_tests::{FramedClient, STEP, ServerProc};
use tokio::net::UdpSocket;

/// Send `probe` from a fresh socket (an address the server has never seen,
/// as a spoofed source would be) and collect every reply for `wait`.
async fn probe(server: SocketAddr, probe: &[u8], wait: Duration) -> Vec<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    s.send_to(probe, server).await.expect("send");
    let mut replies = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(Ok((n, _))) = tokio::time::timeout(wait, s.recv_from(&mut buf)).await {
        replies.push(buf[..n].to_vec());
    }
    replies
}

#[tokio::test]
async fn no_reply_to_an_unknown_address_is_larger_than_its_datagram() {
    let srv = ServerProc::start(&[]);
    let addr = srv.udp_addr();
    let wait = Duration::from_millis(150);
    let hello = udp::encode_hello(0, "mallory", None, 1472).expect("hello");
    let say = udp::encode_client(
        0,
        &ClientMsg::Say {
            room: String::new(),
            text: "hello there".into(),
        },
        1472,
    )
    .expect("say");
    let rooms = udp::encode_client(0, &ClientMsg::Rooms, 1472).expect("rooms");
    let who = udp::encode_client(
        0,
        &ClientMsg::Who {
            room: String::new(),
        },
        1472,
    )
    .expect("who");
    let forged = udp::encode_hello(0, "mallory", Some(0x1234_5678), 1472).expect("hello");
    let probes: Vec<(&str, Vec<u8>)> = vec![
        ("hello without cookie", hello.to_vec()),
        ("hello with a forged cookie", forged.to_vec()),
        ("say without session", say.to_vec()),
        ("rooms without session (9 bytes)", rooms.to_vec()),
        ("who without session", who.to_vec()),
        ("one byte", vec![0x53]),
        ("garbage", vec![0xAB; 300]),
        ("server datagram reflected", udp::encode_retry(7).to_vec()),
    ];
    let mut answered = 0;
    for (what, p) in &probes {
        let replies = probe(addr, p, wait).await;
        assert!(replies.len() <= 1, "{what}: {} replies", replies.len());
        for r in &replies {
            assert!(
                r.len() <= p.len(),
                "{what}: reply of {} bytes to a {}-byte datagram (amplification)",
                r.len(),
                p.len()
            );
            // The only thing an unknown address ever gets is a retry.
            let d = udp::decode_server(r, 1472).expect("valid server datagram");
            assert!(
                matches!(d.body, udp::ServerBody::Retry { .. }),
                "{what}: {d:?}"
            );
            answered += 1;
        }
    }
    // The probes large enough to carry a retry (16 bytes) got one, so the
    // check above is not vacuous: hello, forged hello, say.
    assert!(answered >= 3, "only {answered} probes answered");

    // A retry cookie is bound to the address: echoing it from another
    // socket (another source port) creates no session.
    let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    a.send_to(&hello, addr).await.expect("send");
    let mut buf = vec![0u8; 2048];
    let (n, _) = tokio::time::timeout(STEP, a.recv_from(&mut buf))
        .await
        .expect("retry in time")
        .expect("recv");
    let cookie = match udp::decode_server(&buf[..n], 1472).expect("valid").body {
        udp::ServerBody::Retry { cookie } => cookie,
        other => panic!("expected retry, got {other:?}"),
    };
    let stolen = udp::encode_hello(1, "mallory", Some(cookie), 1472).expect("hello");
    let replies = probe(addr, &stolen, wait).await;
    for r in &replies {
        assert!(r.len() <= stolen.len());
        assert!(matches!(
            udp::decode_server(r, 1472).expect("valid").body,
            udp::ServerBody::Retry { .. }
        ));
    }
    // From the right address the cookie works: Welcome.
    a.send_to(&stolen, addr).await.expect("send");
    let (n, _) = tokio::time::timeout(STEP, a.recv_from(&mut buf))
        .await
        .expect("welcome in time")
        .expect("recv");
    let d = udp::decode_server(&buf[..n], 1472).expect("valid");
    assert!(
        matches!(d.body, udp::ServerBody::Msg(ServerMsg::Welcome { ref nick, .. }) if nick == "mallory"),
        "{d:?}"
    );
}

#[tokio::test]
async fn replies_to_one_unknown_address_are_rate_limited() {
    let srv = ServerProc::start(&[]);
    let addr = srv.udp_addr();
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let hello = udp::encode_hello(0, "flood", None, 1472).expect("hello");
    let started = std::time::Instant::now();
    let n = 200;
    for _ in 0..n {
        s.send_to(&hello, addr).await.expect("send");
    }
    let mut got = 0u32;
    let mut buf = vec![0u8; 2048];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(200), s.recv_from(&mut buf)).await
    {
        got += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    // Burst 40 plus 20 per second.
    let allowed = 40 + (20.0 * secs).ceil() as u32;
    assert!(got >= 1, "no retry at all");
    assert!(
        got <= allowed,
        "{got} replies to {n} hellos in {secs:.2} s (allowed {allowed})"
    );
}

#[tokio::test]
async fn malformed_datagrams_never_panic_the_server() {
    let srv = ServerProc::start(&[]);
    let addr = srv.udp_addr();
    let mut rng = SplitMix64::new(0xBAD_DA7A);
    let socks = [
        UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
        UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
        UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
    ];
    // One of the sockets has a real session, so malformed datagrams also
    // reach the session path.
    let mut link = UdpLink::connect(addr, UdpOptions::default())
        .await
        .expect("connect");
    link.handshake("victim", Duration::from_millis(200), STEP)
        .await
        .expect("handshake");
    let total = 3000;
    for i in 0..total {
        let len = (rng.next_u64() % 1600) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        match i % 4 {
            // A valid header in front of random bytes: reaches the payload
            // decoder.
            0 | 1 if d.len() >= 8 => {
                d[..3].copy_from_slice(&[b'S', b'U', 1]);
                d[3] &= 0x07;
            }
            // Oversize: above max_payload (1472).
            2 if i % 40 == 2 => d.resize(2000, 0x55),
            _ => {}
        }
        let sock = &socks[i % socks.len()];
        sock.send_to(&d, addr).await.expect("send");
        if i % 3 == 0 {
            // Into the session too.
            let _ = link.socket().send(&d).await;
        }
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Still alive and still serving both transports.
    let mut alice = FramedClient::connect(srv.addr, "alice").await;
    let mut late = UdpLink::connect(addr, UdpOptions::default())
        .await
        .expect("connect");
    late.handshake("late", Duration::from_millis(200), STEP)
        .await
        .expect("handshake after the garbage");
    late.send(&ClientMsg::Say {
        room: String::new(),
        text: "still here".into(),
    })
    .await
    .expect("send");
    alice
        .recv_until(|m| matches!(m, ServerMsg::Chat { text, .. } if text == "still here"))
        .await;
    assert!(!srv.stderr().contains("panicked"), "{}", srv.stderr());
}

#[tokio::test]
async fn the_session_cap_refuses_with_server_full() {
    let cfg = sockchat_tests::scratch("udp-cap.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[udp]\nmax_sessions = 2\n",
    )
    .expect("write config");
    let srv = ServerProc::start(&["--config", cfg.to_str().expect("utf-8")]);
    let addr = srv.udp_addr();
    let mut held = Vec::new();
    for nick in ["one", "two"] {
        let mut l = UdpLink::connect(addr, UdpOptions::default())
            .await
            .expect("connect");
        l.handshake(nick, Duration::from_millis(200), STEP)
            .await
            .expect("within the cap");
        held.push(l);
    }
    let mut third = UdpLink::connect(addr, UdpOptions::default())
        .await
        .expect("connect");
    match third
        .handshake("three", Duration::from_millis(200), STEP)
        .await
    {
        Err(sockchat::net::udp::HandshakeError::Refused { code, text }) => {
            assert_eq!(code, sockchat_shared::ErrorCode::ServerFull, "{text}");
            assert!(text.contains("2 UDP sessions"), "{text}");
        }
        other => panic!("expected ServerFull, got {other:?}"),
    }
    // A slot frees when a session quits.
    held[0]
        .send(&ClientMsg::Quit {
            message: String::new(),
        })
        .await
        .expect("quit");
    let mut fourth = UdpLink::connect(addr, UdpOptions::default())
        .await
        .expect("connect");
    let deadline = std::time::Instant::now() + STEP;
    loop {
        match fourth
            .handshake("four", Duration::from_millis(200), Duration::from_secs(1))
            .await
        {
            Ok(w) => {
                assert_eq!(w.nick, "four");
                break;
            }
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("slot not freed after a quit: {e}"),
        }
    }
}

/// UDP sessions take a `limits.max_connections` permit and count against
/// `limits.max_connections_per_ip` together with TCP connections (one
/// budget per address, as config.toml says).
#[tokio::test]
async fn udp_sessions_count_against_the_tcp_connection_caps() {
    let cfg = sockchat_tests::scratch("udp-ipcap.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[limits]\nmax_connections_per_ip = 2\nmax_connections = 3\n",
    )
    .expect("write config");
    let srv = ServerProc::start(&["--config", cfg.to_str().expect("utf-8")]);
    let udp_addr = srv.udp_addr();
    // One TCP connection and one UDP session from 127.0.0.1: the cap (2).
    let _tcp = FramedClient::connect(srv.addr, "tcpuser").await;
    let mut first = UdpLink::connect(udp_addr, UdpOptions::default())
        .await
        .expect("connect");
    first
        .handshake("udpone", Duration::from_millis(200), STEP)
        .await
        .expect("within the per-address cap");
    let mut second = UdpLink::connect(udp_addr, UdpOptions::default())
        .await
        .expect("connect");
    match second
        .handshake("udptwo", Duration::from_millis(200), STEP)
        .await
    {
        Err(sockchat::net::udp::HandshakeError::Refused { code, text }) => {
            assert_eq!(
                code,
                sockchat_shared::ErrorCode::TooManyFromAddress,
                "{text}"
            );
            assert!(text.contains("(max 2)"), "{text}");
        }
        other => panic!("expected TooManyFromAddress, got {other:?}"),
    }
    // And a TCP connection is refused while UDP holds the address's slot.
    let mut third = FramedClient::connect_raw(srv.addr).await.expect("tcp");
    match third.recv().await {
        ServerMsg::Error { code, text } => {
            assert_eq!(
                code,
                sockchat_shared::ErrorCode::TooManyFromAddress,
                "{text}"
            );
        }
        other => panic!("expected TooManyFromAddress, got {other:?}"),
    }
    let _ = std::fs::remove_file(&cfg);

    // The global cap: one TCP connection and one UDP session fill 2.
    let cfg = sockchat_tests::scratch("udp-cap2.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[limits]\nmax_connections = 2\n",
    )
    .expect("write config");
    let srv = ServerProc::start(&["--config", cfg.to_str().expect("utf-8")]);
    let _tcp = FramedClient::connect(srv.addr, "tcpuser").await;
    let mut one = UdpLink::connect(srv.udp_addr(), UdpOptions::default())
        .await
        .expect("connect");
    one.handshake("udpone", Duration::from_millis(200), STEP)
        .await
        .expect("within the cap");
    let mut two = UdpLink::connect(srv.udp_addr(), UdpOptions::default())
        .await
        .expect("connect");
    match two
        .handshake("udptwo", Duration::from_millis(200), STEP)
        .await
    {
        Err(sockchat::net::udp::HandshakeError::Refused { code, text }) => {
            assert_eq!(code, sockchat_shared::ErrorCode::ServerFull, "{text}");
            assert!(text.contains("server full (2 connections)"), "{text}");
        }
        other => panic!("expected ServerFull, got {other:?}"),
    }
    let _ = std::fs::remove_file(&cfg);
}
