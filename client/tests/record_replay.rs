//! Record and replay (issue 16 item 3) at the app's boundary, rendered
//! into ratatui's TestBackend: an app is driven live through
//! `tui::replay::feed` (the loop's own path) while recording, and its
//! screen is captured after every event; the recording is read back and
//! applied to a fresh app, and every screen must come out the same, row
//! for row. Also: the lines are the objects `--json` prints, secrets are
//! never written, a full disk is told once, and damaged files are refused
//! with their line number.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use sockchat::net::transfer::{Dir, Progress, XferEvent};
use sockchat::net::{
    AfterClose, CloseReason, Fault, LineId, SocketEvent, SocketInfo, SysError, Transport,
};
use sockchat::record::format::{Entry, Header, decode};
use sockchat::record::read::{LINE_MAX, ReadError, read};
use sockchat::record::write::Recorder;
use sockchat::tui::app::{App, Event, UiConfig};
use sockchat::tui::replay::{apply, feed, replay_app};
use sockchat_shared::{ChatKind, DisconnectReason, ServerMsg};

mod common;
use common::screen;

/// 2026-11-21 23:40:00 UTC.
const WALL: u64 = 1_795_304_400_000;
const W: u16 = 130;
const H: u16 = 36;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

/// The common poll with this RTT and byte counts.
fn info(rtt_us: u32, bytes: u64) -> SocketInfo {
    let mut i = common::info();
    if let Some(t) = &mut i.snap.info {
        t.rtt_us = rtt_us;
        t.bytes_acked = Some(bytes);
        t.bytes_received = Some(bytes * 2);
    }
    i.stats.bytes_out = bytes;
    i.stats.bytes_in = bytes * 2;
    i
}

fn s(ev: SocketEvent) -> Event {
    Event::Socket(ev)
}

fn srv(m: ServerMsg) -> Event {
    s(SocketEvent::Server(m))
}

fn chat(room: &str, from: &str, text: &str, secs: u64, history: bool) -> Event {
    srv(ServerMsg::Chat {
        room: room.into(),
        from: from.into(),
        text: text.into(),
        kind: ChatKind::Say,
        ts_ms: WALL + secs * 1000,
        history,
    })
}

fn key(code: KeyCode, mods: KeyModifiers) -> Event {
    Event::Key(KeyEvent::new(code, mods))
}

/// Typing `line` and Enter, as keys.
fn typed(line: &str) -> Vec<Event> {
    line.chars()
        .map(|c| key(KeyCode::Char(c), KeyModifiers::NONE))
        .chain([key(KeyCode::Enter, KeyModifiers::NONE)])
        .collect()
}

fn connect(attempt: u32, port: u16) -> Vec<Event> {
    vec![
        s(SocketEvent::Connecting {
            addr: "127.0.0.1:7878".into(),
            attempt,
        }),
        s(SocketEvent::Connected {
            local: addr(&format!("127.0.0.1:{port}")),
            peer: addr("127.0.0.1:7878"),
            transport: Transport::Tcp,
        }),
        srv(ServerMsg::Welcome {
            nick: "alice".into(),
            room: "lobby".into(),
            server: "sockchat-server 0.1.0".into(),
        }),
    ]
}

