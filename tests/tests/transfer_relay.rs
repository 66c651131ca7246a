//! The server's file-transfer relay as PROTOCOL.md "File transfer" says,
//! against the real `sockchat-server` binary over TCP: offer, accept,
//! chunk, ack, done with the ids mapped; decline; cancel; the limits
//! (too big, a text-mode target); a window overrun cut off; the other side
//! told when a peer disconnects.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::time::Duration;

use bytes::Bytes;
use sockchat_shared::transfer::{COPY_IDS, Xfer, XferError};
use sockchat_shared::{ClientMsg, ServerMsg};
use sockchat_tests::{FramedClient, ServerProc, TextClient};

const SMALL: &str = "[server]\ndetect_timeout_ms = 100\n\
[transfer]\nmax_file_size = 10000000\nwindow = 65536\n";

fn server(name: &str) -> ServerProc {
    ServerProc::start_with_config(&format!("relay-{name}"), SMALL, &[])
}

async fn xfer(c: &mut FramedClient) -> Xfer {
    match c.recv_until(|m| matches!(m, ServerMsg::Transfer(_))).await {
        ServerMsg::Transfer(x) => x,
        _ => unreachable!(),
    }
}

async fn send(c: &mut FramedClient, x: Xfer) {
    c.send(&ClientMsg::Transfer(x)).await;
}

fn offer(id: u64, to: &str, size: u64) -> Xfer {
    Xfer::Offer {
        id,
        peer: to.into(),
        name: "a.bin".into(),
        size,
        sha256: [7; 32],
    }
}

/// A fresh relay with alice and bob connected.
async fn alice_and_bob(name: &str) -> (ServerProc, FramedClient, FramedClient) {
    let s = server(name);
    let a = FramedClient::connect(s.addr, "alice").await;
    let b = FramedClient::connect(s.addr, "bob").await;
    (s, a, b)
}

/// The receiver's `Accept` of transfer `id` from the start, leaving the
/// window, chunk size and losslessness to the server.
fn accept(id: u64) -> Xfer {
    Xfer::Accept {
        id,
        offset: 0,
        window: 0,
        max_chunk: 0,
        lossless: false,
    }
}

/// alice offers to bob as her transfer 41; returns bob's id for it.
async fn offered(a: &mut FramedClient, b: &mut FramedClient, size: u64) -> u64 {
    offered_as(a, b, 41, size).await
}

/// alice offers to bob as her transfer `id`; returns bob's id for it.
async fn offered_as(a: &mut FramedClient, b: &mut FramedClient, id: u64, size: u64) -> u64 {
    send(a, offer(id, "bob", size)).await;
    match xfer(b).await {
        Xfer::Offer {
            id,
            peer,
            name,
            size: s,
            sha256,
        } => {
            assert_eq!(
                (peer.as_str(), name.as_str(), s, sha256),
                ("alice", "a.bin", size, [7; 32])
            );
            id
        }
        other => panic!("expected an offer, got {other:?}"),
    }
}

#[tokio::test]
async fn offer_accept_chunks_acks_done_with_ids_mapped() {
    let (_s, mut a, mut b) = alice_and_bob("flow").await;
    let bid = offered(&mut a, &mut b, 10).await;
    send(&mut b, accept(bid)).await;
    let (window, max_chunk) = match xfer(&mut a).await {
        Xfer::Accept {
            id: 41,
            offset: 0,
            window,
            max_chunk,
            lossless: true,
        } => (window, max_chunk),
        other => panic!("{other:?}"),
    };
    assert_eq!(window, 65536, "the configured window");
    assert_eq!(max_chunk, 32 * 1024, "TCP to TCP: 32 KiB chunks");
    let data = Bytes::from_static(b"0123456789");
    send(
        &mut a,
        Xfer::Chunk {
            id: 41,
            offset: 0,
            data: data.clone(),
        },
    )
    .await;
    assert_eq!(
        xfer(&mut b).await,
        Xfer::Chunk {
            id: bid,
            offset: 0,
            data
        }
    );
    send(
        &mut b,
        Xfer::Ack {
            id: bid,
            offset: 10,
            sack: vec![],
        },
    )
    .await;
    assert_eq!(
        xfer(&mut a).await,
        Xfer::Ack {
            id: 41,
            offset: 10,
            sack: vec![]
        }
    );
    send(&mut b, Xfer::Done { id: bid }).await;
    assert_eq!(xfer(&mut a).await, Xfer::Done { id: 41 });
    // Over: an Offer under the same id is a repeat (a late copy over UDP),
    // answered with the transfer's end, never offered to bob again ...
    send(&mut a, offer(41, "bob", 10)).await;
    assert_eq!(xfer(&mut a).await, Xfer::Done { id: 41 });
    // ... and a new transfer takes a new id.
    let again = offered_as(&mut a, &mut b, 42, 5).await;
    assert_ne!(again, bid);
}

