//! `[access]` against the real server binary on loopback: allow/deny lists
//! of addresses and CIDR blocks refuse TCP and UDP alike with `Error` 14
//! (127.0.0.2 and 127.0.0.3 play other hosts), and `/sockinfo` shows a
//! user's address to that user only (unless `sockinfo_address =
//! "everyone"`), the TCP internals to all.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::net::SocketAddr;

use sockchat_shared::{ClientMsg, ErrorCode, ServerMsg};
use sockchat_tests::udp_raw::RawUdp;
use sockchat_tests::{FramedClient, STEP, ServerProc};

/// A framed Hello from `from`: the nick welcomed, or the error.
async fn hello_from(server: SocketAddr, from: &str) -> Result<String, (ErrorCode, String)> {
    FramedClient::hello_from(server, from.parse().unwrap(), "")
        .await
        .map(|c| c.nick)
}

#[tokio::test]
async fn deny_and_allow_lists_refuse_tcp_and_udp() {
    let srv = ServerProc::start_with_config(
        "access",
        "[access]\nallow = [\"127.0.0.0/30\"]\ndeny = [\"127.0.0.2\"]\n",
        &[],
    );
    assert!(hello_from(srv.addr, "127.0.0.1").await.is_ok());
    let (code, text) = hello_from(srv.addr, "127.0.0.2").await.unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden, "{text}");
    assert_eq!(text, "127.0.0.2 is not allowed on this server (denied)");
    let (code, text) = hello_from(srv.addr, "127.0.0.5").await.unwrap_err();
    assert_eq!(code, ErrorCode::Forbidden, "{text}");
    assert!(text.contains("not in the allow list"), "{text}");
    assert!(
        hello_from(srv.addr, "127.0.0.3").await.is_ok(),
        "in the /30"
    );

    assert!(
        RawUdp::join_from(srv.udp_addr(), [127, 0, 0, 1].into(), "", STEP)
            .await
            .is_ok()
    );
    match RawUdp::join_from(srv.udp_addr(), [127, 0, 0, 2].into(), "", STEP).await {
        Err((code, _)) => assert_eq!(code, ErrorCode::Forbidden),
        other => panic!("a denied address over UDP: {other:?}"),
    }
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

async fn sockinfo(c: &mut FramedClient, nick: &str) -> Vec<(String, String)> {
    c.send(&ClientMsg::SockInfo { nick: nick.into() }).await;
    match c
        .recv_until(|m| matches!(m, ServerMsg::SockInfo { .. }))
        .await
    {
        ServerMsg::SockInfo { fields, .. } => fields,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn sockinfo_shows_an_address_to_its_user_only() {
    let srv = ServerProc::start(&[]);
    let mut alice = FramedClient::connect(srv.addr, "alice").await;
    let mut bob = FramedClient::connect(srv.addr, "bob").await;
    let own = sockinfo(&mut alice, "").await;
    let addr = field(&own, "peer").expect("own address").to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let seen = sockinfo(&mut bob, "alice").await;
    let shown = field(&seen, "peer").expect("the key stays");
    assert!(shown.starts_with("hidden"), "{shown}");
    assert!(
        !seen.iter().any(|(_, v)| v.contains(&addr)),
        "the address appears elsewhere: {seen:?}"
    );
    // The TCP internals are public: the teaching point.
    assert!(field(&seen, "transport") == Some("tcp"), "{seen:?}");
    assert!(seen.iter().any(|(k, _)| k.contains("rtt")), "{seen:?}");
    // Asking by one's own nick is one's own view.
    let by_nick = sockinfo(&mut alice, "ALICE").await;
    assert_eq!(field(&by_nick, "peer"), Some(addr.as_str()));

    let open = ServerProc::start_with_config(
        "sockinfo-open",
        "[access]\nsockinfo_address = \"everyone\"\n",
        &[],
    );
    let mut carol = FramedClient::connect(open.addr, "carol").await;
    let mut dave = FramedClient::connect(open.addr, "dave").await;
    let carol_addr = field(&sockinfo(&mut carol, "").await, "peer")
        .unwrap()
        .to_string();
    assert_eq!(
        field(&sockinfo(&mut dave, "carol").await, "peer"),
        Some(carol_addr.as_str())
    );
}
