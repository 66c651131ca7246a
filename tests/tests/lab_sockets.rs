//! The lab's socket-API scenarios (seed 000, 001, 002 and 004 claims) on
//! this machine, one test each: the numbers the scenario measured
//! (`measured` in `--json`) and, as root, its packets (`--wire`): the
//! TIME_WAIT that blocks a bind without SO_REUSEADDR, the spread of
//! connections between two SO_REUSEPORT listeners, the handshake and data
//! acknowledged before `accept()`, the SYNs dropped by a full accept queue
//! and retried with growing gaps, the datagrams a slow UDP receiver's
//! kernel drops, and a non-blocking `send()` that takes only part.
//!
//! The packet checks need CAP_NET_RAW: without root they fail under CI
//! and are skipped locally (`require!`), after the measured numbers have
//! been checked. Needs the built binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::time::{Duration, Instant};

use serde_json::Value;
use sockchat_tests::{Plain, is_root, require, sockchat_command};

/// `sockchat lab --json --only NAME` (with `--wire` as root): the one
/// JSON object, after checking it passed. Also returns the run's time.
fn lab(name: &str) -> (Value, Duration) {
    let mut args = vec!["lab", "--json", "--only", name];
    if is_root() {
        args.push("--wire");
    }
    let mut cmd = sockchat_command(&args);
    let t = Instant::now();
    let mut p = Plain::spawn(&mut cmd, format!("{args:?}"), Duration::from_secs(60));
    let code = p.finish();
    let took = t.elapsed();
    assert_eq!(p.seen.len(), 1, "one JSON line: {:?}", p.seen);
    let v: Value = serde_json::from_str(&p.seen[0]).expect("JSON");
    assert_eq!(v["scenario"], name, "{v}");
    assert_eq!(v["pass"], true, "{name} did not pass: {v:#}");
    assert_eq!(code, 0, "{name}: exit code");
    assert!(
        v["measured"].is_object(),
        "{name}: no measured numbers: {v}"
    );
    (v, took)
}

