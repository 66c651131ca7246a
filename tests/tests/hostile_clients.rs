//! Hostile clients against the real server binary, one fresh server per
//! case so each case's peak memory is its own: after each case the server
//! must still be running, must still serve others (two fresh clients chat
//! through it), must not have panicked, and its peak RSS (`VmHWM` from
//! /proc/PID/status) must stay under [`RSS_BOUND_KIB`]. Each case prints
//! `hostile CASE: peak RSS N KiB` (docs/RELIABILITY.md lists a run).
//!
//! Cases here: every boundary length prefix, truncated frames then
//! silence, a wrong protocol version, escape sequences and bidi overrides
//! in nicks / room names / messages / file names, rooms until the cap,
//! join/leave storms, slowloris on the preamble and on the text path, one
//! address past its connection cap, and UDP garbage, spoofed-looking
//! first datagrams and replayed cookies. Cases already proven elsewhere
//! are not repeated in depth: invalid UTF-8 and oversize frames
//! (server_limits.rs), look-alike nicks (nick_fold.rs), the UDP hijack and
//! replay window (udp_hijack.rs), UDP amplification (udp_abuse.rs); the
//! cases below touch them again only to measure the memory.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use sockchat_shared::transfer::Xfer;
use sockchat_shared::udp::{self, ServerBody};
use sockchat_shared::{ClientMsg, DisconnectReason, ErrorCode, ServerMsg, codec, sanitize};
use sockchat_tests::udp_raw::RawUdp;
use sockchat_tests::{FramedClient, ServerProc, TextClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Peak RSS a case may leave on a debug-build server (it starts near
/// 10 MiB); a leak or an unbounded buffer blows through it.
const RSS_BOUND_KIB: u64 = 96 * 1024;
const T: Duration = Duration::from_secs(10);

/// The end of every case: the server is up, serves two fresh users, never
/// panicked, and its peak RSS stayed bounded. Prints the figure.
async fn still_serving(case: &str, srv: &mut ServerProc) {
    assert!(
        srv.wait_timeout(Duration::ZERO).is_none(),
        "{case}: the server died"
    );
    let a = format!("wa{}", std::process::id() % 1000);
    let mut w1 = FramedClient::connect(srv.addr, &a).await;
    let mut w2 = FramedClient::connect(srv.addr, "").await;
    w2.say(&format!("after {case}")).await;
    let want = format!("after {case}");
    w1.recv_until(|m| matches!(m, ServerMsg::Chat { text, .. } if *text == want))
        .await;
    let err = srv.stderr();
    assert!(
        !err.contains("panicked"),
        "{case}: the server panicked:\n{err}"
    );
    let hwm = sockchat_tests::proc_status_kib(srv.pid(), "VmHWM");
    println!("hostile {case}: peak RSS {hwm} KiB");
    assert!(hwm < RSS_BOUND_KIB, "{case}: peak RSS {hwm} KiB");
}

/// Send `msg` and wait for the `Error` with `code` it must draw.
async fn refused(c: &mut FramedClient, msg: ClientMsg, want: ErrorCode) {
    c.send(&msg).await;
    c.recv_until(|m| matches!(m, ServerMsg::Error { code, .. } if *code == want))
        .await;
}

/// A framed connection that said Hello and read its Welcome.
async fn hello(addr: SocketAddr, nick: &str) -> FramedClient {
    FramedClient::connect(addr, nick).await
}

/// Read until the server closes; returns the Error codes and the Bye reason
/// seen on the way (bounded by `T`).
async fn until_closed(c: &mut FramedClient) -> (Vec<ErrorCode>, Option<DisconnectReason>) {
    let (mut codes, mut bye) = (Vec::new(), None);
    let deadline = Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.recv_timeout(left).await {
            Ok(Some(ServerMsg::Error { code, .. })) => codes.push(code),
            Ok(Some(ServerMsg::Bye { reason })) => bye = Some(reason),
            Ok(Some(_)) => {}
            Ok(None) => return (codes, bye),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (codes, bye),
            Err(e) => panic!("server did not close: {e} (errors {codes:?}, bye {bye:?})"),
        }
    }
}

#[tokio::test]
async fn boundary_length_prefixes() {
    let mut srv = ServerProc::start(&[]);
    // 0, max + 1 and 2^32 - 1: a protocol error as soon as the 4 length
    // bytes are in (no payload is waited for, nothing is allocated).
    for len in [0u32, 65_537, u32::MAX] {
        let mut c = hello(srv.addr, "").await;
        c.send_raw(&len.to_be_bytes()).await.unwrap();
        let (codes, bye) = until_closed(&mut c).await;
        assert_eq!(codes, vec![ErrorCode::Protocol], "length {len}");
        assert!(
            matches!(bye, Some(DisconnectReason::ProtocolError { .. })),
            "length {len}: {bye:?}"
        );
    }
    // 1: a one-byte payload is a whole message (Rooms).
    let mut c = hello(srv.addr, "").await;
    c.send_raw(&[0, 0, 0, 1, 0x09]).await.unwrap();
    c.recv_until(|m| matches!(m, ServerMsg::Rooms { .. })).await;
    // max: a 65,536-byte Say is a valid frame; its text is over
    // max_message_len, so it is refused with Error 6 and the user stays.
    let text = "x".repeat(65_536 - 1 - 2 - 2);
    let f = codec::client_frame(&ClientMsg::Say {
        room: String::new(),
        text,
    });
    assert_eq!(f.len(), 4 + 65_536);
    c.send_raw(&f).await.unwrap();
    c.recv_until(|m| {
        matches!(
            m,
            ServerMsg::Error {
                code: ErrorCode::MessageTooLong,
                ..
            }
        )
    })
    .await;
    c.send(&ClientMsg::Ping { token: 7 }).await;
    c.recv_until(|m| matches!(m, ServerMsg::Pong { token: 7 }))
        .await;
    still_serving("length prefixes 0, 1, 65536, 65537, 2^32-1", &mut srv).await;
}

#[tokio::test]
async fn truncated_frames_then_silence() {
    let mut srv = ServerProc::start(&[]);
    // 200 connections each announce a 65,536-byte frame, send half of it
    // and go silent: the server holds at most the checked frame each.
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut c = hello(srv.addr, "").await;
        let mut f = 65_536u32.to_be_bytes().to_vec();
        f.push(0x05);
        f.extend(std::iter::repeat_n(b'a', 32 * 1024));
        c.send_raw(&f).await.unwrap();
        held.push(c);
    }
    still_serving("200 truncated 64 KiB frames, then silence", &mut srv).await;
}

