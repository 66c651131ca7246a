//! The real `sockchat-server` binary: stdout contract, nc-style session,
//! graceful shutdown on SIGTERM (notice, then EOF, never RST), config errors
//! that name the key.

use std::io::Write;
use std::time::Duration;

use sockchat_shared::{ClientMsg, DisconnectReason, ServerMsg};
use sockchat_tests::{FramedClient, ServerProc, TextClient, bin};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn binary_serves_text_and_framed_users() {
    timeout(T, async {
        let srv = ServerProc::start(&[]);
        assert!(srv.listen_lines[0].starts_with("listening on 127.0.0.1:"));
        let mut a = FramedClient::connect(srv.addr, "alice").await;
        let mut t = TextClient::connect(srv.addr).await;
        let g = t.welcome().await;
        a.recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if *nick == g))
            .await;
        t.line("hi from nc").await;
        a.recv_until(|m| matches!(m, ServerMsg::Chat { text, .. } if text == "hi from nc"))
            .await;
        a.say("hi from alice").await;
        t.expect_line("[lobby] alice: hi from alice").await;
    })
    .await
    .expect("test timed out");
}

/// SIGTERM: every client gets the shutdown notice after everything the
/// server accepted, then EOF (FIN) — not ECONNRESET — and the process exits
/// within the grace period.
#[tokio::test]
async fn sigterm_gives_notice_then_eof_without_reset() {
    timeout(T, async {
        let mut srv = ServerProc::start(&[]);
        let mut a = FramedClient::connect(srv.addr, "alice").await;
        let mut t = TextClient::connect(srv.addr).await;
        t.welcome().await;
        // Messages accepted before the signal must all arrive.
        for i in 0..30 {
            a.say(&format!("m{i}")).await;
        }
        t.expect_line("[lobby] alice: m29").await;
        // Leave some bytes unread on the framed client side of the server:
        // the server must drain them rather than RST.
        a.send(&ClientMsg::Ping { token: 7 }).await;
        srv.signal(libc::SIGTERM);

        t.expect_line("* server shutting down").await;
        match t.read_line_timeout(Duration::from_secs(5)).await {
            Ok(None) => {}
            other => panic!("text client: expected EOF after the notice, got {other:?}"),
        }
        let mut seen = 0;
        loop {
            match a.recv_timeout(Duration::from_secs(5)).await {
                Ok(Some(ServerMsg::Chat { .. })) => seen += 1,
                Ok(Some(ServerMsg::Bye { reason })) => {
                    assert_eq!(reason, DisconnectReason::ServerShutdown);
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("EOF before Bye"),
                Err(e) => panic!("framed client: {e} (errno {:?})", e.raw_os_error()),
            }
        }
        assert_eq!(seen, 30, "every accepted message arrives before Bye");
        match a.recv_timeout(Duration::from_secs(5)).await {
            Ok(None) => {}
            other => panic!("framed client: expected EOF after Bye, got {other:?}"),
        }
        drop(a);
        drop(t);
        let st = srv
            .wait_timeout(Duration::from_secs(10))
            .expect("server exits after SIGTERM");
        assert!(st.success(), "exit status {st:?}");
        assert!(srv.stderr().contains("shutting down"), "{}", srv.stderr());
    })
    .await
    .expect("test timed out");
}

#[test]
fn config_errors_name_the_key() {
    let dir = sockchat_tests::scratch_dir("cfg");
    let cases = [
        ("[server]\nbaclog = 5\n", "baclog"),
        ("[limits]\nmax_connections = \"many\"\n", "max_connections"),
        ("[server]\nruntime = \"fibers\"\n", "server.runtime"),
        ("[server]\nlisten = [\"nowhere\"]\n", "server.listen"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let p = dir.join(format!("bad{i}.toml"));
        std::fs::File::create(&p)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .expect("write config");
        let out = std::process::Command::new(bin("sockchat-server"))
            .arg("--config")
            .arg(&p)
            .output()
            .expect("run server");
        assert!(!out.status.success(), "{text:?} must be refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(key),
            "error for {text:?} must name {key}: {err}"
        );
    }
    // The shipped config.toml is valid.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.toml");
    let mut srv = ServerProc::start_args(
        &["--config", shipped.to_str().expect("utf-8 path")],
        &["--listen", "127.0.0.1:0"],
    );
    srv.signal(libc::SIGTERM);
    assert!(srv.wait_timeout(Duration::from_secs(10)).is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--log-json` gives one JSON object per line on stderr, and a disconnect is
/// logged once with its reason inside the connection's span; the
/// current-thread runtime serves the same.
#[tokio::test]
async fn json_logs_and_current_thread_runtime() {
    timeout(T, async {
        let dir = std::env::temp_dir().join(format!("sockchat-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let cfg = dir.join("ct.toml");
        std::fs::write(&cfg, "[server]\nruntime = \"current-thread\"\n").expect("write");
        let srv = ServerProc::start(&["--config", cfg.to_str().expect("utf-8"), "--log-json"]);
        let mut a = FramedClient::connect(srv.addr, "alice").await;
        let mut b = FramedClient::connect(srv.addr, "bob").await;
        // Read all that was sent (unread data would turn the close into RST).
        b.recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "bob"))
            .await;
        drop(b);
        a.recv_until(|m| matches!(m, ServerMsg::Left { nick, .. } if nick == "bob"))
            .await;
        assert!(srv.wait_stderr("disconnected", Duration::from_secs(5)));
        let logs = srv.stderr();
        let mut found = 0;
        for line in logs.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if v["fields"]["message"] == "disconnected" {
                found += 1;
                assert_eq!(v["fields"]["code"], "eof", "{line}");
                assert_eq!(v["span"]["nick"], "bob", "{line}");
                assert_eq!(v["span"]["transport"], "tcp", "{line}");
            }
        }
        assert_eq!(found, 1, "exactly one disconnect line: {logs}");
        assert!(
            logs.contains("CurrentThread"),
            "runtime from config: {logs}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
    .expect("test timed out");
}

/// Out of file descriptors (EMFILE) the server logs it clearly, keeps
/// serving the connections it has, and accepts again once fds free up.
#[tokio::test]
async fn emfile_is_survived_with_a_clear_log_line() {
    timeout(T, async {
        let srv = ServerProc::start_with_fd_limit(48, &[]);
        let mut a = TextClient::connect(srv.addr).await;
        a.welcome().await;
        let mut b = FramedClient::connect(srv.addr, "bob").await;
        // The kernel completes handshakes in the backlog even when the
        // server cannot accept: these connects succeed, the accepts fail.
        let mut extra = Vec::new();
        for _ in 0..60 {
            extra.push(
                tokio::net::TcpStream::connect(srv.addr)
                    .await
                    .expect("connect"),
            );
        }
        assert!(
            srv.wait_stderr("EMFILE 24", Duration::from_secs(10)),
            "no EMFILE log line: {}",
            srv.stderr()
        );
        assert!(srv.stderr().contains("backing off"), "{}", srv.stderr());
        // Existing users still chat.
        a.line("still here").await;
        b.recv_until(|m| matches!(m, ServerMsg::Chat { text, .. } if text == "still here"))
            .await;
        // Free descriptors: the server accepts again.
        extra.clear();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut c = TextClient::connect(srv.addr).await;
        c.welcome().await;
    })
    .await
    .expect("test timed out");
}

/// A client that ignores the shutdown notice and never closes does not keep
/// the server alive past `shutdown_grace_secs`.
#[tokio::test]
async fn shutdown_is_bounded_by_the_grace_period() {
    timeout(T, async {
        let dir = std::env::temp_dir().join(format!("sockchat-grace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let cfg = dir.join("grace.toml");
        std::fs::write(&cfg, "[server]\nshutdown_grace_secs = 1\n").expect("write");
        let mut srv = ServerProc::start(&["--config", cfg.to_str().expect("utf-8")]);
        let _stubborn = FramedClient::connect(srv.addr, "stubborn").await;
        let mut t = TextClient::connect(srv.addr).await;
        t.welcome().await;
        t.line("/sockinfo stubborn").await;
        let info = t.expect_prefix("* sockinfo stubborn: ").await;
        assert!(info.contains("tcpi_state=ESTABLISHED"), "{info}");
        assert!(info.contains("outbox_frames="), "{info}");
        let start = std::time::Instant::now();
        srv.signal(libc::SIGTERM);
        let st = srv
            .wait_timeout(Duration::from_secs(6))
            .expect("server exits within the grace period");
        assert!(st.success(), "{st:?}");
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "took {:?}",
            start.elapsed()
        );
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
    .expect("test timed out");
}
