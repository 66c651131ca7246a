//! The real `sockchat --udp --plain` binary on loopback: chatting with a
//! TCP user through the real server, an oversize message refused locally
//! with a clear error (and never seen by the room), and ECONNREFUSED (111)
//! from the ICMP port-unreachable when nothing listens.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sockchat_shared::{ClientMsg, ServerMsg};
use sockchat_tests::{FramedClient, STEP, ServerProc, bin};

/// `sockchat --udp --plain` with its stdout lines on a channel; killed on
/// drop if still running.
struct PlainUdp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl PlainUdp {
    fn start(server: &str, extra: &[&str]) -> PlainUdp {
        let mut child = Command::new(bin("sockchat"))
            .args(["--server", server, "--udp", "--plain"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sockchat");
        let out = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        PlainUdp {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, line: &str) {
        let w = self.stdin.as_mut().expect("stdin open");
        writeln!(w, "{line}").expect("write stdin");
        w.flush().expect("flush stdin");
    }

    /// Wait (up to STEP) for a stdout line containing `needle`.
    fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!("no line containing {needle:?}; got {:#?}", self.seen),
            }
        }
    }

    fn wait_exit(&mut self, d: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for PlainUdp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn udp_client_binary_chats_with_a_tcp_user() {
    let srv = ServerProc::start(&[]);
    let server = srv.addr.to_string();
    let mut alice = FramedClient::connect(srv.addr, "alice").await;
    let mut carol = PlainUdp::start(&server, &["--nick", "carol"]);
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
                reason: Some(sockchat_shared::DisconnectReason::Quit),
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
    let mut c = PlainUdp::start(&dead.to_string(), &["--nick", "carol", "--no-reconnect"]);
    let err = c.expect("ECONNREFUSED (111)");
    assert!(err.contains("ICMP port-unreachable"), "{err}");
    c.expect("CLOSED: connection refused (ECONNREFUSED 111)");
    // Plain mode ends when both the connection and stdin are done.
    drop(c.stdin.take());
    c.wait_exit(STEP).expect("exits with --no-reconnect");
}
