//! Limits, each with a clear error to the client and (where it must) a
//! close with its one reason: slow consumers, oversize frames, bad UTF-8,
//! rate limit, connection caps, idle and handshake timeouts, message length,
//! room caps. Plus `/sockinfo`.

use std::time::Duration;

use sockchat_shared::{ClientMsg, DisconnectReason, ErrorCode, ServerMsg};
use sockchat_tests::{FramedClient, TextClient, start_server, with_server};
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(30);

/// Read until Bye; returns its reason. Then the connection must reach EOF.
async fn expect_bye_then_eof(c: &mut FramedClient) -> DisconnectReason {
    let reason = match c.recv_until(|m| matches!(m, ServerMsg::Bye { .. })).await {
        ServerMsg::Bye { reason } => reason,
        _ => unreachable!(),
    };
    match c.recv_timeout(Duration::from_secs(5)).await {
        Ok(None) => {}
        other => panic!("expected EOF after Bye, got {other:?}"),
    }
    reason
}

async fn expect_left(c: &mut FramedClient, who: &str) -> Option<DisconnectReason> {
    match c
        .recv_until(|m| matches!(m, ServerMsg::Left { nick, .. } if nick == who))
        .await
    {
        ServerMsg::Left { reason, .. } => reason,
        _ => unreachable!(),
    }
}

/// A member that never reads is disconnected as a slow consumer; the
/// others keep receiving every message.
#[tokio::test]
async fn slow_reader_is_disconnected_and_others_keep_receiving() {
    with_server(
        T,
        |s| {
            s.no_rate_limits = true;
            s.config.server.outbox_frames = 8;
            s.config.server.send_buffer = 4096;
        },
        async |srv| {
            let addr = srv.addr();
            let mut fast = FramedClient::connect(addr, "fast").await;
            // The slow reader: tiny receive buffer, never reads.
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("socket");
            sock.set_recv_buffer_size(2048).expect("SO_RCVBUF");
            sock.connect(&addr.into()).expect("connect");
            sock.set_nonblocking(true).expect("nonblocking");
            let slow_stream = tokio::net::TcpStream::from_std(sock.into()).expect("tokio");
            let (_slow_r, mut slow_w) = slow_stream.into_split();
            slow_w
                .write_all(&sockchat_shared::proto::preamble())
                .await
                .expect("preamble");
            slow_w
                .write_all(&sockchat_shared::codec::client_frame(&ClientMsg::Hello {
                    nick: "sloth".into(),
                }))
                .await
                .expect("hello");

            fast.recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "sloth"))
                .await;
            // A text sender: text users get no echo, so it never has to read.
            let mut sender = TextClient::connect(addr).await;
            sender.welcome().await;

            const N: usize = 400;
            let body = "x".repeat(1000);
            let send = tokio::spawn(async move {
                for i in 0..N {
                    sender.line(&format!("{i:04} {body}")).await;
                    if i % 20 == 0 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                sender
            });
            let mut got = 0;
            let mut sloth_reason = None;
            while got < N {
                match fast.recv().await {
                    ServerMsg::Chat { text, .. } => {
                        assert!(text.starts_with(&format!("{got:04} ")), "in order: {got}");
                        got += 1;
                    }
                    ServerMsg::Left {
                        nick,
                        reason: Some(r),
                        ..
                    } if nick == "sloth" => sloth_reason = Some(r),
                    _ => {}
                }
            }
            let _sender = send.await.expect("sender");
            if sloth_reason.is_none() {
                sloth_reason = expect_left(&mut fast, "sloth").await;
            }
            assert_eq!(
                sloth_reason,
                Some(DisconnectReason::SlowConsumer { frames: 8 }),
                "announced as slow-consumer"
            );
        },
    )
    .await;
}

