//! Cluster mode end to end: a real `nats-server` (JetStream on, its own
//! port and store) and two or three real `sockchat-server` processes.
//! Users on different nodes chat (in order, exactly once), send private
//! messages, see each other in `/who` and `/rooms`, ask `/sockinfo` of a
//! nick on another node; a nick held on one node is refused on another; a
//! SIGKILLed node's users leave with `server-lost` within the bound; NATS
//! killed and restarted: the nodes keep serving locally, say so, and
//! recover; a room's history said on one node is replayed on another; a
//! private message to a nick that leaves at that instant is reported; a
//! nick registered and bans set on one node hold on the others; a nick
//! change and a private message sent with chat in one write all cross.
//! Without `nats-server` the tests skip locally and fail under CI.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure with its message"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sockchat_shared::{DisconnectReason, ErrorCode, ServerMsg};
use sockchat_tests::nats::NatsProc;
use sockchat_tests::{FramedClient, ServerProc, TextClient, require};

/// Fast heartbeats so the lost-node test is short; the bound under test is
/// `node_timeout_secs`.
const NODE_TIMEOUT_SECS: u64 = 3;
const CONFIG: &str = "[cluster]\nheartbeat_ms = 250\nnode_timeout_secs = 3\n";

fn node(nats: &NatsProc, name: &str) -> ServerProc {
    node_with(nats, name, CONFIG)
}

fn node_with(nats: &NatsProc, name: &str, config: &str) -> ServerProc {
    node_args(nats, name, config, &[])
}

