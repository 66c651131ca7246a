//! Server operators against the real server binary on loopback (PROTOCOL.md
//! "Who may come in"): `/oper` with the configured password, then `/kick`,
//! `/ban` (a nick with its look-alikes, an address, a CIDR block, a
//! duration that expires), `/unban`, `/mute` and `/unmute`. A kicked or
//! banned user reads its reason (`kicked`/`banned`, who and why) and then
//! EOF; the room is told exactly once. 127.0.0.x addresses play other
//! hosts. The operator password never appears in the server's log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::net::SocketAddr;
use std::time::Duration;

use sockchat::net::udp::{HandshakeError, UdpLink, UdpOptions};
use sockchat_shared::{ClientMsg, DisconnectReason, ErrorCode, ServerMsg};
use sockchat_tests::{FramedClient, STEP, ServerProc, TextClient};

const OPER_PW: &str = "0per-s3cret-pw";

fn server(tag: &str) -> ServerProc {
    let nicks = std::env::temp_dir().join(format!("sockchat-ops-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_file(&nicks);
    ServerProc::start_with_config(
        tag,
        &format!(
            "[server]\ndetect_timeout_ms = 100\n[auth]\noper_password = \"{OPER_PW}\"\nnicks_file = \"{}\"\n",
            nicks.display()
        ),
        &["--log", "debug"],
    )
}

/// A framed Hello from `from` with `nick`: the nick welcomed, or the error.
async fn hello_from(
    server: SocketAddr,
    from: &str,
    nick: &str,
) -> Result<FramedClient, (ErrorCode, String)> {
    FramedClient::hello_from(server, from.parse().unwrap(), nick).await
}

async fn udp_from(server: SocketAddr, from: &str) -> Result<(), HandshakeError> {
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    let mut l = UdpLink::connect_from(Some(local), server, UdpOptions::default())
        .await
        .unwrap();
    l.handshake("", Duration::from_millis(200), STEP)
        .await
        .map(|_| ())
}

/// An operator: hello, then `/oper` (a wrong password first).
async fn operator(addr: SocketAddr) -> FramedClient {
    let mut op = FramedClient::connect(addr, "op").await;
    op.send(&ClientMsg::Oper {
        password: "wrong".into(),
    })
    .await;
    match op
        .recv_until(|m| matches!(m, ServerMsg::Error { .. }))
        .await
    {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::BadPassword),
        _ => unreachable!(),
    }
    op.oper(OPER_PW).await;
    op
}

/// The `Left` of `nick` with a reason, exactly once: then no other `Left`
/// of that nick for a while.
async fn left_once(watch: &mut FramedClient, nick: &str) -> DisconnectReason {
    let m = watch
        .recv_until(|m| matches!(m, ServerMsg::Left { nick: n, .. } if n == nick))
        .await;
    let ServerMsg::Left { reason, room, .. } = m else {
        unreachable!()
    };
    assert_eq!(room, "lobby");
    let nick = nick.to_string();
    watch
        .expect_none(
            Duration::from_millis(400),
            |m| matches!(m, ServerMsg::Left { nick: n, .. } if *n == nick),
        )
        .await;
    reason.expect("a departure with a reason")
}

/// The victim's last message is `Bye` with `reason`, then EOF.
async fn bye_then_eof(c: &mut FramedClient) -> DisconnectReason {
    let ServerMsg::Bye { reason } = c.recv_until(|m| matches!(m, ServerMsg::Bye { .. })).await
    else {
        unreachable!()
    };
    assert!(
        matches!(c.recv_timeout(STEP).await, Ok(None)),
        "EOF (FIN) after Bye"
    );
    reason
}

#[tokio::test]
async fn kick_is_for_operators_and_ends_the_session_politely() {
    let srv = server("kick");
    let mut watch = FramedClient::connect(srv.addr, "watch").await;
    let mut op = operator(srv.addr).await;
    // A text (nc) user: reads the reason as its last line, then EOF.
    let mut bob = TextClient::connect(srv.addr).await;
    bob.welcome().await;
    bob.line("/nick bob").await;
    bob.expect_prefix("* ").await;
    bob.line("/kick op").await;
    assert_eq!(
        bob.expect_prefix("! ").await,
        "! /kick is for server operators (/oper PASSWORD)"
    );
    op.send(&ClientMsg::Kick {
        nick: "BOB".into(),
        reason: "spamming the lobby".into(),
    })
    .await;
    op.recv_until(|m| matches!(m, ServerMsg::Notice { text } if text == "kicked bob"))
        .await;
    let last = bob.expect_prefix("! ").await;
    assert_eq!(last, "! kicked by op: spamming the lobby");
    assert!(
        matches!(bob.read_line_timeout(STEP).await, Ok(None)),
        "EOF after the reason"
    );
    let reason = left_once(&mut watch, "bob").await;
    assert_eq!(
        reason,
        DisconnectReason::Kicked {
            by: "op".into(),
            why: "spamming the lobby".into()
        }
    );
    // A framed victim gets Bye(kicked) and EOF; no reason given is fine.
    let mut carol = FramedClient::connect(srv.addr, "carol").await;
    op.send(&ClientMsg::Kick {
        nick: "carol".into(),
        reason: String::new(),
    })
    .await;
    let r = bye_then_eof(&mut carol).await;
    assert_eq!(r.code(), "kicked");
    assert_eq!(r.to_string(), "kicked by op");
    assert_eq!(left_once(&mut watch, "carol").await, r);
    op.send(&ClientMsg::Kick {
        nick: "nobody".into(),
        reason: String::new(),
    })
    .await;
    match op
        .recv_until(|m| matches!(m, ServerMsg::Error { .. }))
        .await
    {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::NoSuchNick),
        _ => unreachable!(),
    }
    assert!(
        !srv.stderr().contains(OPER_PW),
        "the operator password is logged"
    );
    assert!(srv.stderr().contains("kick"), "the kick is logged");
}

