//! File transfer through datagrams the **kernel** drops (issue 11 item 6):
//! the server in one network namespace, both clients in another, joined by
//! a veth pair; an nftables rule in the server's namespace drops a random
//! `PCT` % of the packets of one protocol each way (`numgen random mod 100
//! < PCT drop`, with a counter). 50 MiB go over UDP (the reliability layer
//! repairs the loss) and over TCP (the kernel does), and arrive with their
//! SHA-256 verified and byte for byte equal; the rule's counter shows the
//! kernel really dropped packets.
//!
//! Needs root (CAP_NET_ADMIN), `ip` (iproute2) and `nft` (nftables; ./test.sh
//! installs both): without them it skips with the reason locally and fails
//! under CI. Traffic stays inside the namespaces this test creates; they
//! are deleted on drop.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sockchat_tests::bin;
use sockchat_tests::netns::Net;
use sockchat_tests::random_file::write_random;

/// Generous: a debug build under a loaded CI machine.
const STEP: Duration = Duration::from_secs(300);
const SERVER: &str = "169.254.78.1";

/// Drop `pct` % of `proto` packets into and out of the server's namespace
/// (host 0), counted.
fn drop_rule(net: &Net, proto: &str, pct: u32) -> Result<(), String> {
    net.nft(
        0,
        &format!(
            "table inet sockchat_drop {{\n\
             chain in {{ type filter hook input priority 0; meta l4proto {proto} numgen random mod 100 < {pct} counter drop; }}\n\
             chain out {{ type filter hook output priority 0; meta l4proto {proto} numgen random mod 100 < {pct} counter drop; }}\n\
             }}\n"
        ),
    )
}

/// Packets the rule dropped so far (both chains).
fn dropped(net: &Net) -> u64 {
    net.nft_packets(0, "inet", "sockchat_drop")
        .expect("nft list")
}

fn in_netns(ns: &str, program: &Path, args: &[&str], name: &str) -> sockchat_tests::Plain {
    sockchat_tests::netns::in_netns(ns, program, args, name, STEP)
}

/// A fresh folder, removed when the test ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 50 MiB from alice to bob through the server, `pct` % of `proto`
/// packets dropped by the kernel each way; `extra`: the clients' flags.
fn fifty_mib_through_kernel_drops(tag: &str, proto: &str, pct: u32, extra: &[&str]) {
    if !sockchat_tests::netns::preconditions(true) {
        return;
    }
    // The server's namespace (host 0, 169.254.78.1, `vs`) and the clients'
    // (host 1, 169.254.78.2, `vc`), cabled by a veth pair.
    let net = Net::pair(&format!("xfer-{tag}"), "169.254.78", ["vs", "vc"])
        .unwrap_or_else(|e| panic!("cannot build network namespaces: {e}"));
    net.loopback_up()
        .unwrap_or_else(|e| panic!("cannot bring lo up: {e}"));
    drop_rule(&net, proto, pct)
        .unwrap_or_else(|e| panic!("cannot load the nftables drop rule: {e}"));
    let work = TempDir(
        std::env::temp_dir().join(format!("sockchat-xfer-netns-{tag}-{}", std::process::id())),
    );
    let _ = std::fs::remove_dir_all(&work.0);
    let (src, dl) = (work.0.join("src"), work.0.join("dl"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dl).unwrap();
    let file = src.join("dropped.bin");
    write_random(&file, 50 << 20, 0x5eed);

    let listen = format!("{SERVER}:7878");
    // The default config: UDP GSO on (its messages cross the veth whole
    // and are cut into datagrams at the client's socket).
    let mut server = in_netns(
        &net.hosts[0],
        &bin("sockchat-server"),
        &["--listen", &listen],
        "server",
    );
    server.expect(&format!("listening on {listen} (tcp)"));
    let client = |nick: &str, dir: &Path| {
        let mut args = vec![
            "--json",
            "--no-reconnect",
            "--server",
            &listen,
            "--nick",
            nick,
            "--download-dir",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let mut p = in_netns(&net.hosts[1], &bin("sockchat"), &args, nick);
        p.expect_event("welcome", |_| true);
        p
    };
    let mut a = client("alice", &src);
    let mut b = client("bob", &dl);
    let before = dropped(&net);
    let t = Instant::now();
    a.send(&format!("/send {} bob", file.display()));
    let offer = b.expect_event("transfer-offered", |v| v["from"] == "alice");
    b.send(&format!("/accept {}", offer["id"]));
    let got = b.expect_event("transfer-done", |_| true);
    let sent = a.expect_event("transfer-done", |_| true);
    let dropped = dropped(&net) - before;
    eprintln!(
        "50 MiB over {proto}, {pct} % dropped by the kernel each way: {:?}, {dropped} packets dropped; {sent}",
        t.elapsed()
    );
    assert_eq!(got["verified"], true, "{got}");
    assert!(
        dropped > 0,
        "the nftables rule dropped nothing: the test proves nothing"
    );
    let saved = PathBuf::from(got["saved"].as_str().unwrap());
    let (x, y) = (
        std::fs::read(&file).unwrap(),
        std::fs::read(&saved).unwrap(),
    );
    assert!(x == y, "{} differs from what was sent", saved.display());
    if proto == "udp" {
        assert!(
            sent["retransmitted"].as_u64().unwrap() > 0,
            "datagrams were dropped but nothing was retransmitted: {sent}"
        );
    }
}

#[test]
fn fifty_mib_over_udp_through_kernel_drops_arrive_verified() {
    fifty_mib_through_kernel_drops("udp", "udp", 3, &["--udp"]);
}

#[test]
fn fifty_mib_over_tcp_through_kernel_drops_arrive_verified() {
    fifty_mib_through_kernel_drops("tcp", "tcp", 3, &[]);
}
