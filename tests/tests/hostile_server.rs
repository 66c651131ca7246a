//! A hostile server cannot exhaust the terminal client (issue 15 item 7):
//! the real `sockchat` TUI in tmux against a test server in this file that
//! speaks the real protocol (shared's codec) and then abuses it: it puts
//! the client into 100,000 rooms, then floods 2,000 of them with 4 KB
//! messages (200 MB in all). The client must stay responsive (a marker
//! line shows, a typed line is sent) and its memory must stay bounded
//! (`[client] scrollback_bytes`, default 32 MiB of lines), read from
//! /proc/PID/status.
//!
//! Bounds are generous (a debug build on a loaded 2-core machine); before
//! the fix the client needed minutes for the rooms (a linear search per
//! event) and kept every line (> 250 MB here).
//!
//! Needs tmux: without it the test skips with the reason locally and fails
//! under CI (`sockchat_tests::require!`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sockchat_shared::codec::{self, decode_client, decode_frame};
use sockchat_shared::proto::preamble;
use sockchat_shared::{ChatKind, ClientMsg, ServerMsg};
use sockchat_tests::tmux::{STEP, Tmux};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ROOMS: usize = 100_000;
/// A room whose name holds an escape sequence and a bidi override: drawn
/// harmless, addressed as sent.
const EVIL: &str = "evil\x1b[2J\u{202e}room";
const FLOOD_ROOMS: usize = 2_000;
const PER_ROOM: usize = 25;
const TEXT: usize = 4_000;
/// Peak resident memory allowed (the lines alone would be > 200 MB).
const RSS_MAX_KIB: u64 = 192 * 1024;

/// What the hostile server does once the client said Hello.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    /// Put the client in ROOMS rooms, then say "marker one" in lobby.
    Rooms,
    /// Flood FLOOD_ROOMS rooms, then say "marker two" in lobby.
    Flood,
}

fn chat(room: &str, text: String) -> ServerMsg {
    ServerMsg::Chat {
        room: room.into(),
        from: "mallory".into(),
        text,
        kind: ChatKind::Say,
        ts_ms: 1,
        history: false,
    }
}

