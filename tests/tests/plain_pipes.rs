//! Plain mode driven through pipes: the real `sockchat` binary (stdin lines
//! in, one line per event out) against the real `sockchat-server`, on
//! loopback. Each client is killed on drop; every wait is bounded.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sockchat_tests::tmux::restartable_port;
use sockchat_tests::{Plain, ServerProc, sockchat_command};

const STEP: Duration = Duration::from_secs(10);

/// One `sockchat --plain` process (its stderr shown with the test's).
fn plain(args: &[&str]) -> Plain {
    Plain::spawn(
        sockchat_command(args).stderr(Stdio::inherit()),
        args.join(" "),
        STEP,
    )
}

/// A plain client of `server` as `nick`, once welcomed.
fn chat(server: &ServerProc, nick: &str, extra: &[&str]) -> Plain {
    let addr = server.addr.to_string();
    let mut args = vec!["--plain", "--server", &addr, "--nick", nick];
    args.extend_from_slice(extra);
    let mut p = plain(&args);
    p.expect(&format!("* welcome {nick}: you are in lobby"));
    p
}

#[test]
fn two_clients_chat_and_see_each_others_faults() {
    let server = ServerProc::start(&[]);
    let mut alice = chat(&server, "alice", &["--no-reconnect"]);
    let mut bob = chat(&server, "bob", &["--no-reconnect"]);
    alice.expect("* bob joined lobby");

    bob.send("hello from bob");
    alice.expect("[lobby] bob: hello from bob");
    // Framed senders get their own message back (delivery confirmed).
    bob.expect("[lobby] bob: hello from bob");

    alice.send("/msg bob psst");
    bob.expect("[pm] alice: psst");
    alice.send("/me waves");
    bob.expect("[lobby] * alice waves");

    // Oversized input never leaves the client.
    alice.send(&"x".repeat(5000));
    alice.expect("! message too long: 5000 bytes (max 4096); not sent");

    // The server's view of bob's socket.
    alice.send("/sockinfo bob");
    let info = alice.expect("* sockinfo bob:");
    assert!(info.contains("tcpi_state=ESTABLISHED"), "{info}");

    // bob resets his connection: alice sees the server's reason for it.
    bob.send("/fault rst");
    let done = bob.expect("* fault rst:");
    assert!(done.contains("SO_LINGER"), "{done}");
    bob.expect("* CLOSED: we reset the connection (fault rst)");
    alice.expect("* bob left lobby: connection reset by peer (ECONNRESET 104)");
    assert_eq!(bob.finish(), 1, "reconnect off: the connection ended");

    // carol half-closes: the server reads EOF.
    let mut carol = chat(&server, "carol", &["--no-reconnect"]);
    alice.expect("* carol joined lobby");
    carol.send("/fault fin");
    carol.expect("* fault fin: shutdown(SHUT_WR)");
    alice.expect("* carol left lobby: closed by peer (EOF, FIN received)");

    // End of input is a clean /quit.
    assert_eq!(alice.finish(), 0);
    assert!(
        alice.seen.iter().any(|l| l == "* CLOSED: quit"),
        "{:?}",
        alice.seen
    );
}

#[test]
fn close_with_unread_data_resets_and_json_mode() {
    let server = ServerProc::start(&[]);
    let addr = server.addr.to_string();
    let mut watcher = plain(&[
        "--json",
        "--server",
        &addr,
        "--nick",
        "watcher",
        "--no-reconnect",
    ]);
    watcher.expect("\"event\":\"welcome\"");
    let mut dave = chat(&server, "dave", &["--no-reconnect"]);
    // --json: one object per line; find dave's join.
    let deadline = Instant::now() + STEP;
    loop {
        let l = watcher.expect("\"event\"");
        let v: serde_json::Value = serde_json::from_str(&l).expect("each line is JSON");
        if v["event"] == "joined" && v["nick"] == "dave" {
            break;
        }
        assert!(Instant::now() < deadline, "no joined event");
    }
    dave.send("/fault close-unread");
    let done = dave.expect("* fault close-unread:");
    assert!(done.contains("unread bytes"), "{done}");
    let l = watcher.expect("\"left\"");
    let v: serde_json::Value = serde_json::from_str(&l).expect("JSON");
    assert_eq!(v["nick"], "dave");
    assert_eq!(v["reason"], "reset", "{l}");
    assert_eq!(v["errno"], 104, "{l}");
    assert_eq!(v["text"], "connection reset by peer (ECONNRESET 104)");
}