#[tokio::test]
async fn decline_and_cancel_reach_the_other_side() {
    let (_s, mut a, mut b) = alice_and_bob("decline").await;
    let bid = offered(&mut a, &mut b, 10).await;
    send(&mut b, Xfer::Decline { id: bid }).await;
    assert_eq!(xfer(&mut a).await, Xfer::Decline { id: 41 });
    // Cancel by the sender after accept (each transfer its own id: an
    // ended id's Offer would be answered as a repeat).
    let bid = offered_as(&mut a, &mut b, 42, 10).await;
    send(&mut b, accept(bid)).await;
    xfer(&mut a).await;
    send(&mut a, Xfer::Cancel { id: 42 }).await;
    assert_eq!(xfer(&mut b).await, Xfer::Cancel { id: bid });
    // Cancel by the receiver.
    let bid = offered_as(&mut a, &mut b, 43, 10).await;
    send(&mut b, Xfer::Cancel { id: bid }).await;
    assert_eq!(xfer(&mut a).await, Xfer::Cancel { id: 43 });
}

#[tokio::test]
async fn too_big_and_text_users_are_refused_in_words() {
    let s = server("limits");
    let mut a = FramedClient::connect(s.addr, "alice").await;
    let mut t = TextClient::connect(s.addr).await;
    t.welcome().await;
    t.line("/nick carol").await;
    t.expect_prefix("* ").await;
    // A text user who tries is told what it takes.
    t.line("/send notes.txt alice").await;
    let l = t.expect_prefix("! /send").await;
    assert!(l.contains("files need the sockchat client"), "{l}");
    send(&mut a, offer(1, "alice2", 20_000_000)).await;
    match xfer(&mut a).await {
        Xfer::Error {
            id: 1,
            code: XferError::TooBig,
            text,
        } => assert!(text.contains("10000000"), "{text}"),
        other => panic!("{other:?}"),
    }
    send(&mut a, offer(2, "carol", 10)).await;
    match xfer(&mut a).await {
        Xfer::Error {
            id: 2,
            code: XferError::NoSuchUser,
            text,
        } => {
            assert!(text.contains("files need the sockchat client"), "{text}")
        }
        other => panic!("{other:?}"),
    }
    send(&mut a, offer(3, "nobody", 10)).await;
    assert!(matches!(
        xfer(&mut a).await,
        Xfer::Error {
            id: 3,
            code: XferError::NoSuchUser,
            ..
        }
    ));
}

#[tokio::test]
async fn a_window_overrun_ends_the_transfer_for_both() {
    let (_s, mut a, mut b) = alice_and_bob("overrun").await;
    let bid = offered(&mut a, &mut b, 1_000_000).await;
    send(&mut b, accept(bid)).await;
    xfer(&mut a).await;
    // Three 32 KiB chunks unacknowledged: 96 KiB > the 64 KiB window.
    for i in 0..3u64 {
        let data = Bytes::from(vec![0u8; 32 * 1024]);
        send(
            &mut a,
            Xfer::Chunk {
                id: 41,
                offset: i * 32 * 1024,
                data,
            },
        )
        .await;
    }
    match xfer(&mut a).await {
        Xfer::Error {
            id: 41,
            code: XferError::Protocol,
            text,
        } => assert!(text.contains("window"), "{text}"),
        other => panic!("{other:?}"),
    }
    // bob got the two chunks within the window, then the error.
    for _ in 0..2 {
        assert!(matches!(xfer(&mut b).await, Xfer::Chunk { .. }));
    }
    assert!(matches!(
        xfer(&mut b).await,
        Xfer::Error {
            code: XferError::Protocol,
            ..
        }
    ));
}

