//! A hung server is noticed (issue 15 item 5): the kernel keeps ACKing for
//! a stopped process, and a server that sent half a frame looks busy, so
//! only the application can tell. The real `sockchat` client in plain JSON
//! mode, against a real `sockchat-server` stopped with SIGSTOP, and against
//! a listener in this test that welcomes and then sends half a frame.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sockchat_shared::ServerMsg;
use sockchat_shared::codec::encode_server;
use sockchat_shared::proto::preamble;
use sockchat_tests::{Plain, ServerProc, sockchat_command};

const STEP: Duration = Duration::from_secs(15);

/// The ping timeout the clients run with here.
const PING_TIMEOUT_MS: u64 = 2000;

fn client(addr: &str, nick: &str, extra: &[&str]) -> Plain {
    let t = PING_TIMEOUT_MS.to_string();
    let mut args = vec![
        "--plain",
        "--json",
        "--server",
        addr,
        "--nick",
        nick,
        "--ping-timeout-ms",
        &t,
    ];
    args.extend_from_slice(extra);
    Plain::spawn(
        sockchat_command(&args).stderr(Stdio::inherit()),
        args.join(" "),
        STEP,
    )
}

/// The ping timeout with a little tolerance below: a ping sent just
/// before the server stopped started the wait a moment earlier.
fn at_least_the_timeout(took: Duration) -> bool {
    took + Duration::from_millis(250) >= Duration::from_millis(PING_TIMEOUT_MS)
}

/// SIGCONT on drop, so a failing test never leaves a stopped server.
struct Stopped(i32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        let pid = pid as i32;
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(pid, libc::SIGSTOP);
        }
        // The signal is asynchronous: wait until the kernel shows the
        // process stopped (state T), so nothing typed after this returns
        // can still be served.
        let stat = format!("/proc/{pid}/stat");
        let until = Instant::now() + STEP;
        loop {
            let state = std::fs::read_to_string(&stat)
                .ok()
                .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().chars().next()))
                .flatten();
            if state == Some('T') {
                break;
            }
            assert!(Instant::now() < until, "{pid} not stopped: {state:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.0, libc::SIGCONT);
        }
    }
}

/// SIGSTOP the server: the client reports the lag growing, fails the line
/// typed meanwhile, ends the connection with idle-timeout after the ping
/// timeout, reconnects, and gets a session again after SIGCONT.
#[test]
fn a_sigstopped_server_is_noticed_and_the_client_reconnects() {
    let server = ServerProc::start(&[]);
    let addr = server.addr.to_string();
    let mut c = client(&addr, "stoppy", &[]);
    c.expect_event("welcome", |_| true);
    c.send("before the stop");
    c.expect_event("chat", |v| v["text"] == "before the stop");

    let stopped = Stopped::stop(server.pid());
    let at = Instant::now();
    c.send("while stopped");
    // The status bar's number: the wait for the unanswered ping, growing.
    let lag = c.expect_event("lag", |v| {
        v["waiting_ms"].as_u64().is_some_and(|ms| ms >= 500)
    });
    assert!(
        lag["waiting_ms"]
            .as_u64()
            .is_some_and(|ms| ms < PING_TIMEOUT_MS)
    );
    c.expect_event("closed", |v| v["reason"] == "idle-timeout");
    let took = at.elapsed();
    // Failed when it expired or when the connection ended, whichever came
    // first; never left pending.
    let failed = c.seen_or_expect_event("line-failed", |_| true);
    assert_eq!(failed["line"], "while stopped", "{failed}");
    // The ping timeout, plus at most one ping period (2 s) and a tick, plus
    // slack for a loaded machine; never before the timeout.
    assert!(
        at_least_the_timeout(took) && took < Duration::from_secs(10),
        "idle-timeout after {took:?}"
    );
    c.expect_event("reconnecting", |_| true);

    drop(stopped); // SIGCONT
    c.expect_event("welcome", |_| true);
    c.send("after the stop");
    c.expect_event("chat", |v| v["text"] == "after the stop");
    assert_eq!(c.finish(), 1, "a line failed: the exit status says so");
}

