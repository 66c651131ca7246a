//! Record and replay end to end (issue 16 item 3): the real server and a
//! real `sockchat --json --record FILE` chatting, doing `/fault rst` and
//! reconnecting; then `sockchat replay FILE --speed 10` in tmux shows the
//! same chat lines and the `ECONNRESET (104)` of the fault, with its
//! status line and keys. Also: no password in the file, a full disk
//! (`/dev/full`) told once while the chat goes on, and damaged files or a
//! bad `--speed` refused with a clear error and exit code.
//!
//! The tmux part needs tmux: without it that test skips with the reason
//! locally and fails under CI (`sockchat_tests::require`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::path::{Path, PathBuf};

use sockchat_tests::tmux::{STEP, Tmux, require_tmux};
use sockchat_tests::{Plain, ServerProc, sockchat_command};

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sockchat-e2e-rec-{}-{name}", std::process::id()))
}

/// A recorded session: hello, a password, `/fault rst`, the reconnect, a
/// line after it. Returns what the client printed.
fn record_session(server: &ServerProc, file: &Path) -> Vec<String> {
    let mut alice = Plain::spawn(
        &mut sockchat_command(&[
            "--server",
            &server.addr.to_string(),
            "--nick",
            "alice",
            "--json",
            "--record",
            file.to_str().expect("utf-8"),
        ]),
        "alice",
        STEP,
    );
    alice.expect_event("welcome", |_| true);
    alice.send("hello from the recording");
    alice.expect_event("chat", |v| v["text"] == "hello from the recording");
    alice.send("/identify alice Hunter-2-secret");
    alice.expect_event("server-error", |_| true);
    alice.send("/fault rst");
    alice.expect_event("fault", |v| v["fault"] == "rst");
    alice.expect_event("closed", |_| true);
    alice.expect_event("welcome", |_| true);
    alice.send("after the reset");
    alice.expect_event("chat", |v| v["text"] == "after the reset");
    assert_eq!(alice.finish(), 0, "{}", alice.seen.join("\n"));
    alice.seen.clone()
}

/// `sockchat replay ARGS` in a new tmux session: it plays to the end, its
/// screen then shows every needle, and the recording ended with a quit.
fn replay_shows(tmux: &Tmux, session: &str, args: &str, needles: &[&str]) {
    tmux.client(session, 130, 36, &format!("replay {args}"));
    let screen = tmux.wait_for(session, "REPLAY END");
    for needle in needles {
        assert!(
            screen.contains(needle),
            "the replay does not show {needle:?}:\n{screen}"
        );
    }
    // Every recording here ends with a quit (`/quit`, Ctrl-C), not a lost
    // connection.
    let end = tmux.capture(session);
    assert!(!end.contains("disconnected for good"), "{end}");
}

/// Quit `session` with `key` and see the client exit with status 0.
fn quit(tmux: &Tmux, session: &str, key: &str) {
    tmux.keys(session, &[key]);
    tmux.wait_for(session, "sockchat exited: 0");
}

