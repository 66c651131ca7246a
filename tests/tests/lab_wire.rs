//! `sockchat lab --wire` on this machine: every TCP scenario captures its
//! own packets (on lo, or the pulled cable's veth) and its packet pattern
//! (FIN both ways, RST and no FIN, SYN answered by RST-ACK, zero window and
//! probes, retransmissions with growing gaps and no reply, ...) holds; `--pcap`
//! files parse back with as many packets as the JSON shows; without
//! CAP_NET_RAW the lab says how to grant it and runs without packets.
//!
//! Capturing needs CAP_NET_RAW (CI runs as root; without it the test fails
//! under CI and is skipped locally, via `require!`). Needs the built binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::path::Path;
use std::time::Duration;

use sockchat_tests::{Plain, is_root, on_path, require, sockchat_command};

/// The scenarios whose packets `--wire` must capture and check: all but
/// the UDP ones (the pulled cable's on the near host's veth), so a new TCP
/// scenario that does not capture fails here.
fn tcp_scenarios() -> Vec<&'static str> {
    sockchat::lab::scenario_names()
        .into_iter()
        .filter(|n| !n.starts_with("udp-"))
        .collect()
}

/// `sockchat lab ARGS --json`: (exit code, one JSON object per scenario).
fn lab_json(args: &[&str]) -> (i32, Vec<serde_json::Value>) {
    let mut all = vec!["lab", "--json"];
    all.extend(args);
    let mut cmd = sockchat_command(&all);
    let mut p = Plain::spawn(
        &mut cmd,
        format!("lab --json {args:?}"),
        Duration::from_secs(120),
    );
    let code = p.finish();
    let objs = p
        .seen
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    (code, objs)
}

