//! UDP session hijack and reflection, against the real server binary on
//! loopback: a datagram that comes from a session's address but lacks the
//! session token (what a raw-socket spoofer can send: the victim's address,
//! its nick and room, any sequence number, but not the token it never saw)
//! is neither relayed nor obeyed nor answered; a replayed datagram from
//! before the sequence window and a jump far ahead are refused.
//!
//! The forged datagrams are sent from the victim's own socket: to the
//! server that is exactly a spoofed source address (same IP and port),
//! without needing CAP_NET_RAW in CI.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::time::Duration;

use sockchat_shared::udp::{self, SeqTracker, ServerBody};
use sockchat_shared::{ClientMsg, ServerMsg};
use sockchat_tests::udp_raw::RawUdp;
use sockchat_tests::{FramedClient, STEP, ServerProc};

const QUIET: Duration = Duration::from_millis(600);

fn say(text: &str) -> ClientMsg {
    ClientMsg::Say {
        room: String::new(),
        text: text.into(),
    }
}

/// Alice hears `text` from the victim exactly `n` times before a quiet gap.
async fn heard(alice: &mut FramedClient, text: &str, marker: &str) -> usize {
    let mut n = 0;
    loop {
        match alice
            .recv_until(|m| matches!(m, ServerMsg::Chat { .. }))
            .await
        {
            ServerMsg::Chat { text: t, .. } if t == text => n += 1,
            ServerMsg::Chat { text: t, .. } if t == marker => return n,
            _ => {}
        }
    }
}

/// A server, a TCP user and a UDP victim in the lobby, each having seen
/// the victim join.
async fn setup() -> (ServerProc, FramedClient, RawUdp) {
    let srv = ServerProc::start(&[]);
    let mut alice = FramedClient::connect(srv.addr, "alice").await;
    let mut victim = RawUdp::join(srv.udp_addr(), "victim", STEP).await;
    alice
        .recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "victim"))
        .await;
    victim
        .recv_until(
            STEP,
            |m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "victim"),
        )
        .await;
    (srv, alice, victim)
}

#[tokio::test]
async fn datagrams_without_the_session_token_are_refused() {
    let (srv, mut alice, mut victim) = setup().await;
    let token = victim.token.expect("the Hello echoed a cookie");

    // Forged: the victim's address, the next sequence numbers, no token /
    // a wrong token.
    let forged = [
        udp::encode_client(victim.seq, &say("forged, no token"), 1472).unwrap(),
        udp::encode_in_session(
            victim.seq + 1,
            Some(token ^ 1),
            &say("forged, bad token"),
            1472,
        )
        .unwrap(),
        udp::encode_client(victim.seq + 2, &ClientMsg::Rooms, 1472).unwrap(),
        udp::encode_client(
            victim.seq + 3,
            &ClientMsg::SockInfo {
                nick: String::new(),
            },
            1472,
        )
        .unwrap(),
        udp::encode_client(
            victim.seq + 4,
            &ClientMsg::Who {
                room: String::new(),
            },
            1472,
        )
        .unwrap(),
        udp::encode_client(
            victim.seq + 5,
            &ClientMsg::Quit {
                message: "spoofed".into(),
            },
            1472,
        )
        .unwrap(),
    ];
    for d in &forged {
        victim.sock.send(d).await.unwrap();
    }
    // No reflection: nothing at all comes back for them.
    if let Some(d) = victim.recv(QUIET).await {
        panic!("the server answered a datagram without the token: {d:?}");
    }
    // The session lives on (the spoofed Quit was ignored) and its own
    // datagrams still count, numbered on from where the victim was.
    victim.send(&ClientMsg::Ping { token: 7 }).await;
    victim
        .recv_until(STEP, |m| *m == ServerMsg::Pong { token: 7 })
        .await;
    victim.send(&say("genuine")).await;
    victim.send(&say("marker")).await;
    assert_eq!(heard(&mut alice, "genuine", "marker").await, 1);
    alice
        .expect_none(QUIET, |m| match m {
            ServerMsg::Chat { text, .. } => text.starts_with("forged"),
            ServerMsg::Left { nick, .. } => nick == "victim",
            _ => false,
        })
        .await;
    // The spoofer's own address gets nothing but a retry, however it
    // copies the victim's header.
    let mut other = RawUdp::bind(srv.udp_addr(), 1472).await.unwrap();
    other.seq = victim.seq;
    other.token = Some(token ^ 2);
    other.send(&say("forged, other port")).await;
    match other.recv(STEP).await.map(|d| d.body) {
        Some(ServerBody::Retry { .. }) | None => {}
        Some(b) => panic!("an unknown address got {b:?}"),
    }
}

#[tokio::test]
async fn replayed_and_far_ahead_sequence_numbers_are_refused() {
    let (_srv, mut alice, mut victim) = setup().await;
    let token = victim.token;
    // A genuine message, captured on the wire.
    let captured = udp::encode_in_session(victim.seq, token, &say("once"), 1472).unwrap();
    victim.seq += 1;
    victim.sock.send(&captured).await.unwrap();
    // Replayed at once (a duplicate), then after the window moved on
    // (pings are free of the rate limit). Their Pongs are drained after
    // each batch of 64: left unread, ~250 small datagrams fill this
    // socket's default receive buffer and the kernel drops the rest.
    victim.sock.send(&captured).await.unwrap();
    let pings = SeqTracker::WINDOW + 50;
    let mut i = 0;
    while i < pings {
        let batch_end = (i + 64).min(pings);
        for t in i..batch_end {
            victim.send(&ClientMsg::Ping { token: t }).await;
        }
        victim
            .recv_until(STEP, |m| {
                *m == ServerMsg::Pong {
                    token: batch_end - 1,
                }
            })
            .await;
        i = batch_end;
    }
    victim.sock.send(&captured).await.unwrap();
    // A jump far ahead with the right token (a stale or confused sender):
    // refused, and it does not push the genuine numbering behind the window.
    let ahead = udp::encode_in_session(
        victim.seq.wrapping_add(SeqTracker::WINDOW as u32 * 4),
        token,
        &say("far ahead"),
        1472,
    )
    .unwrap();
    victim.sock.send(&ahead).await.unwrap();
    victim.send(&say("marker")).await;
    assert_eq!(heard(&mut alice, "once", "marker").await, 1, "replayed");
    alice
        .expect_none(
            QUIET,
            |m| matches!(m, ServerMsg::Chat { text, .. } if text == "far ahead" || text == "once"),
        )
        .await;
}