/// A session: chat, the panel's samples, lines typed (one with a
/// password), a second room and a move back by key, `/fault rst` and the
/// reconnect, then the server resetting us (ECONNRESET 104) and a second
/// reconnect with history. Each event with the time it happens (ms).
fn session() -> Vec<(u64, Event)> {
    let mut v: Vec<Event> = connect(1, 50123);
    v.push(srv(ServerMsg::Who {
        room: "lobby".into(),
        nicks: vec!["alice".into(), "bob".into()],
    }));
    v.push(s(SocketEvent::Info(Box::new(info(312, 1000)))));
    v.push(chat(
        "lobby",
        "bob",
        "hi alice, how is the socket?",
        1,
        false,
    ));
    v.push(s(SocketEvent::Latency(Duration::from_micros(900))));
    v.extend(typed("hello bob"));
    v.push(chat("lobby", "alice", "hello bob", 2, false));
    v.push(s(SocketEvent::LineConfirmed { id: LineId(1) }));
    v.push(s(SocketEvent::Info(Box::new(info(280, 4000)))));
    v.extend(typed("/identify alice hunter2"));
    v.push(srv(ServerMsg::Notice {
        text: "you are identified as alice".into(),
    }));
    v.extend(typed("/join rust"));
    v.push(srv(ServerMsg::Joined {
        room: "rust".into(),
        nick: "alice".into(),
    }));
    v.push(srv(ServerMsg::Topic {
        room: "rust".into(),
        text: "lifetimes and sockets".into(),
        by: "carol".into(),
        changed: false,
    }));
    v.push(chat("rust", "carol", "borrowck says no", 3, false));
    // Back to lobby by key: a change of room the recording keeps.
    v.push(key(KeyCode::Left, KeyModifiers::ALT));
    v.push(chat("rust", "carol", "unread over there", 4, false));
    v.push(srv(ServerMsg::SockInfo {
        nick: String::new(),
        fields: vec![
            ("tcpi_rtt_us".into(), "312".into()),
            ("outbox_frames".into(), "0".into()),
            ("a_last".into(), "z".into()),
        ],
    }));
    v.push(srv(ServerMsg::Private {
        from: "bob".into(),
        to: "alice".into(),
        text: "psst".into(),
        ts_ms: WALL + 5000,
    }));
    v.push(s(SocketEvent::Lag { waiting_ms: 2100 }));
    // A file arrives: the offer, the bar, its end.
    let xfer = |x: XferEvent| s(SocketEvent::Transfer(Box::new(x)));
    v.push(xfer(XferEvent::Offered {
        id: 4,
        from: "bob".into(),
        name: "notes.txt".into(),
        size: 4000,
        sha256: "ab".repeat(32),
    }));
    v.push(xfer(XferEvent::Started {
        id: 4,
        dir: Dir::Receive,
        peer: "bob".into(),
        name: "notes.txt".into(),
        size: 4000,
        transport: Transport::Tcp,
    }));
    let progress = |bytes: u64, ms: u64| Progress {
        id: 4,
        dir: Dir::Receive,
        peer: "bob".into(),
        name: "notes.txt".into(),
        size: 4000,
        bytes,
        elapsed: Duration::from_millis(ms),
        transport: Transport::Tcp,
        sender: None,
        receiver: Some(sockchat_shared::rudp::ReceiverStats {
            chunks: bytes / 1000,
            ..Default::default()
        }),
    };
    v.push(xfer(XferEvent::Progress(progress(1000, 1000))));
    v.push(xfer(XferEvent::Progress(progress(3000, 2000))));
    v.push(xfer(XferEvent::Done {
        progress: progress(4000, 2500),
        sha256: "ab".repeat(32),
        saved: Some("/home/alice/Downloads/notes.txt".into()),
    }));
    // /fault rst and what the net task reports for it.
    v.extend(typed("/fault rst"));
    v.push(s(SocketEvent::FaultDone {
        fault: Fault::Rst,
        did:
            "setsockopt(SO_LINGER {on, 0}) then close(): the kernel sends RST, no FIN, no TIME_WAIT"
                .into(),
        peer_sees: "its next read or write fails with ECONNRESET (104): connection reset by peer"
            .into(),
    }));
    v.push(s(SocketEvent::Closed(CloseReason::Local(
        "we reset the connection (fault rst)".into(),
    ))));
    v.push(s(SocketEvent::AfterClose(Box::new(AfterClose {
        local: addr("127.0.0.1:50123"),
        peer: addr("127.0.0.1:7878"),
        socket: None,
        error: None,
    }))));
    v.push(s(SocketEvent::Reconnecting {
        delay: Duration::from_millis(1500),
        attempt: 2,
    }));
    v.extend(connect(2, 50124));
    v.push(s(SocketEvent::Info(Box::new(info(300, 100)))));
    // The server resets us: ECONNRESET 104 on read.
    v.push(s(SocketEvent::Error(SysError {
        syscall: "read",
        errno: 104,
    })));
    v.push(s(SocketEvent::TcpState {
        from: "ESTABLISHED",
        to: "CLOSE",
    }));
    v.push(s(SocketEvent::Closed(CloseReason::Peer(
        DisconnectReason::Reset,
    ))));
    v.push(s(SocketEvent::Reconnecting {
        delay: Duration::from_millis(2000),
        attempt: 3,
    }));
    v.push(s(SocketEvent::Connecting {
        addr: "127.0.0.1:7878".into(),
        attempt: 3,
    }));
    v.push(s(SocketEvent::Error(SysError {
        syscall: "connect",
        errno: 111,
    })));
    v.extend(connect(4, 50125));
    v.push(chat(
        "lobby",
        "bob",
        "hi alice, how is the socket?",
        1,
        true,
    ));
    v.push(chat("lobby", "bob", "missed you", 6, true));
    v.push(srv(ServerMsg::Left {
        room: "lobby".into(),
        nick: "bob".into(),
        reason: Some(DisconnectReason::IdleTimeout { secs: 30 }),
    }));
    // Spread over time: 137 ms apart, with pauses where people type.
    let mut t = 0;
    v.into_iter()
        .map(|e| {
            t += if matches!(e, Event::Key(_)) { 40 } else { 137 };
            (t, e)
        })
        .collect()
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sockchat-rec-{}-{name}", std::process::id()))
}

