//! PROTOCOL.md is the contract (issue 9, item 8): every error and limit it
//! documents is checked here, as a client written from the document alone
//! would meet it, over real sockets against the real `sockchat-server`
//! binary (small limits from a config file so each one is reached fast).
//! Section names in the test names follow PROTOCOL.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use sockchat_shared::udp::ServerBody;
use sockchat_shared::{ClientMsg, DisconnectReason, ErrorCode, ServerMsg, codec};
use sockchat_tests::udp_raw::RawUdp;
use sockchat_tests::{FramedClient, ServerProc, TextClient};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const STEP: Duration = Duration::from_secs(5);

/// The real server with `config` (TOML) and `extra` flags.
fn server(name: &str, config: &str, extra: &[&str]) -> ServerProc {
    ServerProc::start_with_config(&format!("contract-{name}"), config, extra)
}

/// Small limits, so each is reached with a few messages.
const SMALL: &str = "[server]\ndetect_timeout_ms = 100\n\
[limits]\nmax_message_len = 50\nmax_nick_len = 8\nmax_room_len = 6\n\
max_rooms_per_user = 3\nmax_rooms = 3\nmax_frame = 1000\n";

/// Next message that is not a Ping (answered) and not one of the
/// join-time notices a test does not look at.
async fn next(c: &mut FramedClient) -> ServerMsg {
    loop {
        match c.recv().await {
            ServerMsg::Ping { token } => c.send(&ClientMsg::Pong { token }).await,
            m => return m,
        }
    }
}

/// Expect `Error` with `code` (skipping anything else first); returns its text.
async fn error(c: &mut FramedClient, code: ErrorCode) -> String {
    match c.recv_until(|m| matches!(m, ServerMsg::Error { .. })).await {
        ServerMsg::Error { code: got, text } => {
            assert_eq!(got, code, "{text}");
            text
        }
        _ => unreachable!(),
    }
}

/// The end the document promises for a protocol error: `Error` `code`,
/// then `Bye(protocol-error)`, then EOF. Returns the error text.
async fn protocol_end(c: &mut FramedClient, code: ErrorCode) -> String {
    let text = match next(c).await {
        ServerMsg::Error { code: got, text } => {
            assert_eq!(got, code, "{text}");
            text
        }
        other => panic!("expected Error {code:?} first, got {other:?}"),
    };
    match next(c).await {
        ServerMsg::Bye {
            reason: DisconnectReason::ProtocolError { detail },
        } => assert!(
            !detail.is_empty() && text.contains(&detail),
            "Bye detail {detail:?} is what the Error said ({text:?})"
        ),
        other => panic!("expected Bye(protocol-error) after the Error, got {other:?}"),
    }
    eof(c).await;
    text
}

async fn eof(c: &mut FramedClient) {
    match c.recv_timeout(STEP).await {
        Ok(None) => {}
        Ok(Some(m)) => panic!("expected EOF, got {m:?}"),
        Err(e) => panic!("expected EOF, got {e}"),
    }
}

fn say(room: &str, text: &str) -> ClientMsg {
    ClientMsg::Say {
        room: room.into(),
        text: text.into(),
    }
}

// ------------------------------------------------------------ Preamble

#[tokio::test]
async fn preamble_bad_magic_and_other_version() {
    let srv = server("preamble", SMALL, &[]);
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(&[0x00, b'X', b'Y', b'Z', 1]).await.unwrap();
    let mut c = FramedClient::from_stream(s);
    let t = protocol_end(&mut c, ErrorCode::Protocol).await;
    assert!(t.contains("bad preamble"), "{t}");

    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(&[0x00, b'S', b'C', b'K', 2]).await.unwrap();
    let mut c = FramedClient::from_stream(s);
    let t = protocol_end(&mut c, ErrorCode::VersionMismatch).await;
    assert!(t.contains("version 2"), "{t}");
}