#[tokio::test]
async fn wrong_version_and_bad_magic() {
    let mut srv = ServerProc::start(&[]);
    for pre in [
        [0u8, b'S', b'C', b'K', 2],
        [0, b'S', b'C', b'K', 0xFF],
        [0, b'X', b'Y', b'Z', 1],
    ] {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(&pre).await.unwrap();
        s.write_all(&codec::client_frame(&ClientMsg::Hello { nick: "v".into() }))
            .await
            .unwrap();
        let mut c = FramedClient::from_stream(s);
        let (codes, bye) = until_closed(&mut c).await;
        let want = if pre[1] == b'S' {
            ErrorCode::VersionMismatch
        } else {
            ErrorCode::Protocol
        };
        assert_eq!(codes, vec![want], "{pre:?}");
        assert!(matches!(bye, Some(DisconnectReason::ProtocolError { .. })));
    }
    still_serving("wrong version and bad magic preambles", &mut srv).await;
}

/// Escape sequences and bidi overrides from a hostile user: refused in
/// names, neutralised in text (framed and text-mode readers alike),
/// relayed untouched in file names (the receiving client sanitises and
/// saves safely: hostile_server_plain.rs, transfer_files.rs).
#[tokio::test]
async fn escapes_and_bidi_everywhere() {
    let mut srv = ServerProc::start(&[]);
    let nasty = [
        "\x1b[2J\x1b[H",                        // CSI 2J: clear the screen
        "\x1b]52;c;cm0gLXJmIH4=\x07",           // OSC 52: write the clipboard
        "\x1b]8;;https://evil.example/\x1b\\x", // OSC 8: a hidden link
        "abc\u{202E}txt.exe",                   // RLO bidi override
        "\u{2066}x\u{2069}\u{200F}\u{061C}",    // isolates, RLM, ALM
        "\u{9B}31m",                            // C1 CSI
        "line\u{2028}two",                      // line separator
    ];
    let mut reader = hello(srv.addr, "reader").await;
    let mut text_user = TextClient::connect(srv.addr).await;
    text_user.welcome().await;
    let mut bad = hello(srv.addr, "bad").await;
    for n in nasty {
        refused(
            &mut bad,
            ClientMsg::Nick { nick: n.into() },
            ErrorCode::BadName,
        )
        .await;
        refused(
            &mut bad,
            ClientMsg::Join { room: n.into() },
            ErrorCode::BadName,
        )
        .await;
    }
    // A quit message full of escapes reaches the others clean (in Left).
    bad.send(&ClientMsg::Quit {
        message: nasty.concat(),
    })
    .await;
    let mut bad = hello(srv.addr, "bad2").await;
    for n in nasty {
        bad.say(n).await;
        bad.send(&ClientMsg::Private {
            to: "reader".into(),
            text: n.into(),
        })
        .await;
    }
    bad.say("end-of-nasty").await;
    let mut seen = 0;
    loop {
        match reader.recv().await {
            ServerMsg::Chat { text, .. } | ServerMsg::Private { text, .. } => {
                assert!(
                    sanitize::is_clean(&text),
                    "a control character reached a reader: {text:?}"
                );
                seen += 1;
                if text == "end-of-nasty" {
                    break;
                }
            }
            ServerMsg::Left {
                reason: Some(r), ..
            } => {
                assert!(sanitize::is_clean(&r.to_string()));
            }
            _ => {}
        }
    }
    assert!(seen >= 2 * nasty.len(), "only {seen} messages");
    let lines = text_user.expect_line("[lobby] bad2: end-of-nasty").await;
    for l in &lines {
        assert!(
            sanitize::is_clean(l.trim_end_matches('\n')),
            "text mode line not clean: {l:?}"
        );
    }
    // File names: relayed as they are (a file name is data), never
    // breaking the relay; the receiving client is what must be safe.
    bad.send(&ClientMsg::Transfer(Xfer::Offer {
        id: 1,
        peer: "reader".into(),
        name: "\x1b]52;c;eA==\x07../../.bashrc\u{202E}gpj.sh".into(),
        size: 10,
        sha256: [0; 32],
    }))
    .await;
    reader
        .recv_until(|m| matches!(m, ServerMsg::Transfer(Xfer::Offer { .. })))
        .await;
    still_serving(
        "escapes and bidi in nicks, rooms, messages, file names",
        &mut srv,
    )
    .await;
}

