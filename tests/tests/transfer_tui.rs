//! File transfer in the terminal UI (real clients in tmux, real server):
//! the offer line with the id to type, a progress bar on both screens while
//! bytes move, chat still flowing meanwhile, and a cancel seen on the other
//! screen with who cancelled.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use sockchat_tests::ServerProc;
use sockchat_tests::tmux::Tmux;
use std::time::Duration;

#[test]
fn send_shows_bars_keeps_chat_and_cancels() {
    sockchat_tests::require!(
        Tmux::available(),
        "tmux is not installed (./test.sh installs it)"
    );
    let server = ServerProc::start(&[]);
    let addr = server.addr.to_string();
    let work = std::env::temp_dir().join(format!("sockchat-xfer-tui-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("dl")).unwrap();
    // Sparse: hashed fast, many seconds to send through debug builds.
    let file = work.join("big.iso");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let tmux = Tmux::new("xfer");
    tmux.client("alice", 140, 30, &format!("--server {addr} --nick alice"));
    tmux.wait_for("alice", "welcome alice");
    let dl = work.join("dl");
    tmux.client(
        "bob",
        140,
        30,
        &format!("--server {addr} --nick bob --download-dir {}", dl.display()),
    );
    tmux.wait_for("bob", "welcome bob");
    tmux.line("alice", &format!("/send {} bob", file.display()));
    // The offer comes once the whole file is hashed (2 GiB: seconds on an
    // idle machine, more under a loaded CI).
    tmux.wait_for_within(
        "alice",
        "offered big.iso (2,147,483,648 B",
        Duration::from_secs(90),
    );
    tmux.wait_for("bob", "alice offers you big.iso (2,147,483,648 B");
    tmux.wait_for("bob", "/accept 1 or /decline 1");
    tmux.line("bob", "/accept 1");
    // Bars on both sides once progress comes (once a second).
    tmux.wait_for("bob", "[1] big.iso <- alice █");
    tmux.wait_for("alice", "[1] big.iso -> bob █");
    // Chat goes on while the file moves.
    tmux.line("alice", "still here while it copies");
    tmux.wait_for("bob", "alice: still here while it copies");
    tmux.line("bob", "/cancel");
    tmux.wait_for("bob", "cancelled by you");
    let screen = tmux.wait_for("alice", "cancelled by bob");
    assert!(
        !screen.contains("[1] big.iso -> bob █"),
        "bar gone:\n{screen}"
    );
    let left: Vec<_> = std::fs::read_dir(&dl).unwrap().collect();
    assert!(left.is_empty(), "nothing saved after a cancel: {left:?}");
    let _ = std::fs::remove_dir_all(&work);
}
