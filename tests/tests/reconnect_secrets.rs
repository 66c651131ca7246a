//! After a reconnect the client restores what only a secret gave it: its
//! registered nick (it identifies again with the password typed before)
//! and its keyed rooms (it rejoins with their key), over TCP and UDP —
//! while the secrets appear nowhere in its output (client/src/net/
//! remembered.rs keeps them in memory only). The reconnect is forced by an
//! operator's kick: the client is told why and comes back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::process::Stdio;
use std::time::Duration;

use sockchat_shared::{ClientMsg, ServerMsg};
use sockchat_tests::{FramedClient, Plain, ServerProc, sockchat_command};

const OPER_PW: &str = "op3rator-pw";
const NICK_PW: &str = "al1ce-nick-pw";
const ROOM_KEY: &str = "va4lt-key";
const STEP: Duration = Duration::from_secs(30);

fn server(tag: &str) -> (ServerProc, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("sockchat-resecrets-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let srv = ServerProc::start_with_config(
        tag,
        &format!(
            "[auth]\noper_password = \"{OPER_PW}\"\nnicks_file = \"{}\"\n",
            dir.join("nicks").display()
        ),
        &[],
    );
    (srv, dir)
}

fn restored_after_a_kick(tag: &str, extra: &[&str]) {
    let (srv, dir) = server(tag);
    let addr = srv.addr.to_string();
    let mut args = vec!["--plain", "--json", "--server", &addr, "--nick", "alice"];
    args.extend_from_slice(extra);
    let mut alice = Plain::spawn(
        sockchat_command(&args).stderr(Stdio::inherit()),
        format!("alice {tag}"),
        STEP,
    );
    alice.expect_event("welcome", |v| v["nick"] == "alice");
    alice.send(&format!("/register {NICK_PW}"));
    alice.expect_event("notice", |v| {
        v["text"]
            .as_str()
            .unwrap_or("")
            .contains("is registered to you")
    });
    alice.send(&format!("/join vault {ROOM_KEY}"));
    alice.expect_event("joined", |v| v["room"] == "vault" && v["nick"] == "alice");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut op = FramedClient::connect(srv.addr, "op").await;
        op.send(&ClientMsg::Oper {
            password: OPER_PW.into(),
        })
        .await;
        op.expect_notice("you are a server operator").await;
        op.send(&ClientMsg::Kick {
            nick: "alice".into(),
            reason: "come back".into(),
        })
        .await;
        op.recv_until(|m| matches!(m, ServerMsg::Notice { text } if text.starts_with("kicked")))
            .await;
    });

    // Back: a guest nick first (alice is registered), then identified and
    // renamed to alice, then in vault again with its key.
    alice.expect_event("bye", |v| v["reason"] == "kicked");
    alice.expect_event("welcome", |_| true);
    alice.expect_event("notice", |v| v["text"] == "you are identified as alice");
    alice.expect_event("nick-changed", |v| v["new"] == "alice");
    alice.expect_event("joined", |v| v["room"] == "vault" && v["nick"] == "alice");

    // The server agrees: alice is in vault.
    rt.block_on(async {
        let mut check = FramedClient::connect(srv.addr, "check").await;
        check
            .send(&ClientMsg::Who {
                room: "vault".into(),
            })
            .await;
        let who = check
            .recv_until(|m| matches!(m, ServerMsg::Who { .. }))
            .await;
        assert!(
            matches!(&who, ServerMsg::Who { nicks, .. } if nicks.iter().any(|n| n == "alice")),
            "{who:?}"
        );
    });

    alice.send("/quit");
    assert_eq!(alice.finish(), 0, "{:?}", alice.seen);
    for secret in [NICK_PW, ROOM_KEY] {
        assert!(
            !alice.seen.iter().any(|l| l.contains(secret)),
            "a secret in the client's output: {:?}",
            alice.seen
        );
    }
    let log = srv.stderr();
    assert!(!log.contains(NICK_PW) && !log.contains(ROOM_KEY), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reconnect_identifies_again_and_rejoins_keyed_rooms_over_tcp() {
    restored_after_a_kick("tcp", &[]);
}

#[test]
fn a_reconnect_identifies_again_and_rejoins_keyed_rooms_over_udp() {
    restored_after_a_kick("udp", &["--udp"]);
}