#[tokio::test]
async fn look_alike_nicks_and_rooms_until_the_cap() {
    let mut srv = ServerProc::start_with_config("hostile-rooms", "[limits]\nmax_rooms = 60\n", &[]);
    let _alice = hello(srv.addr, "alice").await;
    for look in ["ALICE", "аlice", "ａｌｉｃｅ", "Alice"] {
        let mut c = FramedClient::connect_raw(srv.addr).await.unwrap();
        c.send(&ClientMsg::Hello { nick: look.into() }).await;
        c.recv_until(|m| {
            matches!(
                m,
                ServerMsg::Error {
                    code: ErrorCode::NickTaken,
                    ..
                }
            )
        })
        .await;
    }
    // One address fills its room quota (50) with 8-room users, then the
    // server cap from another address; a room can still be joined.
    let mut users = Vec::new();
    let mut created = 0;
    'fill: for u in 0..10 {
        let mut c = hello(srv.addr, "").await;
        for r in 0..8 {
            c.send(&ClientMsg::Join {
                room: format!("r{u}x{r}"),
            })
            .await;
            match c
                .recv_until(|m| {
                    matches!(m, ServerMsg::Joined { room, .. } if room.starts_with('r'))
                        || matches!(m, ServerMsg::Error { .. })
                })
                .await
            {
                ServerMsg::Joined { .. } => created += 1,
                ServerMsg::Error { code, .. } => {
                    assert_eq!(code, ErrorCode::TooManyRooms);
                    users.push(c);
                    break 'fill;
                }
                _ => unreachable!(),
            }
        }
        users.push(c);
    }
    assert_eq!(created, 50, "the per-address quota");
    // Another address: 8 rooms (its user quota), then a second user hits
    // the server's cap of 60.
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    for (u, n) in [(0, 8), (1, 3)] {
        let mut c = FramedClient::connect_raw_from(srv.addr, other)
            .await
            .unwrap();
        c.send(&ClientMsg::Hello {
            nick: String::new(),
        })
        .await;
        for r in 0..n {
            c.send(&ClientMsg::Join {
                room: format!("o{u}x{r}"),
            })
            .await;
        }
        c.send(&ClientMsg::Ping { token: 9 }).await;
        let mut errors = Vec::new();
        loop {
            match c.recv().await {
                ServerMsg::Error { text, .. } => errors.push(text),
                ServerMsg::Pong { token: 9 } => break,
                _ => {}
            }
        }
        if u == 0 {
            assert!(errors.is_empty(), "{errors:?}");
        } else {
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].contains("on this server (max 60)"), "{errors:?}");
        }
        users.push(c);
    }
    let mut c = FramedClient::connect_raw_from(srv.addr, other)
        .await
        .unwrap();
    c.send(&ClientMsg::Hello {
        nick: String::new(),
    })
    .await;
    c.send(&ClientMsg::Join {
        room: "r0x0".into(),
    })
    .await;
    c.recv_until(|m| matches!(m, ServerMsg::Joined { room, .. } if room == "r0x0"))
        .await;
    still_serving(
        "look-alike nicks; rooms until the quotas and the cap",
        &mut srv,
    )
    .await;
}

