//! The terminal UI never shows back or keeps a typed password or key
//! (issue 12, "who may come in"): the real `sockchat` in tmux against the
//! real server; after `/register`, `/identify` and `/join ROOM KEY` the
//! secrets are nowhere on the screen, in the event log (F3) or in the
//! input history (Up), while the commands did work.
//!
//! Needs tmux: without it the test skips with the reason locally and fails
//! under CI (`sockchat_tests::require!`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use sockchat_tests::ServerProc;
use sockchat_tests::tmux::Tmux;

#[test]
fn typed_passwords_and_keys_are_never_shown_or_kept() {
    if !sockchat_tests::require(
        Tmux::available(),
        "tmux is not installed (./test.sh installs it)",
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sockchat-tui-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let server = ServerProc::start_with_config(
        "tui-secrets",
        &format!("[auth]\nnicks_file = \"{}\"\n", dir.join("nicks").display()),
        &[],
    );
    let tmux = Tmux::new("secrets");
    tmux.client(
        "alice",
        120,
        30,
        &format!("--server {} --nick alice", server.addr),
    );
    tmux.wait_for("alice", "welcome alice");
    tmux.line("alice", "hello before the secrets");
    tmux.wait_for("alice", "alice: hello before the secrets");
    tmux.line("alice", "/register Pw-0f-Al1ce");
    tmux.wait_for("alice", "alice is registered to you");
    tmux.line("alice", "/identify Pw-0f-Al1ce");
    tmux.wait_for("alice", "you are identified as alice");
    tmux.line("alice", "/join den K3y-0f-Den");
    tmux.wait_for("alice", "alice joined den");
    let secret = |screen: &str| screen.contains("Pw-0f-Al1ce") || screen.contains("K3y-0f-Den");
    let screen = tmux.capture("alice");
    assert!(!secret(&screen), "a secret on the screen:\n{screen}");
    // The history skips them: Up brings back the last line without one.
    tmux.keys("alice", &["Up"]);
    let screen = tmux.wait_for("alice", "[den] hello before the secrets");
    assert!(!secret(&screen), "a secret in the history:\n{screen}");
    tmux.keys("alice", &["Up", "Up"]);
    let screen = tmux.capture("alice");
    assert!(!secret(&screen), "a secret in the history:\n{screen}");
    tmux.keys("alice", &["C-u", "F3"]);
    let screen = tmux.wait_for("alice", "event log");
    assert!(!secret(&screen), "a secret in the event log:\n{screen}");
    let log = server.stderr();
    assert!(!secret(&log), "a secret in the server log:\n{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
