//! A hostile server against the real `sockchat` client in `--plain` mode,
//! `--json` mode and the TUI (in tmux): one script, in a test server in
//! this file that speaks the protocol through shared's codec and abuses
//! it. (hostile_server.rs floods the TUI with 100,000 rooms and 200 MB.)
//!
//! 1. escape sequences (CSI 2J, OSC 52 clipboard, OSC 8 link, C1 CSI) and
//!    bidi overrides in every string it sends: welcome, room and nick
//!    names, chat, notices, errors, reasons, lists, `/sockinfo` fields;
//! 2. endless history: 20,000 replayed 1 KiB messages;
//! 3. a file offer whose name climbs out of the download folder and
//!    carries escapes, then 1,500 overlapping 32 KiB chunks above a gap
//!    (the shape the rudp fuzz target found: each was held whole);
//! 4. an oversized frame (70,000 bytes announced).
//!
//! The client must: print only clean lines in plain mode (no control
//! character, escape or bidi override), only well-formed JSON objects
//! (strings carried as data, C0 escaped) in JSON mode, and a screen with
//! no escape or bidi override left in it in the TUI; keep its peak RSS
//! bounded (VmHWM, printed); save the file inside the download folder
//! under a safe name and nowhere else; end on the oversized frame with a
//! protocol error, without a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sockchat_shared::codec::{self, decode_client, decode_frame};
use sockchat_shared::proto::preamble;
use sockchat_shared::transfer::Xfer;
use sockchat_shared::{ChatKind, ClientMsg, DisconnectReason, ErrorCode, RoomInfo, ServerMsg};
use sockchat_tests::tmux::Tmux;
use sockchat_tests::{Plain, sockchat_command};

const NASTY: [&str; 7] = [
    "\x1b[2J\x1b[Hgone",
    "\x1b]52;c;cm0gLXJmIH4=\x07clip",
    "\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\",
    "abc\u{202E}txt.exe",
    "\u{2066}iso\u{2069}\u{200F}\u{061C}",
    "\u{9B}31mred",
    "two\u{2028}lines\rback",
];
const HISTORY: usize = 20_000;
const FILE_LEN: usize = 1 << 20;
const CHUNK: usize = 32 * 1024;
const OVERLAPPING: u64 = 1_500;
/// The client's peak RSS may not pass this (a debug build; before the
/// rudp fix the overlapping chunks alone held 1,500 × 32 KiB = 47 MiB:
/// a peak of 62 MiB in plain mode; 22 MiB with it).
const RSS_BOUND_KIB: u64 = 48 * 1024;
const STEP: Duration = Duration::from_secs(30);

fn file_bytes() -> Vec<u8> {
    (0..FILE_LEN).map(|i| (i * 31 + i / 977) as u8).collect()
}

/// The server's writing half, shared by the script and the reader
/// thread's Pongs (a whole batch of frames per lock).
type Writer = Arc<Mutex<TcpStream>>;

fn send(w: &Writer, msgs: &[ServerMsg]) {
    let mut out = BytesMut::new();
    for m in msgs {
        codec::encode_server(m, &mut out);
    }
    let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
    w.write_all(&out).expect("write to the client");
}

fn chat(room: &str, from: &str, text: &str, history: bool) -> ServerMsg {
    ServerMsg::Chat {
        room: room.into(),
        from: from.into(),
        text: text.into(),
        kind: ChatKind::Say,
        ts_ms: 0,
        history,
    }
}

/// What the test tells the hostile server to do next.
enum Go {
    Abuse,
    Offer,
    File,
    Oversize,
}

