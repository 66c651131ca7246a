//! Room-table exhaustion, against the real server binary on loopback: one
//! address, however many connections it opens, creates at most
//! `limits.max_rooms_created_per_ip` rooms, one user at most
//! `max_rooms_created_per_user`; another address (127.0.0.2, also
//! loopback) can still create rooms; a deleted (emptied) room gives its
//! slot back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::net::SocketAddr;

use sockchat_shared::{ClientMsg, ErrorCode, ServerMsg};
use sockchat_tests::{FramedClient, ServerProc};

const CONFIG: &str = "[limits]\nmax_rooms = 12\nmax_rooms_per_user = 32\n\
                      max_rooms_created_per_user = 3\nmax_rooms_created_per_ip = 5\n";

/// A framed user connected from `from` (an address of 127.0.0.0/8).
async fn user_from(server: SocketAddr, from: &str, nick: &str) -> FramedClient {
    let mut c = FramedClient::connect_raw_from(server, from.parse().unwrap())
        .await
        .unwrap();
    c.send(&ClientMsg::Hello { nick: nick.into() }).await;
    c.recv_until(|m| matches!(m, ServerMsg::Joined { nick: n, .. } if n == nick))
        .await;
    c
}

/// Join `room`: Ok when joined, Err(text) when refused with TooManyRooms.
async fn join(c: &mut FramedClient, nick: &str, room: &str) -> Result<(), String> {
    c.send(&ClientMsg::Join { room: room.into() }).await;
    match c
        .recv_until(|m| {
            matches!(m, ServerMsg::Joined { nick: n, room: r } if n == nick && r == room)
                || matches!(m, ServerMsg::Error { .. })
        })
        .await
    {
        ServerMsg::Joined { .. } => Ok(()),
        ServerMsg::Error { code, text } => {
            assert_eq!(code, ErrorCode::TooManyRooms, "{text}");
            Err(text)
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn one_address_cannot_fill_the_room_table() {
    let srv = ServerProc::start_with_config("roomquota", CONFIG, &[]);
    // Many users from one address, each trying to create many rooms.
    let mut users = Vec::new();
    let mut created = Vec::new();
    let mut refusals = Vec::new();
    for u in 0..5 {
        let nick = format!("m{u}");
        let mut c = user_from(srv.addr, "127.0.0.1", &nick).await;
        for r in 0..6 {
            let room = format!("flood{u}x{r}");
            match join(&mut c, &nick, &room).await {
                Ok(()) => created.push((u, room)),
                Err(t) => refusals.push(t),
            }
        }
        users.push((nick, c));
    }
    assert_eq!(
        created.len(),
        5,
        "rooms created from one address: {created:?}"
    );
    assert!(
        refusals
            .iter()
            .any(|t| t.contains("you have created too many rooms") && t.contains("max 3")),
        "{refusals:?}"
    );
    assert!(
        refusals
            .iter()
            .any(|t| t.contains("too many rooms created from 127.0.0.1 (max 5)")),
        "{refusals:?}"
    );
    // Joining a room that exists costs nothing.
    let (n4, c4) = &mut users[4];
    join(c4, n4, "flood0x0")
        .await
        .expect("join an existing room");

    // Another address still can (the server's cap is 12).
    let mut other = user_from(srv.addr, "127.0.0.2", "neighbour").await;
    join(&mut other, "neighbour", "ours")
        .await
        .expect("127.0.0.2 creates a room");

    // A room that empties is deleted and gives its slot back.
    let (u, room) = created.last().cloned().unwrap();
    {
        let c = &mut users[u].1;
        c.send(&ClientMsg::Leave { room: room.clone() }).await;
        c.recv_until(|m| matches!(m, ServerMsg::Left { room: r, .. } if *r == room))
            .await;
    }
    let (n3, c3) = &mut users[3];
    join(c3, n3, "again").await.expect("the freed slot");
    assert!(
        join(c3, n3, "and-again").await.is_err(),
        "only one slot was freed"
    );
}
