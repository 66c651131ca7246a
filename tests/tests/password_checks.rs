//! Password checks do not stall anyone else, and a session's messages keep
//! their order around one (server/src/password.rs). The operator password
//! here is an argon2 hash with a deliberately high cost (most of a second
//! of CPU per check), so a check that ran on the UDP task — the one task of
//! every UDP session — would visibly hold up another user's ping.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use sockchat_shared::udp::ServerBody;
use sockchat_shared::{ClientMsg, DisconnectReason, ErrorCode, ServerMsg, codec};
use sockchat_tests::udp_raw::{Datagram, RawUdp};
use sockchat_tests::{FramedClient, ServerProc};

/// argon2id, m = 64 MiB, t = 4, p = 1, of [`OPER_PW`]: 0.4–1.5 s of CPU
/// per check (optimised argon2, quiet to loaded machine), far longer than a
/// ping's round trip.
const SLOW_HASH: &str = "$argon2id$v=19$m=65536,t=4,p=1$c29ja2NoYXQtdGVzdHMhIQ$4EQ0Kya2+HW1HLNMK1Ey5jSESxXJWkNfH5awwIYC+NI";
const OPER_PW: &str = "slow-oper-pw";

/// Generous: a debug server on a loaded machine, checks queued behind others.
const STEP: Duration = Duration::from_secs(60);

fn server(tag: &str) -> ServerProc {
    ServerProc::start_with_config(
        tag,
        &format!("[auth]\noper_password_hash = \"{SLOW_HASH}\"\n"),
        &["--no-rate-limits"],
    )
}

/// The next message on a raw UDP session within `d` (other datagrams
/// skipped).
async fn next_msg(u: &mut RawUdp, d: Duration) -> Option<ServerMsg> {
    let until = Instant::now() + d;
    loop {
        match u
            .recv(until.saturating_duration_since(Instant::now()))
            .await
        {
            Some(Datagram {
                body: ServerBody::Msg(m),
                ..
            }) => return Some(m),
            Some(_) => {}
            None => return None,
        }
    }
}

/// While alice's wrong operator password is being checked, bob's ping over
/// UDP is answered at once: before alice hears the verdict. (With the check
/// on the UDP task, bob's ping waited behind it and alice's error came
/// first.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_check_does_not_stall_other_udp_sessions() {
    let srv = server("stall");
    let udp = srv.udp_addr();
    let mut alice = RawUdp::join(udp, "alice", STEP).await;
    let mut bob = RawUdp::join(udp, "bob", STEP).await;
    // Drain what registration sent (joins, history).
    while next_msg(&mut alice, Duration::from_millis(300))
        .await
        .is_some()
    {}
    while next_msg(&mut bob, Duration::from_millis(300))
        .await
        .is_some()
    {}

    for round in 0..2 {
        let asked = Instant::now();
        alice
            .send(&ClientMsg::Oper {
                password: "not-it".into(),
            })
            .await;
        // Let alice's datagram reach the server first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        bob.send(&ClientMsg::Ping { token: 70 + round }).await;
        let pong = next_msg(&mut bob, STEP).await;
        let ponged = asked.elapsed();
        assert!(
            matches!(pong, Some(ServerMsg::Pong { token }) if token == 70 + round),
            "{pong:?}"
        );
        let early = next_msg(&mut alice, Duration::ZERO).await;
        assert!(
            early.is_none(),
            "round {round}: alice's verdict ({early:?}) came before bob's pong ({ponged:?}): \
             the check held up the UDP task"
        );
        let verdict = next_msg(&mut alice, STEP).await;
        assert!(
            matches!(
                &verdict,
                Some(ServerMsg::Error {
                    code: ErrorCode::BadPassword,
                    ..
                })
            ),
            "{verdict:?}"
        );
        eprintln!(
            "round {round}: bob's pong after {ponged:?}, alice's verdict after {:?}",
            asked.elapsed()
        );
    }
}

/// What alice read up to her pong, and bob: the `Kick` behind her right
/// `Oper` was handled after the check, as an operator's.
async fn the_kick_came_after_the_oper(seen: &[ServerMsg], bob: &mut FramedClient) {
    assert!(
        seen.iter().any(
            |m| matches!(m, ServerMsg::Notice { text } if text == "you are a server operator")
        ),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|m| matches!(m, ServerMsg::Error { .. })),
        "the kick was refused: handled before the check? {seen:?}"
    );
    let bye = bob.recv_until(|m| matches!(m, ServerMsg::Bye { .. })).await;
    assert!(
        matches!(&bye, ServerMsg::Bye { reason: DisconnectReason::Kicked { by, .. } } if by == "alice"),
        "{bye:?}"
    );
}

fn oper() -> ClientMsg {
    ClientMsg::Oper {
        password: OPER_PW.into(),
    }
}

fn kick_bob() -> ClientMsg {
    ClientMsg::Kick {
        nick: "bob".into(),
        reason: "order".into(),
    }
}

/// A UDP session's messages wait for its password check, in order: the
/// `Kick` sent right behind a good `Oper` is handled as an operator's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_behind_a_check_wait_for_it_over_udp() {
    let srv = server("order-udp");
    let mut alice = RawUdp::join(srv.udp_addr(), "alice", STEP).await;
    let mut bob = FramedClient::connect(srv.addr, "bob").await;
    for m in [oper(), kick_bob(), ClientMsg::Ping { token: 9 }] {
        alice.send(&m).await;
    }
    let mut seen = Vec::new();
    loop {
        match next_msg(&mut alice, STEP).await {
            Some(ServerMsg::Pong { token: 9 }) => break,
            Some(m) => seen.push(m),
            None => panic!("no pong; saw {seen:?}"),
        }
    }
    the_kick_came_after_the_oper(&seen, &mut bob).await;
}

/// The same over TCP, with `Oper`, `Kick` and a ping in one write: what was
/// read behind the check is handled after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_behind_a_check_wait_for_it_over_tcp() {
    let srv = server("order-tcp");
    let mut alice = FramedClient::connect(srv.addr, "alice").await;
    let mut bob = FramedClient::connect(srv.addr, "bob").await;
    let mut all = BytesMut::new();
    for m in [oper(), kick_bob(), ClientMsg::Ping { token: 9 }] {
        all.extend_from_slice(&codec::client_frame(&m));
    }
    alice.send_raw(&all).await.expect("write");
    let mut seen = Vec::new();
    let until = Instant::now() + STEP;
    loop {
        match alice
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .await
        {
            Ok(Some(ServerMsg::Pong { token: 9 })) => break,
            Ok(Some(m)) => seen.push(m),
            other => panic!("no pong ({other:?}); saw {seen:?}"),
        }
    }
    the_kick_came_after_the_oper(&seen, &mut bob).await;
}
