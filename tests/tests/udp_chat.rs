//! UDP end to end, against the real `sockchat-server` binary on loopback:
//! the stdout contract (UDP on the TCP port), UDP and TCP users chatting in
//! one room both ways, a silent UDP peer timed out and announced ("UDP has
//! no FIN"), and injected loss/duplication/reordering counted by the other
//! end within tolerance.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sockchat::net::udp::{Received, UdpLink, UdpOptions};
use sockchat_shared::udp::FaultConfig;
use sockchat_shared::{ChatKind, ClientMsg, DisconnectReason, ServerMsg};
use sockchat_tests::{FramedClient, STEP, ServerProc, TextClient};

/// Write a config file for one test (in the tests' scratch directory).
fn config_file(name: &str, text: &str) -> PathBuf {
    sockchat_tests::config_file(&format!("udp-{name}"), text)
}

fn start_with(name: &str, config: &str) -> (ServerProc, PathBuf) {
    let p = config_file(name, config);
    let srv = ServerProc::start(&["--config", p.to_str().expect("utf-8 path")]);
    (srv, p)
}

async fn udp_join(addr: SocketAddr, nick: &str, opts: UdpOptions) -> UdpLink {
    let mut link = UdpLink::connect(addr, opts).await.expect("udp connect");
    let w = link
        .handshake(nick, Duration::from_millis(200), STEP)
        .await
        .expect("udp handshake");
    assert_eq!(w.nick, nick);
    assert_eq!(w.room, "lobby");
    link
}

/// Next message matching `pred`, within STEP.
async fn udp_until(link: &mut UdpLink, mut pred: impl FnMut(&ServerMsg) -> bool) -> ServerMsg {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match tokio::time::timeout_at(deadline, link.recv()).await {
            Err(_) => panic!("expected message not received over UDP within {STEP:?}"),
            Ok(Err(e)) => panic!("udp recv: {e}"),
            Ok(Ok(Received::Msg(m))) if pred(&m) => return m,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn udp_and_tcp_users_chat_both_ways() {
    let srv = ServerProc::start(&[]);
    // Same port as TCP, printed on stdout.
    let uaddr = srv.udp_addr();
    assert_eq!(uaddr, srv.addr, "UDP binds the port TCP got");

    let mut alice = FramedClient::connect(srv.addr, "alice").await;
    let mut carol = udp_join(uaddr, "carol", UdpOptions::default()).await;
    alice
        .recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "carol"))
        .await;

    // UDP -> TCP
    carol
        .send(&ClientMsg::Say {
            room: String::new(),
            text: "hello from udp".into(),
        })
        .await
        .expect("send");
    let m = alice
        .recv_until(|m| matches!(m, ServerMsg::Chat { from, .. } if from == "carol"))
        .await;
    assert!(
        matches!(&m, ServerMsg::Chat { room, text, kind: ChatKind::Say, history: false, .. } if room == "lobby" && text == "hello from udp"),
        "{m:?}"
    );

    // TCP -> UDP
    alice.say("hello from tcp").await;
    let m = udp_until(
        &mut carol,
        |m| matches!(m, ServerMsg::Chat { from, .. } if from == "alice"),
    )
    .await;
    assert!(
        matches!(&m, ServerMsg::Chat { text, .. } if text == "hello from tcp"),
        "{m:?}"
    );

    // A TCP user's message too large for one datagram is not truncated
    // for the UDP member: it gets a notice saying what it missed.
    alice.say(&"y".repeat(2000)).await;
    let m = udp_until(&mut carol, |m| {
        matches!(m, ServerMsg::Notice { .. } | ServerMsg::Chat { .. })
    })
    .await;
    assert!(
        matches!(&m, ServerMsg::Notice { text } if text.contains("did not fit in one UDP datagram") && text.contains("1472")),
        "{m:?}"
    );

    // Private messages both ways, nicks shared across transports.
    alice
        .send(&ClientMsg::Private {
            to: "carol".into(),
            text: "psst over tcp".into(),
        })
        .await;
    let m = udp_until(&mut carol, |m| matches!(m, ServerMsg::Private { .. })).await;
    assert!(
        matches!(&m, ServerMsg::Private { from, text, .. } if from == "alice" && text == "psst over tcp"),
        "{m:?}"
    );
    carol
        .send(&ClientMsg::Private {
            to: "alice".into(),
            text: "psst over udp".into(),
        })
        .await
        .expect("send");
    let m = alice
        .recv_until(|m| matches!(m, ServerMsg::Private { from, .. } if from == "carol"))
        .await;
    assert!(
        matches!(&m, ServerMsg::Private { text, .. } if text == "psst over udp"),
        "{m:?}"
    );

    // The nick is taken for TCP users too.
    let mut dup = FramedClient::connect_raw(srv.addr).await.expect("connect");
    dup.send(&ClientMsg::Hello {
        nick: "carol".into(),
    })
    .await;
    let m = dup.recv().await;
    assert!(matches!(m, ServerMsg::Error { .. }), "{m:?}");

    // Who lists both.
    carol
        .send(&ClientMsg::Who {
            room: String::new(),
        })
        .await
        .expect("send");
    let m = udp_until(&mut carol, |m| matches!(m, ServerMsg::Who { .. })).await;
    assert!(
        matches!(&m, ServerMsg::Who { nicks, .. } if nicks.contains(&"alice".to_string()) && nicks.contains(&"carol".to_string())),
        "{m:?}"
    );

    // History: a UDP user joining a room gets its history.
    alice.send(&ClientMsg::Join { room: "den".into() }).await;
    alice.say("remember me").await;
    alice
        .recv_until(|m| matches!(m, ServerMsg::Chat { text, .. } if text == "remember me"))
        .await;
    carol
        .send(&ClientMsg::Join { room: "den".into() })
        .await
        .expect("send");
    let m = udp_until(&mut carol, |m| {
        matches!(m, ServerMsg::Chat { history: true, .. })
    })
    .await;
    assert!(
        matches!(&m, ServerMsg::Chat { text, room, .. } if text == "remember me" && room == "den"),
        "{m:?}"
    );

    // Quit: the room hears it with reason `quit`.
    carol
        .send(&ClientMsg::Quit {
            message: "bye".into(),
        })
        .await
        .expect("send");
    let m = alice
        .recv_until(|m| matches!(m, ServerMsg::Left { nick, .. } if nick == "carol"))
        .await;
    assert!(
        matches!(
            &m,
            ServerMsg::Left {
                reason: Some(DisconnectReason::Quit { message }),
                ..
            } if message == "bye"
        ),
        "{m:?}"
    );
    let m = udp_until(&mut carol, |m| matches!(m, ServerMsg::Bye { .. })).await;
    assert_eq!(
        m,
        ServerMsg::Bye {
            reason: DisconnectReason::Quit {
                message: "bye".into()
            }
        }
    );
}