/// The capture, once the caller has required root: every check passed.
fn packets(v: &Value) -> Vec<Value> {
    let w = &v["wire"];
    assert_eq!(w["captured"], true, "not captured: {w}");
    let failed: Vec<&Value> = w["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] != true)
        .collect();
    assert!(failed.is_empty(), "packet pattern: {failed:?}\n{w:#}");
    w["packets"].as_array().expect("packets").clone()
}

/// The time of the first syscall mark containing `needle`.
fn syscall_at(v: &Value, needle: &str) -> f64 {
    v["wire"]["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .find(|c| c["what"].as_str().is_some_and(|w| w.contains(needle)))
        .and_then(|c| c["t"].as_f64())
        .unwrap_or_else(|| panic!("no syscall {needle:?}: {}", v["wire"]["syscalls"]))
}

fn flags(p: &Value) -> &str {
    p["flags"].as_str().expect("flags")
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn reuseaddr_time_wait_blocks_a_bind_without_so_reuseaddr() {
    let (v, _) = lab("reuseaddr-timewait");
    let m = &v["measured"];
    assert_eq!(v["errno"], 98, "{v}");
    assert_eq!(m["bind_without_reuseaddr"]["errno"], 98, "{m}");
    assert_eq!(m["bind_with_reuseaddr"]["result"], "bound", "{m}");
    assert_eq!(m["restarted_server_accepted"], true, "{m}");
    assert_eq!(m["time_wait_still_there"], true, "{m}");
    // Linux's TIME_WAIT lasts a fixed 60 s; the scenario reads it at once.
    let left = num(&m["time_wait"]["timer_left_s"]);
    assert!((50.0..=60.5).contains(&left), "TIME_WAIT timer {left}: {m}");
    assert_eq!(m["old_socket_without_reuseaddr"]["errno"], 98, "{m}");
    assert_eq!(v["errno_windows"], "WSAEADDRINUSE 10048", "{v}");

    require!(is_root(), "lab_sockets: --wire needs CAP_NET_RAW (root)");
    let p = packets(&v);
    // The server closed first: the first FIN is the server's.
    let first_fin = p.iter().find(|p| flags(p).contains('F')).expect("a FIN");
    assert_eq!(first_fin["from"], "server", "{first_fin}");
    // The refused bind came after the old connection's last packet (so
    // TIME_WAIT held the port), and the restarted server's SYN-ACK after it.
    let refused = syscall_at(&v, "without SO_REUSEADDR -> EADDRINUSE");
    let bound = syscall_at(&v, "with SO_REUSEADDR -> ok");
    let client_ports: Vec<u64> = p
        .iter()
        .filter(|p| flags(p) == "[S]")
        .map(|p| p["src_port"].as_u64().expect("port"))
        .collect();
    assert_eq!(client_ports.len(), 2, "two connections: {p:?}");
    let old_last = p
        .iter()
        .filter(|p| p["src_port"] == client_ports[0] || p["dst_port"] == client_ports[0])
        .map(|p| num(&p["t"]))
        .fold(0.0, f64::max);
    assert!(
        old_last <= refused,
        "old connection still active at the bind? {p:?}"
    );
    let new_synack = p
        .iter()
        .find(|p| flags(p) == "[S.]" && p["dst_port"] == client_ports[1])
        .expect("restarted server's SYN-ACK");
    assert!(num(&new_synack["t"]) >= bound, "{new_synack}");
}

#[test]
fn reuseport_spreads_connections_over_both_listeners() {
    let (v, _) = lab("reuseport-spread");
    let m = &v["measured"];
    let (a, b) = (
        m["listener_a"].as_u64().expect("a"),
        m["listener_b"].as_u64().expect("b"),
    );
    let n = m["connections"].as_u64().expect("n");
    assert_eq!(a + b, n, "{m}");
    assert!(a > 0 && b > 0, "all on one listener: {m}");
    assert_eq!(m["bind_without_reuseport"]["errno"], 98, "{m}");

    require!(is_root(), "lab_sockets: --wire needs CAP_NET_RAW (root)");
    let p = packets(&v);
    let count = |f: &str| p.iter().filter(|p| flags(p) == f).count() as u64;
    assert_eq!(count("[S]"), n, "one SYN per connection");
    assert_eq!(count("[S.]"), n, "every SYN answered");
    assert!(!p.iter().any(|p| flags(p).contains('R')), "no RST");
}

#[test]
fn accept_later_finds_the_connection_and_its_data_already_there() {
    let (v, _) = lab("accept-later");
    let m = &v["measured"];
    assert_eq!(m["client_state_before_accept"], "ESTABLISHED", "{m}");
    assert_eq!(m["accept_queue_before_accept"], 1, "{m}");
    assert_eq!(m["client_unacked_before_accept"], 0, "{m}");
    assert_eq!(m["bytes_waiting_at_accept"], 20, "{m}");
    assert_eq!(m["bytes_read"], 20, "{m}");

    require!(is_root(), "lab_sockets: --wire needs CAP_NET_RAW (root)");
    let p = packets(&v);
    let accept = syscall_at(&v, "server: accept()");
    let data = p
        .iter()
        .find(|p| p["from"] == "client" && p["len"] == 20)
        .expect("the client's data");
    let data_ack = p
        .iter()
        .find(|p| p["from"] == "server" && p["ack"] == 21 && p["len"] == 0)
        .expect("the server's ACK of the data");
    let third = p
        .iter()
        .find(|p| p["from"] == "client" && flags(p) == "[.]")
        .expect("the handshake's ACK");
    for (what, pk) in [("handshake", third), ("data", data), ("data ACK", data_ack)] {
        assert!(
            num(&pk["t"]) < accept,
            "{what} at {} is not before accept() at {accept}",
            pk["t"]
        );
    }
}
