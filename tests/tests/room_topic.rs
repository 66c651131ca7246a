//! `/topic` against the real server binary on loopback (PROTOCOL.md
//! "Topic"), framed and text clients together: the room's operator sets
//! it, every member is told, a joiner gets it right after its `Joined`
//! (before the history), `/rooms` lists it, text is sanitised and
//! bounded; others are refused (not the room's operator, not a member,
//! the default room without being a server operator).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use sockchat_shared::{ClientMsg, ErrorCode, MAX_TOPIC_LEN, ServerMsg};
use sockchat_tests::{FramedClient, ServerProc, TextClient};

const OPER_PW: &str = "t0pic-oper-pw";

fn topic(room: &str, text: Option<&str>) -> ClientMsg {
    ClientMsg::Topic {
        room: room.into(),
        text: text.map(str::to_string),
    }
}

async fn error(c: &mut FramedClient) -> (ErrorCode, String) {
    match c.recv_until(|m| matches!(m, ServerMsg::Error { .. })).await {
        ServerMsg::Error { code, text } => (code, text),
        _ => unreachable!(),
    }
}

async fn next_topic(c: &mut FramedClient) -> (String, String, String, bool) {
    match c.recv_until(|m| matches!(m, ServerMsg::Topic { .. })).await {
        ServerMsg::Topic {
            room,
            text,
            by,
            changed,
        } => (room, text, by, changed),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn the_room_operator_sets_it_and_everyone_sees_it() {
    let server = ServerProc::start_with_config(
        "topic",
        &format!("[server]\ndetect_timeout_ms = 100\n[auth]\noper_password = \"{OPER_PW}\"\n"),
        &[],
    );
    let mut alice = FramedClient::connect(server.addr, "alice").await;
    alice.send(&ClientMsg::Join { room: "dev".into() }).await;
    alice
        .recv_until(|m| matches!(m, ServerMsg::Joined { room, .. } if room == "dev"))
        .await;
    let mut bob = TextClient::connect(server.addr).await;
    let bob_nick = bob.welcome().await;
    bob.line("/join dev").await;
    bob.expect_line(&format!("* {bob_nick} joined dev")).await;

    // A member who is not the room's operator is refused.
    bob.line("/topic nope").await;
    bob.expect_line(
        "! only dev's operator (who created it) or a server operator may set its topic",
    )
    .await;
    // The operator sets it (sanitised); every member is told, the setter too.
    alice
        .send(&topic("dev", Some("  ship it\u{7} now  ")))
        .await;
    assert_eq!(
        next_topic(&mut alice).await,
        (
            "dev".into(),
            "ship it\u{FFFD} now".into(),
            "alice".into(),
            true
        )
    );
    bob.expect_line("* alice set the topic of dev: ship it\u{FFFD} now")
        .await;
    // Bounded.
    alice
        .send(&topic("dev", Some(&"x".repeat(MAX_TOPIC_LEN + 1))))
        .await;
    let (code, text) = error(&mut alice).await;
    assert_eq!(code, ErrorCode::MessageTooLong, "{text}");
    // Anyone may ask.
    bob.line("/topic #dev").await;
    bob.expect_line("* topic of dev: ship it\u{FFFD} now (set by alice)")
        .await;

    // A joiner gets it right after its Joined, before the history.
    alice.say("before carol").await;
    let mut carol = FramedClient::connect(server.addr, "carol").await;
    carol.send(&ClientMsg::Join { room: "dev".into() }).await;
    carol
        .recv_until(
            |m| matches!(m, ServerMsg::Joined { room, nick } if room == "dev" && nick == "carol"),
        )
        .await;
    match carol.recv().await {
        ServerMsg::Topic {
            room,
            text,
            by,
            changed: false,
        } => assert_eq!(
            (room, text, by),
            ("dev".into(), "ship it\u{FFFD} now".into(), "alice".into())
        ),
        other => panic!("expected the topic right after Joined, got {other:?}"),
    }
    assert!(
        matches!(carol.recv().await, ServerMsg::Chat { history: true, .. }),
        "then the history"
    );

    // /rooms: the list, then the topics.
    bob.line("/rooms").await;
    let rooms = bob.expect_prefix("* rooms (2)").await;
    assert!(rooms.contains("dev (3)"), "{rooms}");
    bob.expect_line("* topic of dev: ship it\u{FFFD} now (set by alice)")
        .await;

    // Not a member: refused; the default room: server operators only.
    let mut dave = FramedClient::connect(server.addr, "dave").await;
    dave.send(&topic("dev", Some("mine"))).await;
    let (code, text) = error(&mut dave).await;
    assert_eq!(code, ErrorCode::NotInRoom, "{text}");
    dave.send(&topic("", Some("lobby topic"))).await;
    let (code, text) = error(&mut dave).await;
    assert_eq!(code, ErrorCode::NotPermitted, "{text}");
    assert!(text.contains("set by server operators"), "{text}");
    dave.oper(OPER_PW).await;
    dave.send(&topic("", Some("lobby topic"))).await;
    assert_eq!(
        next_topic(&mut dave).await,
        ("lobby".into(), "lobby topic".into(), "dave".into(), true)
    );
    dave.send(&topic("", None)).await;
    assert_eq!(
        next_topic(&mut dave).await,
        ("lobby".into(), "lobby topic".into(), "dave".into(), false)
    );

    // Cleared: told as such; a query then says there is none.
    alice.send(&topic("dev", Some(""))).await;
    bob.expect_line("* alice cleared the topic of dev").await;
    carol.send(&topic("dev", None)).await;
    let answer = carol
        .recv_until(|m| matches!(m, ServerMsg::Topic { changed: false, .. }))
        .await;
    assert_eq!(
        answer,
        ServerMsg::Topic {
            room: "dev".into(),
            text: String::new(),
            by: String::new(),
            changed: false,
        }
    );
}