/// With `slow_consumer = "drop"` the slow member stays and its drops are
/// counted (visible in /sockinfo).
#[tokio::test]
async fn drop_policy_keeps_the_member_and_counts() {
    with_server(
        T,
        |s| {
            s.no_rate_limits = true;
            s.config.server.outbox_frames = 4;
            s.config.server.send_buffer = 4096;
            s.config.server.slow_consumer = sockchat_shared::config::SlowConsumerPolicy::Drop;
        },
        async |srv| {
            let addr = srv.addr();
            let mut fast = FramedClient::connect(addr, "fast").await;
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("socket");
            sock.set_recv_buffer_size(2048).expect("SO_RCVBUF");
            sock.connect(&addr.into()).expect("connect");
            sock.set_nonblocking(true).expect("nonblocking");
            let mut slow = tokio::net::TcpStream::from_std(sock.into()).expect("tokio");
            slow.write_all(&sockchat_shared::proto::preamble())
                .await
                .expect("preamble");
            slow.write_all(&sockchat_shared::codec::client_frame(&ClientMsg::Hello {
                nick: "sloth".into(),
            }))
            .await
            .expect("hello");
            fast.recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "sloth"))
                .await;
            let mut sender = TextClient::connect(addr).await;
            sender.welcome().await;
            let body = "y".repeat(1000);
            for i in 0..200 {
                sender.line(&format!("{i} {body}")).await;
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            fast.recv_until(
                |m| matches!(m, ServerMsg::Chat { text, .. } if text.starts_with("199 ")),
            )
            .await;
            fast.send(&ClientMsg::SockInfo {
                nick: "sloth".into(),
            })
            .await;
            let fields = match fast
                .recv_until(|m| matches!(m, ServerMsg::SockInfo { .. }))
                .await
            {
                ServerMsg::SockInfo { nick, fields } => {
                    assert_eq!(nick, "sloth");
                    fields
                }
                _ => unreachable!(),
            };
            let get = |k: &str| {
                fields
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| panic!("no {k} in {fields:?}"))
            };
            assert_eq!(get("tcpi_state"), "ESTABLISHED");
            assert_eq!(get("outbox_capacity"), "4");
            let dropped: u64 = get("outbox_dropped").parse().expect("number");
            assert!(dropped > 0, "drops are counted: {fields:?}");
            // sloth is still a member.
            fast.send(&ClientMsg::Who {
                room: String::new(),
            })
            .await;
            let who = fast
                .recv_until(|m| matches!(m, ServerMsg::Who { .. }))
                .await;
            assert!(
                matches!(&who, ServerMsg::Who { nicks, .. } if nicks.iter().any(|n| n == "sloth")),
                "{who:?}"
            );
        },
    )
    .await;
}

#[tokio::test]
async fn oversize_frame_is_a_protocol_error() {
    with_server(
        T,
        |s| s.config.limits.max_frame = 1024,
        async |srv| {
            let mut watcher = FramedClient::connect(srv.addr(), "watcher").await;
            let mut c = FramedClient::connect(srv.addr(), "big").await;
            // Announce 1 MB: refused from the header alone, before any payload.
            c.send_raw(&(1u32 << 20).to_be_bytes())
                .await
                .expect("write");
            let e = c.recv_until(|m| matches!(m, ServerMsg::Error { .. })).await;
            assert_eq!(
                e,
                ServerMsg::Error {
                    code: ErrorCode::Protocol,
                    text: "frame of 1048576 bytes exceeds the maximum of 1024".into()
                }
            );
            let r = expect_bye_then_eof(&mut c).await;
            assert_eq!(r.code(), "protocol-error");
            assert_eq!(
                r.to_string(),
                "protocol error: frame of 1048576 bytes exceeds the maximum of 1024"
            );
            let left = expect_left(&mut watcher, "big").await;
            assert_eq!(left, Some(r));
        },
    )
    .await;
}

#[tokio::test]
async fn invalid_utf8_is_a_protocol_error() {
    with_server(T, |_| {}, async |srv| {
        let mut c = FramedClient::connect(srv.addr(), "mojibake").await;
        // Say room="" text=[0xC3 0x28] (invalid UTF-8).
        let payload = [0x05, 0, 0, 0, 2, 0xC3, 0x28];
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        c.send_raw(&frame).await.expect("write");
        let e = c.recv_until(|m| matches!(m, ServerMsg::Error { .. })).await;
        assert!(
            matches!(&e, ServerMsg::Error { code: ErrorCode::Protocol, text } if text == "invalid UTF-8 in text"),
            "{e:?}"
        );
        let r = expect_bye_then_eof(&mut c).await;
        assert_eq!(r.to_string(), "protocol error: invalid UTF-8 in text");
    })
    .await;
}

#[tokio::test]
async fn flooding_is_rate_limited_then_disconnected() {
    with_server(
        T,
        |s| {
            s.config.limits.messages_per_sec = 5.0;
            s.config.limits.burst = 5.0;
            s.config.limits.rate_limit_strikes = 10;
        },
        async |srv| {
            let mut t = TextClient::connect(srv.addr()).await;
            t.welcome().await;
            let mut f = FramedClient::connect(srv.addr(), "flood").await;
            for i in 0..40 {
                f.say(&format!("f{i}")).await;
            }
            let e = f.recv_until(|m| matches!(m, ServerMsg::Error { .. })).await;
            assert!(
                matches!(
                    &e,
                    ServerMsg::Error {
                        code: ErrorCode::RateLimited,
                        ..
                    }
                ),
                "{e:?}"
            );
            assert_eq!(
                expect_bye_then_eof(&mut f).await,
                DisconnectReason::RateLimited
            );
            t.expect_line("* flood left lobby: rate limited").await;
        },
    )
    .await;
}