#[tokio::test]
async fn preamble_before_hello_ping_pong_other_messages_bad_command_quit_bye() {
    let srv = server("before", SMALL, &[]);
    let mut c = FramedClient::connect_raw(srv.addr).await.unwrap();
    c.send(&say("", "too early")).await;
    assert_eq!(
        error(&mut c, ErrorCode::BadCommand).await,
        "send Hello first"
    );
    c.send(&ClientMsg::Ping { token: 7 }).await;
    assert_eq!(next(&mut c).await, ServerMsg::Pong { token: 7 });
    // The connection stays: Hello still works.
    c.send(&ClientMsg::Hello {
        nick: "late".into(),
    })
    .await;
    assert!(matches!(next(&mut c).await, ServerMsg::Welcome { nick, .. } if nick == "late"));
    // A Quit before Hello ends with Bye(quit).
    let mut q = FramedClient::connect_raw(srv.addr).await.unwrap();
    q.send(&ClientMsg::Quit {
        message: String::new(),
    })
    .await;
    assert!(matches!(
        next(&mut q).await,
        ServerMsg::Bye {
            reason: DisconnectReason::Quit { .. }
        }
    ));
    eof(&mut q).await;
}

#[tokio::test]
async fn preamble_handshake_timeout_gets_error_10_then_bye() {
    let srv = server("handshake", "[limits]\nhandshake_timeout_secs = 1\n", &[]);
    let mut c = FramedClient::connect_raw(srv.addr).await.unwrap();
    let t0 = Instant::now();
    let t = protocol_end(&mut c, ErrorCode::Protocol).await;
    assert!(t.contains("handshake timeout: no hello within 1 s"), "{t}");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn preamble_hello_errors_guest_and_second_hello() {
    let srv = server("hello", SMALL, &[]);
    let _alice = FramedClient::connect(srv.addr, "Alice").await;
    let mut c = FramedClient::connect_raw(srv.addr).await.unwrap();
    // Nicks compare after lowercasing.
    c.send(&ClientMsg::Hello {
        nick: "aLICE".into(),
    })
    .await;
    assert!(error(&mut c, ErrorCode::NickTaken).await.contains("aLICE"));
    c.send(&ClientMsg::Hello {
        nick: "no way".into(),
    })
    .await;
    error(&mut c, ErrorCode::BadName).await;
    c.send(&ClientMsg::Hello {
        nick: "x".repeat(9),
    })
    .await;
    assert!(
        error(&mut c, ErrorCode::BadName)
            .await
            .contains("longer than 8")
    );
    c.send(&ClientMsg::Hello {
        nick: String::new(),
    })
    .await;
    let nick = match next(&mut c).await {
        ServerMsg::Welcome { nick, .. } => nick,
        other => panic!("{other:?}"),
    };
    assert!(nick.starts_with("guest"), "{nick}");
    // A second Hello: BadCommand, the nick stays.
    c.send(&ClientMsg::Hello {
        nick: "other".into(),
    })
    .await;
    assert_eq!(
        error(&mut c, ErrorCode::BadCommand).await,
        "already registered"
    );
    c.send(&ClientMsg::SockInfo {
        nick: String::new(),
    })
    .await;
    assert!(matches!(
        c.recv_until(|m| matches!(m, ServerMsg::SockInfo { .. })).await,
        ServerMsg::SockInfo { nick: n, .. } if n == nick
    ));
}

// ------------------------------------------------------------ Frames

/// Every protocol error: Error 10, Bye(protocol-error), EOF.
#[tokio::test]
async fn frames_every_protocol_error_gets_error_then_bye_then_eof() {
    let srv = server("frames", SMALL, &[]);
    let payload = |tag: u8, rest: &[u8]| {
        let mut b = BytesMut::new();
        b.put_u32((1 + rest.len()) as u32);
        b.put_u8(tag);
        b.put_slice(rest);
        b.to_vec()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty frame", 0u32.to_be_bytes().to_vec(), "empty frame"),
        (
            "over max_frame",
            1001u32.to_be_bytes().to_vec(),
            "exceeds the maximum of 1000",
        ),
        (
            "unknown tag",
            payload(0x7f, &[]),
            "unknown message tag 0x7f",
        ),
        ("truncated", payload(0x05, &[0, 9, b'a']), "truncated"),
        ("trailing", payload(0x09, &[1, 2]), "trailing"),
        ("bad utf-8", payload(0x08, &[0, 2, 0xff, 0xfe]), "UTF-8"),
    ];
    for (what, bytes, want) in cases {
        let mut c = FramedClient::connect(srv.addr, "").await;
        c.recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
            .await;
        c.send_raw(&bytes).await.unwrap();
        let t = protocol_end(&mut c, ErrorCode::Protocol).await;
        assert!(t.contains(want), "{what}: {t}");
    }
}

// ------------------------------------------------------------ Errors and limits

#[tokio::test]
async fn limits_text_names_and_rooms_give_the_documented_codes() {
    let srv = server("limits", SMALL, &[]);
    let mut a = FramedClient::connect(srv.addr, "ann").await;
    let long = "m".repeat(51);
    for msg in [
        say("", &long),
        ClientMsg::Me {
            room: String::new(),
            text: long.clone(),
        },
        ClientMsg::Private {
            to: "ann".into(),
            text: long.clone(),
        },
    ] {
        a.send(&msg).await;
        assert!(
            error(&mut a, ErrorCode::MessageTooLong)
                .await
                .contains("51 bytes, max 50")
        );
    }
    // Exactly the limit is fine.
    a.send(&say("", &"m".repeat(50))).await;
    a.recv_until(|m| matches!(m, ServerMsg::Chat { .. })).await;
    a.send(&ClientMsg::Nick {
        nick: "x".repeat(9),
    })
    .await;
    error(&mut a, ErrorCode::BadName).await;
    a.send(&ClientMsg::Join {
        room: "roomroo".into(),
    })
    .await;
    assert!(
        error(&mut a, ErrorCode::BadName)
            .await
            .contains("longer than 6")
    );
    a.send(&ClientMsg::Join {
        room: String::new(),
    })
    .await;
    assert_eq!(
        error(&mut a, ErrorCode::BadName).await,
        "room name is empty"
    );
    // Rooms: lobby does not count against max_rooms = 3; ann may be in 3.
    for r in ["r1", "#r2"] {
        a.send(&ClientMsg::Join { room: r.into() }).await;
        a.recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "ann"))
            .await;
    }
    a.send(&ClientMsg::Join { room: "r3".into() }).await;
    assert!(
        error(&mut a, ErrorCode::TooManyRooms)
            .await
            .contains("max 3")
    );
    let mut b = FramedClient::connect(srv.addr, "bob").await;
    b.send(&ClientMsg::Join { room: "r3".into() }).await;
    b.recv_until(|m| matches!(m, ServerMsg::Joined { .. }))
        .await;
    b.send(&ClientMsg::Join { room: "r4".into() }).await;
    assert!(
        error(&mut b, ErrorCode::TooManyRooms)
            .await
            .contains("on this server (max 3)")
    );
    // NotInRoom, NoSuchRoom, NoSuchNick.
    b.send(&say("r1", "hi")).await;
    error(&mut b, ErrorCode::NotInRoom).await;
    b.send(&ClientMsg::Leave { room: "r1".into() }).await;
    error(&mut b, ErrorCode::NotInRoom).await;
    b.send(&ClientMsg::Who {
        room: "nope".into(),
    })
    .await;
    assert_eq!(
        error(&mut b, ErrorCode::NoSuchRoom).await,
        "no such room: nope"
    );
    b.send(&ClientMsg::Who { room: "r1".into() }).await; // any existing room
    assert!(matches!(next(&mut b).await, ServerMsg::Who { nicks, .. } if nicks == ["ann"]));
    b.send(&ClientMsg::Private {
        to: "nobody".into(),
        text: "x".into(),
    })
    .await;
    error(&mut b, ErrorCode::NoSuchNick).await;
    b.send(&ClientMsg::SockInfo {
        nick: "nobody".into(),
    })
    .await;
    error(&mut b, ErrorCode::NoSuchNick).await;
    // An error text repeats what was typed, cut: the reply stays small.
    b.send(&ClientMsg::Private {
        to: "n".repeat(900),
        text: "x".into(),
    })
    .await;
    let t = error(&mut b, ErrorCode::NoSuchNick).await;
    assert!(
        t.ends_with('…') && t.chars().count() < 320,
        "{} chars",
        t.chars().count()
    );
    // Nick to the nick you have: nothing at all.
    b.send(&ClientMsg::Nick { nick: "bob".into() }).await;
    b.expect_none(Duration::from_millis(300), |_| true).await;
}

