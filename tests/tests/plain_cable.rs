//! A pulled cable, for real: the server in one network namespace, the
//! client (`sockchat --plain`) in another, cabled through a third holding a
//! bridge (a switch). Taking the client's switch port down makes the path
//! silent (no FIN, no RST, no ICMP, and the client's own link stays up), so
//! only the client's keepalive / TCP_USER_TIMEOUT can find out: the kernel
//! reports ETIMEDOUT (110) and the client shows it.
//!
//! Needs root (CAP_NET_ADMIN) and iproute2: without them it skips with the
//! reason locally and fails under CI (`sockchat_tests::require!`). Traffic stays inside the
//! namespaces this test creates; they are deleted on drop.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sockchat_tests::{Plain, bin};

const STEP: Duration = Duration::from_secs(20);

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Three namespaces: `a` (server), `b` (client), `sw` (the switch).
struct Net {
    a: String,
    b: String,
    sw: String,
}

impl Net {
    fn new() -> Result<Net, String> {
        let id = std::process::id();
        let n = Net {
            a: format!("sct-a-{id}"),
            b: format!("sct-b-{id}"),
            sw: format!("sct-sw-{id}"),
        };
        for ns in [&n.a, &n.b, &n.sw] {
            ip(&["netns", "add", ns])?;
        }
        ip(&["-n", &n.sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "link", "add", "ea", "netns", &n.a, "type", "veth", "peer", "name", "pa", "netns",
            &n.sw,
        ])?;
        ip(&[
            "link", "add", "eb", "netns", &n.b, "type", "veth", "peer", "name", "pb", "netns",
            &n.sw,
        ])?;
        for p in ["pa", "pb"] {
            ip(&["-n", &n.sw, "link", "set", p, "master", "br0"])?;
            ip(&["-n", &n.sw, "link", "set", p, "up"])?;
        }
        ip(&["-n", &n.sw, "link", "set", "br0", "up"])?;
        ip(&["-n", &n.a, "addr", "add", "169.254.77.1/24", "dev", "ea"])?;
        ip(&["-n", &n.a, "link", "set", "ea", "up"])?;
        ip(&["-n", &n.b, "addr", "add", "169.254.77.2/24", "dev", "eb"])?;
        ip(&["-n", &n.b, "link", "set", "eb", "up"])?;
        Ok(n)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b, &self.sw] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A process inside a namespace, its stdout lines collected.
fn in_netns(ns: &str, program: &std::path::Path, args: &[&str]) -> Plain {
    // `ip netns exec` execs the program: the pid is the program's.
    Plain::spawn(
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .env("HOME", "/nonexistent")
            .stderr(Stdio::null()),
        format!("{ns}: {}", program.display()),
        STEP,
    )
}

#[test]
fn pulled_cable_is_etimedout_from_keepalive() {
    sockchat_tests::require!(
        sockchat_tests::is_root(),
        "needs root (CAP_NET_ADMIN) for network namespaces"
    );
    sockchat_tests::require!(
        sockchat_tests::on_path("ip"),
        "needs `ip` (iproute2; ./test.sh installs it)"
    );
    // With root and `ip`, a namespace that cannot be built is a failure.
    let net = Net::new().unwrap_or_else(|e| panic!("cannot build network namespaces: {e}"));
    let mut server = in_netns(
        &net.a,
        &bin("sockchat-server"),
        &["--listen", "169.254.77.1:7878"],
    );
    server.expect("listening on 169.254.77.1:7878 (tcp)");
    // Short timers so the kernel gives up within seconds: keepalive 1 s
    // idle + 2 probes 1 s apart, and 3 s for unacknowledged data (our own
    // pings put data in flight every 2 s).
    let mut bob = in_netns(
        &net.b,
        &bin("sockchat"),
        &[
            "--plain",
            "--server",
            "169.254.77.1:7878",
            "--nick",
            "bob",
            "--no-reconnect",
            "--keepalive",
            "1,1,2",
            "--user-timeout-ms",
            "3000",
        ],
    );
    bob.expect("* welcome bob");
    let pulled = Instant::now();
    ip(&["-n", &net.sw, "link", "set", "pb", "down"]).expect("pull the cable");
    let err = bob.expect("ETIMEDOUT (110)");
    assert!(
        err.starts_with("! read: ETIMEDOUT (110)") || err.starts_with("! write: ETIMEDOUT (110)"),
        "{err}"
    );
    assert!(err.contains("the kernel gave up"), "explained: {err}");
    bob.expect("* CLOSED: timed out (ETIMEDOUT 110)");
    let took = pulled.elapsed();
    eprintln!("the kernel declared the silent server dead after {took:?}");
}
