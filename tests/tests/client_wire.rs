//! The client's view of its own packets and of what the kernel keeps after
//! its close (issue 13 items 2 and 3), with the real binaries on loopback:
//!
//! - `--json --wire`: the handshake, our data and the close of *this*
//!   connection only (another client's connection to the same server is
//!   never shown), then the kernel's TIME_WAIT socket with its timer, read
//!   with sock_diag after a real close;
//! - `/fault rst`: our `[R.]`, no FIN from us, and no TIME_WAIT left;
//! - without CAP_NET_RAW: why, and the `setcap` to run; the chat goes on;
//! - the TUI's wire view (F4) in tmux as a person uses it: the handshake
//!   and the data packets, then `/fault rst` typed in the input line and
//!   its `[R.]` in the view.
//!
//! Capturing needs CAP_NET_RAW (CI runs as root; without it the tests fail
//! under CI with the reason and are skipped locally, via `require!`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::time::Duration;

use serde_json::Value;
use sockchat_tests::tmux::Tmux;
use sockchat_tests::{Plain, ServerProc, is_root, on_path, require, sockchat_command};

const STEP: Duration = Duration::from_secs(20);

/// Every packet of every `wire` event seen.
fn packets(p: &Plain) -> Vec<Value> {
    p.seen
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "wire")
        .flat_map(|v| v["packets"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn flags(pk: &[Value], from: &str) -> Vec<String> {
    pk.iter()
        .filter(|p| p["from"] == from)
        .map(|p| p["flags"].as_str().expect("flags").to_string())
        .collect()
}

/// `sockchat --json --wire` against `addr`, welcomed; returns it and its
/// local port.
fn json_client(addr: &str, nick: &str, extra: &[&str]) -> (Plain, u16) {
    let mut args = vec!["--server", addr, "--nick", nick, "--json", "--wire"];
    args.extend_from_slice(extra);
    let mut p = Plain::spawn(&mut sockchat_command(&args), nick, STEP);
    let c = p.expect_event("connected", |_| true);
    let local: std::net::SocketAddr = c["local"].as_str().expect("local").parse().expect("addr");
    p.expect_event("welcome", |_| true);
    (p, local.port())
}

#[test]
fn json_wire_shows_this_connection_then_the_time_wait_our_close_left() {
    require!(
        is_root(),
        "client_wire: capturing needs CAP_NET_RAW (run as root)"
    );
    let server = ServerProc::start(&[]);
    let addr = server.addr.to_string();
    let (mut a, port) = json_client(&addr, "wa", &["--no-reconnect"]);
    // Another connection to the same server, chatting at the same time:
    // none of its packets may show in wa's view.
    let (mut other, other_port) = json_client(&addr, "wb", &[]);
    other.send("noise from another connection");
    a.send("hello from wa");
    a.expect_event("chat", |v| {
        v["text"] == "hello from wa" && v["history"] == false
    });
    other.expect_event("chat", |v| v["from"] == "wb" && v["history"] == false);
    // Our FIN first, for sure (a /quit races the server's close of its
    // side with our shutdown right after the Quit frame): the server reads
    // EOF and closes too.
    a.send("/fault fin");
    let after = a.expect_event("after-close", |_| true);
    a.finish();

    let pk = packets(&a);
    let me = flags(&pk, "me");
    let srv = flags(&pk, "server");
    assert_eq!(me.first().map(String::as_str), Some("[S]"), "{pk:#?}");
    assert_eq!(srv.first().map(String::as_str), Some("[S.]"), "{pk:#?}");
    assert!(
        pk.iter()
            .any(|p| p["from"] == "me" && p["len"].as_u64() > Some(0)),
        "our data: {pk:#?}"
    );
    assert!(me.iter().any(|f| f.contains('F')), "our FIN: {me:?}");
    assert!(
        srv.iter().any(|f| f.contains('F')),
        "the server's FIN: {srv:?}"
    );
    assert!(
        !me.iter().chain(&srv).any(|f| f.contains('R')),
        "no RST: {pk:#?}"
    );
    for p in &pk {
        let ports = [p["src_port"].as_u64(), p["dst_port"].as_u64()];
        assert!(
            ports.contains(&Some(u64::from(port)))
                && ports.contains(&Some(u64::from(server.addr.port()))),
            "a packet of another connection (wb is on {other_port}): {p}"
        );
    }

    // We sent our FIN first and the server answered with its own: our
    // side is left in TIME_WAIT, the kernel's 60 s timer
    // running, and only sock_diag can see it now that the fd is closed.
    assert_eq!(after["state"], "TIME_WAIT", "{after}");
    assert_eq!(after["timer"], "timewait", "{after}");
    let left = after["expires_ms"].as_u64().expect("timer");
    assert!((50_000..=60_000).contains(&left), "{after}");
    assert!(
        after["local"]
            .as_str()
            .is_some_and(|l| l.ends_with(&format!(":{port}")))
    );
    other.send("/quit");
    assert_eq!(other.finish(), 0);
}

#[test]
fn json_wire_fault_rst_shows_our_reset_and_leaves_no_time_wait() {
    require!(
        is_root(),
        "client_wire: capturing needs CAP_NET_RAW (run as root)"
    );
    let server = ServerProc::start(&[]);
    let addr = server.addr.to_string();
    let (mut a, _) = json_client(&addr, "wr", &["--no-reconnect"]);
    a.send("hello");
    a.expect_event("chat", |v| v["text"] == "hello" && v["history"] == false);
    a.send("/fault rst");
    let after = a.expect_event("after-close", |_| true);
    a.finish();
    let pk = packets(&a);
    let me = flags(&pk, "me");
    assert!(me.iter().any(|f| f == "[R.]"), "our RST: {me:?}");
    assert!(
        !me.iter().any(|f| f.contains('F')),
        "an RST and no FIN: {me:?}"
    );
    assert_eq!(
        after["state"],
        Value::Null,
        "SO_LINGER 0: nothing kept: {after}"
    );
    assert_eq!(after["error"], Value::Null, "{after}");
}

#[test]
fn json_wire_connect_refused_shows_the_syn_and_its_rst_ack_before_111() {
    require!(
        is_root(),
        "client_wire: capturing needs CAP_NET_RAW (run as root)"
    );
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut p = Plain::spawn(
        &mut sockchat_command(&["--server", &addr, "--json", "--wire", "--no-reconnect"]),
        "refused",
        STEP,
    );
    p.finish();
    let events: Vec<Value> = p
        .seen
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let wire_at = events.iter().position(|v| v["event"] == "wire");
    let err_at = events
        .iter()
        .position(|v| v["event"] == "error" && v["errno"] == 111);
    assert!(
        wire_at.is_some() && wire_at < err_at,
        "packets, then ECONNREFUSED: {}",
        p.seen.join("\n")
    );
    let pk = packets(&p);
    assert_eq!(
        flags(&pk, "me").first().map(String::as_str),
        Some("[S]"),
        "{pk:#?}"
    );
    assert_eq!(flags(&pk, "server"), vec!["[R.]"], "{pk:#?}");
}

#[test]
fn without_cap_net_raw_wire_says_why_and_what_to_run_and_chat_goes_on() {
    require!(
        on_path("setpriv"),
        "client_wire: setpriv (util-linux) is needed to drop CAP_NET_RAW"
    );
    require!(
        is_root(),
        "client_wire: dropping CAP_NET_RAW from root needs root"
    );
    let server = ServerProc::start(&[]);
    let addr = server.addr.to_string();
    // Out of the bounding set: even root's exec of sockchat lacks it.
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--bounding-set=-net_raw"])
        .arg(sockchat_tests::bin("sockchat"))
        .args(["--server", &addr, "--nick", "wn", "--json", "--wire"])
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME");
    let mut p = Plain::spawn(&mut cmd, "wn", STEP);
    let off = p.expect_event("wire-off", |_| true);
    let why = off["why"].as_str().expect("why");
    assert!(why.contains("CAP_NET_RAW"), "{why}");
    assert!(why.contains("setcap cap_net_raw+ep"), "{why}");
    p.seen_or_expect_event("welcome", |_| true);
    p.send("still chatting");
    p.expect_event("chat", |v| {
        v["text"] == "still chatting" && v["history"] == false
    });
    p.send("/quit");
    assert_eq!(p.finish(), 0);
    assert!(packets(&p).is_empty());
}

#[test]
fn wire_with_udp_is_a_usage_error() {
    let o = sockchat_command(&["--udp", "--wire", "--json", "--server", "127.0.0.1:1"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--wire"),
        "{o:?}"
    );
}

#[test]
fn tui_wire_view_shows_the_handshake_data_and_our_reset() {
    require!(
        Tmux::available(),
        "tmux is not installed (./test.sh installs it)"
    );
    require!(
        is_root(),
        "client_wire: capturing needs CAP_NET_RAW (run as root)"
    );
    let server = ServerProc::start(&[]);
    let addr = server.addr.to_string();
    let tmux = Tmux::new("wire");
    tmux.client(
        "w",
        200,
        50,
        &format!("--server {addr} --nick wt --no-reconnect"),
    );
    tmux.wait_for("w", "welcome wt");
    tmux.line("w", "hello wire");
    tmux.wait_for("w", "wt: hello wire");
    tmux.keys("w", &["F4"]);
    tmux.wait_for("w", "wire: this connection's packets (F4 closes)");
    let port = server.addr.port();
    let s = tmux.wait_for("w", "Flags [P.]");
    for want in [
        &format!("> server.{port}: Flags [S],") as &str,
        &format!("server.{port} > me."),
        "Flags [S.]",
        "── connection 127.0.0.1:",
    ] {
        assert!(s.contains(want), "{want:?} not on screen:\n{s}");
    }
    // The input line is live under the view: the fault is typed there and
    // its reset shows up in the view.
    tmux.line("w", "/fault rst");
    let s = tmux.wait_for("w", "Flags [R.]");
    assert!(s.contains("CLOSED: we reset the connection"), "{s}");
    let s = tmux.wait_for("w", "the kernel keeps nothing of");
    assert!(!s.contains("in TIME_WAIT"), "{s}");
    // F4 again: the chat is back.
    tmux.keys("w", &["F4"]);
    tmux.wait_for("w", "wt: hello wire");
}
