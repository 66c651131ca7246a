//! The client's one session driver, end to end with the real binaries on
//! loopback: a reconnect restores the nick and every room (issue 15 item
//! 3), the back-off does not start over on a Welcome alone (item 7: a
//! server that answers with garbage), and TCP and UDP treat a taken nick
//! and lines typed while connecting the same way (issue 9 item 3).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use sockchat_shared::ServerMsg;
use sockchat_shared::codec::encode_server;
use sockchat_shared::proto::preamble;
use sockchat_tests::tmux::restartable_port;
use sockchat_tests::{Plain, ServerProc, sockchat_command};

const STEP: Duration = Duration::from_secs(15);

fn plain(args: &[&str]) -> Plain {
    Plain::spawn(
        sockchat_command(args).stderr(Stdio::inherit()),
        args.join(" "),
        STEP,
    )
}

/// A file in a fresh temporary directory (removed by the caller).
fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sockchat-client-session-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write temp file");
    p
}

/// Issue 15 item 3: `/nick`, `/join dev`, then the server restarts on the
/// same port. After the reconnect the client has its nick and dev back,
/// and the next line goes to dev (where the user was talking), not lobby.
#[test]
fn reconnect_restores_nick_rooms_and_the_focused_room() {
    // A port outside the ephemeral range: while the server is down, the
    // client's own connect attempts cannot take it as their source port.
    let addr = format!("127.0.0.1:{}", restartable_port());
    let server = ServerProc::start_args(&["--listen", &addr], &[]);
    let mut c = plain(&["--plain", "--json", "--server", &addr, "--nick", "alice"]);
    c.expect_event("welcome", |v| v["nick"] == "alice");
    c.send("/nick alice2");
    c.expect_event("nick-changed", |v| v["new"] == "alice2");
    c.send("/join dev");
    c.send("before restart");
    c.expect_event("chat", |v| {
        v["room"] == "dev" && v["text"] == "before restart"
    });

    // Restart on the same port.
    drop(server);
    c.expect_event("closed", |_| true);
    let server = ServerProc::start_args(&["--listen", &addr], &[]);
    let w = c.expect_event("welcome", |_| true);
    assert_eq!(w["nick"], "alice2", "the nick the server gave us: {w}");
    c.expect_event("joined", |v| v["room"] == "dev" && v["nick"] == "alice2");

    // Someone on the new server sees the next line in dev.
    let mut bob = plain(&["--plain", "--json", "--server", &addr, "--nick", "bob"]);
    bob.expect_event("welcome", |_| true);
    bob.send("/join dev");
    bob.expect_event("joined", |v| v["room"] == "dev" && v["nick"] == "bob");
    c.send("after restart");
    let got = bob.expect_event("chat", |v| v["text"] == "after restart");
    assert_eq!(got["room"], "dev", "{got}");
    assert_eq!(got["from"], "alice2", "{got}");
    c.send("/who");
    let who = c.expect_event("who", |_| true);
    assert_eq!(who["room"], "dev", "{who}");
    assert_eq!(c.finish(), 0, "every line delivered");
    drop(server);
}

/// A listener that welcomes every connection and then sends garbage (a
/// frame that does not decode), counting connections.
fn garbage_server() -> (String, Arc<AtomicU32>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let count = Arc::new(AtomicU32::new(0));
    let n = count.clone();
    std::thread::spawn(move || {
        let mut welcome = BytesMut::new();
        welcome.extend_from_slice(&preamble());
        encode_server(
            &ServerMsg::Welcome {
                nick: "victim".into(),
                room: "lobby".into(),
                server: "garbage test server".into(),
            },
            &mut welcome,
        );
        // A frame of 8 bytes with an unknown message type.
        welcome.extend_from_slice(&[0, 0, 0, 8, 0xEE, 1, 2, 3, 4, 5, 6, 7]);
        // Bounded: the test runs for seconds; 500 connections is far past
        // what any back-off allows.
        for _ in 0..500 {
            let Ok((mut s, _)) = l.accept() else { return };
            n.fetch_add(1, Ordering::SeqCst);
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut pre = [0u8; 5];
            let _ = s.read_exact(&mut pre);
            let _ = s.write_all(&welcome);
        }
    });
    (addr, count)
}

/// Issue 15 item 7: a server that welcomes and then sends garbage got a
/// reconnect every ~0.9 s forever (each Welcome reset the back-off). Now
/// the back-off grows, because a connection must stay up 10 s to count as
/// healthy. With 100 ms initial and 1.6 s max, 6 s allow about 8 attempts
/// with the back-off and about 80 without.
#[test]
fn a_garbage_server_gets_a_growing_back_off() {
    let (addr, count) = garbage_server();
    let conf = temp_file(
        "client.toml",
        "[client]\nreconnect_initial_ms = 100\nreconnect_max_ms = 1600\n",
    );
    let conf_s = conf.to_str().expect("utf-8 path").to_string();
    let mut c = plain(&["--plain", "--json", "--config", &conf_s, "--server", &addr]);
    c.expect_event("welcome", |_| true);
    let window = Duration::from_secs(6);
    std::thread::sleep(window);
    let n = count.load(Ordering::SeqCst);
    eprintln!("garbage server: {n} connections in {window:?}");
    drop(c);
    if let Some(d) = conf.parent() {
        let _ = std::fs::remove_dir_all(d);
    }
    assert!(
        (3..=14).contains(&n),
        "{n} connections in {window:?} (a back-off that starts over on every Welcome makes ~80)"
    );
}

/// Issue 9 item 3: over UDP a line typed while connecting is queued and
/// delivered (UDP used to refuse it), and a taken nick is retried as
/// NICK_ (only TCP did that).
#[test]
fn udp_queues_lines_while_connecting_and_retries_a_taken_nick() {
    let server = ServerProc::start(&[]);
    let udp = server.udp_addr().to_string();
    let tcp = server.addr.to_string();
    let mut holder = plain(&["--plain", "--json", "--server", &tcp, "--nick", "carol"]);
    holder.expect_event("welcome", |v| v["nick"] == "carol");
    let mut c = Plain::spawn(
        sockchat_command(&[
            "--plain", "--json", "--udp", "--server", &udp, "--nick", "carol",
        ])
        .stderr(Stdio::inherit()),
        "udp carol",
        STEP,
    );
    // Typed before any Welcome can have arrived.
    c.send("queued over udp");
    let w = c.expect_event("welcome", |_| true);
    assert_eq!(w["nick"], "carol_", "{w}");
    let got = holder.expect_event("chat", |v| v["text"] == "queued over udp");
    assert_eq!(got["from"], "carol_", "{got}");
    assert_eq!(c.finish(), 0, "the line was confirmed: {:#?}", c.seen);
}
