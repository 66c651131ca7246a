//! The real `sockchat --udp --plain` binary on loopback: chatting with a
//! TCP user through the real server, an oversize message refused locally
//! with a clear error (and never seen by the room), and ECONNREFUSED (111)
//! from the ICMP port-unreachable when nothing listens.

use std::process::{Command, Stdio};

use sockchat_shared::{ClientMsg, ServerMsg};
use sockchat_tests::{FramedClient, Plain, STEP, ServerProc, bin};

/// `sockchat --udp --plain` against `server`, stderr discarded.
fn plain_udp(server: &str, extra: &[&str]) -> Plain {
    Plain::spawn(
        Command::new(bin("sockchat"))
            .args(["--server", server, "--udp", "--plain"])
            .args(extra)
            .stderr(Stdio::null()),
        format!("--udp {server} {}", extra.join(" ")),
        STEP,
    )
}

#[tokio::test]
async fn udp_client_binary_chats_with_a_tcp_user() {
    let srv = ServerProc::start(&[]);
    let server = srv.addr.to_string();
    let mut alice = FramedClient::connect(srv.addr, "alice").await;
    let mut carol = plain_udp(&server, &["--nick", "carol"]);
    carol.expect("(udp)");
    carol.expect("welcome carol");
    alice
        .recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "carol"))
        .await;

    carol.send("hello from the udp binary");
    alice
        .recv_until(
            |m| matches!(m, ServerMsg::Chat { from, text, .. } if from == "carol" && text == "hello from the udp binary"),
        )
        .await;
    alice.say("hello back over tcp").await;
    carol.expect("[lobby] alice: hello back over tcp");

    // Oversize: refused locally, never sent; the next message still is.
    let big = "x".repeat(2000);
    carol.send(&big);
    let err = carol.expect("too large for one UDP datagram");
    assert!(err.starts_with("! "), "{err}");
    assert!(
        err.contains("1472") && err.contains("never truncated"),
        "{err}"
    );
    carol.send("after the big one");
    let m = alice
        .recv_until(|m| matches!(m, ServerMsg::Chat { from, .. } if from == "carol"))
        .await;
    assert!(
        matches!(&m, ServerMsg::Chat { text, .. } if text == "after the big one"),
        "the oversize message reached the room: {m:?}"
    );

    carol.send("/quit");
    let m = alice
        .recv_until(|m| matches!(m, ServerMsg::Left { nick, .. } if nick == "carol"))
        .await;
    assert!(
        matches!(
            m,
            ServerMsg::Left {
                reason: Some(sockchat_shared::DisconnectReason::Quit { .. }),
                ..
            }
        ),
        "{m:?}"
    );
    assert!(
        carol.wait_exit(STEP).is_some(),
        "client did not exit after /quit"
    );
    // Keep `alice` alive until here (and the TCP side quiet).
    alice.send(&ClientMsg::Rooms).await;
}

#[test]
fn nothing_listening_shows_econnrefused_111() {
    // A port with nothing bound: the server host (us) answers our first
    // datagram with ICMP port unreachable.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut c = plain_udp(&dead.to_string(), &["--nick", "carol", "--no-reconnect"]);
    let err = c.expect("ECONNREFUSED (111)");
    assert!(err.contains("ICMP port-unreachable"), "{err}");
    c.expect("CLOSED: connection refused (ECONNREFUSED 111)");
    // Plain mode ends when both the connection and stdin are done.
    drop(c.stdin.take());
    c.wait_exit(STEP).expect("exits with --no-reconnect");
}