#[tokio::test]
async fn conversation_current_room_after_leaving_and_rejoining() {
    let srv = server("current", SMALL, &[]);
    let mut a = FramedClient::connect(srv.addr, "cur").await;
    for r in ["ra", "rb"] {
        a.send(&ClientMsg::Join { room: r.into() }).await;
        a.recv_until(|m| matches!(m, ServerMsg::Joined { room, .. } if room == r))
            .await;
    }
    let said_in = async |a: &mut FramedClient| {
        a.send(&say("", "where")).await;
        match a
            .recv_until(|m| matches!(m, ServerMsg::Chat { .. } | ServerMsg::Error { .. }))
            .await
        {
            ServerMsg::Chat { room, .. } => room,
            ServerMsg::Error { code, .. } => format!("error {}", code.to_u16()),
            _ => unreachable!(),
        }
    };
    assert_eq!(said_in(&mut a).await, "rb");
    // Re-join ra: it is current again, with a Notice.
    a.send(&ClientMsg::Join { room: "ra".into() }).await;
    assert!(
        matches!(next(&mut a).await, ServerMsg::Notice { text } if text == "now talking in ra")
    );
    assert_eq!(said_in(&mut a).await, "ra");
    // Leaving the current room makes the one joined before it current.
    a.send(&ClientMsg::Leave {
        room: String::new(),
    })
    .await;
    a.recv_until(|m| matches!(m, ServerMsg::Left { room, .. } if room == "ra"))
        .await;
    assert_eq!(said_in(&mut a).await, "rb");
    for _ in 0..2 {
        a.send(&ClientMsg::Leave {
            room: String::new(),
        })
        .await;
        a.recv_until(|m| matches!(m, ServerMsg::Left { .. })).await;
    }
    // In no room at all.
    assert_eq!(said_in(&mut a).await, "error 8");
    a.send(&ClientMsg::Who {
        room: String::new(),
    })
    .await;
    error(&mut a, ErrorCode::NotInRoom).await;
    a.send(&ClientMsg::Leave {
        room: String::new(),
    })
    .await;
    error(&mut a, ErrorCode::NotInRoom).await;
}

