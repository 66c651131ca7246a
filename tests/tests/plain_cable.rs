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

use std::time::{Duration, Instant};

use sockchat_tests::bin;
use sockchat_tests::netns::{Net, in_netns, ip};

const STEP: Duration = Duration::from_secs(20);

#[test]
fn pulled_cable_is_etimedout_from_keepalive() {
    if !sockchat_tests::netns::preconditions(false) {
        return;
    }
    // With root and `ip`, a namespace that cannot be built is a failure.
    // Host 0 (server), host 1 (client), and the switch between them.
    let net = Net::bridged("cable", "169.254.77", 2)
        .unwrap_or_else(|e| panic!("cannot build network namespaces: {e}"));
    let mut server = in_netns(
        &net.hosts[0],
        &bin("sockchat-server"),
        &["--listen", "169.254.77.1:7878"],
        "server",
        STEP,
    );
    server.expect("listening on 169.254.77.1:7878 (tcp)");
    // Short timers so the kernel gives up within seconds: keepalive 1 s
    // idle + 2 probes 1 s apart, and 3 s for unacknowledged data (our own
    // pings put data in flight every 2 s).
    let mut bob = in_netns(
        &net.hosts[1],
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
        "bob",
        STEP,
    );
    bob.expect("* welcome bob");
    let pulled = Instant::now();
    let sw = net.switch.as_deref().unwrap_or_default();
    ip(&["-n", sw, "link", "set", &net.port(1), "down"]).expect("pull the cable");
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
