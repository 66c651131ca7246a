//! `sockchat bots` end to end: the real bots binary against the real server
//! on loopback, small and bounded (a few seconds each). Checks the JSON
//! report's accounting (delivered == expected, nothing lost), the
//! thresholds' exit code, a scenario file, worker processes, and that a
//! closed port is reported as ECONNREFUSED 111.
//!
//! Speed is never asserted here: the benchmarks (bench/run.sh) measure it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sockchat_tests::{ServerProc, bin};

/// Run `sockchat bots ARGS --json --no-progress`, bounded in time; returns
/// (exit code, parsed report, stderr).
fn bots(args: &[&str]) -> (i32, Value, String) {
    let mut child = Command::new(bin("sockchat"))
        .arg("bots")
        .args(args)
        .args(["--json", "--no-progress"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sockchat bots");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sockchat bots {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let line = out.lines().last().unwrap_or("");
    let report: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("report is not JSON ({e}): stdout={out:?} stderr={err:?}"));
    (status.code().unwrap_or(-1), report, err)
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("report field {key} missing or not a number: {v}"))
}

/// The accounting every clean run must satisfy.
fn assert_clean(r: &Value, bots: u64) {
    assert_eq!(u(r, "connected"), bots, "{r}");
    assert_eq!(u(r, "connect_errors"), 0, "{r}");
    assert!(u(r, "sent") > 0, "{r}");
    assert_eq!(
        u(r, "sent"),
        u(r, "scheduled"),
        "every scheduled message written: {r}"
    );
    assert!(u(r, "expected") > 0, "{r}");
    assert_eq!(u(r, "delivered"), u(r, "expected"), "{r}");
    assert_eq!(u(r, "lost"), 0, "{r}");
    assert_eq!(u(r, "duplicated"), 0, "{r}");
    assert!(r["deliveries_per_sec"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
    let l = &r["latency_us"];
    let (p50, p90, p99, p999, max) = (
        u(l, "p50"),
        u(l, "p90"),
        u(l, "p99"),
        u(l, "p999"),
        u(l, "max"),
    );
    assert!(
        p50 >= 1 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "{l}"
    );
    assert!(max < 30_000_000, "latency max {max} µs is not sane: {l}");
    assert_eq!(
        u(l, "count"),
        u(r, "delivered"),
        "one latency sample per delivery: {r}"
    );
    assert!(r["errors"].as_object().is_some_and(|m| m.is_empty()), "{r}");
}

#[test]
fn framed_and_lines_deliver_everything() {
    let server = ServerProc::start(&["--no-rate-limits"]);
    let addr = server.addr.to_string();
    for wire in ["framed", "lines"] {
        let (code, r, err) = bots(&[
            "--server",
            &addr,
            "--wire",
            wire,
            "--count",
            "24",
            "--senders",
            "4",
            "--rooms",
            "3",
            "--rate",
            "200/s",
            "--duration",
            "2s",
            "--size",
            "32..200",
            "--max-loss",
            "0",
        ]);
        assert_eq!(code, 0, "{wire}: exit {code}, stderr {err}, report {r}");
        assert_eq!(r["wire"], wire);
        assert_clean(&r, 24);
        assert_eq!(r["thresholds"]["passed"], true);
    }
}

#[test]
fn missed_threshold_exits_non_zero() {
    let server = ServerProc::start(&["--no-rate-limits"]);
    let addr = server.addr.to_string();
    // Nothing on loopback is delivered within 1 µs of its scheduled time.
    let (code, r, _) = bots(&[
        "--server",
        &addr,
        "--count",
        "4",
        "--senders",
        "1",
        "--rate",
        "50/s",
        "--duration",
        "1s",
        "--max-p99",
        "1us",
    ]);
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["thresholds"]["passed"], false);
    let failed = r["thresholds"]["failed"].to_string();
    assert!(failed.contains("max-p99"), "{failed}");
    // Deliveries are still all accounted for.
    assert_eq!(u(&r, "lost"), 0, "{r}");
}

#[test]
fn closed_port_reports_econnrefused() {
    // A port that was just ours and is now closed: connect gets RST.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let addr = format!("127.0.0.1:{port}");
    let (code, r, _) = bots(&[
        "--server",
        &addr,
        "--count",
        "5",
        "--duration",
        "1s",
        "--min-connected",
        "1",
    ]);
    assert_eq!(code, 1, "min-connected missed: {r}");
    assert_eq!(u(&r, "connected"), 0);
    assert_eq!(u(&r, "connect_errors"), 5);
    assert_eq!(u(&r["errors"], "refused"), 5, "{r}");
    let d = &r["errors_detail"][0];
    assert_eq!(d["errno"], 111, "{d}");
    assert!(
        d["text"]
            .as_str()
            .unwrap_or("")
            .contains("ECONNREFUSED 111"),
        "{d}"
    );
}

#[test]
fn scenario_file_runs_every_behaviour() {
    let server = ServerProc::start(&[]);
    let addr = server.addr.to_string();
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/bots/mixed.toml");
    let (code, r, err) = bots(&[
        "--server",
        &addr,
        "--scenario",
        file.to_str().unwrap_or_default(),
        "--duration",
        "2s",
        "--max-loss",
        "0",
    ]);
    assert_eq!(code, 0, "stderr {err}, report {r}");
    // The measured groups (chatters, lurkers) lost nothing.
    assert!(u(&r, "expected") > 0, "{r}");
    assert_eq!(u(&r, "delivered"), u(&r, "expected"), "{r}");
    let groups = r["groups"].as_array().expect("groups");
    let g = |name: &str| {
        groups
            .iter()
            .find(|g| g["name"] == name)
            .unwrap_or_else(|| panic!("group {name} missing: {r}"))
    };
    // Churners really churned, with more than one disconnect method.
    let churn = g("churners");
    assert!(u(churn, "connects") > 6, "{churn}");
    let methods = churn["disconnects"].as_object().expect("disconnects");
    assert!(methods.len() >= 2, "{churn}");
    // The fault schedule reset some unlucky chatters.
    assert!(
        g("unlucky")["disconnects"]["rst"].as_u64().unwrap_or(0) > 0,
        "{r}"
    );
    // The flooder met the server's rate limit (default limits are on).
    let flood = g("flooders");
    assert_eq!(flood["errors"]["rate-limited"], 1, "{flood}");
}

#[test]
fn worker_processes_share_one_report() {
    let server = ServerProc::start(&["--no-rate-limits"]);
    let addr = server.addr.to_string();
    let (code, r, err) = bots(&[
        "--server",
        &addr,
        "--count",
        "30",
        "--senders",
        "3",
        "--rate",
        "150/s",
        "--duration",
        "2s",
        "--workers",
        "2",
        "--source-ips",
        "127.0.0.1-127.0.0.4",
    ]);
    assert_eq!(code, 0, "stderr {err}, report {r}");
    assert_eq!(u(&r, "workers"), 2);
    assert_clean(&r, 30);
}

/// `--timeline`: every delivery and every measured send lands in exactly
/// one slice, with two worker processes merged on their shared clock, and
/// the slices span the send phase.
#[test]
fn timeline_accounts_for_every_delivery_across_workers() {
    let server = ServerProc::start(&["--no-rate-limits"]);
    let addr = server.addr.to_string();
    let (code, r, err) = bots(&[
        "--server",
        &addr,
        "--count",
        "20",
        "--senders",
        "4",
        "--rooms",
        "2",
        "--rate",
        "100/s",
        "--duration",
        "2s",
        "--workers",
        "2",
        "--timeline",
        "100ms",
    ]);
    assert_eq!(code, 0, "stderr {err}, report {r}");
    assert_clean(&r, 20);
    let t = &r["timeline"];
    assert_eq!(t["width_ms"].as_f64(), Some(100.0), "{t}");
    // The first row starts on a slice boundary of the monotonic clock, at
    // most 60 s before now (this test's whole run).
    let start = u(t, "start_mono_us");
    let now_us = sockchat::bots::schedule::mono_ns() / 1000;
    assert!(
        start.is_multiple_of(100_000) && start < now_us && start + 60_000_000 > now_us,
        "{start} vs {now_us}"
    );
    let rows = t["rows"].as_array().cloned().unwrap_or_default();
    let sum = |k: &str| rows.iter().map(|row| u(row, k)).sum::<u64>();
    assert_eq!(sum("n"), u(&r, "delivered"), "{t}");
    assert_eq!(sum("sent"), u(&r, "sent"), "{t}");
    // 2 s of sends at 100/s in 100 ms slices: 20, or 21 when the phase
    // starts mid-slice.
    assert!(
        (20..=21).contains(&rows.len()),
        "{} slices: {t}",
        rows.len()
    );
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row["t_ms"].as_f64(), Some(k as f64 * 100.0), "{row}");
        assert!(u(row, "max_us") >= u(row, "mean_us"), "{row}");
        assert!(u(row, "over_1ms") >= u(row, "over_10ms"), "{row}");
    }
    // Without the flag the report has no timeline.
    let (code, r, err) = bots(&["--server", &addr, "--count", "2", "--duration", "300ms"]);
    assert_eq!(code, 0, "stderr {err}, report {r}");
    assert!(r.get("timeline").is_none(), "{r}");
}