#[tokio::test]
async fn limits_rate_limit_error_7_once_then_bye_rate_limited() {
    let srv = server(
        "rate",
        "[limits]\nmessages_per_sec = 0.5\nburst = 3\nrate_limit_strikes = 3\n",
        &[],
    );
    let mut a = FramedClient::connect(srv.addr, "fast").await;
    // Pings are free.
    for t in 0..10 {
        a.send(&ClientMsg::Ping { token: t }).await;
    }
    for _ in 0..3 {
        a.send(&say("", "ok")).await;
    }
    for _ in 0..3 {
        a.recv_until(|m| matches!(m, ServerMsg::Chat { .. })).await;
    }
    a.send(&say("", "dropped 1")).await;
    assert!(
        error(&mut a, ErrorCode::RateLimited)
            .await
            .contains("message dropped")
    );
    a.send(&say("", "dropped 2")).await;
    a.send(&say("", "dropped 3")).await;
    let mut errors = 0;
    loop {
        match next(&mut a).await {
            ServerMsg::Bye { reason } => {
                assert_eq!(reason, DisconnectReason::RateLimited);
                break;
            }
            ServerMsg::Error { .. } => errors += 1,
            ServerMsg::Chat { text, .. } => panic!("a dropped message was said: {text}"),
            _ => {}
        }
    }
    assert_eq!(errors, 0, "Error 7 only for the first refusal of a run");
    eof(&mut a).await;
}

