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

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sockchat_tests::random_file::write_random;
use sockchat_tests::{Plain, bin};

/// Generous: a debug build under a loaded CI machine.
const STEP: Duration = Duration::from_secs(300);
const SERVER: &str = "169.254.78.1";

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .map(|mut i| i.write_all(text.as_bytes()))
            .transpose()
            .map_err(|e| format!("{program} stdin: {e}"))?;
    }
    drop(child.stdin.take());
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces: `s` (the server, 169.254.78.1) and `c` (the clients,
/// 169.254.78.2), cabled by a veth pair.
struct Net {
    s: String,
    c: String,
}

impl Net {
    fn new(tag: &str) -> Result<Net, String> {
        let id = std::process::id();
        let n = Net {
            s: format!("sxk-s-{tag}-{id}"),
            c: format!("sxk-c-{tag}-{id}"),
        };
        for ns in [&n.s, &n.c] {
            run("ip", &["netns", "add", ns], None)?;
        }
        run(
            "ip",
            &[
                "link", "add", "vs", "netns", &n.s, "type", "veth", "peer", "name", "vc", "netns",
                &n.c,
            ],
            None,
        )?;
        for (ns, dev, addr) in [
            (&n.s, "vs", "169.254.78.1/24"),
            (&n.c, "vc", "169.254.78.2/24"),
        ] {
            run("ip", &["-n", ns, "addr", "add", addr, "dev", dev], None)?;
            run("ip", &["-n", ns, "link", "set", dev, "up"], None)?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"], None)?;
        }
        Ok(n)
    }

    /// Drop `pct` % of `proto` packets into and out of the server's
    /// namespace, counted.
    fn drop_rule(&self, proto: &str, pct: u32) -> Result<(), String> {
        let rules = format!(
            "table inet sockchat_drop {{\n\
             chain in {{ type filter hook input priority 0; meta l4proto {proto} numgen random mod 100 < {pct} counter drop; }}\n\
             chain out {{ type filter hook output priority 0; meta l4proto {proto} numgen random mod 100 < {pct} counter drop; }}\n\
             }}\n"
        );
        run(
            "ip",
            &["netns", "exec", &self.s, "nft", "-f", "-"],
            Some(&rules),
        )
        .map(|_| ())
    }

    /// Packets the rule dropped so far (both chains).
    fn dropped(&self) -> u64 {
        let out = run(
            "ip",
            &[
                "netns",
                "exec",
                &self.s,
                "nft",
                "list",
                "table",
                "inet",
                "sockchat_drop",
            ],
            None,
        )
        .expect("nft list");
        out.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "packets")
            .filter_map(|w| w[1].parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.s, &self.c] {
            let _ = run("ip", &["netns", "del", ns], None);
        }
    }
}

fn in_netns(ns: &str, program: &Path, args: &[&str], name: &str) -> Plain {
    // `ip netns exec` execs the program: the pid is the program's.
    Plain::spawn(
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .env("HOME", "/nonexistent")
            .stderr(Stdio::null()),
        name.to_string(),
        STEP,
    )
}

/// A fresh folder, removed when the test ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn preconditions() -> bool {
    sockchat_tests::require(
        sockchat_tests::is_root(),
        "needs root (CAP_NET_ADMIN) for network namespaces and nftables",
    ) && sockchat_tests::require(
        sockchat_tests::on_path("ip"),
        "needs `ip` (iproute2; ./test.sh installs it)",
    ) && sockchat_tests::require(
        sockchat_tests::on_path("nft"),
        "needs `nft` (nftables; ./test.sh installs it)",
    )
}

/// 50 MiB from alice to bob through the server, `pct` % of `proto`
/// packets dropped by the kernel each way; `extra`: the clients' flags.
fn fifty_mib_through_kernel_drops(tag: &str, proto: &str, pct: u32, extra: &[&str]) {
    if !preconditions() {
        return;
    }
    let net = Net::new(tag).unwrap_or_else(|e| panic!("cannot build network namespaces: {e}"));
    net.drop_rule(proto, pct)
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

    let gso_off = work.0.join("server.toml");
    std::fs::write(&gso_off, "[udp]\ngso = false\n").unwrap();
    let listen = format!("{SERVER}:7878");
    let mut server = in_netns(
        &net.s,
        &bin("sockchat-server"),
        // One datagram per message: a UDP GSO message through the veth
        // never reached the client (0 chunks in 300 s; docs/BENCHMARKS.md).
        &["--listen", &listen, "--config", gso_off.to_str().unwrap()],
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
        let mut p = in_netns(&net.c, &bin("sockchat"), &args, nick);
        p.expect_event("welcome", |_| true);
        p
    };
    let mut a = client("alice", &src);
    let mut b = client("bob", &dl);
    let before = net.dropped();
    let t = Instant::now();
    a.send(&format!("/send {} bob", file.display()));
    let offer = b.expect_event("transfer-offered", |v| v["from"] == "alice");
    b.send(&format!("/accept {}", offer["id"]));
    let got = b.expect_event("transfer-done", |_| true);
    let sent = a.expect_event("transfer-done", |_| true);
    let dropped = net.dropped() - before;
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