/// Run the session live with a recorder: the file, and the screen after
/// each event that added lines to it, by the number of lines then.
fn record_live(path: &std::path::Path) -> BTreeMap<u64, String> {
    let t0 = Instant::now();
    let ui = UiConfig {
        room: "lobby".into(),
        ..UiConfig::default()
    };
    let mut live = App::new(ui, "alice", t0, WALL);
    live.update(Event::Resize(W, H));
    let header = Header::new("tui", "127.0.0.1:7878", "alice", "lobby", WALL, 0);
    let mut rec = Recorder::create(path, &header, t0).expect("create");
    let mut screens = BTreeMap::new();
    for (ms, e) in session() {
        let before = rec.lines();
        // As the loop does: "now" first, then the event.
        live.update(Event::Tick(t0 + Duration::from_millis(ms)));
        feed(&mut live, e, Some(&mut rec));
        if rec.lines() != before {
            screens.insert(rec.lines(), screen(&live));
        }
        rec.flush();
    }
    assert_eq!(rec.take_error(), None);
    let last = screens.values().last().expect("screens").clone();
    // The session did what it says: both disconnects, the reconnect, the
    // panel, the key's move and the typed lines.
    for needle in [
        "ECONNRESET (104)",
        "reconnected after",
        "fault rst",
        "missed you",
        "mss 32741",
        "notes.txt",
        "lifetimes and sockets",
    ] {
        assert!(
            screens.values().any(|s| s.contains(needle)),
            "no live screen shows {needle:?}; last:\n{last}"
        );
    }
    screens
}

