//! CLIs that say what they do (issue 9, item 7), each checked by running the
//! real binaries: flags that do not apply to the chosen mode, an invalid
//! `--nick`, log filters (`--log` wins over `RUST_LOG`), `--listen`'s help,
//! `/sockinfo` without a nick, out-of-range config values, and the exit
//! codes (0 ok, 1 runtime failure, 2 usage/config error) of both binaries,
//! as `--help` and README.md document them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sockchat_shared::ServerMsg;
use sockchat_tests::{FramedClient, Plain, ServerProc, bin, config_file, sockchat_command};

/// Run to completion (bounded: killed after 20 s) with no stdin.
fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{cmd:?} did not exit within 20 s");
}

/// Exit code and stderr of `sockchat ARGS`.
fn client(args: &[&str]) -> (i32, String) {
    let o = run(&mut sockchat_command(args));
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn server(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(bin("sockchat-server"));
    cmd.args(args).env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = run(&mut cmd);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A port nothing listens on (bound then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn udp_only_flags_without_udp_are_errors_that_say_why() {
    for flag in [
        "--udp-drop",
        "--udp-dup",
        "--udp-reorder",
        "--udp-max-payload",
    ] {
        let value = if flag == "--udp-max-payload" {
            "548"
        } else {
            "0.1"
        };
        let (code, err) = client(&["--plain", flag, value]);
        assert_eq!(code, 2, "{flag}: {err}");
        assert!(
            err.contains(&format!("{flag} only applies to UDP: add --udp")),
            "{flag}: {err}"
        );
    }
}

#[test]
fn tcp_only_flags_with_udp_are_errors_that_say_why() {
    for (flag, value) in [("--keepalive", "10,5,3"), ("--user-timeout-ms", "5000")] {
        let (code, err) = client(&["--plain", "--udp", flag, value]);
        assert_eq!(code, 2, "{flag}: {err}");
        assert!(
            err.contains(&format!(
                "{flag} is a TCP socket option and does not apply with --udp"
            )),
            "{flag}: {err}"
        );
    }
}

/// An invalid nick is refused before connecting, with the rule; the server
/// never sees a guest join in its place.
#[tokio::test]
async fn an_invalid_nick_is_refused_locally_with_the_rule() {
    let srv = ServerProc::start(&[]);
    let mut obs = FramedClient::connect(srv.addr, "observer").await;
    let addr = srv.addr.to_string();
    for (nick, rule) in [
        (
            "bad nick",
            "nick may only contain letters, digits, '-', '_' and '.'",
        ),
        ("", "give a nick, or leave --nick out to get guestN"),
    ] {
        let (code, err) = client(&[
            "--plain",
            "--no-reconnect",
            "--server",
            &addr,
            "--nick",
            nick,
        ]);
        assert_eq!(code, 2, "{nick:?}: {err}");
        assert!(err.contains(rule), "{nick:?}: {err}");
    }
    obs.expect_none(
        Duration::from_millis(500),
        |m| matches!(m, ServerMsg::Joined { nick, .. } if nick != "observer"),
    )
    .await;
}

#[test]
fn log_filters_are_checked_and_an_explicit_log_wins() {
    // Server: a bad --log, RUST_LOG or log.level is a usage error naming it.
    let (code, err) = server(&["--listen", "127.0.0.1:0", "--log", "debugg"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--log") && err.contains("\"debugg\" is not a level"),
        "{err}"
    );
    let (code, err) = server(&["--listen", "127.0.0.1:0"], &[("RUST_LOG", "x=loud")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("RUST_LOG") && err.contains("x=loud"), "{err}");
    let cfg = config_file("level", "[log]\nlevel = \"verbose\"\n");
    let (code, err) = server(&["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("log.level"), "{err}");
    // An explicit --log wins over a bad RUST_LOG: the server starts (it
    // printed its listening line) and logs with the --log filter.
    let srv = ServerProc::start_cmd(&["--listen", "127.0.0.1:0"], &["--log", "info"], |c| {
        c.env("RUST_LOG", "not a filter=");
    });
    assert!(
        srv.wait_stderr("sockchat-server started", Duration::from_secs(5)),
        "{}",
        srv.stderr()
    );

    // Client: the same rules for its log file.
    let (code, err) = client(&["--plain", "--log", "tracee"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--log \"tracee\" is not a valid log filter"),
        "{err}"
    );
    let mut cmd = sockchat_command(&["--plain"]);
    cmd.env("RUST_LOG", "=info");
    let o = run(&mut cmd);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("RUST_LOG \"=info\""), "{err}");
    // --log wins: with a bad RUST_LOG the client still runs (and fails
    // only at runtime: nothing listens there, exit 1).
    let port = closed_port().to_string();
    let mut cmd = sockchat_command(&[
        "--plain",
        "--no-reconnect",
        "--log",
        "info",
        "--server",
        &format!("127.0.0.1:{port}"),
    ]);
    cmd.env("RUST_LOG", "=info");
    let o = run(&mut cmd);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn listen_help_says_tcp_and_udp_and_both_helps_list_the_exit_codes() {
    let o = run(Command::new(bin("sockchat-server")).arg("--help"));
    let help = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0));
    let listen = help
        .lines()
        .skip_while(|l| !l.contains("--listen"))
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(listen.contains("TCP") && listen.contains("UDP"), "{listen}");
    let codes = ["0 ok", "1 runtime failure", "2 usage or config error"];
    for args in [&["--help"][..], &["lab", "--help"], &["bots", "--help"]] {
        let o = run(sockchat_command(args).arg("--help"));
        let h = String::from_utf8_lossy(&o.stdout);
        for c in codes {
            assert!(h.contains(c), "sockchat {args:?}: no {c:?} in\n{h}");
        }
    }
    for c in codes {
        assert!(help.contains(c), "server --help: no {c:?}");
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    for row in [
        "| 0 | ok |",
        "| 1 | runtime failure",
        "| 2 | usage or config error",
    ] {
        assert!(readme.contains(row), "README has no {row:?}");
    }
}

/// Usage errors exit 2, runtime failures 1, in both binaries.
#[test]
fn exit_codes_tell_usage_errors_from_runtime_failures() {
    // Usage: an unknown flag (clap), a bad value.
    assert_eq!(client(&["--no-such-flag"]).0, 2);
    assert_eq!(server(&["--no-such-flag"], &[]).0, 2);
    assert_eq!(client(&["bots", "--threads", "0"]).0, 2);
    assert_eq!(client(&["lab", "--only", "no-such-scenario"]).0, 2);
    // Runtime: nothing listens (client); the port is taken (server).
    let port = closed_port().to_string();
    let (code, err) = client(&[
        "--plain",
        "--no-reconnect",
        "--server",
        &format!("127.0.0.1:{port}"),
    ]);
    assert_eq!(code, 1, "{err}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (code, err) = server(&["--listen", &addr], &[]);
    assert_eq!(code, 1, "{err}");
}

/// Out-of-range values are errors that name the key, never clamped.
#[test]
fn out_of_range_config_values_are_errors_naming_the_key() {
    for (name, text, key) in [
        (
            "msglen",
            "[limits]\nmax_message_len = 70000\n",
            "limits.max_message_len",
        ),
        (
            "kacount",
            "[server]\nkeepalive_count = 200\n",
            "server.keepalive_count",
        ),
        (
            "kaidle",
            "[server]\nkeepalive_idle_secs = 0\n",
            "server.keepalive_idle_secs",
        ),
        ("frame", "[limits]\nmax_frame = 10\n", "limits.max_frame"),
        ("udpmax", "[udp]\nmax_payload = 70000\n", "udp.max_payload"),
    ] {
        let p = config_file(name, text);
        let (code, err) = server(
            &["--listen", "127.0.0.1:0", "--config", p.to_str().unwrap()],
            &[],
        );
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(key), "{name}: {err}");
    }
    for (name, text, key) in [
        (
            "rc0",
            "[client]\nreconnect_initial_ms = 0\n",
            "reconnect_initial_ms",
        ),
        (
            "rcmax",
            "[client]\nreconnect_initial_ms = 5000\nreconnect_max_ms = 100\n",
            "reconnect_max_ms",
        ),
        (
            "panel",
            "[client]\nsocket_panel = \"sometimes\"\n",
            "socket_panel",
        ),
        ("nick", "[client]\nnick = \"two words\"\n", "[client] nick"),
        (
            "scrollback",
            "[client]\nscrollback_bytes = 100\n",
            "scrollback_bytes",
        ),
    ] {
        let p = config_file(name, text);
        let (code, err) = client(&["--plain", "--config", p.to_str().unwrap()]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(key), "{name}: {err}");
    }
    let (code, err) = client(&["bots", "--threads", "100"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--threads 100: must be 1..=64"), "{err}");
}

/// `/sockinfo` with no nick shows your own connection as the server sees
/// it: your nick, `transport=tcp`, and your own address as `peer`.
#[test]
fn sockinfo_without_a_nick_shows_your_own_connection() {
    let srv = ServerProc::start(&[]);
    let mut p = Plain::spawn(
        sockchat_command(&[
            "--plain",
            "--no-reconnect",
            "--server",
            &srv.addr.to_string(),
            "--nick",
            "selfie",
        ])
        .stderr(Stdio::null()),
        "sockchat --plain",
        Duration::from_secs(10),
    );
    p.expect("welcome");
    p.send("/sockinfo");
    let line = p.expect("sockinfo selfie:");
    assert!(line.contains("transport=tcp"), "{line}");
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    assert!(line.contains("outbox_frames="), "{line}");
    assert_eq!(p.finish(), 0, "{:?}", p.seen);
}