#[test]
fn server_gone_then_refused_then_back() {
    let port = restartable_port();
    let mut server = ServerProc::start_args(&["--listen", &format!("127.0.0.1:{port}")], &[]);
    let addr = server.addr;
    let dir = std::env::temp_dir().join(format!("sockchat-plain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let cfg = dir.join("client.toml");
    std::fs::write(
        &cfg,
        "[client]\nreconnect_initial_ms = 100\nreconnect_max_ms = 300\n",
    )
    .expect("write config");
    let a = addr.to_string();
    let c = cfg.to_string_lossy().to_string();
    let mut eve = plain(&[
        "--plain", "--server", &a, "--nick", "eve", "--room", "dev", "--config", &c,
    ]);
    eve.expect("* welcome eve");
    eve.expect("* eve joined dev");
    // SIGKILL: the kernel closes the server's socket for it. With nothing
    // unread that is a FIN (eve reads EOF); if one of eve's frames (a
    // latency ping) was still unread in the server's receive queue at that
    // instant, the kernel sends RST instead (ECONNRESET). Both are the
    // truth; what matters is that eve reports the one that happened,
    // consistently in the event and in the close reason.
    server.signal(libc::SIGKILL);
    let _ = server.wait_timeout(STEP);
    let closed = eve.expect("* CLOSED: ");
    let (read_line, reason) = if closed.contains("closed by peer (EOF, FIN received)") {
        ("read: EOF (peer sent FIN)", "EOF")
    } else if closed.contains("connection reset by peer (ECONNRESET 104)") {
        (": ECONNRESET (104)", "ECONNRESET")
    } else {
        panic!("unexpected close reason after SIGKILL: {closed}");
    };
    assert!(
        eve.seen.iter().any(|l| l.contains(read_line)),
        "close reason {reason} without the matching event {read_line:?}: {:?}",
        eve.seen
    );
    eve.expect("! connect: ECONNREFUSED (111) connection refused");
    eve.expect("* reconnecting in");
    // The server comes back on the same port: nick and room are restored.
    let _server2 = ServerProc::start_args(&["--listen", &a], &[]);
    eve.expect("* welcome eve: you are in lobby");
    eve.expect("* eve joined dev");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A script pouring thousands of lines in at once: nothing deadlocks,
/// nothing is lost, end of input is a clean quit.
#[test]
fn a_flood_on_stdin_is_sent_in_order_then_quits() {
    let server = ServerProc::start(&["--no-rate-limits"]);
    let mut flood = chat(&server, "flood", &["--no-reconnect"]);
    let mut w = flood.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        for i in 0..3000 {
            if writeln!(w, "line {i}").is_err() {
                break;
            }
        }
        // Dropping w closes stdin: end of input.
    });
    flood.expect("[lobby] flood: line 0");
    flood.expect("[lobby] flood: line 2999");
    writer.join().expect("writer");
    assert_eq!(flood.finish(), 0);
    let echoed = flood
        .seen
        .iter()
        .filter(|l| l.starts_with("[lobby] flood: line "))
        .count();
    assert_eq!(echoed, 3000, "every line sent and echoed once, in order");
}

/// Two clients asking for one nick: the second gets NICK_ (the server
/// refuses the Hello and waits for another).
#[test]
fn a_taken_nick_becomes_nick_underscore() {
    let server = ServerProc::start(&[]);
    let _first = chat(&server, "twin", &["--no-reconnect"]);
    let addr = server.addr.to_string();
    let mut second = plain(&[
        "--plain",
        "--server",
        &addr,
        "--nick",
        "twin",
        "--no-reconnect",
    ]);
    second.expect("! nick already taken: twin");
    second.expect("! trying nick twin_");
    second.expect("* welcome twin_: you are in lobby");
}
