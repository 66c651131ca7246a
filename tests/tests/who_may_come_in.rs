//! Who may come in, against the real server binary on loopback
//! (PROTOCOL.md "Who may come in"): the server password over the framed
//! protocol, text mode (what `nc` types) and UDP; nick registration
//! (`Register`, `Identify`; a registered nick and its look-alikes refused
//! to anyone else, kept across a restart in a 0600 file of hashes); room
//! keys and invite-only rooms. No password appears in the server's log or
//! in the client's `--json` output.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::path::PathBuf;
use std::time::Duration;

use sockchat::net::udp::{HandshakeError, Received, UdpLink, UdpOptions};
use sockchat_shared::{ClientMsg, ErrorCode, ServerMsg};
use sockchat_tests::{FramedClient, Plain, STEP, ServerProc, TextClient, sockchat_command};

const SERVER_PW: &str = "s3same-server-pw";
const NICK_PW: &str = "alice-n1ck-pw";

fn nicks_file(tag: &str) -> PathBuf {
    sockchat_tests::scratch_dir(&format!("wmci-{tag}")).join("nicks")
}

fn server(tag: &str, nicks: &std::path::Path, auth: &str) -> ServerProc {
    ServerProc::start_with_config(
        tag,
        &format!(
            "[server]\ndetect_timeout_ms = 100\n[auth]\nnicks_file = \"{}\"\n{auth}",
            nicks.display()
        ),
        &["--log", "debug"],
    )
}

/// The next message on a UDP link (skipping nothing: the test knows what
/// comes).
async fn next(u: &mut UdpLink) -> ServerMsg {
    match tokio::time::timeout(STEP, u.recv()).await {
        Ok(Ok(Received::Msg(m))) => m,
        other => panic!("udp: {other:?}"),
    }
}