#[test]
fn a_recording_replays_into_the_same_screens() {
    let path = tmp("round-trip.jsonl");
    let live = record_live(&path);
    let text = std::fs::read_to_string(&path).expect("read");
    let rec = read(text.as_bytes()).expect("a recording we wrote reads back");
    assert!(rec.skipped.is_empty(), "{:?}", rec.skipped);
    assert_eq!(rec.entries.len() as u64 + 1, text.lines().count() as u64);

    let base = Instant::now();
    let mut app = replay_app(&rec.header, base);
    app.update(Event::Resize(W, H));
    let mut compared = 0;
    for (i, e) in rec.entries.iter().enumerate() {
        apply(&mut app, base, e);
        // Line 1 is the header: entry i is line i + 2.
        if let Some(want) = live.get(&(i as u64 + 2)) {
            let got = screen(&app);
            assert_eq!(
                got,
                *want,
                "the replayed screen after line {} ({:?}) differs from the live one",
                i + 2,
                e.entry
            );
            compared += 1;
        }
    }
    assert!(compared >= 40, "only {compared} screens compared");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn lines_are_the_json_objects_and_secrets_stay_out() {
    let path = tmp("objects.jsonl");
    record_live(&path);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(
        !text.contains("hunter2"),
        "a password was recorded:\n{text}"
    );
    assert!(text.contains(r#""line":"/identify alice ***""#), "{text}");
    let mut lines = text.lines();
    let h: serde_json::Value = serde_json::from_str(lines.next().expect("header")).expect("json");
    assert_eq!(h["format"], "sockchat-record");
    assert_eq!(h["version"], 1);
    assert_eq!(h["start_ms"], WALL);
    let mut socket = 0;
    let mut last_t = 0.0;
    for l in lines {
        let mut v: serde_json::Value = serde_json::from_str(l).expect("json line");
        let t = v["t_ms"].as_f64().expect("t_ms");
        assert!(t >= last_t, "time runs forward: {l}");
        last_t = t;
        assert_eq!(v["at_ms"].as_u64(), Some(WALL + t as u64), "{l}");
        let Ok(sockchat::record::format::Decoded::Entry(e)) = decode(&v) else {
            panic!("{l}");
        };
        if let Entry::Socket(ev) = e.entry {
            // What --json prints for it, plus the time (and the panel's
            // samples, and SockInfo's order, that --json leaves out).
            let obj = v.as_object_mut().expect("object");
            obj.remove("t_ms");
            obj.remove("at_ms");
            obj.remove("keys");
            if let Some(j) = sockchat::present::text::event_json(&ev) {
                assert_eq!(v, j, "{l}");
                socket += 1;
            } else {
                assert!(
                    matches!(ev, SocketEvent::Info(_) | SocketEvent::UdpInfo(_)),
                    "{l}"
                );
            }
        }
    }
    assert!(socket > 30, "{socket}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_full_disk_is_told_once_and_the_recording_stops() {
    let header = Header::new("tui", "s:1", "a", "lobby", WALL, 0);
    let t0 = Instant::now();
    let mut rec =
        Recorder::create(std::path::Path::new("/dev/full"), &header, t0).expect("/dev/full opens");
    rec.entry(&Entry::Typed("hi".into()), t0);
    rec.flush();
    let e = rec.take_error().expect("an error");
    assert!(e.contains("ENOSPC (28)") && e.contains("/dev/full"), "{e}");
    rec.entry(&Entry::Typed("more".into()), t0);
    rec.flush();
    assert_eq!(rec.take_error(), None, "told once");

    // Live: the error reaches the event log (and the chat), the app goes on.
    let mut app = App::new(UiConfig::default(), "alice", t0, WALL);
    app.update(Event::Socket(SocketEvent::Local(e.clone())));
    assert!(app.log.iter().any(|l| l.error && l.text.contains("ENOSPC")));
}

fn header_line() -> String {
    serde_json::to_string(&Header::new("tui", "h:1", "alice", "lobby", WALL, 0)).expect("json")
}

fn err(text: &str) -> (usize, String) {
    match read(text.as_bytes()) {
        Err(ReadError::Line { line, what }) => (line, what),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn damaged_recordings_are_refused_with_their_line() {
    let h = header_line();
    let ok = r#"{"event":"notice","text":"hi","t_ms":1.5,"at_ms":1}"#;
    // Each damage: where, and what the error says.
    let cases: Vec<(String, usize, &str)> = vec![
        (String::new(), 1, "empty"),
        ("hello\n".into(), 1, "not a sockchat recording"),
        (
            h.replace(r#""version":1"#, r#""version":2"#) + "\n",
            1,
            "version 2",
        ),
        (
            h.replace(
                &format!("\"start_ms\":{WALL}"),
                "\"start_ms\":18446744073709551615",
            ) + "\n",
            1,
            "year 9999",
        ),
        (
            h.replace(
                "\"utc_offset_secs\":0",
                "\"utc_offset_secs\":-9223372036854775808",
            ) + "\n",
            1,
            "not a time zone",
        ),
        (format!("{h}\n{ok}\n{{\"event\": \n"), 3, "bad JSON"),
        (format!("{h}\n{ok}\n{ok}"), 3, "cut off"),
        (format!("{h}\n{ok}\n[1,2]\n"), 3, "not a JSON object"),
        (
            format!("{h}\n{}\n", r#"{"event":"notice","t_ms":1e300}"#),
            2,
            "out of range",
        ),
        (
            format!("{h}\n{}\n", r#"{"event":"chat","t_ms":1,"room":5}"#),
            2,
            "\"room\" is not a string",
        ),
        (
            format!(
                "{h}\n{}\n",
                r#"{"event":"reconnecting","t_ms":1,"delay_ms":18446744073709551615,"attempt":2}"#
            ),
            2,
            "out of range",
        ),
        (
            format!("{h}\n{}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            2,
            "bad JSON",
        ),
        (
            format!("{h}\n{ok}\n{}\n", "x".repeat(LINE_MAX + 10)),
            3,
            "longer than",
        ),
        (
            format!("{h}\n{}", "x".repeat(LINE_MAX + 10)),
            2,
            "longer than",
        ),
    ];
    for (text, line, what) in cases {
        let (l, w) = err(&text);
        assert_eq!(l, line, "{w}");
        assert!(w.contains(what), "line {l}: {w:?} should say {what:?}");
    }
    // Unknown kinds are skipped and counted, not fatal.
    let r = read(
        format!(
            "{h}\n{ok}\n{}\n{}\n{ok}\n",
            r#"{"event":"from-the-future","t_ms":2}"#, r#"{"event":"from-the-future","t_ms":3}"#
        )
        .as_bytes(),
    )
    .expect("reads");
    assert_eq!(r.entries.len(), 2);
    assert_eq!(r.skipped.get("from-the-future"), Some(&2));
    assert!(
        r.skipped_text()
            .expect("text")
            .contains("from-the-future 2"),
        "{:?}",
        r.skipped_text()
    );
}

#[test]
fn every_socket_event_kind_round_trips() {
    let evs = vec![
        SocketEvent::Info(Box::new(info(1, 2))),
        SocketEvent::UdpInfo(Box::new(sockchat::net::udp::UdpInfo {
            local: Some(addr("127.0.0.1:1")),
            rtt: Some(Duration::from_micros(1234)),
            kernel_drops: Some(3),
            max_payload: 1472,
            ..Default::default()
        })),
        SocketEvent::HalfClosed(sockchat::net::HalfClose::PeerSentFin),
        SocketEvent::Finished { quit: true },
        SocketEvent::LineFailed {
            id: LineId(7),
            why: "gone".into(),
        },
        SocketEvent::Local("disk".into()),
        SocketEvent::Wire(Box::new(sockchat::net::WireNews::Off(
            "no CAP_NET_RAW".into(),
        ))),
        SocketEvent::AfterClose(Box::new(AfterClose {
            local: addr("127.0.0.1:5"),
            peer: addr("[::1]:7878"),
            socket: Some(sockchat::net::sock_diag::KernelSocket {
                state: "TIME_WAIT",
                timer: Some("timewait"),
                expires: Some(Duration::from_millis(59_900)),
            }),
            error: None,
        })),
        SocketEvent::Server(ServerMsg::Rooms {
            rooms: vec![sockchat_shared::RoomInfo {
                name: "lobby".into(),
                members: 3,
            }],
        }),
        SocketEvent::Server(ServerMsg::Bye {
            reason: DisconnectReason::Banned {
                by: "op".into(),
                why: "spam".into(),
                secs: 60,
            },
        }),
        SocketEvent::Server(ServerMsg::Error {
            code: sockchat_shared::ErrorCode::from_u16(4),
            text: "no".into(),
        }),
        SocketEvent::Server(ServerMsg::NickChanged {
            old: "a".into(),
            new: "b".into(),
        }),
        SocketEvent::Server(ServerMsg::Away {
            nick: "a".into(),
            text: "lunch".into(),
        }),
        SocketEvent::Server(ServerMsg::Stats {
            fields: vec![
                ("users".into(), "12".into()),
                ("messages_per_sec".into(), "3.5".into()),
            ],
        }),
        SocketEvent::Server(ServerMsg::Topic {
            room: "lobby".into(),
            text: "sockets".into(),
            by: "bob".into(),
            changed: true,
        }),
        SocketEvent::Wire(Box::new(sockchat::net::WireNews::Packets {
            segments: vec![sockchat::wire::Segment {
                t: 0.000042,
                from: sockchat::wire::Side::Connect,
                src_port: 40000,
                dst_port: 7878,
                syn: true,
                ack: true,
                fin: false,
                rst: false,
                psh: true,
                seq: 1,
                ack_no: 2,
                win: 512,
                len: 10,
                options: Some("mss 65495".into()),
                probe: false,
                keepalive: false,
                retransmit: true,
            }],
            lost: 3,
        })),
    ];
    let progress = |sender: bool| Progress {
        id: 4,
        dir: if sender { Dir::Send } else { Dir::Receive },
        peer: "bob".into(),
        name: "f.bin".into(),
        size: 1000,
        bytes: 500,
        elapsed: Duration::from_millis(1500),
        transport: Transport::Udp,
        sender: sender.then_some(sockchat_shared::rudp::SenderStats {
            sent: 9,
            retransmitted: 2,
            probes: 3,
            timeouts: 1,
            cwnd: 14_000,
            srtt: Some(Duration::from_micros(1234)),
            rto: Duration::from_millis(200),
        }),
        receiver: (!sender).then_some(sockchat_shared::rudp::ReceiverStats {
            chunks: 7,
            duplicates: 1,
            out_of_order: 2,
            dropped: 0,
        }),
    };
    let xfers = vec![
        XferEvent::Offered {
            id: 4,
            from: "bob".into(),
            name: "f.bin".into(),
            size: 1000,
            sha256: "ab".into(),
        },
        XferEvent::OfferSent {
            id: 5,
            to: "#lobby".into(),
            name: "g".into(),
            size: 1,
            sha256: "cd".into(),
        },
        XferEvent::Started {
            id: 4,
            dir: Dir::Receive,
            peer: "bob".into(),
            name: "f.bin".into(),
            size: 1000,
            transport: Transport::Tcp,
        },
        XferEvent::Progress(progress(true)),
        XferEvent::Done {
            progress: progress(false),
            sha256: "ab".into(),
            saved: Some("/tmp/f.bin".into()),
        },
        XferEvent::Paused {
            id: 4,
            dir: Dir::Send,
            peer: "bob".into(),
            name: "f.bin".into(),
            bytes: 10,
            why: "lost".into(),
        },
        XferEvent::Resumed {
            id: 4,
            dir: Dir::Send,
            peer: "bob".into(),
            name: "f.bin".into(),
            offset: 10,
        },
        XferEvent::Failed {
            id: 4,
            dir: Dir::Receive,
            peer: "bob".into(),
            name: "f.bin".into(),
            why: "cancelled".into(),
        },
    ];
    let evs = evs.into_iter().chain(
        xfers
            .into_iter()
            .map(|x| SocketEvent::Transfer(Box::new(x))),
    );
    for ev in evs {
        let e = Entry::Socket(ev);
        let v = sockchat::record::format::encode(&e, Duration::from_micros(1500), WALL)
            .expect("recorded");
        let back = decode(&v).expect("decodes");
        assert_eq!(
            back,
            sockchat::record::format::Decoded::Entry(sockchat::record::format::Stamped {
                t: Duration::from_micros(1500),
                entry: e
            }),
            "{v}"
        );
    }
}

/// Every number of a value set to `n`, every string to `s`, but the kind
/// and the time.
fn poison(v: &mut serde_json::Value, n: &serde_json::Value, s: &str, top: bool) {
    use serde_json::Value;
    match v {
        Value::Number(_) => *v = n.clone(),
        Value::String(_) => *v = Value::String(s.to_string()),
        Value::Array(a) => a.iter_mut().for_each(|x| poison(x, n, s, false)),
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if !(top && (k == "event" || k == "t_ms")) {
                    poison(x, n, s, false);
                }
            }
        }
        _ => {}
    }
}

/// A recording whose values are hostile (the largest numbers, zero,
/// negative and fractional ones, escapes and long strings) is either
/// refused with its line or replayed without a panic, one line at a time.
#[test]
fn hostile_values_are_refused_or_replayed_never_a_panic() {
    let path = tmp("hostile.jsonl");
    record_live(&path);
    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<&str> = text.lines().collect();
    let long = format!("\u{1b}[2J\u{202e}{}", "x".repeat(5000));
    let poisons: Vec<(serde_json::Value, &str)> = vec![
        (serde_json::json!(u64::MAX), "\u{1b}]0;owned\u{7}"),
        (serde_json::json!(0), ""),
        (serde_json::json!(-1), long.as_str()),
        (serde_json::json!(1e308), "127.0.0.1:1"),
        (serde_json::json!(0.5), "ESTABLISHED"),
    ];
    let (mut refused, mut replayed) = (0, 0);
    for i in 1..lines.len() {
        for (n, s) in &poisons {
            let mut v: serde_json::Value = serde_json::from_str(lines[i]).expect("json");
            poison(&mut v, n, s, true);
            let mut file = lines.clone();
            let bad = v.to_string();
            file[i] = &bad;
            match read((file.join("\n") + "\n").as_bytes()) {
                Err(ReadError::Line { line, .. }) => {
                    assert_eq!(line, i + 1, "the error names the line");
                    refused += 1;
                }
                Err(e) => panic!("{e}"),
                Ok(rec) => {
                    let base = Instant::now();
                    let mut app = replay_app(&rec.header, base);
                    app.update(Event::Resize(W, H));
                    for e in &rec.entries {
                        apply(&mut app, base, e);
                    }
                    let _ = screen(&app);
                    replayed += 1;
                }
            }
        }
    }
    assert!(refused > 50 && replayed > 60, "{refused} {replayed}");
    let _ = std::fs::remove_file(&path);
}