#[tokio::test]
async fn silent_udp_peer_times_out_and_is_announced() {
    let (srv, _cfg) = start_with(
        "timeout",
        "[server]\nlisten = [\"127.0.0.1:0\"]\ndetect_timeout_ms = 100\n[udp]\nsession_timeout_secs = 1\n",
    );
    let uaddr = srv.udp_addr();
    let mut text = TextClient::connect(srv.addr).await;
    text.welcome().await;
    let mut framed = FramedClient::connect(srv.addr, "alice").await;

    let mut carol = udp_join(uaddr, "carol", UdpOptions::default()).await;
    text.expect_line("* carol joined lobby").await;
    let started = std::time::Instant::now();
    // carol now says nothing at all: no FIN will ever come.
    text.expect_line("* carol left lobby: idle timeout (1 s) — UDP has no FIN")
        .await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "announced after {waited:?}, before the 1 s timeout"
    );
    let m = framed
        .recv_until(|m| matches!(m, ServerMsg::Left { nick, .. } if nick == "carol"))
        .await;
    assert_eq!(
        m,
        ServerMsg::Left {
            room: "lobby".into(),
            nick: "carol".into(),
            reason: Some(DisconnectReason::IdleTimeout { secs: 1 }),
        }
    );
    // The silent client is told too (best effort), with the same reason.
    let m = udp_until(&mut carol, |m| matches!(m, ServerMsg::Bye { .. })).await;
    assert_eq!(
        m,
        ServerMsg::Bye {
            reason: DisconnectReason::IdleTimeout { secs: 1 }
        }
    );
    // And the nick is free again.
    let again = FramedClient::connect(srv.addr, "carol").await;
    assert_eq!(again.nick, "carol");
}

/// Parse `key=value` sockinfo fields.
fn field(fields: &[(String, String)], key: &str) -> u64 {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric field {key} in {fields:?}"))
}