#[tokio::test]
async fn the_server_password_on_framed_text_and_udp() {
    let nicks = nicks_file("pw");
    let srv = server("pw", &nicks, &format!("password = \"{SERVER_PW}\"\n"));

    // Framed: Hello without it is refused (the connection stays), a wrong
    // one too, then Pass and Hello again.
    let mut c = FramedClient::connect_raw(srv.addr).await.unwrap();
    c.send(&ClientMsg::Hello { nick: "al".into() }).await;
    assert_eq!(
        c.next_error().await,
        (
            ErrorCode::PasswordRequired,
            "this server needs a password: send Pass, then Hello".into()
        )
    );
    c.send(&ClientMsg::Pass {
        password: "guess".into(),
    })
    .await;
    assert_eq!(
        c.next_error().await,
        (ErrorCode::BadPassword, "wrong server password".into())
    );
    c.send(&ClientMsg::Pass {
        password: SERVER_PW.into(),
    })
    .await;
    c.expect_notice("password accepted").await;
    c.send(&ClientMsg::Hello { nick: "al".into() }).await;
    assert!(matches!(
        c.recv_until(|m| matches!(m, ServerMsg::Welcome { .. })).await,
        ServerMsg::Welcome { nick, .. } if nick == "al"
    ));

    // Three wrong ones end the connection.
    let mut g = FramedClient::connect_raw(srv.addr).await.unwrap();
    for _ in 0..3 {
        g.send(&ClientMsg::Pass {
            password: "guess".into(),
        })
        .await;
    }
    let ServerMsg::Bye { reason } = g.recv_until(|m| matches!(m, ServerMsg::Bye { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(
        reason.to_string(),
        "protocol error: too many wrong passwords (3)"
    );
    assert!(
        matches!(g.recv_timeout(STEP).await, Ok(None)),
        "EOF after Bye"
    );

    // Text mode, as nc types it.
    let mut t = TextClient::connect(srv.addr).await;
    assert_eq!(
        t.read_line().await,
        "* this server needs a password: type /pass PASSWORD (over TLS if you can: plain TCP carries it in the clear)"
    );
    t.line("hello?").await;
    t.expect_line("! this server needs a password: type /pass PASSWORD")
        .await;
    t.line("/pass nope").await;
    t.expect_line("! wrong server password").await;
    t.line(&format!("/pass {SERVER_PW}")).await;
    t.expect_line("* password accepted").await;
    let me = t.welcome().await;
    assert!(me.starts_with("guest"), "{me}");

    // UDP: the cookie Hello is refused but the session is kept; Pass (with
    // the session token), then Hello again.
    let mut u = UdpLink::connect(srv.udp_addr(), UdpOptions::default())
        .await
        .unwrap();
    match u.handshake("udpal", Duration::from_millis(200), STEP).await {
        Err(HandshakeError::Refused { code, .. }) => assert_eq!(code, ErrorCode::PasswordRequired),
        other => panic!("{other:?}"),
    }
    u.send(&ClientMsg::Pass {
        password: "nope".into(),
    })
    .await
    .unwrap();
    assert!(matches!(
        next(&mut u).await,
        ServerMsg::Error {
            code: ErrorCode::BadPassword,
            ..
        }
    ));
    u.send(&ClientMsg::Pass {
        password: SERVER_PW.into(),
    })
    .await
    .unwrap();
    assert!(
        matches!(next(&mut u).await, ServerMsg::Notice { text } if text == "password accepted")
    );
    u.send(&ClientMsg::Hello {
        nick: "udpal".into(),
    })
    .await
    .unwrap();
    assert!(matches!(next(&mut u).await, ServerMsg::Welcome { nick, .. } if nick == "udpal"));

    // The sockchat client: asked, the user types /pass; or it comes from
    // SOCKCHAT_PASSWORD. The password is not in its --json output.
    let args = [
        "--plain",
        "--json",
        "--no-reconnect",
        "--server",
        &srv.addr.to_string(),
    ];
    let mut cmd = sockchat_command(&args);
    cmd.env_remove("SOCKCHAT_PASSWORD");
    let mut p = Plain::spawn(&mut cmd, "plain asked", STEP);
    p.expect("this server needs a password: type /pass PASSWORD");
    p.send("/pass wrong-one");
    p.expect("wrong server password");
    p.send(&format!("/pass {SERVER_PW}"));
    p.expect("welcome");
    p.send("/quit");
    assert_eq!(p.finish(), 0, "{:?}", p.seen);
    assert!(
        !p.seen.iter().any(|l| l.contains(SERVER_PW)),
        "{:?}",
        p.seen
    );
    let mut cmd = sockchat_command(&args);
    cmd.env("SOCKCHAT_PASSWORD", SERVER_PW);
    let mut p = Plain::spawn(&mut cmd, "plain env", STEP);
    p.expect("welcome");
    p.send("/quit");
    assert_eq!(p.finish(), 0, "{:?}", p.seen);
    assert!(
        !p.seen.iter().any(|l| l.contains(SERVER_PW)),
        "{:?}",
        p.seen
    );

    let log = srv.stderr();
    assert!(log.contains("disconnected"), "the log is there: {log}");
    assert!(!log.contains(SERVER_PW), "the server password is logged");
}

#[tokio::test]
async fn registered_nicks_belong_to_their_owner() {
    let nicks = nicks_file("reg");
    let srv = server("reg", &nicks, "");
    let mut alice = FramedClient::connect(srv.addr, "alice").await;
    alice
        .send(&ClientMsg::Register {
            password: NICK_PW.into(),
        })
        .await;
    alice
        .expect_notice(
            "alice is registered to you: from now on identify first (/identify alice PASSWORD)",
        )
        .await;
    alice
        .send(&ClientMsg::Register {
            password: NICK_PW.into(),
        })
        .await;
    assert_eq!(alice.next_error().await.0, ErrorCode::NickRegistered);
    let file = std::fs::read_to_string(&nicks).expect("nicks file");
    assert!(file.contains("alice\t$argon2id$"), "{file}");
    assert!(!file.contains(NICK_PW), "hashes only");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&nicks).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A guest nick cannot be registered.
    let mut guest = FramedClient::connect(srv.addr, "").await;
    guest
        .send(&ClientMsg::Register {
            password: "pw".into(),
        })
        .await;
    assert_eq!(guest.next_error().await.0, ErrorCode::BadName);
    drop(alice);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Nobody else takes it, nor a look-alike, at Hello or by /nick.
    for n in ["alice", "ALICE", "\u{0430}lice"] {
        let mut m = FramedClient::connect_raw(srv.addr).await.unwrap();
        m.send(&ClientMsg::Hello { nick: n.into() }).await;
        let (code, text) = m.next_error().await;
        assert_eq!(code, ErrorCode::NickRegistered, "{n}: {text}");
        assert!(text.contains("Identify alice PASSWORD"), "{text}");
    }
    let mut mallory = FramedClient::connect(srv.addr, "mallory").await;
    mallory
        .send(&ClientMsg::Nick {
            nick: "Alice".into(),
        })
        .await;
    assert_eq!(mallory.next_error().await.0, ErrorCode::NickRegistered);
    mallory
        .send(&ClientMsg::Identify {
            nick: "alice".into(),
            password: "guess".into(),
        })
        .await;
    assert_eq!(
        mallory.next_error().await,
        (ErrorCode::BadPassword, "wrong password for alice".into())
    );
    mallory
        .send(&ClientMsg::Identify {
            nick: "nobody".into(),
            password: "guess".into(),
        })
        .await;
    assert_eq!(mallory.next_error().await.0, ErrorCode::NotRegistered);

    // Its owner, in text mode: /identify NICK PASSWORD takes it.
    let mut t = TextClient::connect(srv.addr).await;
    let guest_nick = t.welcome().await;
    t.line("/nick alice").await;
    t.expect_line("! nick alice is registered: identify first (/identify alice PASSWORD), or pick another nick")
        .await;
    t.line(&format!("/identify alice {NICK_PW}")).await;
    t.expect_line("* you are identified as alice").await;
    t.expect_line(&format!("* {guest_nick} is now known as alice"))
        .await;
    t.line("/quit").await;
    t.expect_line("* bye").await;

    // A restarted server still knows it; a framed client identifies
    // before its Hello.
    drop(srv);
    let srv = server("reg2", &nicks, "");
    let mut a = FramedClient::connect_raw(srv.addr).await.unwrap();
    a.send(&ClientMsg::Identify {
        nick: "ALICE".into(),
        password: NICK_PW.into(),
    })
    .await;
    a.expect_notice("you are identified as ALICE").await;
    a.send(&ClientMsg::Hello {
        nick: "alice".into(),
    })
    .await;
    assert!(matches!(
        a.recv_until(|m| matches!(m, ServerMsg::Welcome { .. })).await,
        ServerMsg::Welcome { nick, .. } if nick == "alice"
    ));

    // The sockchat client (--plain --json): the typed password is nowhere
    // in its output.
    let mut cmd = sockchat_command(&[
        "--plain",
        "--json",
        "--no-reconnect",
        "--server",
        &srv.addr.to_string(),
        "--nick",
        "bobby",
    ]);
    let mut p = Plain::spawn(&mut cmd, "plain --json", STEP);
    p.expect("welcome");
    p.send("/register b0bby-secret-pw");
    p.expect("bobby is registered to you");
    p.send("/identify b0bby-secret-pw");
    p.expect("you are identified as bobby");
    p.send("/quit");
    p.finish();
    assert!(
        !p.seen.iter().any(|l| l.contains("b0bby-secret-pw")),
        "{:?}",
        p.seen
    );
    assert!(!srv.stderr().contains(NICK_PW) && !srv.stderr().contains("b0bby-secret-pw"));
}

#[tokio::test]
async fn room_keys_and_invitations() {
    let nicks = nicks_file("rooms");
    let srv = server("rooms", &nicks, "oper_password = \"r00t-pw\"\n");
    let mut owner = FramedClient::connect(srv.addr, "owner").await;
    let mut bob = FramedClient::connect(srv.addr, "bob").await;
    let joined = |nick: &'static str| move |m: &ServerMsg| matches!(m, ServerMsg::Joined { room, nick: n } if room == "den" && n == nick);
    // A key given at creation is the room's key.
    owner
        .send(&ClientMsg::JoinKey {
            room: "den".into(),
            key: "d3n-key".into(),
        })
        .await;
    owner.recv_until(joined("owner")).await;
    bob.send(&ClientMsg::Join { room: "den".into() }).await;
    assert_eq!(
        bob.next_error().await,
        (
            ErrorCode::BadRoomKey,
            "den needs a key: /join den KEY".into()
        )
    );
    bob.send(&ClientMsg::JoinKey {
        room: "den".into(),
        key: "wrong".into(),
    })
    .await;
    assert_eq!(
        bob.next_error().await,
        (ErrorCode::BadRoomKey, "wrong key for den".into())
    );
    bob.send(&ClientMsg::JoinKey {
        room: "den".into(),
        key: "d3n-key".into(),
    })
    .await;
    bob.recv_until(joined("bob")).await;
    // Only the room's operator (its creator) sets it.
    bob.send(&ClientMsg::InviteOnly {
        room: "den".into(),
        on: true,
    })
    .await;
    assert_eq!(bob.next_error().await.0, ErrorCode::NotPermitted);
    owner
        .send(&ClientMsg::InviteOnly {
            room: "den".into(),
            on: true,
        })
        .await;
    bob.expect_notice("owner made den invite-only (/invite NICK)")
        .await;
    let mut carol = FramedClient::connect(srv.addr, "carol").await;
    carol
        .send(&ClientMsg::JoinKey {
            room: "den".into(),
            key: "d3n-key".into(),
        })
        .await;
    assert_eq!(carol.next_error().await.0, ErrorCode::InviteOnly);
    owner
        .send(&ClientMsg::Invite {
            nick: "carol".into(),
            room: "den".into(),
        })
        .await;
    carol
        .expect_notice("owner invites you to den: /join den")
        .await;
    carol.send(&ClientMsg::Join { room: "den".into() }).await;
    carol.recv_until(joined("carol")).await;
    // The default room stays open.
    owner
        .send(&ClientMsg::Oper {
            password: "r00t-pw".into(),
        })
        .await;
    owner.expect_notice("you are a server operator").await;
    owner
        .send(&ClientMsg::RoomKey {
            room: "lobby".into(),
            key: "x".into(),
        })
        .await;
    assert_eq!(owner.next_error().await.0, ErrorCode::NotPermitted);
    // A server operator passes the gates; a text user types /join ROOM KEY.
    let mut t = TextClient::connect(srv.addr).await;
    t.welcome().await;
    owner
        .send(&ClientMsg::InviteOnly {
            room: "den".into(),
            on: false,
        })
        .await;
    owner
        .expect_notice("owner opened den: no longer invite-only")
        .await;
    t.line("/join den").await;
    t.expect_line("! den needs a key: /join den KEY").await;
    t.line("/join den d3n-key").await;
    t.expect_prefix("* guest").await;
    assert!(!srv.stderr().contains("d3n-key"), "the room key is logged");
}