/// The hostile server: one connection; steps arrive on `steps`; every
/// message the client sends is recorded in `heard`.
async fn serve(
    l: TcpListener,
    mut steps: tokio::sync::mpsc::Receiver<Step>,
    heard: Arc<Mutex<Vec<ClientMsg>>>,
) {
    let (s, _) = l.accept().await.expect("accept");
    let (mut r, mut w) = s.into_split();
    let mut pre = [0u8; 5];
    r.read_exact(&mut pre).await.expect("preamble");
    assert_eq!(pre, preamble());
    w.write_all(&preamble()).await.expect("write preamble");
    // Read everything the client sends, for ever, so its writes never
    // block and we see what it says.
    let reader = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        loop {
            while let Ok(Some(p)) = decode_frame(&mut buf, 65_536) {
                if let Ok(m) = decode_client(&p) {
                    heard.lock().unwrap_or_else(|p| p.into_inner()).push(m);
                }
            }
            match r.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    let mut out = BytesMut::new();
    codec::encode_server(
        &ServerMsg::Welcome {
            nick: "alice".into(),
            room: "lobby".into(),
            server: "hostile".into(),
        },
        &mut out,
    );
    w.write_all(&out).await.expect("welcome");
    while let Some(step) = steps.recv().await {
        match step {
            Step::Rooms => {
                let mut out = BytesMut::new();
                codec::encode_server(
                    &ServerMsg::Joined {
                        room: EVIL.into(),
                        nick: "alice".into(),
                    },
                    &mut out,
                );
                w.write_all(&out).await.expect("evil join");
                for batch in 0..ROOMS / 1000 {
                    let mut out = BytesMut::new();
                    for i in batch * 1000..(batch + 1) * 1000 {
                        codec::encode_server(
                            &ServerMsg::Joined {
                                room: format!("r{i:06}"),
                                nick: "alice".into(),
                            },
                            &mut out,
                        );
                    }
                    w.write_all(&out).await.expect("joins");
                }
                let mut out = BytesMut::new();
                codec::encode_server(&chat("lobby", "marker one".into()), &mut out);
                w.write_all(&out).await.expect("marker");
            }
            Step::Flood => {
                let text = "x".repeat(TEXT);
                for n in 0..PER_ROOM {
                    let mut out = BytesMut::new();
                    for i in 0..FLOOD_ROOMS {
                        codec::encode_server(
                            &chat(&format!("r{i:06}"), format!("{n} {text}")),
                            &mut out,
                        );
                    }
                    w.write_all(&out).await.expect("flood");
                }
                let mut out = BytesMut::new();
                codec::encode_server(&chat("lobby", "marker two".into()), &mut out);
                w.write_all(&out).await.expect("marker");
            }
        }
    }
    // Keep the connection open until the test ends.
    let _ = reader.await;
}

/// Peak and current resident memory of `pid` in KiB (VmHWM, VmRSS).
fn rss_kib(pid: i32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[test]
fn a_hostile_server_cannot_make_the_client_slow_or_huge() {
    sockchat_tests::require!(
        Tmux::available(),
        "tmux is not installed (./test.sh installs it)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let l = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let (steps, steps_rx) = tokio::sync::mpsc::channel(4);
    let heard = Arc::new(Mutex::new(Vec::new()));
    rt.spawn(serve(l, steps_rx, heard.clone()));

    let tmux = Tmux::new("hostile");
    // This server never answers the client's pings (that rule has its own
    // test, hung_server.rs): a long ping timeout keeps a slow flood on a
    // loaded machine from ending the connection as `idle-timeout` (seen at
    // load 17) before the memory bound is what is measured.
    tmux.client(
        "alice",
        120,
        30,
        &format!("--server {addr} --nick alice --ping-timeout-ms 600000"),
    );
    tmux.wait_for("alice", "welcome alice");
    let pid = tmux.client_pid("alice");
    let (base, _) = rss_kib(pid);

    // 1. 100,000 rooms: every event finds its room in a map.
    let t0 = Instant::now();
    steps.blocking_send(Step::Rooms).expect("step");
    wait_screen(&tmux, "marker one", Duration::from_secs(60));
    let rooms_took = t0.elapsed();
    let (peak_rooms, _) = rss_kib(pid);

    // The room with an escape in its name (the one after lobby) is shown
    // harmless, and a line typed there is addressed to its name as sent.
    tmux.keys("alice", &["C-n"]);
    let s = wait_screen(&tmux, "[evil\u{fffd}[2J\u{fffd}room]", STEP);
    assert!(!s.contains('\x1b') && !s.contains('\u{202e}'), "{s}");
    tmux.line("alice", "to the evil room");
    wait_heard(
        &heard,
        |m| matches!(m, ClientMsg::Say { room, text } if room == EVIL && text == "to the evil room"),
    );
    tmux.keys("alice", &["C-p"]);
    wait_screen(&tmux, "[lobby]", STEP);

    // 2. 200 MB of chat over 2,000 of those rooms: the oldest lines go.
    let t0 = Instant::now();
    steps.blocking_send(Step::Flood).expect("step");
    wait_screen(&tmux, "marker two", Duration::from_secs(180));
    let flood_took = t0.elapsed();
    let (peak, now) = rss_kib(pid);
    eprintln!(
        "hostile server: {ROOMS} rooms in {rooms_took:?}, flood of {} MB in {flood_took:?}; \
         RSS at start {base} KiB, after the rooms {peak_rooms} KiB, peak {peak} KiB, now {now} KiB",
        FLOOD_ROOMS * PER_ROOM * TEXT / 1_000_000
    );
    assert!(
        rooms_took < Duration::from_secs(60),
        "{ROOMS} rooms took {rooms_took:?}"
    );
    assert!(
        peak < RSS_MAX_KIB,
        "peak RSS {peak} KiB over {RSS_MAX_KIB} KiB"
    );

    // 3. Still responsive: a typed line reaches the server at once.
    tmux.line("alice", "still here");
    wait_heard(
        &heard,
        |m| matches!(m, ClientMsg::Say { room, text } if room == "lobby" && text == "still here"),
    );
    drop(steps);
    rt.shutdown_timeout(Duration::from_secs(1));
}

/// Wait (20 s at most) until the server has heard a message `f` accepts.
fn wait_heard(heard: &Mutex<Vec<ClientMsg>>, f: impl Fn(&ClientMsg) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if heard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(&f)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the typed line never arrived: {:?}",
            heard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_screen(tmux: &Tmux, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let s = tmux.capture("alice");
        if s.contains(needle) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} on screen within {limit:?}:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