#[tokio::test]
async fn rate_limits_can_be_turned_off() {
    with_server(
        T,
        |s| {
            s.no_rate_limits = true;
            s.config.limits.messages_per_sec = 1.0;
            s.config.limits.burst = 1.0;
            s.config.limits.max_connections_per_ip = 1;
        },
        async |srv| {
            let mut a = FramedClient::connect(srv.addr(), "a").await;
            // A second connection from the same address is fine too.
            let mut b = FramedClient::connect(srv.addr(), "b").await;
            for i in 0..100 {
                a.say(&format!("n{i}")).await;
            }
            b.recv_until(|m| matches!(m, ServerMsg::Chat { text, .. } if text == "n99"))
                .await;
        },
    )
    .await;
}

#[tokio::test]
async fn connection_caps_refuse_with_a_clear_error() {
    timeout(T, async {
        let srv = start_server(|s| s.config.limits.max_connections = 2).await;
        let _a = FramedClient::connect(srv.addr(), "a").await;
        let _b = FramedClient::connect(srv.addr(), "b").await;
        // Text client: one error line, then EOF.
        let mut t = TextClient::connect(srv.addr()).await;
        t.expect_line("! server full (2 connections); try again later")
            .await;
        assert!(matches!(
            t.read_line_timeout(Duration::from_secs(5)).await,
            Ok(None)
        ));
        // Framed client: preamble, Error frame, EOF.
        let mut c = FramedClient::connect_raw(srv.addr())
            .await
            .expect("connect");
        assert!(matches!(
            c.recv().await,
            ServerMsg::Error {
                code: ErrorCode::ServerFull,
                ..
            }
        ));
        assert!(matches!(
            c.recv_timeout(Duration::from_secs(5)).await,
            Ok(None)
        ));
        srv.shutdown().await.expect("shutdown");

        let srv = start_server(|s| s.config.limits.max_connections_per_ip = 1).await;
        let _a = FramedClient::connect(srv.addr(), "a").await;
        let mut t = TextClient::connect(srv.addr()).await;
        t.expect_line("! too many connections from 127.0.0.1 (max 1)")
            .await;
        srv.shutdown().await.expect("shutdown");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn silent_framed_client_is_pinged_then_idle_timed_out() {
    with_server(
        T,
        |s| {
            s.config.limits.idle_timeout_secs = 2;
            s.config.limits.ping_interval_secs = 1;
        },
        async |srv| {
            let mut t = TextClient::connect(srv.addr()).await;
            t.welcome().await;
            let mut live = FramedClient::connect(srv.addr(), "live").await;
            let mut mute = FramedClient::connect(srv.addr(), "mute").await;
            // `live` answers pings in the background; `mute` never does.
            let keep = tokio::spawn(async move {
                for _ in 0..3 {
                    if let ServerMsg::Ping { token } = live
                        .recv_until(|m| matches!(m, ServerMsg::Ping { .. }))
                        .await
                    {
                        live.send(&ClientMsg::Pong { token }).await;
                    }
                }
                live
            });
            assert!(matches!(
                mute.recv_until(|m| matches!(m, ServerMsg::Ping { .. }))
                    .await,
                ServerMsg::Ping { .. }
            ));
            assert_eq!(
                expect_bye_then_eof(&mut mute).await,
                DisconnectReason::IdleTimeout { secs: 2 }
            );
            t.expect_line("* mute left lobby: idle timeout (2 s)").await;
            // `live` answered its pings and is still here after 3 of them.
            let mut live = keep.await.expect("live task");
            live.send(&ClientMsg::Who {
                room: String::new(),
            })
            .await;
            assert!(matches!(
                live.recv_until(|m| matches!(m, ServerMsg::Who { .. })).await,
                ServerMsg::Who { nicks, .. } if nicks.contains(&"live".to_string())
            ));
        },
    )
    .await;
}

#[tokio::test]
async fn handshake_must_finish_in_time() {
    with_server(
        T,
        |s| s.config.limits.handshake_timeout_secs = 1,
        async |srv| {
            let mut c = FramedClient::connect_raw(srv.addr())
                .await
                .expect("connect");
            let e = c.recv_until(|m| matches!(m, ServerMsg::Error { .. })).await;
            assert!(matches!(
                e,
                ServerMsg::Error {
                    code: ErrorCode::Protocol,
                    ..
                }
            ));
            let r = expect_bye_then_eof(&mut c).await;
            assert_eq!(r.to_string(), "protocol error: no hello within 1 s");
        },
    )
    .await;
}

#[tokio::test]
async fn names_lengths_and_room_caps_give_clear_errors() {
    with_server(
        T,
        |s| {
            s.config.limits.max_message_len = 10;
            s.config.limits.max_rooms = 2;
            s.config.limits.max_rooms_per_user = 5;
        },
        async |srv| {
            let mut t = TextClient::connect(srv.addr()).await;
            t.welcome().await;
            t.line("this is too long").await;
            t.expect_line("! message too long (16 bytes, max 10)").await;
            // One word (PROTOCOL.md "Text mode"), then the naming rule.
            t.line("/nick bad nick").await;
            t.expect_line("! usage: /nick NAME").await;
            t.line("/nick bad!nick").await;
            t.expect_line("! nick may only contain letters, digits, '-', '_' and '.'")
                .await;
            t.line("/join r1").await;
            t.expect_line("* guest1 joined r1").await;
            t.line("/join r2").await;
            t.expect_line("* guest1 joined r2").await;
            // lobby (the default room, not counted) + r1 + r2: a third is refused.
            t.line("/join r3").await;
            t.expect_line("! too many rooms on this server (max 2)")
                .await;
            t.line("/join bad\u{7}room").await;
            t.expect_line("! room name may only contain letters, digits, '-', '_' and '.'")
                .await;
            let long = "z".repeat(200);
            t.line(&long).await;
            t.expect_line("! line too long (max 10 bytes): ignored")
                .await;
            // Still usable after every error.
            t.line("/who").await;
            t.expect_line("* r2 (1): guest1").await;
            let mut f = FramedClient::connect(srv.addr(), "f").await;
            f.say("0123456789A").await;
            assert!(matches!(
                f.recv_until(|m| matches!(m, ServerMsg::Error { .. })).await,
                ServerMsg::Error {
                    code: ErrorCode::MessageTooLong,
                    ..
                }
            ));
        },
    )
    .await;
}

/// A member that is slow rather than gone: after it is cut off, a reader
/// that resumes within the flush window still learns why (the last line is
/// `! slow consumer ...`), then EOF; nothing after the cut is half-written.
#[tokio::test]
async fn a_slow_but_alive_reader_is_told_why() {
    with_server(
        T,
        |s| {
            s.no_rate_limits = true;
            s.config.server.outbox_frames = 8;
            s.config.server.send_buffer = 4096;
        },
        async |srv| {
            let addr = srv.addr();
            let mut watcher = TextClient::connect(addr).await;
            watcher.welcome().await;
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("socket");
            sock.set_recv_buffer_size(2048).expect("SO_RCVBUF");
            sock.connect(&addr.into()).expect("connect");
            sock.set_nonblocking(true).expect("nonblocking");
            let slow = tokio::net::TcpStream::from_std(sock.into()).expect("tokio");
            let (slow_r, mut slow_w) = slow.into_split();
            slow_w.write_all(b"/nick sloth\n").await.expect("nick");
            watcher.expect_line("* guest2 is now known as sloth").await;
            let mut sender = TextClient::connect(addr).await;
            sender.welcome().await;
            let body = "z".repeat(1000);
            let mut i = 0;
            // Flood until the watcher hears that sloth was cut off.
            let left = loop {
                sender.line(&format!("{i} {body}")).await;
                i += 1;
                if i % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                if let Ok(Some(l)) = watcher.read_line_timeout(Duration::from_millis(1)).await
                    && l.starts_with("* sloth left")
                {
                    break l;
                }
                assert!(i < 5000, "sloth was never cut off");
            };
            assert_eq!(
                left,
                "* sloth left lobby: slow consumer (queue full: 8 frames)"
            );
            // sloth reads now: whole lines only, the notice last, then EOF.
            let mut r = tokio::io::BufReader::new(slow_r);
            let mut last = String::new();
            loop {
                let mut l = String::new();
                match tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::io::AsyncBufReadExt::read_line(&mut r, &mut l),
                )
                .await
                {
                    Ok(Ok(0)) => break,
                    Ok(Ok(_)) => {
                        assert!(l.ends_with('\n'), "half-written line: {l:?}");
                        last = l;
                    }
                    Ok(Err(e)) => panic!("read error {e} after {last:?}"),
                    Err(_) => panic!("no EOF; last line {last:?}"),
                }
            }
            assert_eq!(last, "! slow consumer (queue full: 8 frames)\n");
            drop(sender);
        },
    )
    .await;
}