#[tokio::test]
async fn limits_admission_per_address_and_in_total_error_then_fin_no_bye() {
    let srv = server("perip", "[limits]\nmax_connections_per_ip = 2\n", &[]);
    let _a = FramedClient::connect(srv.addr, "a1").await;
    let _b = FramedClient::connect(srv.addr, "a2").await;
    let mut c = FramedClient::connect_raw(srv.addr).await.unwrap();
    assert!(matches!(
        next(&mut c).await,
        ServerMsg::Error {
            code: ErrorCode::TooManyFromAddress,
            ..
        }
    ));
    eof(&mut c).await;
    // A UDP session from the same address counts with TCP (the cap is full).
    let mut u = RawUdp::bind(srv.udp_addr(), 1472).await.unwrap();
    u.hello("u1", None).await;
    let cookie = match u.recv(STEP).await.map(|d| d.body) {
        Some(ServerBody::Retry { cookie }) => cookie,
        other => panic!("{other:?}"),
    };
    u.hello("u1", Some(cookie)).await;
    assert!(matches!(
        u.recv(STEP).await.map(|d| d.body),
        Some(ServerBody::Msg(ServerMsg::Error {
            code: ErrorCode::TooManyFromAddress,
            ..
        }))
    ));

    let srv = server("full", "[limits]\nmax_connections = 1\n", &[]);
    let _a = FramedClient::connect(srv.addr, "only").await;
    let mut c = FramedClient::connect_raw(srv.addr).await.unwrap();
    assert!(matches!(
        next(&mut c).await,
        ServerMsg::Error {
            code: ErrorCode::ServerFull,
            ..
        }
    ));
    eof(&mut c).await;
}

#[tokio::test]
async fn conversation_idle_client_is_pinged_then_ends_with_idle_timeout() {
    // Pings every second, the end after 3 s of silence: a server held up
    // for a second or two by a loaded machine still pings before it ends
    // the session (its timer sends no ping once the idle time is up).
    let srv = server(
        "idle",
        "[limits]\nidle_timeout_secs = 3\nping_interval_secs = 1\n",
        &[],
    );
    // Before the Hello: the server's silence starts when it reads it, so
    // the Bye cannot come sooner than 3 s after this, however late the
    // Welcome reaches us.
    let t0 = Instant::now();
    let mut a = FramedClient::connect(srv.addr, "sleepy").await;
    let mut pinged = false;
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no idle timeout within 60 s"
        );
        match a.recv().await {
            ServerMsg::Ping { .. } => pinged = true, // not answered
            ServerMsg::Bye { reason } => {
                assert_eq!(reason, DisconnectReason::IdleTimeout { secs: 3 });
                break;
            }
            _ => {}
        }
    }
    assert!(pinged, "pinged before the timeout");
    assert!(
        t0.elapsed() >= Duration::from_millis(2900),
        "ended after {:?}, before its 3 s of silence",
        t0.elapsed()
    );
}

/// A Hello that arrives in a later read than the preamble still starts
/// the ping and idle timers: the first ping comes a ping interval after it,
/// not when the (long) handshake timeout would have been up. (The timer
/// armed for the handshake was kept: pings and the idle timeout waited for
/// it, which made the idle test above time out under load.)
#[tokio::test]
async fn a_hello_after_the_preamble_starts_the_ping_and_idle_timers() {
    let srv = server(
        "late-hello",
        "[limits]\nhandshake_timeout_secs = 60\nidle_timeout_secs = 3\nping_interval_secs = 1\n",
        &[],
    );
    let mut a = FramedClient::connect_raw(srv.addr).await.unwrap();
    // The preamble alone first: the server reads it and waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.send(&ClientMsg::Hello {
        nick: "late".into(),
    })
    .await;
    let hello = Instant::now();
    assert!(matches!(a.recv().await, ServerMsg::Welcome { .. }));
    let ping = a.recv_until(|m| matches!(m, ServerMsg::Ping { .. })).await;
    assert!(
        hello.elapsed() < Duration::from_secs(20),
        "first ping {:?} after the Hello ({ping:?}): it waited for the handshake timer",
        hello.elapsed()
    );
    let bye = a.recv_until(|m| matches!(m, ServerMsg::Bye { .. })).await;
    assert_eq!(
        bye,
        ServerMsg::Bye {
            reason: DisconnectReason::IdleTimeout { secs: 3 }
        }
    );
    assert!(
        hello.elapsed() < Duration::from_secs(20),
        "{:?}",
        hello.elapsed()
    );
}

