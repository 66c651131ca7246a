//! Chat behaviour of the in-process server over real loopback sockets:
//! broadcast, rooms, private messages, nicks, text mode, history, and how
//! disconnects are announced.

use std::time::Duration;

use sockchat_shared::{ChatKind, ClientMsg, DisconnectReason, ErrorCode, ServerMsg};
use sockchat_tests::{FramedClient, TextClient, start_server, with_server};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

fn is_chat_from<'a>(from: &'a str, text: &'a str) -> impl Fn(&ServerMsg) -> bool + 'a {
    move |m| matches!(m, ServerMsg::Chat { from: f, text: t, .. } if f == from && t == text)
}

#[tokio::test]
async fn broadcast_reaches_every_member() {
    with_server(
        T,
        |_| {},
        async |srv| {
            let mut a = FramedClient::connect(srv.addr(), "alice").await;
            let mut b = FramedClient::connect(srv.addr(), "bob").await;
            let mut c = FramedClient::connect(srv.addr(), "carol").await;
            a.recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "carol"))
                .await;
            b.recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "carol"))
                .await;
            a.say("hello all").await;
            for cl in [&mut a, &mut b, &mut c] {
                match cl.recv_until(is_chat_from("alice", "hello all")).await {
                    ServerMsg::Chat {
                        room,
                        kind,
                        history,
                        ..
                    } => {
                        assert_eq!(room, "lobby");
                        assert_eq!(kind, ChatKind::Say);
                        assert!(!history);
                    }
                    _ => unreachable!(),
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn rooms_are_isolated() {
    with_server(
        T,
        |_| {},
        async |srv| {
            let mut a = FramedClient::connect(srv.addr(), "alice").await;
            let mut b = FramedClient::connect(srv.addr(), "bob").await;
            let mut c = FramedClient::connect(srv.addr(), "carol").await;
            for cl in [&mut a, &mut b] {
                cl.send(&ClientMsg::Join { room: "dev".into() }).await;
                cl.recv_until(|m| matches!(m, ServerMsg::Joined { room, .. } if room == "dev"))
                    .await;
            }
            // Both leave the lobby: carol is alone there.
            for cl in [&mut a, &mut b] {
                cl.send(&ClientMsg::Leave {
                    room: "lobby".into(),
                })
                .await;
            }
            a.say("dev only").await;
            b.recv_until(is_chat_from("alice", "dev only")).await;
            c.say("lobby only").await;
            c.recv_until(is_chat_from("carol", "lobby only")).await;
            // Neither side saw the other room's message.
            a.say("marker").await;
            let m = b.recv_until(|m| matches!(m, ServerMsg::Chat { .. })).await;
            assert!(is_chat_from("alice", "marker")(&m), "leak into dev: {m:?}");
            c.expect_none(Duration::from_millis(300), |m| {
                matches!(m, ServerMsg::Chat { .. })
            })
            .await;
        },
    )
    .await;
}

#[tokio::test]
async fn private_messages_reach_only_the_target() {
    with_server(T, |_| {}, async |srv| {
        let mut a = FramedClient::connect(srv.addr(), "alice").await;
        let mut b = FramedClient::connect(srv.addr(), "bob").await;
        let mut t = TextClient::connect(srv.addr()).await;
        let guest = t.welcome().await;
        a.send(&ClientMsg::Private {
            to: "bob".into(),
            text: "psst".into(),
        })
        .await;
        let m = b
            .recv_until(|m| matches!(m, ServerMsg::Private { .. }))
            .await;
        assert_eq!(
            m,
            match &m {
                ServerMsg::Private { ts_ms, .. } => ServerMsg::Private {
                    from: "alice".into(),
                    to: "bob".into(),
                    text: "psst".into(),
                    ts_ms: *ts_ms
                },
                _ => unreachable!(),
            }
        );
        // The framed sender gets its copy back.
        a.recv_until(|m| matches!(m, ServerMsg::Private { to, .. } if to == "bob"))
            .await;
        // A text user receives `[pm] alice: ...`.
        a.send(&ClientMsg::Private {
            to: guest.clone(),
            text: "hi guest".into(),
        })
        .await;
        t.expect_line("[pm] alice: hi guest").await;
        // Unknown nick: an error, not a crash.
        a.send(&ClientMsg::Private {
            to: "nobody".into(),
            text: "x".into(),
        })
        .await;
        let e = a
            .recv_until(|m| matches!(m, ServerMsg::Error { .. }))
            .await;
        assert!(
            matches!(&e, ServerMsg::Error { code: ErrorCode::NoSuchNick, text } if text == "no such nick: nobody"),
            "{e:?}"
        );
        // bob never saw the guest's pm.
        b.expect_none(Duration::from_millis(300), |m| {
            matches!(m, ServerMsg::Private { .. })
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn nick_collision_is_refused() {
    with_server(
        T,
        |_| {},
        async |srv| {
            let _a = FramedClient::connect(srv.addr(), "alice").await;
            let mut b = FramedClient::connect_raw(srv.addr())
                .await
                .expect("connect");
            b.send(&ClientMsg::Hello {
                nick: "Alice".into(),
            })
            .await;
            match b.recv().await {
                ServerMsg::Error { code, text } => {
                    assert_eq!(code, ErrorCode::NickTaken);
                    assert_eq!(text, "nick already taken: Alice");
                }
                other => panic!("expected NickTaken, got {other:?}"),
            }
            // Still in the handshake: another hello works.
            b.send(&ClientMsg::Hello { nick: "bob".into() }).await;
            assert!(matches!(b.recv().await, ServerMsg::Welcome { nick, .. } if nick == "bob"));
            // Renaming onto a taken nick fails too; a free one is announced.
            let mut t = TextClient::connect(srv.addr()).await;
            let guest = t.welcome().await;
            t.line("/nick alice").await;
            t.expect_line("! nick already taken: alice").await;
            t.line("/nick dave").await;
            t.expect_line(&format!("* {guest} is now known as dave"))
                .await;
            b.recv_until(|m| matches!(m, ServerMsg::NickChanged { new, .. } if new == "dave"))
                .await;
        },
    )
    .await;
}

/// Drive text mode with a raw TcpStream exactly as nc would, checking the
/// exact line formats of DESIGN.md.
#[tokio::test]
async fn text_mode_lines_are_exact() {
    with_server(
        T,
        |_| {},
        async |srv| {
            let mut t1 = TextClient::connect(srv.addr()).await;
            let g1 = t1.welcome().await;
            assert!(g1.starts_with("guest"), "{g1}");
            let mut t2 = TextClient::connect(srv.addr()).await;
            let g2 = t2.welcome().await;
            t1.expect_line(&format!("* {g2} joined lobby")).await;
            t1.line("/nick alice").await;
            t1.expect_line(&format!("* {g1} is now known as alice"))
                .await;
            t2.expect_line(&format!("* {g1} is now known as alice"))
                .await;
            t2.line("/nick bob").await;
            t1.expect_line(&format!("* {g2} is now known as bob")).await;
            t2.expect_line(&format!("* {g2} is now known as bob")).await;

            t1.line("hello").await;
            t2.expect_line("[lobby] alice: hello").await;
            t1.line("/me waves").await;
            t2.expect_line("[lobby] * alice waves").await;
            // Telnet sends CRLF; the CR is not part of the text.
            t2.line("hi\r").await;
            t1.expect_line("[lobby] bob: hi").await;
            t1.line("/msg bob psst").await;
            t2.expect_line("[pm] alice: psst").await;
            t1.line("/msg nobody x").await;
            t1.expect_line("! no such nick: nobody").await;
            t1.line("/who").await;
            t1.expect_line("* lobby (2): alice, bob").await;
            t1.line("/join dev").await;
            t1.expect_line("* alice joined dev").await;
            t1.line("/rooms").await;
            t1.expect_line("* rooms (2): dev (1), lobby (2)").await;
            t1.line("/frob").await;
            t1.expect_line("! unknown command: /frob (try /help)").await;
            t1.line("/help").await;
            t1.expect_line("* commands:").await;
            // Control characters never reach a text user.
            t2.line("evil \x1b[2J\x07 text").await;
            let l = t1.expect_prefix("[lobby] bob: evil").await;
            assert!(!l.chars().any(|c| c.is_control()), "{l:?}");
            // Own room messages are not echoed: alice (in dev now) talks, only
            // the marker after it arrives.
            t1.line("/leave dev").await;
            t1.expect_line("* alice left dev").await;
            t1.line("back in lobby").await;
            t2.expect_line("[lobby] alice: back in lobby").await;
            t1.line("/who").await;
            t1.expect_line("* lobby (2): alice, bob").await;

            t2.line("/quit").await;
            t2.expect_line("* bye").await;
            assert!(matches!(
                t2.read_line_timeout(Duration::from_secs(5)).await,
                Ok(None)
            ));
            t1.expect_line("* bob left lobby: quit").await;
        },
    )
    .await;
}

#[tokio::test]
async fn history_is_replayed_on_join() {
    with_server(
        T,
        |s| s.config.server.history = 3,
        async |srv| {
            let mut a = FramedClient::connect(srv.addr(), "alice").await;
            for i in 0..5 {
                a.say(&format!("m{i}")).await;
            }
            a.recv_until(is_chat_from("alice", "m4")).await;
            let mut b = FramedClient::connect(srv.addr(), "bob").await;
            let mut got = Vec::new();
            while got.len() < 3 {
                if let ServerMsg::Chat { text, history, .. } = b.recv().await {
                    assert!(history, "replayed messages are marked history");
                    got.push(text);
                }
            }
            assert_eq!(got, ["m2", "m3", "m4"]);
            // Text users get the same lines, marked as history.
            let mut t = TextClient::connect(srv.addr()).await;
            t.expect_prefix("* welcome ").await;
            t.expect_prefix("* guest").await;
            t.expect_line("[lobby history] alice: m2").await;
            t.expect_line("[lobby history] alice: m3").await;
            t.expect_line("[lobby history] alice: m4").await;
        },
    )
    .await;
}

/// A client that closes normally is announced as EOF; one that closes with
/// SO_LINGER=0 (RST) as ECONNRESET 104 — to framed and text members alike.
#[tokio::test]
async fn eof_and_reset_are_announced_with_their_reason() {
    with_server(
        T,
        |_| {},
        async |srv| {
            let mut a = FramedClient::connect(srv.addr(), "alice").await;
            let mut t = TextClient::connect(srv.addr()).await;
            t.welcome().await;

            let mut fin = FramedClient::connect(srv.addr(), "finn").await;
            t.expect_line("* finn joined lobby").await;
            // Read everything the server sent first: a close with unread data
            // in the receive buffer is an RST, not a FIN.
            fin.recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "finn"))
                .await;
            drop(fin);
            t.expect_line("* finn left lobby: closed by peer (EOF, FIN received)")
                .await;
            let m = a
                .recv_until(|m| matches!(m, ServerMsg::Left { nick, .. } if nick == "finn"))
                .await;
            assert_eq!(
                m,
                ServerMsg::Left {
                    room: "lobby".into(),
                    nick: "finn".into(),
                    reason: Some(DisconnectReason::Eof)
                }
            );

            let rst = FramedClient::connect(srv.addr(), "rusty").await;
            t.expect_line("* rusty joined lobby").await;
            let std = rst.stream.into_std().expect("into_std");
            socket2::SockRef::from(&std)
                .set_linger(Some(Duration::ZERO))
                .expect("SO_LINGER 0");
            drop(std);
            t.expect_line("* rusty left lobby: connection reset by peer (ECONNRESET 104)")
                .await;
            let m = a
                .recv_until(|m| matches!(m, ServerMsg::Left { nick, .. } if nick == "rusty"))
                .await;
            match m {
                ServerMsg::Left {
                    reason: Some(r), ..
                } => {
                    assert_eq!(r, DisconnectReason::Reset);
                    assert_eq!(r.errno(), Some(104));
                }
                other => panic!("{other:?}"),
            }
        },
    )
    .await;
}

/// IPv4 and IPv6 listeners side by side (IPV6_V6ONLY): users on both chat.
#[tokio::test]
async fn ipv4_and_ipv6_listeners_share_rooms() {
    timeout(T, async {
        sockchat_tests::require!(
            sockchat_tests::have_ipv6_loopback(),
            "IPv6 loopback (::1) is not available on this host"
        );
        let srv = start_server(|s| {
            s.listen = vec![
                "127.0.0.1:0".parse().expect("v4"),
                "[::1]:0".parse().expect("v6"),
            ];
        })
        .await;
        assert_eq!(srv.addrs.len(), 2);
        assert!(srv.addrs[1].is_ipv6());
        let mut a = FramedClient::connect(srv.addrs[0], "four").await;
        let mut b = FramedClient::connect(srv.addrs[1], "six").await;
        a.recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "six"))
            .await;
        b.say("over v6").await;
        a.recv_until(is_chat_from("six", "over v6")).await;
        srv.shutdown().await.expect("shutdown");
    })
    .await
    .expect("test timed out");
}

/// Rooms bigger than `announce_max_members` stay quiet about joins and
/// leaves (each would cost a frame per member); smaller rooms announce.
#[tokio::test]
async fn big_rooms_do_not_announce_joins_and_leaves() {
    with_server(
        T,
        |s| s.config.server.announce_max_members = 2,
        async |srv| {
            let mut a = FramedClient::connect(srv.addr(), "a").await;
            let b = FramedClient::connect(srv.addr(), "b").await;
            a.recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "b"))
                .await;
            let mut c = FramedClient::connect(srv.addr(), "c").await;
            // c hears its own join; a does not (3 members > 2).
            c.recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "c"))
                .await;
            drop(b);
            a.say("marker").await;
            loop {
                match a.recv().await {
                    ServerMsg::Joined { nick, .. } => panic!("{nick}'s join was announced"),
                    ServerMsg::Left { nick, .. } => panic!("{nick}'s leave was announced"),
                    ServerMsg::Chat { text, .. } if text == "marker" => break,
                    _ => {}
                }
            }
            // Down to 2 members: c's departure is announced again. (c reads
            // the marker first: closing with unread data would send RST.)
            c.recv_until(|m| matches!(m, ServerMsg::Chat { text, .. } if text == "marker"))
                .await;
            drop(c);
            assert_eq!(
                a.recv_until(|m| matches!(m, ServerMsg::Left { .. })).await,
                ServerMsg::Left {
                    room: "lobby".into(),
                    nick: "c".into(),
                    reason: Some(DisconnectReason::Eof)
                }
            );
        },
    )
    .await;
}