/// Ask the server for its view of our session, retrying: with faults on,
/// the request or the answer may itself be lost.
async fn own_sockinfo(link: &mut UdpLink) -> Vec<(String, String)> {
    for _ in 0..30 {
        link.send(&ClientMsg::SockInfo {
            nick: String::new(),
        })
        .await
        .expect("send");
        link.flush_faults().await.expect("flush");
        let got = tokio::time::timeout(Duration::from_millis(300), async {
            loop {
                match link.recv().await {
                    Ok(Received::Msg(ServerMsg::SockInfo { fields, .. })) => return Some(fields),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
        })
        .await;
        if let Ok(Some(f)) = got {
            return f;
        }
    }
    panic!("no sockinfo answer in 30 tries");
}

#[tokio::test]
async fn injected_faults_are_counted_by_the_other_end() {
    let (srv, _cfg) = start_with(
        "faults",
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[udp]\ndrop_probability = 0.1\nduplicate_probability = 0.05\nreorder_probability = 0.05\n",
    );
    let uaddr = srv.udp_addr();
    let faults = FaultConfig {
        drop: 0.1,
        duplicate: 0.05,
        reorder: 0.05,
    };
    let opts = UdpOptions {
        faults,
        seed: Some(42),
        ..UdpOptions::default()
    };
    // The handshake itself survives loss (hellos are repeated).
    let mut link = udp_join(uaddr, "lossy", opts).await;
    let n = 1000u64;
    for i in 0..n {
        link.ping().await.expect("ping");
        if i % 10 == 9 {
            // Read what came back, so our receive buffer never overflows
            // (that would be real loss, not injected loss).
            link.flush_faults().await.expect("flush");
            while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(2), link.recv()).await
            {
            }
        }
    }
    link.flush_faults().await.expect("flush");
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), link.recv()).await {}

    let fields = own_sockinfo(&mut link).await;
    // Let the tail of the server's datagrams (and held ones) arrive.
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), link.recv()).await {}

    let ours = link.fault_stats().expect("injector on");
    let info = link.info();
    let kernel = info.kernel_drops.unwrap_or(0);
    // Tolerance: datagrams in flight around the sockinfo snapshot (its own
    // requests and answers), trailing drops, and any real kernel drop.
    let tol = 12 + kernel;
    let near = |what: &str, counted: u64, injected: u64| {
        assert!(
            counted.abs_diff(injected) <= tol,
            "{what}: counted {counted}, injected {injected} (tolerance {tol})\nserver: {fields:?}\nclient: {info:?}"
        );
    };
    // Client -> server: the server's sequence accounting sees our faults.
    near("c->s lost", field(&fields, "udp_rx_lost"), ours.dropped);
    near(
        "c->s duplicated",
        field(&fields, "udp_rx_duplicated"),
        ours.duplicated,
    );
    near(
        "c->s reordered",
        field(&fields, "udp_rx_reordered"),
        ours.reordered,
    );
    // Server -> client: our accounting sees the server's faults.
    let inj: Vec<u64> = fields
        .iter()
        .find(|(k, _)| k == "udp_injected_drop/dup/reorder")
        .map(|(_, v)| v.split('/').filter_map(|x| x.parse().ok()).collect())
        .expect("server injected counts");
    let rx = info.rx;
    near("s->c lost", rx.lost, inj[0]);
    near("s->c duplicated", rx.duplicated, inj[1]);
    near("s->c reordered", rx.reordered, inj[2]);
    // And the faults really happened at roughly the configured rates.
    assert!(
        ours.dropped > 50 && ours.duplicated > 20 && ours.reordered > 20,
        "{ours:?}"
    );
    assert!(inj[0] > 50 && inj[1] > 20 && inj[2] > 20, "{inj:?}");
    // RTT was measured from pongs that made it.
    assert!(info.rtt.is_some() && info.pongs > n / 2, "{info:?}");
}

#[tokio::test]
async fn graceful_shutdown_says_bye_over_udp() {
    let mut srv = ServerProc::start(&[]);
    let uaddr = srv.udp_addr();
    let mut carol = udp_join(uaddr, "carol", UdpOptions::default()).await;
    srv.signal(libc::SIGTERM);
    let m = udp_until(&mut carol, |m| matches!(m, ServerMsg::Bye { .. })).await;
    assert_eq!(
        m,
        ServerMsg::Bye {
            reason: DisconnectReason::ServerShutdown
        }
    );
    let st = srv.wait_timeout(STEP).expect("server exits after SIGTERM");
    assert!(st.success(), "{st:?}\n{}", srv.stderr());
}