fn node_args(nats: &NatsProc, name: &str, config: &str, args: &[&str]) -> ServerProc {
    let url = nats.url();
    let mut all = vec!["--cluster", &url, "--node", name];
    all.extend_from_slice(args);
    let s = ServerProc::start_with_config(
        &format!("cluster-{name}-{}", nats.addr.port()),
        config,
        &all,
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

/// Nodes a and b, `alice` on a and `bob` on b, each seen by the other.
async fn two_users(nats: &NatsProc) -> (ServerProc, ServerProc, TextClient, TextClient) {
    let (a, b) = (node(nats, "a"), node(nats, "b"));
    let mut alice = user(a.addr, "alice").await;
    let mut bob = user(b.addr, "bob").await;
    wait_who(&mut bob, "* lobby (2): alice, bob").await;
    wait_who(&mut alice, "* lobby (2): alice, bob").await;
    (a, b, alice, bob)
}

/// A text user `nick` on `addr` who became a server operator.
async fn oper(addr: SocketAddr, nick: &str) -> TextClient {
    let mut op = user(addr, nick).await;
    op.line(&format!("/oper {OPER_PW}")).await;
    op.expect_line("* you are a server operator").await;
    op
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
    let (_a, b, mut alice, mut bob) = two_users(&nats).await;

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

/// `alice` (in `lobby` and a room of node a) says `marker` in the lobby and
/// `bob` (node b, lobby) reads it: what she said before went through the
/// same publisher queue, so NATS has it (and its history stream has had
/// the time a round trip takes to store it).
async fn flushed(alice: &mut TextClient, bob: &mut TextClient, marker: &str) {
    alice.line("/join lobby").await;
    alice.expect_line("* now talking in lobby").await;
    alice.line(marker).await;
    bob.expect_line(&format!("[lobby] alice: {marker}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_history_from_every_node_is_replayed_on_another_node_in_order_once() {
    if !have_nats() {
        return;
    }
    let nats = NatsProc::start();
    let config = format!("[server]\nhistory = 3\n{CONFIG}");
    let (a, b) = (
        node_with(&nats, "a", &config),
        node_with(&nats, "b", &config),
    );
    let mut alice = user(a.addr, "alice").await;
    let mut bob = user(b.addr, "bob").await;
    wait_who(&mut bob, "* lobby (2): alice, bob").await;

    // Said on node a before anyone on node b joined h: b has no room h,
    // only the cluster's history stream holds these (it keeps 3).
    alice.line("/join h").await;
    alice.expect_line("* alice joined h").await;
    for i in 1..=4 {
        alice.line(&format!("a{i}")).await;
    }
    flushed(&mut alice, &mut bob, "sent").await;
    bob.line("/join h").await;
    bob.expect_line("* bob joined h").await;
    let mut skipped = Vec::new();
    for want in ["a2", "a3", "a4"] {
        skipped.extend(bob.expect_line(&format!("[h history] alice: {want}")).await);
    }

    // Node b's own message, then the room is gone from node b (its last
    // member left) while node a's alice goes on: joining again on b
    // replays both nodes' messages in the order they were said, once.
    bob.line("b1").await;
    alice.expect_line("[h] bob: b1").await;
    bob.line("/leave h").await;
    bob.expect_line("* bob left h").await;
    alice.line("/join h").await;
    alice.expect_line("* now talking in h").await;
    alice.line("a5").await;
    flushed(&mut alice, &mut bob, "sent again").await;
    bob.line("/join h").await;
    bob.expect_line("* bob joined h").await;
    for want in [
        "[h history] alice: a4",
        "[h history] bob: b1",
        "[h history] alice: a5",
    ] {
        skipped.extend(bob.expect_line(want).await);
    }
    alice.line("/join h").await;
    alice.expect_line("* now talking in h").await;
    alice.line("live").await;
    skipped.extend(bob.expect_line("[h] alice: live").await);
    assert!(
        !skipped.iter().any(|l| l.starts_with("[h")),
        "history out of order or twice: {skipped:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_message_to_a_nick_leaving_at_that_instant_is_reported_not_lost() {
    if !have_nats() {
        return;
    }
    let nats = NatsProc::start();
    let (_a, _b, mut alice, mut bob) = two_users(&nats).await;

    // NATS stops answering for a moment: bob leaves node b, and node a,
    // which cannot have heard it yet, sends alice's message on to node b,
    // where bob is gone when it arrives.
    nats.signal(libc::SIGSTOP);
    bob.line("/quit").await;
    bob.expect_line("* bye").await;
    alice.line("/msg bob are you there").await;
    alice.expect_line("[pm] -> bob: are you there").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    nats.signal(libc::SIGCONT);
    alice
        .expect_line_within(
            "! no such nick: bob (left before your private message reached it: not delivered)",
            Duration::from_secs(15),
        )
        .await;
    // Known gone: refused at once, as on one node.
    wait_who(&mut alice, "* lobby (1): alice").await;
    alice.line("/msg bob hello?").await;
    alice.expect_line("! no such nick: bob").await;
}

const OPER_PW: &str = "cluster-r00t-pw";
const ALICE_PW: &str = "alice-cluster-pw";

/// A framed user from `from` (a loopback address) on `addr`, or the error
/// that refused it.
async fn framed_from(
    addr: SocketAddr,
    from: &str,
    nick: &str,
) -> Result<FramedClient, (ErrorCode, String)> {
    FramedClient::hello_from(addr, from.parse().unwrap(), nick).await
}

/// The reason of the `Bye` that ends `c`.
async fn bye(c: &mut FramedClient) -> DisconnectReason {
    match c.recv_until(|m| matches!(m, ServerMsg::Bye { .. })).await {
        ServerMsg::Bye { reason } => reason,
        _ => unreachable!(),
    }
}

/// Repeat `$step` (which must not change anything when it is false) until
/// it is true, for at most 15 s.
macro_rules! eventually {
    ($what:expr, $step:expr) => {{
        let deadline = Instant::now() + Duration::from_secs(15);
        while !$step {
            assert!(Instant::now() < deadline, "never: {}", $what);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_nicks_and_bans_hold_on_every_node() {
    if !have_nats() {
        return;
    }
    let nats = NatsProc::start();
    let dir = sockchat_tests::scratch(&format!("cluster-auth-{}", nats.addr.port()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = |n: &str| {
        format!(
            "[auth]\nnicks_file = \"{}\"\noper_password = \"{OPER_PW}\"\n{CONFIG}",
            dir.join(n).join("nicks").display()
        )
    };
    let a = node_with(&nats, "a", &config("a"));
    let b = node_args(&nats, "b", &config("b"), &["--log", "debug"]);

    // Registered on node a: protected on node b, where a text user stays
    // a guest until it identifies with the password.
    let mut alice = user(a.addr, "alice").await;
    alice.line(&format!("/register {ALICE_PW}")).await;
    alice
        .expect_line(
            "* alice is registered to you: from now on identify first (/identify alice PASSWORD)",
        )
        .await;
    assert!(
        b.wait_stderr("registered nick learned", Duration::from_secs(15)),
        "node b never learned alice's registration:\n{}",
        b.stderr()
    );
    alice.line("/quit").await;
    alice.expect_line("* bye").await;
    let mut imp = TextClient::connect(b.addr).await;
    let guest = imp.welcome().await;
    let refused = "! nick alice is registered: identify first (/identify alice PASSWORD), or pick another nick";
    eventually!("alice's registration refuses the nick on node b", {
        imp.line("/nick alice").await;
        let l = imp.read_line().await;
        assert!(
            l == refused || l == "! nick already taken: alice",
            "node b let a guest take a nick registered on node a: {l:?}"
        );
        l == refused
    });
    imp.line("/identify alice wrong-password-1").await;
    imp.expect_line("! wrong password for alice").await;
    imp.line(&format!("/identify alice {ALICE_PW}")).await;
    imp.expect_line("* you are identified as alice").await;
    imp.expect_line(&format!("* {guest} is now known as alice"))
        .await;
    // The registration is in node b's own nicks file too.
    eventually!(
        "node b saves the learned registration",
        std::fs::read_to_string(dir.join("b").join("nicks"))
            .is_ok_and(|t| t.contains("\nalice\t$argon2"))
    );

    // A block banned on node a: its user on node b is banned out, new
    // connections from it are refused on node b.
    let mut op = oper(a.addr, "op").await;
    let mut mallory = framed_from(b.addr, "127.0.0.5", "mallory").await.unwrap();
    op.line("/ban 127.0.0.4/30 1h flood").await;
    op.expect_prefix("* banned block 127.0.0.4/30 for 3600 s")
        .await;
    assert_eq!(
        bye(&mut mallory).await,
        DisconnectReason::Banned {
            by: "op".into(),
            why: "flood".into(),
            secs: 3600,
        }
    );
    let (code, text) = framed_from(b.addr, "127.0.0.6", "").await.err().unwrap();
    assert_eq!(code, ErrorCode::Banned);
    assert!(
        text.starts_with("you are banned from this server (by op, ")
            && text.ends_with("s left): flood"),
        "{text}"
    );
    assert!(
        framed_from(b.addr, "127.0.0.9", "").await.is_ok(),
        "another address"
    );

    // A nick banned on node a for 3 s: its user on node b ends, the nick
    // (and its look-alikes) is refused there until the ban expires.
    let mut erin = framed_from(b.addr, "127.0.0.1", "erin").await.unwrap();
    let banned_at = Instant::now();
    op.line("/ban erin 3").await;
    assert_eq!(bye(&mut erin).await.code(), "banned");
    let (code, _) = framed_from(b.addr, "127.0.0.1", "ERIN")
        .await
        .err()
        .unwrap();
    assert_eq!(code, ErrorCode::Banned);
    tokio::time::sleep(
        Duration::from_secs(3).saturating_sub(banned_at.elapsed()) + Duration::from_millis(300),
    )
    .await;
    assert!(
        framed_from(b.addr, "127.0.0.1", "erin").await.is_ok(),
        "the nick ban expired on node b too"
    );

    // Lifted on node b (by an operator there): lifted on node a.
    let mut op2 = oper(b.addr, "op2").await;
    op2.line("/unban 127.0.0.4/30").await;
    op2.expect_line("* unbanned block 127.0.0.4/30").await;
    eventually!(
        "the unban on node b lifts the ban on node a",
        framed_from(a.addr, "127.0.0.5", "").await.is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nick_change_or_pm_sent_with_chat_in_one_write_crosses_too() {
    if !have_nats() {
        return;
    }
    let nats = NatsProc::start();
    let (_a, _b, mut alice, mut bob) = two_users(&nats).await;
    // A nick change, a private message and chat, read by node a at once:
    // they leave on different subjects (so in different subscriptions on
    // node b) and every one must arrive, whichever node b reads first.
    let mut old = "alice".to_string();
    for i in 1..=12 {
        let new = format!("al{i}");
        alice
            .line(&format!("/nick {new}\n/msg bob pm {i}\nchat {i}"))
            .await;
        let mut got = Vec::new();
        for want in [
            format!("* {old} is now known as {new}"),
            format!("[pm] {new}: pm {i}"),
            format!("[lobby] {new}: chat {i}"),
        ] {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if got.contains(&want) {
                    break;
                }
                match bob.read_line_timeout(Duration::from_millis(200)).await {
                    Ok(Some(l)) => got.push(l),
                    _ => assert!(
                        Instant::now() < deadline,
                        "round {i}: never got {want:?}; got {got:?}"
                    ),
                }
            }
        }
        old = new;
    }
}