#[tokio::test]
async fn join_leave_storm() {
    let mut srv = ServerProc::start(&["--no-rate-limits"]);
    let mut watcher = hello(srv.addr, "watcher").await;
    watcher
        .send(&ClientMsg::Join {
            room: "storm0".into(),
        })
        .await;
    let mut tasks = Vec::new();
    for s in 0..8 {
        let addr = srv.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = hello(addr, "").await;
            // In bursts of 100 pairs, each read back before the next: one
            // read of 1,000 pipelined commands owes the sender more than
            // its 1,024-frame outbox (it is then cut off as a slow
            // consumer, by design, since nothing else bounds it with rate
            // limits off).
            for burst in 0..10u64 {
                for i in 0..100 {
                    let room = format!("storm{}", (s + i) % 16);
                    c.send(&ClientMsg::Join { room: room.clone() }).await;
                    c.send(&ClientMsg::Leave { room }).await;
                }
                c.send(&ClientMsg::Ping { token: burst }).await;
                c.recv_until(|m| matches!(m, ServerMsg::Pong { token } if *token == burst))
                    .await;
            }
        }));
    }
    for t in tasks {
        let r = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("storm in time");
        assert!(r.is_ok(), "a storm user was cut off: {}", srv.stderr());
    }
    // Every storm room but the watched one is gone again.
    watcher.send(&ClientMsg::Rooms).await;
    match watcher
        .recv_until(|m| matches!(m, ServerMsg::Rooms { .. }))
        .await
    {
        ServerMsg::Rooms { rooms } => {
            let names: Vec<&str> = rooms.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(names, vec!["lobby", "storm0"]);
        }
        _ => unreachable!(),
    }
    still_serving(
        "join/leave storm (8 users x 1000, no rate limits)",
        &mut srv,
    )
    .await;
}

#[tokio::test]
async fn slowloris_preamble_and_text_lines() {
    let mut srv = ServerProc::start_with_config(
        "hostile-slowloris",
        "[limits]\nhandshake_timeout_secs = 3\n",
        &[],
    );
    // 100 framed connections that dribble their preamble and Hello one
    // byte a second: all closed by the handshake timeout.
    let mut lorises = Vec::new();
    for _ in 0..100 {
        let addr = srv.addr;
        lorises.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut bytes = sockchat_shared::proto::preamble().to_vec();
            bytes.extend_from_slice(&codec::client_frame(&ClientMsg::Hello {
                nick: "slow".into(),
            }));
            let started = Instant::now();
            for b in bytes {
                if s.write_all(&[b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(T, s.read_to_end(&mut sink)).await;
            started.elapsed()
        }));
    }
    // 100 text users that dribble one endless line (no newline) a byte
    // every 50 ms, and 20 that send lines over the limit.
    let mut texts = Vec::new();
    for i in 0..120 {
        let addr = srv.addr;
        texts.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            if i < 100 {
                for _ in 0..100 {
                    if s.write_all(b"z").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            } else {
                let long = vec![b'y'; 200_000];
                let _ = s.write_all(&long).await;
                let _ = s.write_all(b"\nshort after\n").await;
                let mut buf = vec![0u8; 4096];
                let mut got = String::new();
                let deadline = Instant::now() + T;
                while !got.contains("line too long") && Instant::now() < deadline {
                    match tokio::time::timeout(T, s.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => got.push_str(&String::from_utf8_lossy(&buf[..n])),
                        _ => break,
                    }
                }
                assert!(got.contains("line too long"), "{got}");
            }
        }));
    }
    // Meanwhile the server serves others.
    tokio::time::sleep(Duration::from_secs(1)).await;
    still_serving(
        "slowloris: 100 dribbled preambles, 100 endless text lines, 20 long lines (during)",
        &mut srv,
    )
    .await;
    for l in lorises {
        let took = l.await.unwrap();
        // Closed after ~3 s (+ the write that finds it closed); without the
        // timeout the whole Hello goes through (~18 s) and the read waits
        // 10 s more.
        assert!(
            took < Duration::from_secs(20),
            "a slow preamble lived {took:?}"
        );
    }
    for t in texts {
        t.await.unwrap();
    }
    still_serving("slowloris (after)", &mut srv).await;
}

