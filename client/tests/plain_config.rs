//! Client settings: `[client]` in a config file, flags on top, clear errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use clap::Parser;
use sockchat::cli::Cli;

fn settings(args: &[&str]) -> anyhow::Result<sockchat::cli::ChatSettings> {
    let mut argv = vec!["sockchat"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv)
        .expect("valid command line")
        .chat
        .settings()
}

/// A config file for one test, removed when the test is done with it.
struct TempFile(std::path::PathBuf);

impl std::ops::Deref for TempFile {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write(name: &str, text: &str) -> TempFile {
    let p = std::env::temp_dir().join(format!("sockchat-cfg-{}-{name}", std::process::id()));
    std::fs::write(&p, text).expect("write");
    TempFile(p)
}

#[test]
fn file_then_flags() {
    let p = write(
        "a.toml",
        "[client]\nserver = \"10.0.0.5:7878\"\nnick = \"fromfile\"\nreconnect_initial_ms = 50\ninfo_poll_ms = 100\n",
    );
    let path = p.to_string_lossy().to_string();
    let s = settings(&["--config", &path]).expect("loads");
    assert_eq!(s.net.server, "10.0.0.5:7878");
    assert_eq!(s.net.nick, "fromfile");
    assert!(s.net.reconnect);
    assert_eq!(s.net.reconnect_initial.as_millis(), 50);
    assert_eq!(s.net.info_poll.as_millis(), 100);
    let s = settings(&[
        "--config",
        &path,
        "--nick",
        "flag",
        "--server",
        "127.0.0.1:9",
        "--no-reconnect",
    ])
    .expect("loads");
    assert_eq!(s.net.nick, "flag", "flags override the file");
    assert_eq!(s.net.server, "127.0.0.1:9");
    assert!(!s.net.reconnect);
}

#[test]
fn defaults_without_any_file() {
    // With --config the user's own file is not read: an empty file means
    // the built-in defaults.
    let p = write("empty.toml", "");
    let s = settings(&["--config", &p.to_string_lossy()]).expect("loads");
    assert_eq!(s.net.server, "127.0.0.1:7878");
    assert_eq!(s.net.info_poll.as_millis(), 250);
    assert_eq!(s.client.socket_panel, "auto");
}

#[test]
fn a_typo_is_named() {
    let p = write("typo.toml", "[client]\nreconect = false\n");
    let err = settings(&["--config", &p.to_string_lossy()]).expect_err("typo");
    let msg = format!("{err:#}");
    assert!(msg.contains("reconect"), "{msg}");
    let missing = settings(&["--config", "/nonexistent/sockchat.toml"]).expect_err("missing");
    assert!(format!("{missing:#}").contains("/nonexistent/sockchat.toml"));
}

#[test]
fn keepalive_and_user_timeout_flags() {
    let p = write("k.toml", "");
    let c = p.to_string_lossy().to_string();
    let s = settings(&["--config", &c]).expect("defaults");
    assert_eq!(s.net.keepalive, Some((60, 10, 5)));
    assert_eq!(s.net.user_timeout_ms, 0);
    let s = settings(&[
        "--config",
        &c,
        "--keepalive",
        "5,2,3",
        "--user-timeout-ms",
        "8000",
    ])
    .expect("flags");
    assert_eq!(s.net.keepalive, Some((5, 2, 3)));
    assert_eq!(s.net.user_timeout_ms, 8000);
    let s = settings(&["--config", &c, "--keepalive", "off"]).expect("off");
    assert_eq!(s.net.keepalive, None);
    // The config file sets them too; flags win.
    let f = write(
        "k2.toml",
        "[client]\nkeepalive = \"off\"\nuser_timeout_ms = 4000\n",
    );
    let f = f.to_string_lossy().to_string();
    let s = settings(&["--config", &f]).expect("file");
    assert_eq!((s.net.keepalive, s.net.user_timeout_ms), (None, 4000));
    let s = settings(&["--config", &f, "--keepalive", "9,9,9"]).expect("file+flag");
    assert_eq!(s.net.keepalive, Some((9, 9, 9)));
    for bad in ["5,2", "a,b,c", "0,1,1"] {
        let e = settings(&["--config", &c, "--keepalive", bad]).expect_err(bad);
        assert!(format!("{e}").contains("keepalive"), "{e}");
    }
}

#[test]
fn the_port_defaults_to_7878() {
    use sockchat::cli::with_default_port as p;
    assert_eq!(p("chat.lan"), "chat.lan:7878");
    assert_eq!(p("192.168.1.10"), "192.168.1.10:7878");
    assert_eq!(p("::1"), "[::1]:7878");
    assert_eq!(p("[::1]:9000"), "[::1]:9000");
    assert_eq!(p("10.0.0.1:9000"), "10.0.0.1:9000");
    let f = write("port.toml", "");
    let s = settings(&["--config", &f.to_string_lossy(), "--server", "localhost"]).expect("ok");
    assert_eq!(s.net.server, "localhost:7878");
}

#[test]
fn no_server_named_anywhere_means_the_picker() {
    let empty = write("pick.toml", "");
    let empty = empty.to_string_lossy().to_string();
    let s = settings(&["--config", &empty]).expect("loads");
    assert!(s.pick_server, "the TUI shows the picker");
    assert_eq!(s.net.server, "127.0.0.1:7878", "plain mode's default");
    let s = settings(&["--config", &empty, "--server", "10.1.1.1"]).expect("loads");
    assert!(!s.pick_server);
    assert_eq!(s.net.server, "10.1.1.1:7878");
    let named = write("named.toml", "[client]\nserver = \"10.0.0.5\"\n");
    let s = settings(&["--config", &named.to_string_lossy()]).expect("loads");
    assert!(!s.pick_server, "a server in the config is used");
    let e = settings(&["--config", &empty, "--timeout", "3"]).expect_err("--timeout alone");
    assert!(e.to_string().contains("--discover"), "{e}");
}