#[tokio::test]
async fn conversation_quit_message_reaches_the_room_and_the_quitter_gets_bye() {
    let srv = server("quit", SMALL, &[]);
    let mut stay = FramedClient::connect(srv.addr, "stay").await;
    let mut go = FramedClient::connect(srv.addr, "go").await;
    go.send(&ClientMsg::Quit {
        message: "bye\x1b now".into(),
    })
    .await;
    let quit = DisconnectReason::Quit {
        message: "bye\u{FFFD} now".into(),
    };
    assert_eq!(
        go.recv_until(|m| matches!(m, ServerMsg::Bye { .. })).await,
        ServerMsg::Bye {
            reason: quit.clone()
        }
    );
    eof(&mut go).await;
    assert_eq!(
        stay.recv_until(|m| matches!(m, ServerMsg::Left { .. }))
            .await,
        ServerMsg::Left {
            room: "lobby".into(),
            nick: "go".into(),
            reason: Some(quit)
        }
    );
}

/// Text is sanitised by the server: controls, DEL, C1, bidi controls and
/// U+2028/9 become U+FFFD, TAB a space; U+200B and U+FEFF pass.
#[tokio::test]
async fn server_to_client_text_is_sanitised_as_documented() {
    let srv = server("sanitise", "[limits]\nmax_message_len = 200\n", &[]);
    let mut a = FramedClient::connect(srv.addr, "san").await;
    a.say("a\x1b[31mb\x7fc\u{85}d\u{202E}e\u{2028}f\tg\u{200B}h\u{FEFF}i")
        .await;
    let m = a.recv_until(|m| matches!(m, ServerMsg::Chat { .. })).await;
    let ServerMsg::Chat { text, .. } = m else {
        unreachable!()
    };
    assert_eq!(
        text,
        "a\u{FFFD}[31mb\u{FFFD}c\u{FFFD}d\u{FFFD}e\u{FFFD}f g\u{200B}h\u{FEFF}i"
    );
}

/// Nicks are unique after plain Unicode lowercasing, nothing more.
#[tokio::test]
async fn limits_nick_comparison_folds_case_and_look_alikes() {
    let srv = server("nickcase", "", &[]);
    let _a = FramedClient::connect(srv.addr, "Ärger").await;
    let mut c = FramedClient::connect_raw(srv.addr).await.unwrap();
    c.send(&ClientMsg::Hello {
        nick: "äRGER".into(),
    })
    .await;
    error(&mut c, ErrorCode::NickTaken).await;
    let _s = FramedClient::connect(srv.addr, "straße").await;
    // Full case folding: ß folds to ss, so STRASSE is the same nick.
    let mut d = FramedClient::connect_raw(srv.addr).await.unwrap();
    d.send(&ClientMsg::Hello {
        nick: "STRASSE".into(),
    })
    .await;
    error(&mut d, ErrorCode::NickTaken).await;
}

// ------------------------------------------------------------ Text mode

#[tokio::test]
async fn text_mode_history_marker_msg_confirmation_errors_and_eof_line() {
    let srv = server(
        "text",
        "[server]\ndetect_timeout_ms = 100\n[limits]\nmax_message_len = 20\n",
        &[],
    );
    let mut f = FramedClient::connect(srv.addr, "fr").await;
    f.say("before you came").await;
    f.recv_until(|m| matches!(m, ServerMsg::Chat { .. })).await;
    let mut t = TextClient::connect(srv.addr).await;
    let me = t.welcome().await;
    t.expect_line("[lobby history] fr: before you came").await;
    f.say("live now").await;
    t.expect_line("[lobby] fr: live now").await;
    t.line("/msg fr psst").await;
    t.expect_line("[pm] -> fr: psst").await;
    assert!(matches!(
        f.recv_until(|m| matches!(m, ServerMsg::Private { .. })).await,
        ServerMsg::Private { from, text, .. } if from == me && text == "psst"
    ));
    t.line("/frob").await;
    t.expect_line("! unknown command: /frob (try /help)").await;
    t.line("/join").await;
    t.expect_line("! usage: /join ROOM [KEY]").await;
    t.line(&"z".repeat(90)).await;
    t.expect_line("! line too long (max 20 bytes): ignored")
        .await;
    // A last line without a newline is still said at EOF.
    let (_r, mut w) = t.into_parts();
    w.write_all(b"no newline").await.unwrap();
    w.shutdown().await.unwrap();
    assert!(matches!(
        f.recv_until(|m| matches!(m, ServerMsg::Chat { from, .. } if *from == me)).await,
        ServerMsg::Chat { text, .. } if text == "no newline"
    ));
    assert!(matches!(
        f.recv_until(|m| matches!(m, ServerMsg::Left { .. })).await,
        ServerMsg::Left {
            reason: Some(DisconnectReason::Eof),
            ..
        }
    ));
}

