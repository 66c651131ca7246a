//! The terminal UI sends a line where the user meant it, and at once (issue
//! 15 items 1, 2, 3, 6): the real `sockchat` in tmux (send-keys and paste
//! in, capture-pane out) against the real server, with `--plain` clients
//! as the other people in the rooms, who see what really arrived.
//!
//! Needs tmux: without it the tests skip with the reason locally and fail
//! under CI (`sockchat_tests::require!`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::time::{Duration, Instant};

use sockchat_tests::ServerProc;
use sockchat_tests::tmux::{STEP, Tmux, plain_client, require_tmux, restartable_port};

/// `alice` in a tmux session on `addr`, welcomed.
fn alice(tmux: &Tmux, addr: &str) {
    tmux.client("alice", 120, 30, &format!("--server {addr} --nick alice"));
    tmux.wait_for("alice", "welcome alice");
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on the sockchat process this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {pid} {sig}");
}

/// Issue 15 item 1: the key that closes an overlay (help, event log) never
/// eats the first character of what is typed next, so `/msg bob ...`
/// typed after F1 or F3 is a private message, never text for the room.
#[test]
fn a_key_that_closes_an_overlay_never_leaks_a_private_message() {
    if !require_tmux() {
        return;
    }
    let server = ServerProc::start(&[]);
    let addr = server.addr.to_string();
    let tmux = Tmux::new("overlay");
    let mut bob = plain_client(&addr, "bob");
    let mut carol = plain_client(&addr, "carol");
    alice(&tmux, &addr);
    carol.expect("alice joined lobby");

    tmux.keys("alice", &["F1"]);
    tmux.wait_for("alice", "sockchat — keys");
    tmux.line("alice", "/msg bob my password is hunter2");
    let got = bob.expect("my password is hunter2");
    assert!(got.starts_with("[pm] alice"), "a private message: {got}");

    tmux.keys("alice", &["F3"]);
    tmux.wait_for("alice", "other keys close");
    tmux.line("alice", "/msg bob second secret");
    let got = bob.expect("second secret");
    assert!(got.starts_with("[pm] alice"), "a private message: {got}");

    // A marker through the room: everything alice sent before it has
    // reached carol, and none of it was the secret.
    tmux.line("alice", "marker after the secrets");
    carol.expect("[lobby] alice: marker after the secrets");
    for l in &carol.seen {
        assert!(
            !l.contains("hunter2") && !l.contains("second secret") && !l.contains("msg bob"),
            "the room saw a private line: {l}"
        );
    }
    // The screen is back to the chat, the help and log closed.
    let s = tmux.wait_for("alice", "marker after the secrets");
    assert!(!s.contains("sockchat — keys"), "{s}");
}

/// Issue 15 item 2: `/join qa` moves the focus at once; the line typed
/// right after it goes to qa (held by the client until the join is
/// answered), never to the room in view before.
#[test]
fn a_line_typed_right_after_join_goes_to_the_new_room() {
    if !require_tmux() {
        return;
    }
    let server = ServerProc::start(&[]);
    let addr = server.addr.to_string();
    let tmux = Tmux::new("join");
    let mut carol = plain_client(&addr, "carol");
    carol.send("/join qa");
    carol.expect("carol joined qa");
    alice(&tmux, &addr);
    // Both lines in one burst (CR is the Enter key): the second is typed
    // before the server can have answered the join.
    tmux.keys("alice", &["-l", "/join qa\rhello qa\r"]);
    carol.expect("[qa] alice: hello qa");
    tmux.line("alice", "still in qa");
    carol.expect("[qa] alice: still in qa");
    for l in &carol.seen {
        assert!(!l.starts_with("[lobby] alice:"), "went to lobby: {l}");
    }
    let s = tmux.wait_for("alice", "still in qa");
    assert!(
        s.lines().any(|l| l.starts_with("[qa]")),
        "the input line's prompt names qa:\n{s}"
    );
}

/// Issue 15 item 6: 2,000 characters typed (no bracketed paste: tmux types
/// them as keys) or pasted (bracketed) and then Enter are sent at once,
/// not when the next key arrives.
#[test]
fn long_typed_and_pasted_lines_are_sent_at_once() {
    if !require_tmux() {
        return;
    }
    let server = ServerProc::start(&[]);
    let addr = server.addr.to_string();
    let tmux = Tmux::new("long");
    let mut carol = plain_client(&addr, "carol");
    alice(&tmux, &addr);
    carol.expect("alice joined lobby");

    // The client is stopped while the keys arrive, so all of them (more
    // than 1 KiB) wait in the tty at once when it goes on: what a fast
    // paste into a busy terminal does.
    let pid = tmux.client_pid("alice");
    let typed: String = (0..2000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    signal(pid, libc::SIGSTOP);
    tmux.keys("alice", &["-l", &typed]);
    tmux.keys("alice", &["Enter"]);
    std::thread::sleep(Duration::from_millis(300));
    signal(pid, libc::SIGCONT);
    let t0 = Instant::now();
    let got = carol.expect("[lobby] alice: abcdefghij");
    let took = t0.elapsed();
    assert!(
        got.ends_with(&typed),
        "the whole line arrived: {}",
        got.len()
    );
    assert!(
        took < Duration::from_secs(8),
        "a typed 2,000-character line took {took:?}"
    );

    let pasted: String = (0..2000)
        .map(|i| char::from(b'A' + (i % 26) as u8))
        .collect();
    signal(pid, libc::SIGSTOP);
    tmux.paste("alice", &pasted, true);
    tmux.keys("alice", &["Enter"]);
    std::thread::sleep(Duration::from_millis(300));
    signal(pid, libc::SIGCONT);
    let t0 = Instant::now();
    let got = carol.expect("[lobby] alice: ABCDEFGHIJ");
    let took = t0.elapsed();
    assert!(got.ends_with(&pasted), "the whole paste arrived");
    assert!(
        took < Duration::from_secs(8),
        "a pasted 2,000-character line took {took:?}"
    );
}

/// Issue 15 item 3: after the server restarts, the client reconnects into
/// every room it was in and the focus stays on the room the user was
/// talking in: the next line goes there.
#[test]
fn reconnect_keeps_the_focused_room() {
    if !require_tmux() {
        return;
    }
    let port = restartable_port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = ServerProc::start_args(&["--listen", &listen], &[]);
    let tmux = Tmux::new("refocus");
    alice(&tmux, &listen);
    tmux.line("alice", "/join dev");
    tmux.wait_for("alice", "alice joined dev");

    server.signal(libc::SIGKILL);
    let _ = server.wait_timeout(STEP);
    tmux.wait_for("alice", "CLOSED");
    let _server2 = ServerProc::start_args(&["--listen", &listen], &[]);
    // alice is welcomed again (into lobby) and her client rejoins dev.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let s = tmux.run(&["capture-pane", "-p", "-S", "-200", "-t", "alice"]);
        if s.matches("alice joined dev").count() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "never rejoined dev:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut carol = plain_client(&listen, "carol");
    carol.send("/join dev");
    carol.expect("carol joined dev");
    carol.send("/who dev");
    let who = carol.expect("* dev (");
    assert!(who.contains("alice"), "{who}");
    // The status bar still names dev, and the next line goes there.
    let s = tmux.capture("alice");
    let status = s.lines().last().unwrap_or("");
    assert!(status.contains("dev"), "focus kept on dev: {status}");
    tmux.line("alice", "back in dev");
    carol.expect("[dev] alice: back in dev");
    for l in &carol.seen {
        assert!(!l.starts_with("[lobby] alice:"), "went to lobby: {l}");
    }
}