/// The server side of one connection that welcomes us, then sends the
/// first half of a frame and nothing more (the socket stays open until the
/// test ends).
fn half_frame_server() -> (String, mpsc::Sender<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        let _ = s.set_read_timeout(Some(STEP));
        let mut pre = [0u8; 5];
        if s.read_exact(&mut pre).is_err() {
            return;
        }
        let mut out = BytesMut::new();
        out.extend_from_slice(&preamble());
        encode_server(
            &ServerMsg::Welcome {
                nick: "halfy".into(),
                room: "lobby".into(),
                server: "half-frame test server".into(),
            },
            &mut out,
        );
        let mut frame = BytesMut::new();
        encode_server(
            &ServerMsg::Notice {
                text: "this notice never ends".into(),
            },
            &mut frame,
        );
        out.extend_from_slice(&frame[..frame.len() / 2]);
        if s.write_all(&out).is_err() {
            return;
        }
        // Silent from now on; keep reading (and ignoring) what comes.
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        let mut sink = [0u8; 4096];
        let until = Instant::now() + 3 * STEP;
        while Instant::now() < until && done_rx.try_recv().is_err() {
            match s.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
    });
    (addr, done_tx)
}

/// Half a frame, then silence: the pings go unanswered and the client ends
/// the connection with idle-timeout (it waited over 45 s before).
#[test]
fn a_server_that_sends_half_a_frame_is_noticed() {
    let (addr, done) = half_frame_server();
    let mut c = client(&addr, "halfy", &["--no-reconnect"]);
    c.expect_event("welcome", |v| v["nick"] == "halfy");
    let at = Instant::now();
    c.send("into the void");
    c.expect_event("lag", |_| true);
    c.expect_event("closed", |v| v["reason"] == "idle-timeout");
    let took = at.elapsed();
    let failed = c.seen_or_expect_event("line-failed", |_| true);
    assert_eq!(failed["line"], "into the void", "{failed}");
    assert!(
        at_least_the_timeout(took) && took < Duration::from_secs(10),
        "idle-timeout after {took:?}"
    );
    assert_eq!(c.finish(), 1);
    let _ = done.send(());
}

/// Over UDP the same rule: a server that welcomes us and then never
/// answers (UDP has no FIN, and nothing ICMP-refuses while its socket is
/// open) is ended by the ping timeout, with the line typed meanwhile failed.
#[test]
fn a_silent_udp_server_is_noticed_by_the_same_ping_timeout() {
    use sockchat_shared::udp;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let addr = sock.local_addr().expect("addr").to_string();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut welcomed = false;
        let until = Instant::now() + 3 * STEP;
        // Welcome the first Hello, then read and ignore everything.
        while Instant::now() < until && done_rx.try_recv().is_err() {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if welcomed {
                continue;
            }
            if let Ok(d) = udp::decode_client(&buf[..n], udp::DEFAULT_MAX_PAYLOAD)
                && matches!(d.msg, sockchat_shared::ClientMsg::Hello { .. })
            {
                let w = ServerMsg::Welcome {
                    nick: "udpy".into(),
                    room: "lobby".into(),
                    server: "silent udp test server".into(),
                };
                let dg = udp::encode_server(0, &w, udp::DEFAULT_MAX_PAYLOAD).expect("encode");
                let _ = sock.send_to(&dg, from);
                welcomed = true;
            }
        }
    });
    let mut c = client(&addr, "udpy", &["--udp", "--no-reconnect"]);
    c.expect_event("welcome", |v| v["nick"] == "udpy");
    let at = Instant::now();
    c.send("into the silence");
    c.expect_event("lag", |_| true);
    c.expect_event("closed", |v| v["reason"] == "idle-timeout");
    let took = at.elapsed();
    assert!(
        at_least_the_timeout(took) && took < Duration::from_secs(10),
        "idle-timeout after {took:?}"
    );
    let failed = c.seen_or_expect_event("line-failed", |_| true);
    assert_eq!(failed["line"], "into the silence", "{failed}");
    assert_eq!(c.finish(), 1);
    let _ = done_tx.send(());
}