#[test]
fn a_recorded_fault_rst_replays_in_the_terminal() {
    if !require_tmux() {
        return;
    }
    let server = ServerProc::start(&[]);
    let file = tmp("fault.jsonl");
    record_session(&server, &file);
    drop(server);
    let text = std::fs::read_to_string(&file).expect("the recording");
    assert!(
        !text.contains("Hunter-2-secret"),
        "a password in the recording"
    );
    assert!(text.contains(r#""event":"tcp-info""#), "panel samples");
    assert!(text.contains("ECONNRESET (104)"), "{text}");
    let f = file.to_str().expect("utf-8");

    // The server is gone: a replay opens no socket.
    let tmux = Tmux::new("replay");
    replay_shows(
        &tmux,
        "fast",
        &format!("{f} --speed 10"),
        &[
            "alice: hello from the recording",
            "alice: after the reset",
            "ECONNRESET (104)",
            "fault rst",
            "CLOSED: we reset the connection (fault rst)",
            // The socket panel, from the recorded TCP_INFO samples.
            "tcpi     ",
            "rtt      ",
        ],
    );
    // The event log (F3) has the fault and the reset too.
    tmux.keys("fast", &["F3"]);
    let log = tmux.wait_for("fast", "event log");
    assert!(log.contains("ECONNRESET (104)"), "{log}");
    // What sock_diag found after the RST: nothing kept.
    assert!(log.contains("the kernel keeps nothing of"), "{log}");
    quit(&tmux, "fast", "q");

    // Slowly: space pauses, + and - change the speed, q quits.
    tmux.client("slow", 130, 36, &format!("replay {f} --speed 0.0625"));
    tmux.wait_for("slow", "REPLAY PLAYING");
    tmux.keys("slow", &["Space"]);
    tmux.wait_for("slow", "REPLAY PAUSED");
    tmux.keys("slow", &["+"]);
    tmux.wait_for("slow", "x0.125");
    tmux.run(&["send-keys", "-t", "slow", "-l", "-"]);
    tmux.run(&["send-keys", "-t", "slow", "-l", "-"]);
    tmux.wait_for("slow", "x0.0625");
    tmux.keys("slow", &["Space"]);
    tmux.wait_for("slow", "REPLAY PLAYING");
    quit(&tmux, "slow", "q");
    let _ = std::fs::remove_file(&file);
}

/// The TUI records too (`--record` in the terminal UI), and its recording
/// replays with the lines typed in it.
#[test]
fn the_terminal_ui_records_and_replays() {
    if !require_tmux() {
        return;
    }
    let server = ServerProc::start(&[]);
    let file = tmp("tui.jsonl");
    let f = file.to_str().expect("utf-8");
    let tmux = Tmux::new("tui-record");
    tmux.client(
        "live",
        130,
        36,
        &format!("--server {} --nick alice --record {f}", server.addr),
    );
    tmux.wait_for("live", "welcome alice");
    tmux.line("live", "typed in the tui");
    tmux.wait_for("live", "alice: typed in the tui");
    tmux.line("live", "/join den Den-K3y-secret");
    tmux.wait_for("live", "alice joined den");
    tmux.line("live", "/fault rst");
    tmux.wait_for("live", "we reset the connection (fault rst)");
    // Held until the reconnect, then said in den again.
    tmux.line("live", "after the fault");
    tmux.wait_for("live", "alice: after the fault");
    quit(&tmux, "live", "C-c");
    drop(server);
    let text = std::fs::read_to_string(&file).expect("the recording");
    assert!(text.starts_with(r#"{"format":"sockchat-record""#), "{text}");
    assert!(text.contains(r#""mode":"tui""#), "{text}");
    assert!(text.contains(r#""line":"typed in the tui""#), "{text}");
    assert!(text.contains(r#""line":"/join den ***""#), "{text}");
    assert!(
        !text.contains("Den-K3y-secret"),
        "a room key in the recording"
    );
    replay_shows(
        &tmux,
        "replay",
        &format!("{f} --speed 8"),
        &[
            "alice: after the fault",
            "CLOSED: we reset the connection (fault rst)",
            "ECONNRESET (104)",
        ],
    );
    quit(&tmux, "replay", "C-c");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn a_full_disk_stops_the_recording_not_the_chat() {
    let server = ServerProc::start(&[]);
    let mut alice = Plain::spawn(
        &mut sockchat_command(&[
            "--server",
            &server.addr.to_string(),
            "--nick",
            "alice",
            "--plain",
            "--record",
            "/dev/full",
        ]),
        "alice",
        STEP,
    );
    alice.expect("recording stopped: /dev/full: write: ENOSPC (28)");
    alice.send("still chatting");
    alice.expect("alice: still chatting");
    assert_eq!(alice.finish(), 0);
    let told = alice
        .seen
        .iter()
        .filter(|l| l.contains("recording stopped"))
        .count();
    assert_eq!(told, 1, "{}", alice.seen.join("\n"));
}

fn replay_output(args: &[&str]) -> (i32, String) {
    let out = sockchat_command(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run sockchat replay");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn damaged_recordings_and_bad_speeds_are_refused() {
    let header = r#"{"format":"sockchat-record","version":1,"sockchat":"0.1.0","mode":"plain","server":"h:1","nick":"a","room":"lobby","start_ms":0,"utc_offset_secs":0}"#;
    let ok = r#"{"event":"notice","text":"hi","t_ms":1.0,"at_ms":1}"#;
    let cases = [
        (
            "bad-json",
            format!("{header}\n{ok}\n{{nope\n"),
            "line 3: bad JSON",
        ),
        ("cut", format!("{header}\n{ok}\n{ok}"), "line 3: cut off"),
        (
            "newer",
            header.replace(r#""version":1"#, r#""version":9"#) + "\n",
            "line 1: recording format version 9",
        ),
        ("not-ours", "just text\n".to_string(), "line 1: no header"),
    ];
    for (name, text, want) in cases {
        let f = tmp(&format!("{name}.jsonl"));
        std::fs::write(&f, text).expect("write");
        let (code, err) = replay_output(&["replay", f.to_str().expect("utf-8")]);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(want), "{name}: {err:?} should say {want:?}");
        assert!(!err.contains("panicked"), "{err}");
        let _ = std::fs::remove_file(&f);
    }
    let (code, err) = replay_output(&["replay", "/nonexistent/rec.jsonl"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/rec.jsonl"), "{err}");
    let f = tmp("speed.jsonl");
    std::fs::write(&f, format!("{header}\n{ok}\n")).expect("write");
    for speed in ["0", "-1", "NaN", "5000"] {
        let flag = format!("--speed={speed}");
        let (code, err) = replay_output(&["replay", f.to_str().expect("utf-8"), &flag]);
        assert_eq!(code, 2, "--speed {speed}: {err}");
        assert!(err.contains("--speed"), "{err}");
    }
    // A good file, but stdout is no terminal.
    let (code, err) = replay_output(&["replay", f.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("terminal"), "{err}");
    let _ = std::fs::remove_file(&f);
}
