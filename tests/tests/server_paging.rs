//! Replies never exceed the frame limit (issue 9, item 9), against the
//! real `sockchat-server` binary over loopback:
//! - a `Who` of a room of 2,700 members (a 70,000-byte list) arrives over
//!   TCP in pages of at most 65,536 bytes whose union is every member, and
//!   the real `sockchat` client (which enforces that limit) still lists
//!   them instead of dying with a protocol error;
//! - over UDP, `Rooms` and `SockInfo` larger than one datagram arrive
//!   completely, in pages of at most `udp.max_payload`, instead of being
//!   replaced by a notice;
//! - a UDP sender whose own echo does not fit one datagram is told its
//!   message was delivered (and the room did get it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::BytesMut;
use sockchat_shared::page::{self, MAX_SERVER_FRAME};
use sockchat_shared::udp::ServerBody;
use sockchat_shared::{ClientMsg, ServerMsg, codec};
use sockchat_tests::udp_raw::RawUdp;
use sockchat_tests::{FramedClient, Plain, ServerProc, sockchat_command};

fn start_with(name: &str, config: &str, extra: &[&str]) -> ServerProc {
    ServerProc::start_with_config(&format!("paging-{name}"), config, extra)
}

/// The payload size of `m` on the wire (the codec is the reference
/// encoder; a decoded message re-encodes to the same bytes).
fn payload_len(m: &ServerMsg) -> usize {
    let mut b = BytesMut::new();
    codec::encode_server_payload(m, &mut b);
    b.len()
}

/// A 24-character nick (the default maximum), so 2,700 of them are far
/// over 64 KiB.
fn member_nick(i: usize) -> String {
    format!("m{i:04}-{}", "x".repeat(18))
}

