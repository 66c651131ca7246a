//! Cluster mode end to end: a real `nats-server` (JetStream on, its own
//! port and store) and two or three real `sockchat-server` processes.
//! Users on different nodes chat (in order, exactly once), send private
//! messages, see each other in `/who` and `/rooms`, ask `/sockinfo` of a
//! nick on another node; a nick held on one node is refused on another; a
//! SIGKILLed node's users leave with `server-lost` within the bound; NATS
//! killed and restarted: the nodes keep serving locally, say so, and
//! recover. Without `nats-server` the tests skip locally and fail under CI.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure with its message"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sockchat_shared::{DisconnectReason, ServerMsg};
use sockchat_tests::nats::NatsProc;
use sockchat_tests::{FramedClient, ServerProc, TextClient, require};

/// Fast heartbeats so the lost-node test is short; the bound under test is
/// `node_timeout_secs`.
const NODE_TIMEOUT_SECS: u64 = 3;
const CONFIG: &str = "[cluster]\nheartbeat_ms = 250\nnode_timeout_secs = 3\n";

fn node(nats: &NatsProc, name: &str) -> ServerProc {
    let url = nats.url();
    let s = ServerProc::start_with_config(
        &format!("cluster-{name}-{}", nats.addr.port()),
        CONFIG,
        &["--cluster", &url, "--node", name],
    );
    assert!(
        s.wait_stderr("cluster link up", Duration::from_secs(15)),
        "node {name} never connected to NATS:\n{}",
        s.stderr()
    );
    s
}

/// A text user on `addr` named `nick`.
async fn user(addr: SocketAddr, nick: &str) -> TextClient {
    let mut c = TextClient::connect(addr).await;
    let guest = c.welcome().await;
    c.line(&format!("/nick {nick}")).await;
    c.expect_line(&format!("* {guest} is now known as {nick}"))
        .await;
    c
}

/// Ask `/who` until the reply is `want` (presence crosses nodes through
/// the KV bucket: a few milliseconds, bounded here by 15 s).
async fn wait_who(c: &mut TextClient, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        c.line("/who").await;
        last = c.expect_prefix("* lobby (").await;
        if last == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/who never became {want:?}; last {last:?}");
}

