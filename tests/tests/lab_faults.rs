//! The same truth in the product: the real `sockchat` client (plain mode,
//! driven through its stdin) performs each `/fault` action against the real
//! `sockchat-server`, and another member of the room (alice, a text-mode
//! client) must be told the reason the server's kernel reported, in the
//! contract text (`* bob left lobby: connection reset by peer (ECONNRESET 104)`).
//!
//! Also: `sockchat lab --server ADDR` against the real server, where the
//! lab's own raw-socket actors are observed through the server's
//! announcements.
//!
//! Needs the built binaries (`cargo build --workspace --bins`; ./test.sh).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::process::Stdio;
use std::time::Duration;

use sockchat_shared::DisconnectReason;
use sockchat_tests::{STEP, ServerProc, TextClient, bin};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

/// The real chat client in plain mode, fed through a pipe that stays open
/// (end of input would make it /quit). Killed on drop.
struct PlainClient {
    child: Child,
    stdin: ChildStdin,
    out: Lines<BufReader<ChildStdout>>,
    /// Everything it printed so far, for failure messages.
    seen: Vec<String>,
}

impl PlainClient {
    /// `json`: `--json` instead of `--plain` (it also reports latency
    /// pongs, which the tests need to time a kill between two pings).
    async fn start(server: &ServerProc, nick: &str, json: bool) -> PlainClient {
        let addr = server.addr.to_string();
        let mode = if json { "--json" } else { "--plain" };
        let mut child = Command::new(bin("sockchat"))
            .args([mode, "--server", &addr, "--nick", nick, "--no-reconnect"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sockchat --plain");
        let stdin = child.stdin.take().expect("stdin");
        let out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        PlainClient {
            child,
            stdin,
            out,
            seen: Vec::new(),
        }
    }

    /// The last lines printed, shortened, for failure messages.
    fn tail(&self) -> String {
        let from = self.seen.len().saturating_sub(8);
        let lines: Vec<String> = self.seen[from..]
            .iter()
            .map(|l| l.chars().take(160).collect())
            .collect();
        format!("(last {} of {}) {lines:#?}", lines.len(), self.seen.len())
    }

    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to client stdin");
        self.stdin.flush().await.expect("flush client stdin");
    }

    /// Next printed line that satisfies `pred`, within [`STEP`].
    async fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match timeout(left, self.out.next_line()).await {
                Ok(Ok(Some(l))) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Ok(Ok(None)) | Ok(Err(_)) => {
                    panic!(
                        "client output ended waiting for {what}; printed {}",
                        self.tail()
                    )
                }
                Err(_) => panic!("client never printed {what}; printed {}", self.tail()),
            }
        }
    }

    /// The client's local port, from its `connected` event (JSON mode).
    async fn local_port(&mut self) -> u16 {
        let l = self
            .expect("its connected event", |l| {
                l.contains(r#""event":"connected""#)
            })
            .await;
        let v: serde_json::Value = serde_json::from_str(&l).expect("json");
        v["local"]
            .as_str()
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("cannot parse local port from {l:?}"))
    }

    async fn exit_status(&mut self) -> std::process::ExitStatus {
        timeout(STEP, self.child.wait())
            .await
            .expect("client did not exit")
            .expect("wait")
    }
}

/// Alice, a text-mode member of lobby, and the server.
async fn server_and_alice() -> (ServerProc, TextClient) {
    let server = ServerProc::start(&[]);
    let mut alice = TextClient::connect(server.addr).await;
    alice.welcome().await;
    (server, alice)
}

/// Bob (the real client) joins; alice sees it.
async fn bob_joins(
    server: &ServerProc,
    alice: &mut TextClient,
    nick: &str,
    json: bool,
) -> PlainClient {
    let bob = PlainClient::start(server, nick, json).await;
    alice.expect_line(&format!("* {nick} joined lobby")).await;
    bob
}

/// What alice is told when `nick` goes: the reason text after `: `.
async fn announced(alice: &mut TextClient, nick: &str) -> String {
    let line = alice.expect_prefix(&format!("* {nick} left lobby")).await;
    line.split_once(": ")
        .map(|(_, r)| r.to_string())
        .unwrap_or_else(|| panic!("no reason in {line:?}"))
}

/// Bytes waiting unread in the receive queue of the TCP socket bound to
/// 127.0.0.1:`port`, straight from the kernel (/proc/net/tcp rx_queue).
fn rx_queue(port: u16, server_port: u16) -> Option<u64> {
    let tab = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{port:04X}");
    let remote = format!("0100007F:{server_port:04X}");
    tab.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Exactly bob's live connection: a local port can be shared by
        // connections to other servers and by old TIME_WAIT entries.
        if f.get(1) == Some(&local.as_str())
            && f.get(2) == Some(&remote.as_str())
            && f.get(3) == Some(&"01")
        {
            let rx = f.get(4)?.split(':').nth(1)?;
            u64::from_str_radix(rx, 16).ok()
        } else {
            None
        }
    })
}