fn flags_from(v: &serde_json::Value, from: &str) -> Vec<String> {
    v["wire"]["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .filter(|p| p["from"] == from)
        .map(|p| p["flags"].as_str().expect("flags").to_string())
        .collect()
}

#[test]
fn every_tcp_scenario_shows_its_packet_pattern_and_pcap_parses_back() {
    require!(
        is_root(),
        "lab_wire: capturing needs CAP_NET_RAW (run as root)"
    );
    let dir = std::env::temp_dir().join(format!("sockchat-lab-wire-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_s = dir.to_str().expect("utf-8 temp dir").to_string();
    let (code, objs) = lab_json(&["--wire", "--pcap", &dir_s]);

    let mut captured = Vec::new();
    for v in &objs {
        let name = v["scenario"].as_str().expect("scenario");
        let w = &v["wire"];
        assert!(w.is_object(), "{name}: no wire object: {v}");
        if w["captured"] == true {
            captured.push(name.to_string());
            let failed: Vec<_> = w["checks"]
                .as_array()
                .expect("checks")
                .iter()
                .filter(|c| c["ok"] != true)
                .collect();
            assert!(
                failed.is_empty(),
                "{name}: packet pattern failed: {failed:?}\n{w:#}"
            );
            assert_eq!(w["pass"], true, "{name}: {w:#}");
            assert_eq!(v["pass"], true, "{name}: {v}");
            check_pcap(&dir, name, w);
        } else {
            assert!(
                w["why"].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: not captured without a reason: {w}"
            );
        }
    }
    let tcp = tcp_scenarios();
    assert_eq!(tcp.len(), 17, "the TCP scenarios: {tcp:?}");
    assert_eq!(captured, tcp, "the TCP scenarios, each captured");
    assert_eq!(code, 0, "lab --wire exit code");

    // The kernel facts themselves, from the packets.
    let by = |n: &str| objs.iter().find(|v| v["scenario"] == n).expect(n);
    let unread = by("close-unread");
    assert!(
        flags_from(unread, "actor").contains(&"[R.]".into()),
        "{unread}"
    );
    assert!(
        !flags_from(unread, "actor").iter().any(|f| f.contains('F')),
        "{unread}"
    );
    // The syscalls sit between the packets by the kernel's clock: the
    // actor's close() comes before its RST, the peer's ECONNRESET after it.
    let calls = unread["wire"]["syscalls"].as_array().expect("syscalls");
    let at = |needle: &str| {
        calls
            .iter()
            .find(|c| c["what"].as_str().is_some_and(|w| w.contains(needle)))
            .and_then(|c| c["t"].as_f64())
            .unwrap_or_else(|| panic!("no syscall {needle:?}: {calls:?}"))
    };
    let rst_t = unread["wire"]["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .find(|p| p["flags"] == "[R.]")
        .and_then(|p| p["t"].as_f64())
        .expect("RST time");
    assert!(
        at("actor: close()") <= rst_t,
        "close() after its own RST? {calls:?} rst {rst_t}"
    );
    assert!(
        at("ECONNRESET") >= rst_t,
        "ECONNRESET before the RST? {calls:?} rst {rst_t}"
    );
    let normal = by("normal-close");
    for side in ["actor", "peer"] {
        assert!(
            flags_from(normal, side).iter().any(|f| f.contains('F')),
            "{side} FIN: {normal}"
        );
    }
    let refused = by("connect-refused");
    assert_eq!(flags_from(refused, "client"), ["[S]"], "{refused}");
    assert_eq!(flags_from(refused, "closed-port"), ["[R.]"], "{refused}");
    let zw = by("zero-window");
    let pk = zw["wire"]["packets"].as_array().expect("packets");
    assert!(
        pk.iter().any(|p| p["from"] == "receiver" && p["win"] == 0),
        "{zw}"
    );
    assert!(
        pk.iter().filter(|p| p["window_probe"] == true).count() >= 2,
        "{zw}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pcap file parses with pcap-file, has the JSON's packet count, link
/// type RAW, and its first packet is the scenario's first segment (a SYN).
fn check_pcap(dir: &Path, name: &str, w: &serde_json::Value) {
    let path = dir.join(format!("{name}.pcap"));
    assert_eq!(w["pcap"], path.to_str().expect("utf-8"), "{name}");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = pcap_file::pcap::PcapReader::new(f).expect("pcap header");
    assert_eq!(r.header().datalink, pcap_file::DataLink::RAW, "{name}");
    let mut n = 0;
    let mut first = None;
    while let Some(p) = r.next_packet() {
        let p = p.unwrap_or_else(|e| panic!("{name}: bad packet: {e}"));
        if first.is_none() {
            first = Some(p.data.to_vec());
        }
        n += 1;
    }
    let json_n = w["packets"].as_array().expect("packets").len();
    assert_eq!(n, json_n, "{name}: pcap packets vs JSON packets");
    let first = first.expect("at least one packet");
    // IPv4, protocol TCP, TCP flags byte (offset 13 of the TCP header) = SYN.
    assert_eq!(first[0] >> 4, 4, "{name}: IPv4");
    assert_eq!(first[9], 6, "{name}: TCP");
    let ihl = usize::from(first[0] & 0xf) * 4;
    assert_eq!(
        first[ihl + 13] & 0x17,
        0x02,
        "{name}: first packet is a SYN"
    );
}

#[test]
fn without_cap_net_raw_wire_says_how_to_grant_it_and_the_lab_still_runs() {
    require!(
        on_path("setpriv"),
        "lab_wire: setpriv (util-linux) is needed to drop CAP_NET_RAW"
    );
    require!(
        is_root(),
        "lab_wire: dropping CAP_NET_RAW from root needs root"
    );
    // setpriv removes CAP_NET_RAW from the bounding set, so even root's
    // exec of sockchat runs without it.
    let o = std::process::Command::new("setpriv")
        .args(["--bounding-set=-net_raw"])
        .arg(sockchat_tests::bin("sockchat"))
        .args(["lab", "--wire", "--json", "--only", "connect-refused"])
        .env("HOME", "/nonexistent")
        .output()
        .expect("run setpriv");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("CAP_NET_RAW"), "{stderr}");
    assert!(stderr.contains("setcap cap_net_raw+ep"), "{stderr}");
    assert!(o.status.success(), "the lab still passes: {o:?}");
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).expect("one JSON line");
    assert_eq!(v["pass"], true, "{v}");
    assert_eq!(v["wire"]["captured"], false, "{v}");
    assert!(
        v["wire"]["why"]
            .as_str()
            .is_some_and(|s| s.contains("setcap")),
        "{v}"
    );
}