#[test]
fn udp_bots_measure_injected_loss() {
    let server = ServerProc::start(&["--no-rate-limits"]);
    if !server.listen_lines.iter().any(|l| l.ends_with("(udp)")) {
        panic!(
            "the server printed no UDP listener: {:?}",
            server.listen_lines
        );
    }
    let addr = server.addr.to_string();
    // Clean UDP run: every datagram delivered on loopback.
    let (code, r, err) = bots(&[
        "--server",
        &addr,
        "--wire",
        "udp",
        "--count",
        "12",
        "--senders",
        "3",
        "--rate",
        "90/s",
        "--duration",
        "2s",
        "--source-ips",
        "127.0.3.1-127.0.3.12",
        "--max-loss",
        "0",
    ]);
    assert_eq!(code, 0, "stderr {err}, report {r}");
    assert_clean(&r, 12);
    // 20% of the senders' datagrams dropped on purpose: the loss found is
    // exactly the dropped messages times the members each would reach.
    let (code, r, err) = bots(&[
        "--server",
        &addr,
        "--wire",
        "udp",
        "--count",
        "12",
        "--senders",
        "3",
        "--rate",
        "90/s",
        "--duration",
        "2s",
        "--source-ips",
        "127.0.3.1-127.0.3.12",
        "--udp-drop",
        "0.2",
        "--max-loss",
        "0",
    ]);
    assert_eq!(
        code, 1,
        "loss must fail --max-loss 0: stderr {err}, report {r}"
    );
    let dropped = u(&r, "injected_drops");
    assert!(dropped > 0, "{r}");
    // 12 members, framed-style echo: each message reaches all 12. Loopback
    // UDP itself loses nothing at this rate; allow 1% for a starved CPU.
    let lost = u(&r, "lost");
    assert!(lost >= dropped * 12, "{r}");
    assert!(lost - dropped * 12 <= u(&r, "expected") / 100, "{r}");
    assert_eq!(u(&r, "delivered") + u(&r, "lost"), u(&r, "expected"), "{r}");
}