#[tokio::test]
async fn a_flooding_udp_session_is_rate_limited_and_announced() {
    let srv = ServerProc::start(&[]);
    let uaddr = srv.udp_addr();
    let mut alice = FramedClient::connect(srv.addr, "alice").await;
    let mut flood = udp_join(uaddr, "flood", UdpOptions::default()).await;
    // Defaults: burst 40, 20/s, 20 refusals in a row end the session.
    for i in 0..120 {
        flood
            .send(&ClientMsg::Say {
                room: String::new(),
                text: format!("spam {i}"),
            })
            .await
            .expect("send");
    }
    let m = udp_until(&mut flood, |m| matches!(m, ServerMsg::Error { .. })).await;
    assert!(
        matches!(
            &m,
            ServerMsg::Error {
                code: sockchat_shared::ErrorCode::RateLimited,
                ..
            }
        ),
        "{m:?}"
    );
    let m = udp_until(&mut flood, |m| matches!(m, ServerMsg::Bye { .. })).await;
    assert_eq!(
        m,
        ServerMsg::Bye {
            reason: DisconnectReason::RateLimited
        }
    );
    let m = alice
        .recv_until(|m| matches!(m, ServerMsg::Left { nick, .. } if nick == "flood"))
        .await;
    assert!(
        matches!(
            &m,
            ServerMsg::Left {
                reason: Some(DisconnectReason::RateLimited),
                ..
            }
        ),
        "{m:?}"
    );
}

#[tokio::test]
async fn udp_over_ipv6_loopback() {
    sockchat_tests::require!(
        sockchat_tests::have_ipv6_loopback(),
        "udp_over_ipv6_loopback: no IPv6 loopback (::1) on this host"
    );
    let srv = ServerProc::start_args(&["--listen", "[::1]:0"], &[]);
    let uaddr = srv.udp_addr();
    assert!(
        uaddr.is_ipv6() && uaddr.port() == srv.addr.port(),
        "{uaddr}"
    );
    let mut v6 = udp_join(uaddr, "six", UdpOptions::default()).await;
    let mut alice = FramedClient::connect(srv.addr, "alice").await;
    v6.send(&ClientMsg::Say {
        room: String::new(),
        text: "over ::1".into(),
    })
    .await
    .expect("send");
    alice
        .recv_until(|m| matches!(m, ServerMsg::Chat { text, .. } if text == "over ::1"))
        .await;
}

/// The server restarts between two datagrams (no ICMP error in between):
/// the new server does not know the session and answers with a retry; the
/// client says hello again and the new session's numbering (from 0 again)
/// is not mistaken for duplicates.
#[tokio::test]
async fn session_survives_a_server_restart_through_a_retry() {
    let mut first = ServerProc::start(&[]);
    let uaddr = first.udp_addr();
    let mut carol = udp_join(uaddr, "carol", UdpOptions::default()).await;
    // Take the first session's own Joined, so nothing of it is left queued.
    udp_until(&mut carol, |m| matches!(m, ServerMsg::Joined { .. })).await;
    first.signal(libc::SIGKILL);
    first.wait_timeout(STEP).expect("killed");
    let listen = format!("127.0.0.1:{}", uaddr.port());
    let second = ServerProc::start_args(&["--listen", &listen], &[]);
    assert_eq!(second.udp_addr(), uaddr);
    // A ping (17 bytes): big enough for the 16-byte retry. (A 9-byte
    // `Rooms` would get no answer at all: no reply outgrows its request.)
    carol.ping().await.expect("send to the new server");
    let cookie = match tokio::time::timeout(STEP, carol.recv()).await {
        Ok(Ok(Received::Retry { cookie })) => cookie,
        other => panic!("expected a retry from the new server, got {other:?}"),
    };
    carol.new_session(cookie);
    carol
        .send(&ClientMsg::Hello {
            nick: "carol".into(),
        })
        .await
        .expect("hello");
    let m = udp_until(&mut carol, |m| matches!(m, ServerMsg::Welcome { .. })).await;
    assert!(
        matches!(&m, ServerMsg::Welcome { nick, .. } if nick == "carol"),
        "{m:?}"
    );
    let mut alice = FramedClient::connect(second.addr, "alice").await;
    carol
        .send(&ClientMsg::Say {
            room: String::new(),
            text: "back".into(),
        })
        .await
        .expect("send");
    alice
        .recv_until(|m| matches!(m, ServerMsg::Chat { text, .. } if text == "back"))
        .await;
    assert_eq!(carol.rx_stats().duplicated, 0, "{:?}", carol.rx_stats());
}