#[tokio::test]
async fn a_receiver_that_leaves_ends_the_transfer_peer_gone() {
    let (_s, mut a, mut b) = alice_and_bob("gone").await;
    offered(&mut a, &mut b, 10).await;
    drop(b);
    match tokio::time::timeout(Duration::from_secs(10), xfer(&mut a))
        .await
        .unwrap()
    {
        Xfer::Error {
            id: 41,
            code: XferError::PeerGone,
            text,
        } => assert!(text.contains("bob"), "{text}"),
        other => panic!("{other:?}"),
    }
}

/// `/send PATH #room` at the protocol level: an Offer to `#lobby` becomes
/// one Copy per other member (the sender learns each copy's id, at or
/// above COPY_IDS) and an ordinary Offer to each framed member; a
/// text-mode member's copy is refused in words; each copy is answered on
/// its own. The limits: no such room, a room the sender is not in, more
/// members than `transfer.room_recipients`, an id in the server's range.
#[tokio::test]
async fn a_room_offer_is_one_copy_per_member_each_answered_alone() {
    let s =
        ServerProc::start_with_config("relay-room", &format!("{SMALL}room_recipients = 2\n"), &[]);
    let mut a = FramedClient::connect(s.addr, "alice").await;
    let mut b = FramedClient::connect(s.addr, "bob").await;
    let mut t = TextClient::connect(s.addr).await;
    t.welcome().await;
    t.line("/nick carol").await;
    t.expect_prefix("* ").await;
    send(&mut a, offer(5, "#lobby", 10)).await;
    let mut copies = Vec::new();
    for _ in 0..2 {
        match xfer(&mut a).await {
            Xfer::Copy { id, of: 5, peer } => {
                assert!(id >= COPY_IDS, "{id}");
                copies.push((peer, id));
            }
            other => panic!("expected a copy, got {other:?}"),
        }
    }
    copies.sort();
    let (bob_copy, carol_copy) = (copies[0].1, copies[1].1);
    assert_eq!(
        (copies[0].0.as_str(), copies[1].0.as_str()),
        ("bob", "carol")
    );
    match xfer(&mut a).await {
        Xfer::Error {
            id,
            code: XferError::NoSuchUser,
            text,
        } if id == carol_copy => assert!(text.contains("text-mode"), "{text}"),
        other => panic!("{other:?}"),
    }
    let bid = match xfer(&mut b).await {
        Xfer::Offer { id, peer, .. } if peer == "alice" => id,
        other => panic!("{other:?}"),
    };
    send(&mut b, accept(bid)).await;
    assert!(matches!(xfer(&mut a).await, Xfer::Accept { id, .. } if id == bob_copy));
    // The copy is an ordinary transfer under its id.
    send(
        &mut a,
        Xfer::Chunk {
            id: bob_copy,
            offset: 0,
            data: Bytes::from_static(b"0123456789"),
        },
    )
    .await;
    assert!(matches!(xfer(&mut b).await, Xfer::Chunk { id, offset: 0, .. } if id == bid));

    for (id, to, code, words) in [
        (6, "#nowhere", XferError::NoSuchUser, "no such room"),
        (COPY_IDS + 1, "bob", XferError::Protocol, "the server's"),
    ] {
        send(&mut a, offer(id, to, 10)).await;
        match xfer(&mut a).await {
            Xfer::Error {
                id: got,
                code: c,
                text,
            } if got == id && c == code => {
                assert!(text.contains(words), "{text}")
            }
            other => panic!("{to}: {other:?}"),
        }
    }
    // bob alone in #den: alice is not in it.
    b.send(&ClientMsg::Join { room: "den".into() }).await;
    b.recv_until(|m| matches!(m, ServerMsg::Joined { room, .. } if room == "den"))
        .await;
    send(&mut a, offer(7, "#den", 10)).await;
    match xfer(&mut a).await {
        Xfer::Error {
            id: 7,
            code: XferError::NoSuchUser,
            text,
        } => assert!(text.contains("not in #den"), "{text}"),
        other => panic!("{other:?}"),
    }
    // A third member: more than room_recipients (2).
    let _d = FramedClient::connect(s.addr, "dave").await;
    send(&mut a, offer(8, "#lobby", 10)).await;
    match xfer(&mut a).await {
        Xfer::Error {
            id: 8,
            code: XferError::TooMany,
            text,
        } => assert!(text.contains("room_recipients"), "{text}"),
        other => panic!("{other:?}"),
    }
}