/// A line server whose `/join` takes effect late (1.5 s, like a busy
/// server working through a 1,000-member room's join notices): it relays a
/// chat line to the other joined connections, and counts the chat lines a
/// connection sent before its join was answered. Returns the address, the
/// early count, and the accept thread (ends after `conns` connections).
fn slow_join_server(conns: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let early = Arc::new(AtomicU64::new(0));
    let joined: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let e = early.clone();
    std::thread::spawn(move || {
        for (k, s) in l.incoming().take(conns).enumerate() {
            let Ok(s) = s else { return };
            let (e, joined) = (e.clone(), joined.clone());
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(20)))
                    .expect("timeout");
                let mut w = s.try_clone().expect("clone");
                let _ = writeln!(w, "* welcome, you are guest{k}");
                let in_room = Arc::new(std::sync::atomic::AtomicBool::new(false));
                for line in BufReader::new(s.try_clone().expect("clone")).lines() {
                    let Ok(line) = line else { return };
                    if let Some(room) = line.strip_prefix("/join ") {
                        // The join takes effect later; reading goes on.
                        let (mut w, joined, in_room) = (
                            w.try_clone().expect("clone"),
                            joined.clone(),
                            in_room.clone(),
                        );
                        let room = room.to_string();
                        std::thread::spawn(move || {
                            std::thread::sleep(Duration::from_millis(1500));
                            let mut j = joined.lock().expect("lock");
                            let _ = writeln!(w, "* guest{k} joined {room}");
                            j.push(w.try_clone().expect("clone"));
                            in_room.store(true, Ordering::SeqCst);
                        });
                    } else if line.starts_with('/') {
                    } else if !in_room.load(Ordering::SeqCst) {
                        e.fetch_add(1, Ordering::Relaxed);
                    } else {
                        for o in joined.lock().expect("lock").iter_mut() {
                            if o.peer_addr().ok() != s.peer_addr().ok() {
                                let _ = writeln!(o, "[r] guest{k}: {line}");
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, early)
}

/// Lines mode: a bot waits for its `/join` to be answered before the send
/// phase starts, so no message goes out before it is in the room (they
/// would be lost, or counted for another room).
#[test]
fn lines_bots_wait_for_their_join() {
    let (addr, early) = slow_join_server(3);
    let (code, r, err) = bots(&[
        "--server",
        &addr,
        "--wire",
        "lines",
        "--count",
        "3",
        "--senders",
        "1",
        "--rate",
        "100/s",
        "--duration",
        "1s",
        "--settle",
        "0s",
        "--connect-rate",
        "0",
    ]);
    assert_eq!(
        early.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "chat lines sent before the join was answered; report {r}, stderr {err}"
    );
    assert_eq!(code, 0, "exit {code}, stderr {err}, report {r}");
    assert_clean(&r, 3);
}
