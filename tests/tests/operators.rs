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

use sockchat_shared::{ClientMsg, DisconnectReason, ErrorCode, ServerMsg};
use sockchat_tests::udp_raw::RawUdp;
use sockchat_tests::{FramedClient, STEP, ServerProc, TextClient};

const OPER_PW: &str = "0per-s3cret-pw";

/// A fresh server: no registered nicks, no bans.
fn server(tag: &str) -> ServerProc {
    let nicks = nicks_file(tag);
    let _ = std::fs::remove_file(&nicks);
    let _ = std::fs::remove_file(bans_file(tag));
    restart(tag)
}

/// The nicks file of test `tag` (its bans are `NICKS.bans`).
fn nicks_file(tag: &str) -> std::path::PathBuf {
    sockchat_tests::scratch(&format!("ops-{tag}"))
}

fn bans_file(tag: &str) -> std::path::PathBuf {
    let mut p = nicks_file(tag).into_os_string();
    p.push(".bans");
    p.into()
}

/// A server on test `tag`'s files as the last one left them.
fn restart(tag: &str) -> ServerProc {
    let nicks = nicks_file(tag);
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

/// An operator: hello, then `/oper` (a wrong password first).
async fn operator(addr: SocketAddr) -> FramedClient {
    let mut op = FramedClient::connect(addr, "op").await;
    op.send(&ClientMsg::Oper {
        password: "wrong".into(),
    })
    .await;
    assert_eq!(op.next_error().await.0, ErrorCode::BadPassword);
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
    op.expect_notice("kicked bob").await;
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
    assert_eq!(op.next_error().await.0, ErrorCode::NoSuchNick);
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
    match RawUdp::join_from(srv.udp_addr(), [127, 0, 0, 5].into(), "", STEP).await {
        Err((code, _)) => assert_eq!(code, ErrorCode::Banned),
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
    op.expect_notice("unbanned block 127.0.0.8/30").await;
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
    assert_eq!(f.next_error().await.0, ErrorCode::Banned);
    op.send(&ClientMsg::Unban {
        target: "erin".into(),
    })
    .await;
    op.recv_until(|m| matches!(m, ServerMsg::Notice { text } if text.starts_with("unbanned nick")))
        .await;
    assert!(hello_from(srv.addr, "127.0.0.1", "erin").await.is_ok());
    // Not an operator: refused.
    f.send(&ban("127.0.0.7", 0, "")).await;
    assert_eq!(f.next_error().await.0, ErrorCode::NotPermitted);
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
    gus.expect_notice("you are muted by op: your messages are refused")
        .await;
    gus.say("can you hear me").await;
    assert_eq!(
        gus.next_error().await,
        (
            ErrorCode::Muted,
            "you are muted (by op): message not sent".into()
        )
    );
    gus.send(&ClientMsg::Private {
        to: "watch".into(),
        text: "psst".into(),
    })
    .await;
    assert_eq!(gus.next_error().await.0, ErrorCode::Muted);
    watch
        .expect_none(Duration::from_millis(300), |m| {
            matches!(m, ServerMsg::Chat { .. } | ServerMsg::Private { .. })
        })
        .await;
    op.send(&ClientMsg::Unmute { nick: "gus".into() }).await;
    gus.expect_notice("op unmuted you").await;
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

/// The notices answering `/bans`: from the count line to the last ban.
async fn ban_list(op: &mut FramedClient) -> Vec<String> {
    op.send(&ClientMsg::Bans).await;
    let first = op
        .recv_until(|m| matches!(m, ServerMsg::Notice { text } if text.ends_with(" bans:") || text == "no bans"))
        .await;
    let ServerMsg::Notice { text } = first else {
        unreachable!()
    };
    let Some(n) = text.strip_suffix(" bans:") else {
        return Vec::new();
    };
    let n: usize = n.parse().unwrap();
    let mut lines = Vec::new();
    while lines.len() < n {
        if let ServerMsg::Notice { text } = op
            .recv_until(|m| matches!(m, ServerMsg::Notice { .. }))
            .await
        {
            lines.push(text.trim().to_string());
        }
    }
    lines
}

/// Bans outlive a restart (kept in the nicks file's `.bans`, mode 0600),
/// those that expire while the server is down are gone when it is back, and
/// `/bans` lists them, for operators only.
#[tokio::test]
async fn bans_are_listed_and_outlive_a_restart() {
    let tag = "keep";
    let srv = server(tag);
    let mut op = operator(srv.addr).await;
    assert_eq!(ban_list(&mut op).await, Vec::<String>::new());
    let mut bob = FramedClient::connect(srv.addr, "bob").await;
    bob.send(&ClientMsg::Bans).await;
    let (code, text) = bob.next_error().await;
    assert_eq!(code, ErrorCode::NotPermitted, "{text}");
    for (target, secs, why) in [
        ("127.0.0.9", 0, "for good"),
        ("mallory", 3600, "an hour"),
        ("127.0.0.10", 1, "soon over"),
    ] {
        op.send(&ClientMsg::Ban {
            target: target.into(),
            secs,
            reason: why.into(),
        })
        .await;
        op.recv_until(|m| matches!(m, ServerMsg::Notice { text } if text.starts_with("banned ")))
            .await;
    }
    let listed = ban_list(&mut op).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed[0], "address 127.0.0.9 by op, until /unban: for good");
    assert!(
        listed[1].starts_with("nick ") && listed[1].ends_with(" s left: an hour"),
        "{listed:?}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(bans_file(tag))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    // Down (SIGKILL: nothing is written at exit) long enough for the 1 s
    // ban to expire, then up again on the same files.
    drop(srv);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let srv = restart(tag);
    let (code, text) = hello_from(srv.addr, "127.0.0.9", "").await.err().unwrap();
    assert_eq!(code, ErrorCode::Banned, "{text}");
    assert!(text.ends_with("(by op): for good"), "{text}");
    let (code, _) = hello_from(srv.addr, "127.0.0.1", "mallory")
        .await
        .err()
        .unwrap();
    assert_eq!(code, ErrorCode::Banned);
    assert!(
        hello_from(srv.addr, "127.0.0.10", "").await.is_ok(),
        "the 1 s ban expired while the server was down"
    );
    let mut op = operator(srv.addr).await;
    let listed = ban_list(&mut op).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        !listed.iter().any(|l| l.contains("127.0.0.10")),
        "{listed:?}"
    );
    op.send(&ClientMsg::Unban {
        target: "127.0.0.9".into(),
    })
    .await;
    op.expect_notice("unbanned address 127.0.0.9").await;
    drop(srv);
    let srv = restart(tag);
    assert!(
        hello_from(srv.addr, "127.0.0.9", "").await.is_ok(),
        "an unban outlives a restart too"
    );
    let _ = std::fs::remove_file(nicks_file(tag));
    let _ = std::fs::remove_file(bans_file(tag));
}