fn have_nats() -> bool {
    require(
        sockchat_tests::nats::binary().is_some(),
        "nats-server is not installed (apt-get install nats-server)",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_two_nodes_chat_in_order_once_pm_and_see_each_other() {
    if !have_nats() {
        return;
    }
    let nats = NatsProc::start();
    let (a, b) = (node(&nats, "a"), node(&nats, "b"));
    let mut alice = user(a.addr, "alice").await;
    let mut bob = user(b.addr, "bob").await;
    wait_who(&mut bob, "* lobby (2): alice, bob").await;
    wait_who(&mut alice, "* lobby (2): alice, bob").await;

    // Per sender order across nodes, each message exactly once.
    for i in 1..=20 {
        alice.line(&format!("m{i}")).await;
    }
    for i in 1..=20 {
        bob.expect_line(&format!("[lobby] alice: m{i}")).await;
    }
    bob.line("/who").await;
    let skipped = bob.expect_line("* lobby (2): alice, bob").await;
    assert!(
        !skipped.iter().any(|l| l.starts_with("[lobby] alice")),
        "a message came twice: {skipped:?}"
    );

    // A private message to a nick on the other node, and its confirmation.
    bob.line("/msg alice psst").await;
    bob.expect_line("[pm] -> alice: psst").await;
    alice.expect_line("[pm] bob: psst").await;

    // A nick held on node a is refused on node b (case and look-alikes
    // folded as on one node).
    bob.line("/nick ALICE").await;
    bob.expect_line("! nick already taken: ALICE").await;
    let mut third = TextClient::connect(b.addr).await;
    third.welcome().await;
    third.line("/nick alice").await;
    third.expect_line("! nick already taken: alice").await;

    // /rooms and /who of a room only node a has.
    alice.line("/join dev.x").await;
    alice.expect_line("* alice joined dev.x").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        bob.line("/rooms").await;
        let l = bob.expect_prefix("* rooms (").await;
        if l == "* rooms (2): dev.x (1), lobby (3)" {
            break;
        }
        assert!(Instant::now() < deadline, "/rooms stayed {l:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bob.line("/who dev.x").await;
    bob.expect_line("* dev.x (1): alice").await;

    // /sockinfo of a nick on node a is answered by node a (its socket, and
    // its address policy: hidden from others).
    bob.line("/sockinfo alice").await;
    let l = bob.expect_prefix("* sockinfo alice: ").await;
    assert!(l.contains("transport=tcp"), "{l}");
    assert!(l.contains("tcpi_state=ESTABLISHED"), "{l}");
    assert!(l.contains("peer=hidden"), "{l}");

    // A departure crosses with its reason.
    drop(bob);
    alice
        .expect_line("* bob left lobby: closed by peer (EOF, FIN received)")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_lost_and_its_users_leave_as_server_lost() {
    if !have_nats() {
        return;
    }
    let nats = NatsProc::start();
    let (a, b, c) = (node(&nats, "a"), node(&nats, "b"), node(&nats, "c"));
    let mut alice = user(a.addr, "alice").await;
    let _bob = user(b.addr, "bob").await;
    let mut carol = FramedClient::connect(c.addr, "carol").await;
    wait_who(&mut alice, "* lobby (3): alice, bob, carol").await;

    let killed = Instant::now();
    b.signal(libc::SIGKILL);
    alice
        .expect_line_within(
            "* bob left lobby: server lost (cluster node stopped answering)",
            Duration::from_secs(NODE_TIMEOUT_SECS + 10),
        )
        .await;
    let took = killed.elapsed();
    // Detected after the timeout (heartbeats stopped), announced within the
    // bound plus the sweep's period and a loaded machine's slack.
    assert!(
        took >= Duration::from_secs(NODE_TIMEOUT_SECS) - Duration::from_millis(300),
        "announced before the node could have timed out: {took:?}"
    );
    assert!(
        took < Duration::from_secs(NODE_TIMEOUT_SECS + 4),
        "server-lost took {took:?} (bound {NODE_TIMEOUT_SECS} s)"
    );
    // The framed user on the third node gets the reason on the wire.
    let m = carol
        .recv_until(|m| matches!(m, ServerMsg::Left { nick, .. } if nick == "bob"))
        .await;
    assert_eq!(
        m,
        ServerMsg::Left {
            room: "lobby".into(),
            nick: "bob".into(),
            reason: Some(DisconnectReason::ServerLost),
        }
    );
    wait_who(&mut alice, "* lobby (2): alice, carol").await;
    // The lost node's nick is free again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        alice.line("/nick bob").await;
        let l = alice.read_line().await;
        if l == "* alice is now known as bob" {
            break;
        }
        assert!(Instant::now() < deadline, "bob's nick stayed taken: {l:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_serve_locally_without_nats_and_recover_when_it_is_back() {
    if !have_nats() {
        return;
    }
    let mut nats = NatsProc::start();
    let (mut a, mut b) = (node(&nats, "a"), node(&nats, "b"));
    let mut alice = user(a.addr, "alice").await;
    let mut amy = user(a.addr, "amy").await;
    let mut bob = user(b.addr, "bob").await;
    wait_who(&mut bob, "* lobby (3): alice, amy, bob").await;

    nats.stop();
    let lost = "* cluster link lost: local rooms only";
    for u in [&mut alice, &mut amy, &mut bob] {
        u.expect_line_within(lost, Duration::from_secs(15)).await;
    }
    // Local rooms keep working.
    alice.line("still here").await;
    amy.expect_line("[lobby] alice: still here").await;
    bob.expect_silence(Duration::from_millis(500)).await;
    wait_who(&mut bob, "* lobby (1): bob").await;

    nats.restart();
    let back = "* cluster link restored: rooms span the cluster again";
    for u in [&mut alice, &mut amy, &mut bob] {
        u.expect_line_within(back, Duration::from_secs(20)).await;
    }
    wait_who(&mut bob, "* lobby (3): alice, amy, bob").await;
    alice.line("back again").await;
    bob.expect_line("[lobby] alice: back again").await;
    amy.expect_line("[lobby] alice: back again").await;
    // The nick claims are held again: no one on b can take alice.
    bob.line("/nick alice").await;
    bob.expect_line("! nick already taken: alice").await;
    assert!(a.wait_timeout(Duration::ZERO).is_none(), "node a exited");
    assert!(b.wait_timeout(Duration::ZERO).is_none(), "node b exited");
}