#[tokio::test]
async fn bans_of_addresses_blocks_and_nicks() {
    let srv = server("ban");
    let mut watch = FramedClient::connect(srv.addr, "watch").await;
    let mut op = operator(srv.addr).await;
    let ban = |target: &str, secs: u32, reason: &str| ClientMsg::Ban {
        target: target.into(),
        secs,
        reason: reason.into(),
    };
    // An address, for 2 s: the user there is banned out, new connections
    // and UDP sessions from it are refused at admission until it expires.
    let mut dave = hello_from(srv.addr, "127.0.0.5", "dave").await.unwrap();
    op.send(&ban("127.0.0.5", 2, "flood")).await;
    let want = DisconnectReason::Banned {
        by: "op".into(),
        why: "flood".into(),
        secs: 2,
    };
    assert_eq!(bye_then_eof(&mut dave).await, want);
    assert_eq!(left_once(&mut watch, "dave").await, want);
    let (code, text) = hello_from(srv.addr, "127.0.0.5", "dave2")
        .await
        .err()
        .unwrap();
    assert_eq!(code, ErrorCode::Banned);
    assert!(
        text.starts_with("you are banned from this server (by op, "),
        "{text}"
    );
    assert!(text.ends_with("s left): flood"), "{text}");
    match udp_from(srv.udp_addr(), "127.0.0.5").await {
        Err(HandshakeError::Refused { code, .. }) => assert_eq!(code, ErrorCode::Banned),
        other => panic!("udp from a banned address: {other:?}"),
    }
    assert!(
        hello_from(srv.addr, "127.0.0.6", "").await.is_ok(),
        "other addresses come in"
    );
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(
        hello_from(srv.addr, "127.0.0.5", "dave").await.is_ok(),
        "the ban expired"
    );

    // A CIDR block until lifted.
    op.send(&ban("127.0.0.8/30", 0, "")).await;
    op.recv_until(|m| matches!(m, ServerMsg::Notice { text } if text.starts_with("banned block 127.0.0.8/30")))
        .await;
    assert_eq!(
        hello_from(srv.addr, "127.0.0.9", "").await.err().unwrap().0,
        ErrorCode::Banned
    );
    assert!(hello_from(srv.addr, "127.0.0.12", "").await.is_ok());
    op.send(&ClientMsg::Unban {
        target: "127.0.0.8/30".into(),
    })
    .await;
    op.recv_until(
        |m| matches!(m, ServerMsg::Notice { text } if text == "unbanned block 127.0.0.8/30"),
    )
    .await;
    assert!(hello_from(srv.addr, "127.0.0.9", "").await.is_ok());

    // A nick, with its look-alikes; its owner is banned out.
    let mut erin = FramedClient::connect(srv.addr, "erin").await;
    op.send(&ban("Erin", 0, "impersonation")).await;
    assert_eq!(bye_then_eof(&mut erin).await.code(), "banned");
    assert_eq!(left_once(&mut watch, "erin").await.code(), "banned");
    for n in ["erin", "ERIN", "\u{0435}rin"] {
        let (code, _) = hello_from(srv.addr, "127.0.0.1", n).await.err().unwrap();
        assert_eq!(code, ErrorCode::Banned, "{n}");
    }
    let mut f = FramedClient::connect(srv.addr, "frank").await;
    f.send(&ClientMsg::Nick {
        nick: "erin".into(),
    })
    .await;
    match f.recv_until(|m| matches!(m, ServerMsg::Error { .. })).await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::Banned),
        _ => unreachable!(),
    }
    op.send(&ClientMsg::Unban {
        target: "erin".into(),
    })
    .await;
    op.recv_until(|m| matches!(m, ServerMsg::Notice { text } if text.starts_with("unbanned nick")))
        .await;
    assert!(hello_from(srv.addr, "127.0.0.1", "erin").await.is_ok());
    // Not an operator: refused.
    f.send(&ban("127.0.0.7", 0, "")).await;
    match f.recv_until(|m| matches!(m, ServerMsg::Error { .. })).await {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::NotPermitted),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn mute_refuses_chat_until_lifted_or_expired() {
    let srv = server("mute");
    let mut watch = FramedClient::connect(srv.addr, "watch").await;
    let mut op = operator(srv.addr).await;
    let mut gus = FramedClient::connect(srv.addr, "gus").await;
    let said = |t: &'static str| move |m: &ServerMsg| matches!(m, ServerMsg::Chat { text, .. } if text == t);
    op.send(&ClientMsg::Mute {
        nick: "gus".into(),
        secs: 0,
    })
    .await;
    gus.recv_until(|m| matches!(m, ServerMsg::Notice { text } if text == "you are muted by op: your messages are refused"))
        .await;
    gus.say("can you hear me").await;
    match gus
        .recv_until(|m| matches!(m, ServerMsg::Error { .. }))
        .await
    {
        ServerMsg::Error { code, text } => {
            assert_eq!(code, ErrorCode::Muted);
            assert_eq!(text, "you are muted (by op): message not sent");
        }
        _ => unreachable!(),
    }
    gus.send(&ClientMsg::Private {
        to: "watch".into(),
        text: "psst".into(),
    })
    .await;
    match gus
        .recv_until(|m| matches!(m, ServerMsg::Error { .. }))
        .await
    {
        ServerMsg::Error { code, .. } => assert_eq!(code, ErrorCode::Muted),
        _ => unreachable!(),
    }
    watch
        .expect_none(Duration::from_millis(300), |m| {
            matches!(m, ServerMsg::Chat { .. } | ServerMsg::Private { .. })
        })
        .await;
    op.send(&ClientMsg::Unmute { nick: "gus".into() }).await;
    gus.recv_until(|m| matches!(m, ServerMsg::Notice { text } if text == "op unmuted you"))
        .await;
    gus.say("back").await;
    watch.recv_until(said("back")).await;
    // For 1 s: refused now, allowed after.
    op.send(&ClientMsg::Mute {
        nick: "gus".into(),
        secs: 1,
    })
    .await;
    gus.recv_until(|m| matches!(m, ServerMsg::Notice { text } if text.starts_with("you are muted by op for 1 s")))
        .await;
    gus.say("early").await;
    gus.recv_until(|m| {
        matches!(
            m,
            ServerMsg::Error {
                code: ErrorCode::Muted,
                ..
            }
        )
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    gus.say("later").await;
    watch.recv_until(said("later")).await;
}
