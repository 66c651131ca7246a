//! The server's numbers for its operators, against the real binary on
//! loopback (PROTOCOL.md "Operators", README "Operating a server"):
//! `/stats` for a server operator (framed and text) whose users, rooms,
//! UDP sessions, messages and deliveries are exactly what the test did,
//! refused to anyone else; the periodic `stats ...` log line of `--stats
//! SECS` (and none without it); the Prometheus endpoint of `--metrics`
//! scraped with the real `curl` and parsed by the Prometheus project's own
//! Python parser; a non-loopback endpoint refused at start.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sockchat::net::udp::{UdpLink, UdpOptions};
use sockchat_shared::{ClientMsg, ErrorCode, ServerMsg};
use sockchat_tests::{FramedClient, STEP, ServerProc, TextClient, on_path, require};

const OPER_PW: &str = "st4ts-oper-pw";

/// Debian's python3, where `python3-prometheus-client` installs (a
/// `python3` earlier on PATH, pyenv's, does not see it).
const PYTHON: &str = "/usr/bin/python3";

fn config() -> String {
    format!("[server]\ndetect_timeout_ms = 100\n[auth]\noper_password = \"{OPER_PW}\"\n")
}

/// Ask `/stats` as `op` until `done` holds for the fields (the counters
/// are added as a fan-out ends, a moment after the last copy is queued),
/// at most 30 times; returns the last fields.
async fn stats_until(
    op: &mut FramedClient,
    done: impl Fn(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let mut last = HashMap::new();
    for _ in 0..30 {
        op.send(&ClientMsg::Stats).await;
        let m = op
            .recv_until(|m| matches!(m, ServerMsg::Stats { .. }))
            .await;
        let ServerMsg::Stats { fields } = m else {
            unreachable!()
        };
        last = fields.into_iter().collect();
        if done(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

#[tokio::test]
async fn operators_get_stats_that_match_what_happened() {
    let server = ServerProc::start_with_config("stats-match", &config(), &[]);
    let mut op = FramedClient::connect(server.addr, "op").await;
    let mut a = FramedClient::connect(server.addr, "alice").await;
    let mut t = TextClient::connect(server.addr).await;
    let tnick = t.welcome().await;
    let mut u = UdpLink::connect(server.udp_addr(), UdpOptions::default())
        .await
        .unwrap();
    u.handshake("udpuser", Duration::from_millis(200), STEP)
        .await
        .expect("udp session");
    // Everyone is in lobby once op hears the UDP user join.
    op.recv_until(|m| matches!(m, ServerMsg::Joined { nick, .. } if nick == "udpuser"))
        .await;

    // A non-operator is refused, framed and text.
    a.send(&ClientMsg::Stats).await;
    match a.recv_until(|m| matches!(m, ServerMsg::Error { .. })).await {
        ServerMsg::Error { code, text } => {
            assert_eq!(code, ErrorCode::NotPermitted, "{text}");
            assert!(text.contains("/stats is for server operators"), "{text}");
        }
        _ => unreachable!(),
    }
    t.line("/stats").await;
    t.expect_line("! /stats is for server operators (/oper PASSWORD)")
        .await;

    // 4 members in lobby: alice says 5 (3 copies each), the text user 2
    // (3 each), alice one private message to the text user (1).
    for i in 0..5 {
        a.say(&format!("count me {i}")).await;
    }
    t.line("from text 1").await;
    t.line("from text 2").await;
    a.send(&ClientMsg::Private {
        to: tnick.clone(),
        text: "psst".into(),
    })
    .await;
    t.expect_line("[pm] alice: psst").await;
    let mut chats = 0;
    while chats < 7 {
        if let ServerMsg::Chat { .. } = op.recv().await {
            chats += 1;
        }
    }

    op.oper(OPER_PW).await;
    let s = stats_until(&mut op, |s| {
        s.get("deliveries").map(String::as_str) == Some("22")
    })
    .await;
    let want = [
        ("users", "4"),
        ("rooms", "1"),
        ("udp_sessions", "1"),
        ("messages", "8"),
        ("deliveries", "22"),
        ("slow_consumers_cut", "0"),
        ("dropped", "0"),
        // The test reads the server's stderr: nothing was dropped.
        ("log_lines_dropped", "0"),
    ];
    for (k, v) in want {
        assert_eq!(s.get(k).map(String::as_str), Some(v), "{k} in {s:?}");
    }
    for k in [
        "messages_per_sec",
        "deliveries_per_sec",
        "kernel_udp_drops",
        "uptime_secs",
        "tasks",
    ] {
        assert!(s.contains_key(k), "{k} missing in {s:?}");
    }
    assert!(
        s["kernel_udp_drops"].parse::<u64>().is_ok(),
        "the UDP socket's row was found: {s:?}"
    );

    // A text operator reads one line.
    t.line(&format!("/oper {OPER_PW}")).await;
    t.expect_line("* you are a server operator").await;
    t.line("/stats").await;
    let line = t.expect_prefix("* stats ").await;
    assert!(
        line.starts_with("* stats users=4 rooms=1 udp_sessions=1 messages_per_sec="),
        "{line}"
    );
    assert!(line.contains(" messages=8 deliveries=22 "), "{line}");

    // No periodic line without --stats (the server has run for a while).
    assert!(
        !server.stderr().contains(" stats users="),
        "a stats line was logged without --stats:\n{}",
        server.stderr()
    );
    drop(u);
}

#[test]
fn stats_flag_logs_a_line_every_interval() {
    let server = ServerProc::start(&["--stats", "1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.stderr().matches(" stats users=").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "fewer than two stats lines in 10 s with --stats 1:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = server.stderr();
    let line = err
        .lines()
        .find(|l| l.contains(" stats users="))
        .expect("line");
    for k in [
        "users=0 rooms=0",
        "udp_sessions=0",
        "messages_per_sec=0.0",
        "deliveries_per_sec=0.0",
        "slow_consumers_cut=0",
        "kernel_udp_drops=",
        "uptime_secs=",
        "tasks=",
        "log_lines_dropped=0",
    ] {
        assert!(line.contains(k), "{k} missing in {line}");
    }
}

/// `curl -sS` with a bounded time; (status code, body).
fn curl(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}", url])
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl failed: {out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_string())
}

/// True when the Prometheus project's Python client (its text parser) is
/// importable.
fn have_prometheus_parser() -> bool {
    Command::new(PYTHON)
        .args(["-c", "import prometheus_client.parser"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn metrics_endpoint_serves_valid_prometheus_text() {
    require!(
        on_path("curl"),
        "curl is not installed (test.sh installs it)"
    );
    require!(
        have_prometheus_parser(),
        "python3-prometheus-client is not installed for /usr/bin/python3 (test.sh installs it)"
    );
    let server = ServerProc::start(&["--metrics", "127.0.0.1:0"]);
    let metrics: SocketAddr = server
        .listen_lines
        .iter()
        .find_map(|l| l.strip_prefix("listening on ")?.strip_suffix(" (metrics)"))
        .unwrap_or_else(|| panic!("no metrics line in {:?}", server.listen_lines))
        .parse()
        .unwrap();
    assert!(metrics.ip().is_loopback());
    let mut a = FramedClient::connect(server.addr, "alice").await;
    let mut b = FramedClient::connect(server.addr, "bob").await;
    for i in 0..3 {
        a.say(&format!("m{i}")).await;
    }
    for _ in 0..3 {
        b.recv_until(|m| matches!(m, ServerMsg::Chat { .. })).await;
    }
    let url = format!("http://{metrics}/metrics");
    let mut body = String::new();
    for _ in 0..30 {
        let (code, text) = curl(&url);
        assert_eq!(code, 200, "{text}");
        body = text;
        if body.lines().any(|l| l == "sockchat_deliveries_total 3") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for line in [
        "# TYPE sockchat_users gauge",
        "sockchat_users 2",
        "sockchat_rooms 1",
        "# TYPE sockchat_messages_total counter",
        "sockchat_messages_total 3",
        "sockchat_deliveries_total 3",
        "sockchat_slow_consumers_cut_total 0",
    ] {
        assert!(body.lines().any(|l| l == line), "{line:?} missing:\n{body}");
    }
    // The Prometheus text parser reads every family (it raises on any
    // malformed line).
    let mut py = Command::new(PYTHON)
        .args([
            "-c",
            "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
             fams = {f.name: f for f in p(sys.stdin.read())}\n\
             print(fams['sockchat_messages'].type, fams['sockchat_messages'].samples[0].value)\n\
             print(fams['sockchat_users'].type, fams['sockchat_users'].samples[0].value)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success(), "parser refused it: {out:?}\n{body}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "counter 3.0\ngauge 2.0\n",
        "{body}"
    );

    // Anything else is refused; a head that never ends is cut.
    assert_eq!(curl(&format!("http://{metrics}/")).0, 404);
    let mut s = std::net::TcpStream::connect(metrics).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nX: ");
    let _ = s.write_all(&[b'a'; 9000]);
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(
        reply.starts_with("HTTP/1.1 431 "),
        "an endless head: {reply:?}"
    );
}

#[test]
fn metrics_on_a_non_loopback_address_is_refused() {
    let mut server = Command::new(sockchat_tests::bin("sockchat-server"))
        .args(["--listen", "127.0.0.1:0", "--metrics", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = server.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = server.kill();
            panic!("the server started with a non-loopback metrics address");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("metrics.listen") && err.contains("not a loopback address"),
        "{err}"
    );
}
