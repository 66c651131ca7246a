//! The server's log never stops the server (server/src/logging.rs): the
//! real binary with its stderr a pipe that nobody reads — a terminal
//! paused with Ctrl-S, `sockchat-server 2>&1 | less` not scrolled — keeps
//! accepting, chatting and answering `/stats` after far more log lines
//! than the pipe holds, and counts the lines it dropped. Before the log had
//! a thread of its own this server stopped answering after ~300
//! connections: every worker blocked in `write(2)` on the full pipe.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use sockchat_shared::{ClientMsg, ServerMsg};
use sockchat_tests::{FramedClient, STEP, ServerProc, config_file};

const OPER_PW: &str = "l0g-oper-pw";

/// Open and close `n` TCP connections, one after another: each is one
/// `connected` (DEBUG) and one `disconnected` (INFO) line. A connect
/// that does not complete within 5 s means the server stopped accepting.
fn churn(addr: SocketAddr, n: usize) {
    for i in 0..n {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connection {i} of {n} not accepted: {e}"));
        drop(s);
    }
}

async fn stats(op: &mut FramedClient) -> HashMap<String, String> {
    op.send(&ClientMsg::Stats).await;
    match op
        .recv_until(|m| matches!(m, ServerMsg::Stats { .. }))
        .await
    {
        ServerMsg::Stats { fields } => fields.into_iter().collect(),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_log_nobody_reads_keeps_serving() {
    // The read end is held, never read: the pipe (64 KiB) fills and stays
    // full, as under a paused terminal.
    let (unread, stderr) = std::io::pipe().expect("pipe");
    let cfg = config_file(
        "log-unread",
        &format!("[auth]\noper_password = \"{OPER_PW}\"\n"),
    );
    let server = ServerProc::start_with_stderr(
        &["--listen", "127.0.0.1:0"],
        &[
            "--config",
            cfg.to_str().expect("utf-8 path"),
            "--log",
            "debug",
            "--no-rate-limits",
        ],
        |_| {},
        Stdio::from(stderr),
    );
    let addr = server.addr;
    let mut op = FramedClient::connect(addr, "op").await;
    op.oper(OPER_PW).await;
    let mut alice = FramedClient::connect(addr, "alice").await;

    // Churn until the server says it dropped lines: the pipe's ~400 lines
    // plus the 8,192 queued for the writer thread are passed after ~4,300
    // connections; give up (a failure) after 40,000.
    let mut dropped = 0u64;
    let mut opened = 0;
    while dropped == 0 {
        assert!(
            opened < 40_000,
            "no log line dropped after {opened} connections with stderr unread"
        );
        tokio::task::spawn_blocking(move || churn(addr, 2_000))
            .await
            .expect("churn thread");
        opened += 2_000;
        let s = tokio::time::timeout(STEP * 2, stats(&mut op))
            .await
            .unwrap_or_else(|_| panic!("/stats not answered after {opened} connections"));
        dropped = s["log_lines_dropped"].parse().expect("a number");
    }

    // Still serving: a newcomer is welcomed and chat goes both ways.
    let mut bob = tokio::time::timeout(STEP * 2, FramedClient::connect(addr, "bob"))
        .await
        .expect("a new user is still welcomed");
    alice
        .recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "bob"))
        .await;
    bob.send(&ClientMsg::Say {
        room: "lobby".into(),
        text: "still here".into(),
    })
    .await;
    alice
        .recv_until(|m| matches!(m, ServerMsg::Chat { text, .. } if text == "still here"))
        .await;
    // The count only grows, and /stats keeps answering.
    let later: u64 = stats(&mut op).await["log_lines_dropped"]
        .parse()
        .expect("a number");
    assert!(later >= dropped, "{later} < {dropped}");
    drop(unread);
}