/// Wait until bob's client has read everything the server sent it and
/// nothing more arrives for a while (its welcome, join and the replies to
/// what the client asks after connecting come first). The client's own
/// latency ping goes out only every 2 s, so a kill right after this finds
/// an empty receive queue.
async fn wait_quiet(port: u16, server_port: u16) {
    const QUIET: Duration = Duration::from_millis(300);
    let deadline = tokio::time::Instant::now() + STEP;
    let mut empty_since = None;
    loop {
        let now = tokio::time::Instant::now();
        match rx_queue(port, server_port) {
            Some(0) => {
                let since = *empty_since.get_or_insert(now);
                if now - since >= QUIET {
                    return;
                }
            }
            q => {
                empty_since = None;
                assert!(
                    now < deadline,
                    "bob's receive queue never stayed empty: {q:?}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn fault_rst_is_announced_as_reset() {
    let (server, mut alice) = server_and_alice().await;
    let mut bob = bob_joins(&server, &mut alice, "bob", false).await;
    bob.send("/fault rst").await;
    let did = bob
        .expect("the fault line", |l| l.starts_with("* fault rst:"))
        .await;
    assert!(did.contains("SO_LINGER"), "{did}");
    assert_eq!(
        announced(&mut alice, "bob").await,
        DisconnectReason::Reset.to_string()
    );
    assert_eq!(
        DisconnectReason::Reset.to_string(),
        "connection reset by peer (ECONNRESET 104)"
    );
}

#[tokio::test]
async fn fault_fin_is_announced_as_eof() {
    let (server, mut alice) = server_and_alice().await;
    let mut bob = bob_joins(&server, &mut alice, "bob", false).await;
    bob.send("/fault fin").await;
    bob.expect("the fault line", |l| l.starts_with("* fault fin:"))
        .await;
    assert_eq!(
        announced(&mut alice, "bob").await,
        "closed by peer (EOF, FIN received)"
    );
    // Half-closed bob still reads: it sees the server close its side too.
    bob.expect("its CLOSED line", |l| l.starts_with("* CLOSED"))
        .await;
}

#[tokio::test]
async fn fault_close_unread_is_announced_as_reset() {
    let (server, mut alice) = server_and_alice().await;
    let mut bob = bob_joins(&server, &mut alice, "bob", false).await;
    bob.send("/fault close-unread").await;
    let did = bob
        .expect("the fault line", |l| l.starts_with("* fault close-unread:"))
        .await;
    assert!(
        did.contains("unread bytes"),
        "nothing was left unread: {did}"
    );
    assert_eq!(
        announced(&mut alice, "bob").await,
        "connection reset by peer (ECONNRESET 104)"
    );
}

/// `/fault crash` (abort(), nothing unread): folklore says RST; the kernel
/// closes gracefully.
#[tokio::test]
async fn fault_crash_without_unread_data_is_eof() {
    let (server, mut alice) = server_and_alice().await;
    let mut bob = bob_joins(&server, &mut alice, "bob", true).await;
    let port = bob.local_port().await;
    wait_quiet(port, server.addr.port()).await;
    bob.send("/fault crash").await;
    bob.expect("the crash line", |l| l.contains(r#""fault":"crash""#))
        .await;
    let st = bob.exit_status().await;
    assert!(!st.success(), "crash exited cleanly: {st:?}");
    assert_eq!(
        announced(&mut alice, "bob").await,
        "closed by peer (EOF, FIN received)"
    );
}

/// kill -9 of the real client while alice's line sits unread in its
/// receive queue (after `/fault stop-reading`): RST, ECONNRESET.
#[tokio::test]
async fn kill9_with_unread_data_is_reset() {
    let (server, mut alice) = server_and_alice().await;
    let mut bob = bob_joins(&server, &mut alice, "bob", true).await;
    let port = bob.local_port().await;
    bob.send("/fault stop-reading").await;
    bob.expect("the fault line", |l| {
        l.contains(r#""fault":"stop-reading""#)
    })
    .await;
    alice.line("are you still reading, bob?").await;
    // Wait until the kernel holds it unread in bob's receive queue.
    let deadline = tokio::time::Instant::now() + STEP;
    while rx_queue(port, server.addr.port()).unwrap_or(0) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice's line never reached bob's receive queue"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bob.child.start_kill().expect("SIGKILL bob");
    let st = bob.exit_status().await;
    assert!(!st.success());
    assert_eq!(
        announced(&mut alice, "bob").await,
        "connection reset by peer (ECONNRESET 104)"
    );
}

/// kill -9 of the real client with nothing unread: EOF, not a reset.
#[tokio::test]
async fn kill9_without_unread_data_is_eof() {
    let (server, mut alice) = server_and_alice().await;
    let mut bob = bob_joins(&server, &mut alice, "bob", true).await;
    let port = bob.local_port().await;
    wait_quiet(port, server.addr.port()).await;
    bob.child.start_kill().expect("SIGKILL bob");
    bob.exit_status().await;
    assert_eq!(
        announced(&mut alice, "bob").await,
        "closed by peer (EOF, FIN received)"
    );
}

/// The lab's own raw-socket actors against the real server: every scenario
/// that supports `--server` passes, observed through the server's
/// announcements.
#[tokio::test]
async fn lab_against_the_real_server() {
    let server = ServerProc::start(&[]);
    let addr = server.addr.to_string();
    let mut args = vec!["lab", "--json", "--server", addr.as_str()];
    let remote = [
        "normal-close",
        "close-unread",
        "linger-zero",
        "kill9-sending",
        "kill9-unread",
        "half-close",
    ];
    for r in remote {
        args.extend(["--only", r]);
    }
    let out = timeout(
        Duration::from_secs(60),
        Command::new(bin("sockchat"))
            .args(&args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("lab --server took over 60 s")
    .expect("run sockchat lab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), remote.len(), "{stdout}");
    for (v, name) in lines.iter().zip(remote) {
        assert_eq!(v["scenario"], name);
        assert_eq!(v["pass"], true, "{v}");
        assert!(
            v["target"].as_str().is_some_and(|t| t.contains(&addr)),
            "did not run against the server: {v}"
        );
        let saw = v["details"].to_string();
        assert!(
            saw.contains("left "),
            "no announcement in the evidence: {v}"
        );
    }
    assert!(out.status.success(), "{:?}", out.status);
}

/// The value of `key=VALUE` in a `* sockinfo` line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// `/fault stop-reading` is the zero-window scenario through the product:
/// the server's own TCP_INFO for bob's socket (`/sockinfo bob`) shows bob's
/// advertised window at 0 and its send queue holding what bob will not
/// read; `/fault resume` opens the window again and everything arrives.
#[tokio::test]
async fn fault_stop_reading_closes_the_window_the_server_sees() {
    let server = ServerProc::start(&["--no-rate-limits"]);
    let mut alice = TextClient::connect(server.addr).await;
    let alice_nick = alice.welcome().await;
    let mut bob = bob_joins(&server, &mut alice, "bob", false).await;
    bob.send("/fault stop-reading").await;
    bob.expect("the fault line", |l| l.starts_with("* fault stop-reading:"))
        .await;
    // Several times bob's receive buffer (bounded: 300 lines of 1 kB).
    let text = "z".repeat(1000);
    let sent = 300;
    for n in 0..sent {
        alice.line(&format!("{n} {text}")).await;
    }
    // The window does not necessarily close at once: with a window left
    // that is smaller than half the largest one seen, the sender holds back
    // (sender-side silly-window avoidance) and only its persist timer
    // (a few hundred ms) pushes the last bytes that close it. Poll.
    let deadline = tokio::time::Instant::now() + STEP;
    let mut samples = Vec::new();
    let info = loop {
        alice.line("/sockinfo bob").await;
        let info = alice.expect_prefix("* sockinfo bob: ").await;
        samples.push(format!(
            "peer_rwnd={:?} send_queue={:?}",
            field(&info, "peer_rwnd"),
            field(&info, "send_queue")
        ));
        if field(&info, "peer_rwnd") == Some("0") {
            break info;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob's window never reached 0: {samples:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let queued: u64 = field(&info, "send_queue")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no send_queue in {info}"));
    assert!(queued > 0, "zero window but nothing queued: {info}");
    assert_eq!(field(&info, "tcpi_state"), Some("ESTABLISHED"), "{info}");

    // Resume: everything alice said reaches bob, in order.
    bob.send("/fault resume").await;
    let last = format!("[lobby] {alice_nick}: {} ", sent - 1);
    timeout(
        Duration::from_secs(20),
        bob.expect("alice's last line", |l| l.starts_with(&last)),
    )
    .await
    .expect("bob never caught up after resume");
    alice.line("/sockinfo bob").await;
    let after = alice.expect_prefix("* sockinfo bob: ").await;
    assert_ne!(
        field(&after, "peer_rwnd"),
        Some("0"),
        "window still closed: {after}"
    );
}