#[tokio::test]
async fn text_mode_idle_timeout_is_its_own_setting() {
    let srv = server(
        "textidle",
        "[server]\ndetect_timeout_ms = 100\n[limits]\ntext_idle_timeout_secs = 1\n",
        &[],
    );
    let mut t = TextClient::connect(srv.addr).await;
    t.welcome().await;
    t.expect_line("! idle timeout (1 s)").await;
    assert!(
        t.read_line_timeout(STEP).await.unwrap().is_none(),
        "EOF after the Bye line"
    );
}

// ------------------------------------------------------------ UDP

#[tokio::test]
async fn udp_sequence_numbers_repeated_hello_cookie_flag_and_no_server_pings() {
    let srv = server("udp", "[udp]\nsession_timeout_secs = 3\n", &[]);
    let mut u = RawUdp::bind(srv.udp_addr(), 1472).await.unwrap();
    // Unpadded Hello shorter than the retry: no answer at all.
    let mut tiny = BytesMut::new();
    tiny.put_slice(b"SU\x01\x00\x00\x00\x00\x00");
    codec::encode_client_payload(&ClientMsg::Hello { nick: "a".into() }, &mut tiny);
    assert!(tiny.len() < 16);
    u.sock.send(&tiny).await.unwrap();
    assert!(
        u.recv(Duration::from_millis(500)).await.is_none(),
        "no reply larger than the request"
    );
    u.seq = 1;
    u.hello("ud", None).await;
    let retry = u.recv(STEP).await.expect("retry");
    assert_eq!(retry.seq, 0);
    let ServerBody::Retry { cookie } = retry.body else {
        panic!("{retry:?}")
    };
    u.hello("ud", Some(cookie)).await;
    let w = u.recv(STEP).await.expect("welcome");
    assert_eq!(w.seq, 0, "the session's numbering starts at the Welcome");
    assert!(matches!(w.body, ServerBody::Msg(ServerMsg::Welcome { .. })));
    // A repeated Hello with another nick: the Welcome again, old nick.
    u.hello("other", Some(cookie)).await;
    let (m, _) = u
        .recv_until(STEP, |m| matches!(m, ServerMsg::Welcome { .. }))
        .await;
    assert!(matches!(m, ServerMsg::Welcome { nick, room, .. } if nick == "ud" && room == "lobby"));
    // COOKIE on a later datagram is ignored (the message is handled).
    let mut d = BytesMut::new();
    d.put_slice(b"SU\x01\x02");
    d.put_u32(u.seq);
    d.put_u64(cookie);
    codec::encode_client_payload(&ClientMsg::Ping { token: 42 }, &mut d);
    u.seq += 1;
    u.sock.send(&d).await.unwrap();
    let (m, _) = u
        .recv_until(STEP, |m| matches!(m, ServerMsg::Pong { .. }))
        .await;
    assert_eq!(m, ServerMsg::Pong { token: 42 });
    // The server never pings: silence until the session times out.
    let t0 = Instant::now();
    loop {
        match u.recv(Duration::from_secs(6)).await.map(|d| d.body) {
            Some(ServerBody::Msg(ServerMsg::Ping { .. })) => {
                panic!("the server pinged a UDP client")
            }
            Some(ServerBody::Msg(ServerMsg::Bye { reason })) => {
                assert_eq!(reason, DisconnectReason::IdleTimeout { secs: 3 });
                break;
            }
            Some(_) => {}
            None => panic!("no Bye within 6 s"),
        }
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
}