/// The hostile server: one client, scripted by `go`; every message the
/// client sends comes back on `heard`.
fn serve(l: TcpListener, go: mpsc::Receiver<Go>, heard: mpsc::Sender<ClientMsg>) {
    let (mut sock, _) = l.accept().expect("accept");
    let mut pre = [0u8; 5];
    sock.read_exact(&mut pre).expect("preamble");
    sock.write_all(&preamble()).expect("preamble");
    let mut r = sock.try_clone().expect("clone");
    let s: Writer = Arc::new(Mutex::new(sock));
    let pong = s.clone();
    std::thread::spawn(move || {
        let mut buf = BytesMut::new();
        let mut chunk = vec![0u8; 65536];
        loop {
            while let Ok(Some(p)) = decode_frame(&mut buf, 65_536) {
                if let Ok(m) = decode_client(&p) {
                    // Alive as far as the client can tell (the TUI ends a
                    // session whose pings go unanswered).
                    if let ClientMsg::Ping { token } = m {
                        send(&pong, &[ServerMsg::Pong { token }]);
                    }
                    if heard.send(m).is_err() {
                        return;
                    }
                }
            }
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });
    send(
        &s,
        &[
            ServerMsg::Welcome {
                nick: "alice".into(),
                room: "lobby".into(),
                server: NASTY[0].into(),
            },
            ServerMsg::Joined {
                room: "lobby".into(),
                nick: "alice".into(),
            },
        ],
    );
    let data = file_bytes();
    for step in go {
        match step {
            Go::Abuse => {
                for n in NASTY {
                    send(
                        &s,
                        &[
                            chat("lobby", n, n, false),
                            ServerMsg::Joined {
                                room: n.into(),
                                nick: "alice".into(),
                            },
                            chat(n, n, n, false),
                            ServerMsg::Notice { text: n.into() },
                            ServerMsg::Error {
                                code: ErrorCode::BadCommand,
                                text: n.into(),
                            },
                            ServerMsg::Private {
                                from: n.into(),
                                to: "alice".into(),
                                text: n.into(),
                                ts_ms: 0,
                            },
                            ServerMsg::Joined {
                                room: "lobby".into(),
                                nick: n.into(),
                            },
                            ServerMsg::NickChanged {
                                old: n.into(),
                                new: format!("{n}2"),
                            },
                            ServerMsg::Left {
                                room: "lobby".into(),
                                nick: format!("{n}2"),
                                reason: Some(DisconnectReason::ProtocolError { detail: n.into() }),
                            },
                            ServerMsg::Who {
                                room: "lobby".into(),
                                nicks: vec![n.into(), "alice".into()],
                            },
                            ServerMsg::Rooms {
                                rooms: vec![RoomInfo {
                                    name: n.into(),
                                    members: 1,
                                }],
                            },
                            ServerMsg::SockInfo {
                                nick: n.into(),
                                fields: vec![(n.into(), n.into())],
                            },
                        ],
                    );
                }
                marker(&s, "marker-abuse");
                let text = "h".repeat(1024);
                for batch in 0..HISTORY / 1000 {
                    let msgs: Vec<ServerMsg> = (0..1000)
                        .map(|i| {
                            chat(
                                "lobby",
                                "old",
                                &format!("{} {text}", batch * 1000 + i),
                                true,
                            )
                        })
                        .collect();
                    send(&s, &msgs);
                }
                marker(&s, "marker-history");
            }
            Go::Offer => {
                send(
                    &s,
                    &[ServerMsg::Transfer(Xfer::Offer {
                        id: 1,
                        peer: NASTY[1].into(),
                        name: "../../../hostile-x\x1b]52;c;eA==\x07\u{202E}gpj.sh".into(),
                        size: FILE_LEN as u64,
                        sha256: sockchat_tests::sha256sum(&data),
                    })],
                );
            }
            Go::File => send_file(&s),
            Go::Oversize => {
                marker(&s, "marker-file");
                let mut f = 70_000u32.to_be_bytes().to_vec();
                f.extend(std::iter::repeat_n(0x82, 1000));
                let _ = s.lock().unwrap_or_else(|p| p.into_inner()).write_all(&f);
                std::thread::sleep(Duration::from_secs(2));
                return;
            }
        }
    }
}

/// A line in every room the script put the client in, so it shows
/// whichever room a TUI has in view.
fn marker(s: &Writer, text: &str) {
    let msgs: Vec<ServerMsg> = std::iter::once("lobby")
        .chain(NASTY)
        .map(|r| chat(r, "bob", text, false))
        .collect();
    send(s, &msgs);
}

/// After the client accepted: overlapping chunks above a gap (the right
/// bytes for their offsets), then the file in order.
fn send_file(s: &Writer) {
    let data = file_bytes();
    let chunk_at = |o: usize| Xfer::Chunk {
        id: 1,
        offset: o as u64,
        data: Bytes::copy_from_slice(&data[o..(o + CHUNK).min(FILE_LEN)]),
    };
    for o in 1..=OVERLAPPING as usize {
        send(s, &[ServerMsg::Transfer(chunk_at(o))]);
    }
    for o in (0..FILE_LEN).step_by(CHUNK) {
        send(s, &[ServerMsg::Transfer(chunk_at(o))]);
    }
}

fn entries(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The client under test: a piped process (plain, JSON) or the TUI.
enum Ui {
    Pipe(Plain),
    Tui(Tmux, u32),
}

impl Ui {
    fn expect(&mut self, needle: &str) -> String {
        match self {
            Ui::Pipe(p) => p.expect(needle),
            Ui::Tui(t, _) => {
                let deadline = std::time::Instant::now() + STEP;
                loop {
                    let screen = t.capture("alice");
                    assert!(
                        !screen.contains('\x1b')
                            && sockchat_shared::sanitize::is_clean(&screen.replace('\n', " ")),
                        "an escape or override reached the screen:\n{screen}"
                    );
                    if screen.contains(needle) {
                        return screen;
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "never showed {needle:?}:\n{screen}"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
    fn send(&mut self, line: &str) {
        match self {
            Ui::Pipe(p) => p.send(line),
            Ui::Tui(t, _) => t.line("alice", line),
        }
    }
    fn pid(&self) -> u32 {
        match self {
            Ui::Pipe(p) => p.child.id(),
            Ui::Tui(_, pid) => *pid,
        }
    }
}

fn run(mode: &str) {
    let base = std::env::temp_dir().join(format!("sockchat-hostile-{mode}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    // Deep enough that `../../../` stays inside `base`.
    let dl = base.join("a").join("b").join("downloads");
    std::fs::create_dir_all(&dl).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (go, go_rx) = mpsc::channel();
    let (heard_tx, heard) = mpsc::channel();
    let server = std::thread::spawn(move || serve(l, go_rx, heard_tx));
    let stderr_path = base.join("stderr");
    let dls = dl.to_str().unwrap().to_string();
    let mut c = if mode == "tui" {
        let t = Tmux::new("hostile-modes");
        t.client(
            "alice",
            120,
            30,
            &format!(
                "--no-reconnect --server {addr} --nick alice --download-dir {dls} 2>{}",
                stderr_path.display()
            ),
        );
        t.wait_for("alice", "welcome alice");
        let pid = t.client_pid("alice") as u32;
        Ui::Tui(t, pid)
    } else {
        let flag = format!("--{mode}");
        let args = [
            "--no-reconnect",
            "--server",
            &addr,
            "--nick",
            "alice",
            "--download-dir",
            &dls,
            &flag,
        ];
        let mut cmd = sockchat_command(&args);
        cmd.stderr(std::fs::File::create(&stderr_path).unwrap());
        Ui::Pipe(Plain::spawn(&mut cmd, format!("sockchat --{mode}"), STEP))
    };
    let pid = c.pid();

    go.send(Go::Abuse).unwrap();
    if mode != "tui" {
        // (The TUI shows the room's last lines: the history by then.)
        c.expect("marker-abuse");
    }
    c.expect("marker-history");
    let after_history = sockchat_tests::proc_status_kib(pid, "VmHWM");

    go.send(Go::Offer).unwrap();
    c.expect("gpj.sh");
    c.send("/accept 1");
    loop {
        match heard.recv_timeout(STEP).expect("the client's Accept") {
            ClientMsg::Transfer(Xfer::Accept { id, offset, .. }) => {
                assert_eq!((id, offset), (1, 0));
                break;
            }
            _ => continue,
        }
    }
    go.send(Go::File).unwrap();
    loop {
        match heard.recv_timeout(STEP).expect("the client's Done") {
            ClientMsg::Transfer(Xfer::Done { id: 1 }) => break,
            ClientMsg::Transfer(Xfer::Error { text, .. }) => panic!("transfer failed: {text}"),
            _ => continue,
        }
    }
    let after_file = sockchat_tests::proc_status_kib(pid, "VmHWM");

    go.send(Go::Oversize).unwrap();
    c.expect("marker-file");
    // The client says what was wrong (the frame splitter's error) ...
    let said = c.expect("exceeds the maximum");
    server.join().expect("hostile server");
    if let Ui::Tui(t, _) = &c {
        // The TUI stays up after the error: it still draws and takes keys.
        t.line("alice", "/help");
        c.expect("/join");
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        assert!(
            !stderr.contains("panicked"),
            "the client panicked:\n{stderr}"
        );
        check_download(&base, &dl);
        finish_figures(mode, after_history, after_file, &dl, &base);
        return;
    }
    let Ui::Pipe(mut c) = c else { unreachable!() };
    // ... and ends at the end of its input, not with success (no reconnect).
    let code = c.finish();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        !stderr.contains("panicked"),
        "the client panicked:\n{stderr}"
    );
    assert_ne!(code, 0, "an oversized frame is not a clean end: {said}");

    // Output: clean lines (plain) or well-formed objects (JSON).
    for l in &c.seen {
        assert!(
            !l.contains('\x1b') && !l.contains('\r'),
            "a raw escape in {l:?}"
        );
        if mode == "json" {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}"));
            assert!(v["event"].is_string(), "{l}");
        } else {
            assert!(
                sockchat_shared::sanitize::is_clean(l),
                "a plain line not clean: {l:?}"
            );
        }
    }
    let all = c.seen.join("\n");
    assert!(
        all.contains("protocol") || all.contains("70000"),
        "no word of the oversized frame:\n{}",
        &all[all.len().saturating_sub(2000)..]
    );
    if mode == "json" {
        // Strings are data: the nasty texts arrive intact, JSON-escaped.
        let texts: Vec<String> = c
            .seen
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["text"].as_str().map(str::to_string))
            .collect();
        for n in NASTY {
            assert!(texts.iter().any(|t| t == n), "{n:?} not carried as data");
        }
    }

    check_download(&base, &dl);
    finish_figures(mode, after_history, after_file, &dl, &base);
}

/// The file: inside the download folder, a safe name, nothing elsewhere.
fn check_download(base: &Path, dl: &Path) {
    let saved = entries(dl);
    assert_eq!(saved.len(), 1, "download folder: {saved:?}");
    let name = &saved[0];
    assert!(
        sockchat_shared::sanitize::is_clean(name) && !name.contains('/'),
        "{name:?}"
    );
    assert_eq!(std::fs::read(dl.join(name)).unwrap(), file_bytes());
    assert_eq!(entries(base), vec!["a".to_string(), "stderr".to_string()]);
    assert_eq!(entries(&base.join("a")), vec!["b".to_string()]);
    assert_eq!(
        entries(&base.join("a").join("b")),
        vec!["downloads".to_string()]
    );
    assert!(!Path::new("/tmp/hostile-x").exists());
}

fn finish_figures(mode: &str, after_history: u64, after_file: u64, dl: &Path, base: &Path) {
    println!(
        "hostile server ({mode}): client peak RSS {after_history} KiB after {HISTORY} history lines, \
         {after_file} KiB after {OVERLAPPING} overlapping 32 KiB chunks and a 1 MiB file; saved as {:?}",
        entries(dl)
    );
    assert!(
        after_file < RSS_BOUND_KIB,
        "client peak RSS {after_file} KiB"
    );
    let _ = std::fs::remove_dir_all(base);
}

#[test]
fn plain_mode_survives_a_hostile_server() {
    run("plain");
}

#[test]
fn json_mode_survives_a_hostile_server() {
    run("json");
}

#[test]
fn tui_survives_a_hostile_server() {
    sockchat_tests::require!(
        Tmux::available(),
        "tmux is not installed (./test.sh installs it)"
    );
    run("tui");
}
