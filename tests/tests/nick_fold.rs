//! Look-alike nicks against the real server binary: nicks are compared after
//! Unicode case folding and the confusable skeleton, so `ALICE`, `аlice`
//! (Cyrillic а) and `ａｌｉｃｅ` (fullwidth) cannot join beside `alice`, and
//! `STRASSE` not beside `straße` — over framed TCP, text mode and UDP, at
//! Hello and at `/nick`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::time::Duration;

use sockchat::net::udp::{HandshakeError, UdpLink, UdpOptions};
use sockchat_shared::{ClientMsg, ErrorCode, ServerMsg};
use sockchat_tests::{FramedClient, STEP, ServerProc, TextClient};

/// A framed Hello with `nick`: the error code it gets, or None if welcomed.
async fn hello(addr: std::net::SocketAddr, nick: &str) -> Result<String, (ErrorCode, String)> {
    let mut c = FramedClient::connect_raw(addr).await.unwrap();
    c.send(&ClientMsg::Hello { nick: nick.into() }).await;
    match c.recv().await {
        ServerMsg::Welcome { nick, .. } => Ok(nick),
        ServerMsg::Error { code, text } => Err((code, text)),
        other => panic!("{nick}: {other:?}"),
    }
}

#[tokio::test]
async fn look_alike_nicks_are_one_user() {
    let srv = ServerProc::start(&[]);
    let _alice = FramedClient::connect(srv.addr, "alice").await;
    let _strasse = FramedClient::connect(srv.addr, "straße").await;
    for twin in [
        "ALICE",
        "\u{0430}lice",
        "\u{FF41}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}",
        "STRASSE",
        "Strasse",
    ] {
        match hello(srv.addr, twin).await {
            Err((ErrorCode::NickTaken, text)) => {
                assert!(text.starts_with("nick already taken: "), "{text}")
            }
            other => panic!("{twin:?} was not refused: {other:?}"),
        }
    }
    // A look-alike is told what it collides with.
    let (_, text) = hello(srv.addr, "\u{0430}lice").await.unwrap_err();
    assert!(text.contains("too much like alice"), "{text}");
    // Different names are still free.
    assert_eq!(hello(srv.addr, "alicia").await.unwrap(), "alicia");

    // Renaming onto a look-alike fails in text mode too.
    let mut t = TextClient::connect(srv.addr).await;
    t.welcome().await;
    t.line("/nick \u{0430}lice").await;
    t.expect_prefix("! nick already taken: \u{0430}lice").await;

    // And over UDP.
    let mut u = UdpLink::connect(srv.udp_addr(), UdpOptions::default())
        .await
        .unwrap();
    match u
        .handshake("\u{FF21}LICE", Duration::from_millis(200), STEP)
        .await
    {
        Err(HandshakeError::Refused { code, .. }) => assert_eq!(code, ErrorCode::NickTaken),
        other => panic!("a fullwidth twin over UDP: {other:?}"),
    }
}

#[tokio::test]
async fn a_freed_nick_is_free_for_its_look_alikes() {
    let srv = ServerProc::start(&[]);
    let alice = FramedClient::connect(srv.addr, "alice").await;
    drop(alice);
    // The nick is freed when the server sees the close; bounded retries.
    let mut got = None;
    for _ in 0..50 {
        match hello(srv.addr, "\u{0430}LICE").await {
            Ok(n) => {
                got = Some(n);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(got.as_deref(), Some("\u{0430}LICE"), "shown as typed");
}