const MEMBERS: usize = 2_700;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_who_of_2700_members_arrives_in_pages_within_the_frame_limit() {
    // Joins are not announced (announce_max_members = 1) so the ramp is not
    // 2,700² notices; --no-rate-limits lifts the per-address cap.
    let srv = start_with(
        "who",
        "[server]\nannounce_max_members = 1\nhistory = 0\n",
        &["--no-rate-limits"],
    );
    let addr = srv.addr;
    let mut members = Vec::with_capacity(MEMBERS);
    tokio::time::timeout(Duration::from_secs(120), async {
        for batch in (0..MEMBERS).collect::<Vec<_>>().chunks(100) {
            let mut set = tokio::task::JoinSet::new();
            for &i in batch {
                set.spawn(async move { FramedClient::connect(addr, &member_nick(i)).await });
            }
            while let Some(c) = set.join_next().await {
                members.push(c.expect("connect task"));
            }
        }
    })
    .await
    .expect("2,700 members connected within 120 s");

    let mut obs = FramedClient::connect(addr, "observer").await;
    let mut want: BTreeSet<String> = (0..MEMBERS).map(member_nick).collect();
    want.insert("observer".into());
    let full = ServerMsg::Who {
        room: "lobby".into(),
        nicks: want.iter().cloned().collect(),
    };
    assert!(
        payload_len(&full) > MAX_SERVER_FRAME,
        "the test must need paging: {} bytes",
        payload_len(&full)
    );
    // A member's Welcome is sent just before its join of the lobby, so the
    // last few may still be joining: ask again (bounded) until all are in.
    let mut last = None;
    for _attempt in 0..20 {
        let (reply, pages) = who_reply(&mut obs).await;
        for (i, p) in pages.iter().enumerate() {
            let n = payload_len(p);
            assert!(n <= MAX_SERVER_FRAME, "page {i} is {n} bytes");
        }
        if reply == full {
            assert!(pages.len() >= 2, "one frame cannot hold it");
            last = None;
            break;
        }
        last = Some(reply);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(ServerMsg::Who { nicks, .. }) = last {
        let have: BTreeSet<String> = nicks.into_iter().collect();
        let missing: Vec<&String> = want.difference(&have).take(5).collect();
        panic!(
            "the union of the pages is not every member: {} of {}, missing e.g. {missing:?}",
            have.len(),
            want.len()
        );
    }

    // The real client, which refuses frames over 64 KiB, lists them too.
    let mut plain = Plain::spawn(
        sockchat_command(&[
            "--plain",
            "--no-reconnect",
            "--server",
            &addr.to_string(),
            "--nick",
            "watcher",
        ])
        .stderr(std::process::Stdio::null()),
        "sockchat --plain",
        Duration::from_secs(20),
    );
    plain.expect("welcome");
    plain.send("/who");
    plain.expect(&member_nick(MEMBERS - 1));
    assert!(
        !plain.seen.iter().any(|l| l.contains("protocol error")),
        "{:?}",
        plain.seen.iter().map(|l| short_line(l)).collect::<Vec<_>>()
    );
    drop(members);
}

/// Ask for `Who` of the current room and assemble the reply: the first
/// page, then every frame that continues it (PROTOCOL.md's rule), until
/// nothing more comes for 1 s (nothing else is sent to the observer: joins
/// are not announced). Returns the assembled reply and its pages.
async fn who_reply(obs: &mut FramedClient) -> (ServerMsg, Vec<ServerMsg>) {
    obs.send(&ClientMsg::Who {
        room: String::new(),
    })
    .await;
    let first = obs.recv_until(|m| matches!(m, ServerMsg::Who { .. })).await;
    let mut pages = vec![first.clone()];
    let mut reply = first;
    while let Ok(Some(next)) = obs.recv_timeout(Duration::from_secs(1)).await {
        assert!(
            page::merge(&mut reply, &next),
            "page {} does not continue the reply: {:?}",
            pages.len() + 1,
            short(&next)
        );
        pages.push(next);
        assert!(pages.len() < 100, "bounded");
    }
    (reply, pages)
}

fn short(m: &ServerMsg) -> String {
    short_line(&format!("{m:?}"))
}

fn short_line(l: &str) -> String {
    l.chars().take(200).collect()
}

/// `udp.max_payload = 300`: a Rooms list of 61 rooms and the UDP user's own
/// SockInfo are each several datagrams; every one fits, nothing is replaced
/// by a notice, and the pages put back together are the whole reply.
#[tokio::test]
async fn udp_list_replies_larger_than_a_datagram_arrive_completely() {
    const MAX: usize = 300;
    let srv = start_with(
        "udp",
        &format!("[limits]\nmax_rooms_per_user = 100\n[udp]\nmax_payload = {MAX}\n"),
        &["--no-rate-limits"],
    );
    let step = Duration::from_secs(5);
    let mut maker = FramedClient::connect(srv.addr, "maker").await;
    let rooms: Vec<String> = (0..60)
        .map(|i| format!("room-with-a-long-name-{i:03}"))
        .collect();
    for r in &rooms {
        maker.send(&ClientMsg::Join { room: r.clone() }).await;
    }
    let last = rooms.last().cloned().expect("rooms");
    maker
        .recv_until(|m| matches!(m, ServerMsg::Joined { room, .. } if *room == last))
        .await;

    let mut u = RawUdp::join(srv.udp_addr(), "udpuser", step).await;
    u.max = MAX;
    u.send(&ClientMsg::Rooms).await;
    let (first, _) = u
        .recv_until(step, |m| {
            matches!(m, ServerMsg::Rooms { .. } | ServerMsg::Notice { .. })
        })
        .await;
    let mut reply = first;
    let mut pages = 1;
    while matches!(&reply, ServerMsg::Rooms { rooms: got } if got.len() < rooms.len() + 1) {
        let d = u.recv(step).await.expect("next Rooms page");
        assert!(d.len <= MAX, "{} bytes", d.len);
        let ServerBody::Msg(m) = d.body else {
            panic!("retry in a session")
        };
        assert!(page::merge(&mut reply, &m), "not a continuation: {m:?}");
        pages += 1;
        assert!(pages < 50, "bounded");
    }
    let ServerMsg::Rooms { rooms: got } = &reply else {
        panic!("expected Rooms, got {reply:?}")
    };
    let mut want: Vec<String> = rooms.clone();
    want.push("lobby".into());
    want.sort();
    assert_eq!(got.iter().map(|r| r.name.clone()).collect::<Vec<_>>(), want);
    assert!(
        pages > 2,
        "a list this long needs several datagrams ({pages})"
    );

    // SockInfo "" is my own socket as the server sees it: several pages too.
    u.send(&ClientMsg::SockInfo {
        nick: String::new(),
    })
    .await;
    let (first, _) = u
        .recv_until(step, |m| {
            matches!(m, ServerMsg::SockInfo { .. } | ServerMsg::Notice { .. })
        })
        .await;
    let mut reply = first;
    // The server's SockInfo for a UDP member ends with the outbox fields.
    while !matches!(&reply, ServerMsg::SockInfo { fields, .. } if fields.iter().any(|(k, _)| k == "outbox_dropped"))
    {
        let d = u.recv(step).await.expect("next SockInfo page");
        let ServerBody::Msg(m) = d.body else {
            panic!("retry in a session")
        };
        assert!(page::merge(&mut reply, &m), "not a continuation: {m:?}");
    }
    let ServerMsg::SockInfo { nick, fields } = &reply else {
        panic!("{reply:?}")
    };
    assert_eq!(nick, "udpuser");
    assert!(
        fields.iter().any(|(k, v)| k == "transport" && v == "udp"),
        "{fields:?}"
    );
    assert!(payload_len(&reply) > MAX, "it needed paging");
}

/// A UDP user's own echo that does not fit one datagram: the room got the
/// message, and the sender is told so (not "not delivered").
#[tokio::test]
async fn a_udp_echo_too_large_for_a_datagram_is_reported_as_delivered() {
    const MAX: usize = 300;
    let srv = start_with("echo", &format!("[udp]\nmax_payload = {MAX}\n"), &[]);
    let step = Duration::from_secs(5);
    let mut tcp = FramedClient::connect(srv.addr, "listener").await;
    let mut u = RawUdp::join(srv.udp_addr(), "speaker", step).await;
    u.max = MAX;
    // The Say fits (8 + 8 token + 1 + 2 + 2 + 272 = 293 bytes); its echo
    // (with room, nick, timestamp) does not.
    let text = "z".repeat(272);
    u.send(&ClientMsg::Say {
        room: String::new(),
        text: text.clone(),
    })
    .await;
    let (notice, before) = u
        .recv_until(step, |m| matches!(m, ServerMsg::Notice { .. }))
        .await;
    assert!(
        !before.iter().any(|m| matches!(m, ServerMsg::Chat { .. })),
        "{before:?}"
    );
    let ServerMsg::Notice { text: n } = notice else {
        unreachable!()
    };
    assert!(n.contains("delivered to the room lobby"), "{n}");
    assert!(
        n.contains("your echo did not fit in one UDP datagram"),
        "{n}"
    );
    assert!(!n.contains("not delivered"), "{n}");
    let m = tcp
        .recv_until(|m| matches!(m, ServerMsg::Chat { from, .. } if from == "speaker"))
        .await;
    assert!(matches!(m, ServerMsg::Chat { text: t, .. } if t == text));
}