/// A user in several rooms: each room is told, once, with the one reason.
#[tokio::test]
async fn disconnect_is_announced_in_every_room_of_the_user() {
    with_server(T, |_| {}, async |srv| {
        let mut lobby_watch = TextClient::connect(srv.addr()).await;
        lobby_watch.welcome().await;
        let mut dev_watch = FramedClient::connect(srv.addr(), "devwatch").await;
        dev_watch.send(&ClientMsg::Join { room: "dev".into() }).await;
        dev_watch
            .recv_until(|m| matches!(m, ServerMsg::Joined { room, .. } if room == "dev"))
            .await;
        let mut multi = FramedClient::connect(srv.addr(), "multi").await;
        multi.send(&ClientMsg::Join { room: "dev".into() }).await;
        multi
            .recv_until(|m| matches!(m, ServerMsg::Joined { room, nick } if room == "dev" && nick == "multi"))
            .await;
        dev_watch
            .recv_until(|m| matches!(m, ServerMsg::Joined { room, nick } if room == "dev" && nick == "multi"))
            .await;
        let std = multi.stream.into_std().expect("into_std");
        socket2::SockRef::from(&std)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        drop(std);
        lobby_watch
            .expect_line("* multi left lobby: connection reset by peer (ECONNRESET 104)")
            .await;
        let mut lefts = Vec::new();
        loop {
            match dev_watch.recv_timeout(Duration::from_millis(500)).await {
                Ok(Some(ServerMsg::Left { room, nick, reason })) if nick == "multi" => {
                    lefts.push((room, reason))
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        // devwatch is in lobby and dev: one Left per room, same reason.
        lefts.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            lefts,
            vec![
                ("dev".to_string(), Some(DisconnectReason::Reset)),
                ("lobby".to_string(), Some(DisconnectReason::Reset)),
            ]
        );
    })
    .await;
}

/// Issue 15 item 8: `/quit MESSAGE` reaches the rooms — text users see
/// `* byer left lobby: quit: goodbye everyone`, framed users a `Left` whose
/// reason is `quit` with the message; the quitter's `Bye` carries it too.
/// The message is sanitised like chat text.
#[tokio::test]
async fn quit_message_reaches_the_room() {
    with_server(
        T,
        |_| {},
        async |srv| {
            let mut watcher = TextClient::connect(srv.addr()).await;
            watcher.welcome().await;
            let mut framed = FramedClient::connect(srv.addr(), "framed").await;
            let mut byer = TextClient::connect(srv.addr()).await;
            byer.welcome().await;
            byer.line("/nick byer").await;
            watcher.expect_line("* guest2 is now known as byer").await;
            byer.line("/quit goodbye  everyone\x1b[2J").await;
            byer.expect_line("* bye").await;
            watcher
                .expect_line("* byer left lobby: quit: goodbye  everyone\u{fffd}[2J")
                .await;
            let left = framed
                .recv_until(|m| matches!(m, ServerMsg::Left { nick, .. } if nick == "byer"))
                .await;
            assert_eq!(
                left,
                ServerMsg::Left {
                    room: "lobby".into(),
                    nick: "byer".into(),
                    reason: Some(DisconnectReason::Quit {
                        message: "goodbye  everyone\u{fffd}[2J".into()
                    }),
                }
            );
            // A framed quitter: its Bye carries the message, the room hears it.
            framed
                .send(&ClientMsg::Quit {
                    message: "see you".into(),
                })
                .await;
            let bye = framed
                .recv_until(|m| matches!(m, ServerMsg::Bye { .. }))
                .await;
            assert_eq!(
                bye,
                ServerMsg::Bye {
                    reason: DisconnectReason::Quit {
                        message: "see you".into()
                    }
                }
            );
            watcher
                .expect_line("* framed left lobby: quit: see you")
                .await;
        },
    )
    .await;
}