#[tokio::test]
async fn one_address_past_its_connection_cap() {
    let mut srv = ServerProc::start_with_config(
        "hostile-cap",
        "[limits]\nmax_connections_per_ip = 30\n",
        &[],
    );
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let mut c = FramedClient::connect_raw(srv.addr).await.unwrap();
        c.send(&ClientMsg::Hello {
            nick: String::new(),
        })
        .await;
        match c.recv_timeout(T).await {
            Ok(Some(ServerMsg::Welcome { .. })) => held.push(c),
            Ok(Some(ServerMsg::Error { code, .. })) => {
                assert_eq!(code, ErrorCode::TooManyFromAddress);
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((held.len(), refused), (30, 30));
    // Another address is not affected (the witnesses below come from
    // 127.0.0.1, which is full: use 127.0.0.2 for them).
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut c = FramedClient::connect_raw_from(srv.addr, other)
        .await
        .unwrap();
    c.send(&ClientMsg::Hello {
        nick: "elsewhere".into(),
    })
    .await;
    c.recv_until(|m| matches!(m, ServerMsg::Welcome { .. }))
        .await;
    held.truncate(20);
    tokio::time::sleep(Duration::from_millis(500)).await;
    still_serving(
        "one address past its connection cap (60 tries, cap 30)",
        &mut srv,
    )
    .await;
}

#[tokio::test]
async fn udp_garbage_spoofed_hellos_and_replayed_cookies() {
    let mut srv = ServerProc::start(&[]);
    let addr = srv.udp_addr();
    let max = 1472;
    // Garbage, from 20 ports, 5,000 datagrams, all sizes up to 2 KB.
    let socks: Vec<UdpSocket> = {
        let mut v = Vec::new();
        for _ in 0..20 {
            v.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        }
        v
    };
    let mut x = 0x1234_5678_9abc_def0u64;
    for i in 0..5000usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 2048) as usize;
        let d: Vec<u8> = (0..len).map(|k| (x >> (k % 56)) as u8).collect();
        let _ = socks[i % socks.len()].send_to(&d, addr).await;
    }
    // Spoofed-looking first datagrams: Hellos with made-up cookies. Each
    // gets at most a 16-byte retry, never a Welcome.
    for (i, s) in socks.iter().enumerate() {
        let hello =
            udp::encode_hello(0, &format!("spoof{i}"), Some(0xdead_beef ^ i as u64), max).unwrap();
        s.send_to(&hello, addr).await.unwrap();
    }
    for s in &socks {
        let mut buf = vec![0u8; 2048];
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(300), s.recv_from(&mut buf)).await
        {
            match udp::decode_server(&buf[..n], max).map(|d| d.body) {
                Ok(ServerBody::Retry { .. }) => assert_eq!(n, 16),
                other => panic!("a spoofed hello got {other:?}"),
            }
        }
    }
    // A replayed cookie: the one issued to port A, used from port B.
    let mut a = RawUdp::bind(addr, max).await.unwrap();
    a.hello("cookieA", None).await;
    let cookie = match a.recv(T).await.expect("retry").body {
        ServerBody::Retry { cookie } => cookie,
        other => panic!("{other:?}"),
    };
    let mut b = RawUdp::bind(addr, max).await.unwrap();
    b.hello("thief", Some(cookie)).await;
    match b.recv(T).await.map(|d| d.body) {
        Some(ServerBody::Retry { .. }) => {}
        other => panic!("a cookie from another port made a session: {other:?}"),
    }
    // The genuine owner still gets in with it.
    a.hello("cookieA", Some(cookie)).await;
    a.recv_until(T, |m| matches!(m, ServerMsg::Welcome { .. }))
        .await;
    still_serving(
        "UDP: 5,000 garbage datagrams, 20 spoofed hellos, a replayed cookie",
        &mut srv,
    )
    .await;
}
