//! What a person sees: the chat UI rendered into ratatui's TestBackend for
//! the main states (chat, socket panel, ECONNRESET, reconnect countdown,
//! narrow terminal).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sockchat::net::{CloseReason, NetCmd, SocketEvent, SysError, Transport};
use sockchat::tui::app::{Action, App, Event, UiConfig};
use sockchat::tui::view;
use sockchat_shared::{ChatKind, DisconnectReason, ServerMsg};

mod common;
use common::{info, screen};

/// 2026-11-21 23:40:00 UTC.
const WALL: u64 = 1_795_304_400_000;

fn app(width: u16, height: u16) -> (App, Instant) {
    let t0 = Instant::now();
    let mut a = App::new(UiConfig::default(), "alice", t0, WALL);
    a.update(Event::Resize(width, height));
    (a, t0)
}

fn sock(a: &mut App, e: SocketEvent) {
    a.update(Event::Socket(e));
}

fn server(a: &mut App, m: ServerMsg) {
    sock(a, SocketEvent::Server(m));
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

fn connected(a: &mut App) {
    sock(
        a,
        SocketEvent::Connecting {
            addr: "127.0.0.1:7878".into(),
            attempt: 1,
        },
    );
    sock(
        a,
        SocketEvent::Connected {
            local: addr("127.0.0.1:50123"),
            peer: addr("127.0.0.1:7878"),
            transport: Transport::Tcp,
        },
    );
    server(
        a,
        ServerMsg::Welcome {
            nick: "alice".into(),
            room: "lobby".into(),
            server: "sockchat-server 0.1.0".into(),
        },
    );
    server(
        a,
        ServerMsg::Who {
            room: "lobby".into(),
            nicks: vec!["alice".into(), "bob".into()],
        },
    );
}

fn chat(a: &mut App, from: &str, text: &str, secs: u64) {
    server(
        a,
        ServerMsg::Chat {
            room: "lobby".into(),
            from: from.into(),
            text: text.into(),
            kind: ChatKind::Say,
            ts_ms: WALL + secs * 1000,
            history: false,
        },
    );
}

#[test]
fn chat_lines_sidebar_and_status() {
    let (mut a, _) = app(80, 12);
    connected(&mut a);
    chat(&mut a, "bob", "hi alice", 5);
    a.update(Event::Paste("hello bob".into()));
    let s = screen(&a);
    println!("{s}");
    assert!(s.contains("bob: hi alice"), "{s}");
    // One clock: a live line shows when it reached us (the server's
    // stamp, 23:40:05, is not mixed with local times).
    assert!(s.contains("23:40:00 bob: hi alice"), "timestamp: {s}");
    assert!(s.contains("Members (2)"), "{s}");
    assert!(s.contains("ESTABLISHED"), "{s}");
    assert!(s.contains("[lobby] hello bob"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn socket_panel_shows_tls_version_and_cipher() {
    let (mut a, _) = app(140, 40);
    connected(&mut a);
    let plain = screen(&a);
    assert!(!plain.contains("TLS13_"), "{plain}");
    let mut i = info();
    i.tls = Some(sockchat::net::tls::TlsInfo {
        version: "TLSv1.3".into(),
        cipher: "TLS13_AES_256_GCM_SHA384".into(),
        fingerprint: sockchat_shared::fingerprint::Fingerprint::of_der(b"cert"),
        trust: sockchat::net::tls::Trust::Pinned,
    });
    sock(&mut a, SocketEvent::Info(Box::new(i)));
    let s = screen(&a);
    assert!(s.contains("TLSv1.3 TLS13_AES_256_GCM_SHA384"), "{s}");
}

#[test]
fn socket_panel_shows_values() {
    let (mut a, _) = app(140, 40);
    connected(&mut a);
    sock(&mut a, SocketEvent::Info(Box::new(info())));
    let s = screen(&a);
    println!("{s}");
    assert!(s.contains("127.0.0.1:50123"), "{s}");
    assert!(s.contains("312 µs"), "{s}");
    assert!(s.contains("ssthresh inf"), "{s}");
    assert!(
        s.contains("window   peer n/a  ours n/a"),
        "not reported: {s}"
    );
    assert!(s.contains("mss 32741"), "{s}");
    assert!(s.contains("sndbuf") || s.contains("snd 2.5 MiB"), "{s}");
    assert!(s.contains("out 0 B  in 0 B"), "SIOCOUTQ/SIOCINQ: {s}");
    assert!(s.contains("dead in 1m 49s"), "keepalive countdown: {s}");
    insta::assert_snapshot!(s);
}

#[test]
fn reset_event_and_countdown() {
    let (mut a, t0) = app(140, 30);
    connected(&mut a);
    sock(&mut a, SocketEvent::Info(Box::new(info())));
    sock(
        &mut a,
        SocketEvent::Error(SysError {
            syscall: "read",
            errno: 104,
        }),
    );
    sock(
        &mut a,
        SocketEvent::Closed(CloseReason::Peer(DisconnectReason::Reset)),
    );
    sock(
        &mut a,
        SocketEvent::Reconnecting {
            delay: Duration::from_millis(2000),
            attempt: 2,
        },
    );
    a.update(Event::Tick(t0 + Duration::from_millis(500)));
    let s = screen(&a);
    println!("{s}");
    assert!(s.contains("read: ECONNRESET (104)"), "{s}");
    assert!(s.contains("RECONNECTING in 1.5 s (attempt 2)"), "{s}");
    assert!(s.contains("(last poll)"), "stale TCP_INFO is marked: {s}");
    insta::assert_snapshot!(s);
}

#[test]
fn narrow_terminal() {
    let (mut a, _) = app(40, 10);
    connected(&mut a);
    chat(
        &mut a,
        "bob",
        "a long line with 世界 wide characters that must wrap",
        1,
    );
    let s = screen(&a);
    println!("{s}");
    // No sidebar, no panel: the chat gets the whole width and wraps.
    assert!(!s.contains("Members"), "{s}");
    assert!(!s.contains("socket"), "{s}");
    assert!(s.contains("世界 wide"), "{s}");
    for row in s.lines() {
        assert!(unicode_width::UnicodeWidthStr::width(row) <= 40, "{row:?}");
    }
    insta::assert_snapshot!(s);
}

#[test]
fn new_messages_marker_and_unread_counts() {
    let (mut a, _) = app(80, 12);
    connected(&mut a);
    for i in 0..30 {
        chat(&mut a, "bob", &format!("line {i}"), i);
    }
    a.scroll_up(10);
    chat(&mut a, "bob", "fresh", 40);
    chat(&mut a, "bob", "fresher", 41);
    server(
        &mut a,
        ServerMsg::Chat {
            room: "dev".into(),
            from: "carol".into(),
            text: "psst".into(),
            kind: ChatKind::Say,
            ts_ms: WALL,
            history: false,
        },
    );
    let s = screen(&a);
    println!("{s}");
    assert!(s.contains("2 new messages below"), "{s}");
    assert!(s.contains(" dev (1)"), "unread count in the sidebar: {s}");
    assert!(!s.contains("fresher"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn help_overlay() {
    // Tall enough for every command (the server's account and operator
    // commands made the list longer than 30 rows).
    let (mut a, _) = app(100, 40);
    connected(&mut a);
    a.show_help = true;
    let s = screen(&a);
    println!("{s}");
    assert!(s.contains("PgUp / PgDn"), "{s}");
    assert!(
        s.contains("Alt-→ / Alt-←            next / previous room"),
        "{s}"
    );
    // Longer than the screen: End scrolls to the last line, and the
    // overlay stays open.
    a.update(Event::Key(KeyEvent::new(KeyCode::End, KeyModifiers::NONE)));
    assert!(a.show_help);
    let s = screen(&a);
    assert!(
        s.contains("/fault fin|rst|close-unread|stop-reading|resume|crash"),
        "{s}"
    );
    assert!(s.contains("any other key closes this help"), "{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn peer_sent_fin_and_server_view_of_a_socket() {
    let (mut a, _) = app(120, 20);
    a.panel_override = Some(false);
    connected(&mut a);
    server(
        &mut a,
        ServerMsg::SockInfo {
            nick: "bob".into(),
            fields: vec![
                ("tcpi_state".into(), "ESTABLISHED".into()),
                ("peer_rwnd".into(), "0".into()),
                ("outbox_frames".into(), "17".into()),
            ],
        },
    );
    sock(
        &mut a,
        SocketEvent::HalfClosed(sockchat::net::HalfClose::PeerSentFin),
    );
    let s = screen(&a);
    println!("{s}");
    assert!(s.contains("server's view of bob's socket:"), "{s}");
    assert!(
        s.contains("tcpi_state=ESTABLISHED  peer_rwnd=0  outbox_frames=17"),
        "{s}"
    );
    assert!(s.contains("read: EOF (peer sent FIN)"), "{s}");
    assert!(s.contains("HALF-CLOSED (peer sent FIN)"), "{s}");
}

/// Outputs that go nowhere (no bell, no chat log).
fn no_outputs() -> sockchat::tui::Outputs {
    sockchat::tui::Outputs {
        bell: Box::new(std::io::sink()),
        chatlog: None,
        record: None,
    }
}

/// The real loop, driven with replayed terminal input and socket events
/// into a TestBackend: keys become net commands, events become screen.
#[tokio::test]
async fn run_loop_replays_events_into_a_test_backend() {
    use crossterm::event::{Event as CEvent, KeyCode, KeyEvent, KeyModifiers};
    let (mut a, _) = app(100, 16);
    let mut term = Terminal::new(TestBackend::new(100, 16)).expect("terminal");
    let (ev_tx, ev_rx) = tokio::sync::mpsc::channel(64);
    let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::channel(64);
    for e in [
        SocketEvent::Connected {
            local: addr("127.0.0.1:50123"),
            peer: addr("127.0.0.1:7878"),
            transport: Transport::Tcp,
        },
        SocketEvent::Server(ServerMsg::Welcome {
            nick: "alice".into(),
            room: "lobby".into(),
            server: "srv".into(),
        }),
        SocketEvent::Server(ServerMsg::Left {
            room: "lobby".into(),
            nick: "bob".into(),
            reason: Some(DisconnectReason::Reset),
        }),
    ] {
        ev_tx.send(e).await.expect("queue");
    }
    drop(ev_tx);
    let keys: Vec<std::io::Result<CEvent>> = "hi"
        .chars()
        .map(KeyCode::Char)
        .chain([KeyCode::Enter])
        .map(|k| Ok(CEvent::Key(KeyEvent::new(k, KeyModifiers::NONE))))
        .collect();
    let input = futures::stream::iter(keys);
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        sockchat::tui::run_loop(&mut term, &mut a, input, ev_rx, cmd_tx, no_outputs()),
    )
    .await
    .expect("loop ends when its sources end")
    .expect("no error");
    assert!(out.is_none());
    let mut sent = Vec::new();
    while let Ok(c) = cmd_rx.try_recv() {
        sent.push(c);
    }
    assert!(
        sent.iter()
            .any(|c| matches!(c, sockchat::net::NetCmd::Send {
            msg: sockchat_shared::ClientMsg::Say { room, text },
            ..
        } if room == "lobby" && text == "hi")),
        "{sent:?}"
    );
    let s = format!("{}", term.backend());
    assert!(
        s.contains("bob left lobby: connection reset by peer (ECONNRESET 104)"),
        "{s}"
    );
}

/// A nick has one colour, in every session and every line.
#[test]
fn nick_colours_are_stable() {
    let draw = |a: &App| {
        let mut t = Terminal::new(TestBackend::new(80, 12)).expect("terminal");
        t.draw(|f| view::render(a, f)).expect("draw");
        t.backend().buffer().clone()
    };
    let find = |buf: &ratatui::buffer::Buffer, word: &str| {
        let area = buf.area;
        for y in 0..area.height {
            let row: String = (0..area.width).map(|x| buf[(x, y)].symbol()).collect();
            if let Some(i) = row.find(word) {
                return buf[(row[..i].chars().count() as u16, y)].fg;
            }
        }
        panic!("{word} not on screen");
    };
    let (mut a, _) = app(80, 12);
    connected(&mut a);
    chat(&mut a, "bob", "one", 1);
    let (mut b, _) = app(80, 12);
    connected(&mut b);
    chat(&mut b, "bob", "two", 2);
    let ca = find(&draw(&a), "bob: one");
    let cb = find(&draw(&b), "bob: two");
    assert_eq!(ca, cb);
    assert_eq!(ca, view::nick_color("bob"));
    assert_ne!(view::nick_color("bob"), view::nick_color("alice"));
}

/// No size is too small: every layout from 1x1 up renders without a panic,
/// in every state (panel forced on, help open, scrolled, marker shown).
#[test]
fn tiny_and_odd_sizes_never_panic() {
    for (w, h) in [
        (1, 1),
        (2, 1),
        (5, 2),
        (12, 3),
        (30, 4),
        (47, 7),
        (80, 5),
        (200, 6),
    ] {
        let (mut a, t0) = app(w, h);
        connected(&mut a);
        sock(&mut a, SocketEvent::Info(Box::new(info())));
        for i in 0..20 {
            chat(&mut a, "bob", &format!("line {i} 世界👋"), i);
        }
        a.scroll_up(5);
        chat(&mut a, "bob", "below", 30);
        a.update(Event::Paste(
            "typed text 世界 that is long enough to scroll".into(),
        ));
        for panel in [Some(true), Some(false)] {
            a.panel_override = panel;
            for help in [false, true] {
                a.show_help = help;
                let _ = screen(&a);
            }
        }
        sock(
            &mut a,
            SocketEvent::Reconnecting {
                delay: Duration::from_secs(1),
                attempt: 2,
            },
        );
        a.update(Event::Tick(t0 + Duration::from_secs(5)));
        let _ = screen(&a);
    }
}

/// F3 shows the event log on a terminal too narrow for the panel.
#[test]
fn event_log_overlay_on_a_narrow_terminal() {
    let (mut a, _) = app(60, 14);
    connected(&mut a);
    sock(
        &mut a,
        SocketEvent::Error(SysError {
            syscall: "write",
            errno: 32,
        }),
    );
    assert!(!screen(&a).contains(" event log "));
    a.update(Event::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::F(3),
        crossterm::event::KeyModifiers::NONE,
    )));
    let s = screen(&a);
    println!("{s}");
    assert!(s.contains(" event log "), "{s}");
    assert!(s.contains("write: EPIPE (32) broken pipe"), "{s}");
    assert!(s.contains("connecting to 127.0.0.1:7878"), "{s}");
}

/// The TCP state diagram lights the kernel's current state: CLOSE_WAIT
/// after the peer's FIN, nothing else.
#[test]
fn state_diagram_lights_close_wait() {
    let (mut a, _) = app(140, 40);
    connected(&mut a);
    let mut i = info();
    if let Some(t) = i.snap.info.as_mut() {
        t.state = 8; // CLOSE_WAIT
    }
    sock(
        &mut a,
        SocketEvent::HalfClosed(sockchat::net::HalfClose::PeerSentFin),
    );
    sock(&mut a, SocketEvent::Info(Box::new(i)));
    let mut t = Terminal::new(TestBackend::new(140, 40)).expect("terminal");
    t.draw(|f| view::render(&a, f)).expect("draw");
    let buf = t.backend().buffer().clone();
    let lit = |word: &str| -> bool {
        for y in 0..40u16 {
            let row: String = (0..140u16).map(|x| buf[(x, y)].symbol()).collect();
            // The diagram row, not the "tcpi" line above it.
            if let Some(i) = row
                .find(&format!("{word}→"))
                .or_else(|| row.find(&format!("→{word}")))
            {
                let col = row[..i].chars().count() as u16 + u16::from(row[i..].starts_with('→'));
                return buf[(col, y)].bg == ratatui::style::Color::Green;
            }
        }
        panic!("{word} not in the diagram");
    };
    assert!(lit("CLOSE_WAIT"), "CLOSE_WAIT lit");
    assert!(!lit("ESTABLISHED"), "ESTABLISHED not lit");
    assert!(!lit("FIN_WAIT2"), "FIN_WAIT2 not lit");
    let s = screen(&a);
    assert!(s.contains("HALF-CLOSED (peer sent FIN)"), "{s}");
    assert!(s.contains("tcpi     CLOSE_WAIT"), "{s}");
}

/// Issue 15 item 5, the UI's part: a typed line shows as pending (dimmed,
/// marked) until the server's echo is confirmed; a failed line stays, marked
/// failed with the reason; an unanswered ping shows as growing lag in the
/// status bar instead of the last round trip.
#[test]
fn pending_failed_lines_and_lag() {
    let (mut a, t0) = app(100, 20);
    connected(&mut a);
    sock(&mut a, SocketEvent::Latency(Duration::from_micros(900)));
    for c in "hello there".chars() {
        a.update(Event::Key(crossterm::event::KeyEvent::new(
            crossterm::event::KeyCode::Char(c),
            crossterm::event::KeyModifiers::NONE,
        )));
    }
    let acts = a.update(Event::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Enter,
        crossterm::event::KeyModifiers::NONE,
    )));
    let id = match acts.as_slice() {
        [Action::Net(NetCmd::Send { id: Some(id), .. })] => *id,
        other => panic!("{other:?}"),
    };
    let s = screen(&a);
    assert!(s.contains("⋯ alice: hello there (sending)"), "{s}");
    assert!(s.contains("1 sending"), "{s}");
    assert!(s.contains("ping 900 µs"), "{s}");
    // The ping goes unanswered: the status bar shows the wait growing.
    a.update(Event::Tick(t0 + Duration::from_secs(4)));
    sock(&mut a, SocketEvent::Lag { waiting_ms: 4200 });
    let s = screen(&a);
    assert!(s.contains("no answer for 4.2 s"), "{s}");
    assert!(!s.contains("ping 900"), "{s}");
    assert!(s.contains("(sending, 4 s)"), "{s}");
    // The echo and its confirmation: the line is an ordinary line now.
    chat(&mut a, "alice", "hello there", 5);
    sock(&mut a, SocketEvent::LineConfirmed { id });
    let s = screen(&a);
    assert!(!s.contains("sending"), "{s}");
    assert!(s.contains("alice: hello there"), "{s}");
    // A line that fails stays, with what it said and why.
    let acts = a.submit("are you there?");
    let Some(Action::Net(NetCmd::Send { id: Some(id), .. })) = acts.first() else {
        panic!("{acts:?}");
    };
    sock(
        &mut a,
        SocketEvent::LineFailed {
            id: *id,
            why: "the connection died before the server echoed it".into(),
        },
    );
    let s = screen(&a);
    assert!(
        s.contains("! not sent: alice: are you there? — the connection died"),
        "{s}"
    );
    assert!(!s.contains("sending"), "{s}");
}

/// Names from the network are shown sanitised but kept as sent: a room
/// whose name holds an escape sequence is drawn harmless and is still the
/// room a typed line is addressed to (issue 15 item 7).
#[test]
fn escapes_in_names_are_shown_harmless_and_stay_addressable() {
    let (mut a, _) = app(100, 20);
    connected(&mut a);
    let evil = "evil\x1b[2J\u{202e}room";
    server(
        &mut a,
        ServerMsg::Joined {
            room: evil.into(),
            nick: "alice".into(),
        },
    );
    server(
        &mut a,
        ServerMsg::Chat {
            room: evil.into(),
            from: "m\x1b[31mallory".into(),
            text: "hi\x07 there".into(),
            kind: ChatKind::Say,
            ts_ms: WALL,
            history: false,
        },
    );
    a.update(Event::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('n'),
        crossterm::event::KeyModifiers::CONTROL,
    )));
    assert_eq!(a.room().name, evil, "kept exactly as sent");
    let s = screen(&a);
    assert!(
        !s.contains('\x1b') && !s.contains('\u{202e}') && !s.contains('\x07'),
        "{s}"
    );
    assert!(s.contains("evil\u{fffd}[2J\u{fffd}room"), "{s}");
    assert!(s.contains("m\u{fffd}[31mallory: hi\u{fffd} there"), "{s}");
    let acts = a.submit("hello");
    assert!(
        matches!(
            acts.as_slice(),
            [Action::Net(NetCmd::Send { msg: sockchat_shared::ClientMsg::Say { room, .. }, .. })]
                if room == evil
        ),
        "{acts:?}"
    );
}

fn chat_in(a: &mut App, room: &str, from: &str, text: &str, ts_ms: u64, history: bool) {
    server(
        a,
        ServerMsg::Chat {
            room: room.into(),
            from: from.into(),
            text: text.into(),
            kind: ChatKind::Say,
            ts_ms,
            history,
        },
    );
}

fn key(a: &mut App, code: KeyCode, mods: KeyModifiers) {
    a.update(Event::Key(KeyEvent::new(code, mods)));
}

/// Issue 16 item 5: words are not cut at the edge (`continuat|ion`), rows
/// after the first hang under the text, and a flag, a skin-toned hand and
/// a ZWJ family are each one cluster of the width ratatui gives it.
#[test]
fn words_wrap_whole_under_a_hanging_indent_and_clusters_stay_whole() {
    let (mut a, _) = app(60, 14);
    a.panel_override = Some(false);
    connected(&mut a);
    let text = "the continuation of this message wraps between words 🇫🇷 👍🏽 👨‍👩‍👧‍👦 end";
    chat_in(&mut a, "lobby", "bob", text, WALL, false);
    let s = screen(&a);
    println!("{s}");
    assert!(s.contains("continuation"), "a word is never cut:\n{s}");
    assert!(
        s.contains("🇫🇷") && s.contains("👍🏽") && s.contains("👨‍👩‍👧‍👦"),
        "{s}"
    );
    let rows: Vec<&str> = s.lines().collect();
    let first = rows
        .iter()
        .position(|l| l.contains("bob: the"))
        .expect("the line");
    // The continuation rows start under the text, past `HH:MM:SS bob: `.
    let indent = " ".repeat("23:40:00 bob: ".len());
    assert!(
        rows[first + 1].starts_with(&indent),
        "{:?}",
        rows[first + 1]
    );
    // No cell of the buffer holds part of a cluster, but a flag: its two
    // regional indicators get a cell each, side by side (tui/flags.rs).
    let mut t = Terminal::new(TestBackend::new(60, 14)).expect("terminal");
    t.draw(|f| view::render(&a, f)).expect("draw");
    let buf = t.backend().buffer();
    for (i, cell) in buf.content().iter().enumerate() {
        let sym = cell.symbol();
        assert!(
            !sym.starts_with('\u{200d}') && sym != "\u{1f3fd}",
            "a broken cluster in a cell: {sym:?}"
        );
        if sym == "\u{1f1eb}" {
            assert_eq!(buf.content()[i + 1].symbol(), "\u{1f1f7}", "🇫 then 🇷");
        }
    }
}

/// Issue 16 item 5: at 60×15 the help is longer than the screen; it
/// scrolls (the title says where) and its last line can be reached.
#[test]
fn help_scrolls_in_a_small_terminal() {
    let (mut a, _) = app(60, 15);
    connected(&mut a);
    key(&mut a, KeyCode::F(1), KeyModifiers::NONE);
    let s = screen(&a);
    assert!(s.contains("(↑↓ PgUp PgDn)"), "{s}");
    assert!(!s.contains("any other key closes"), "{s}");
    key(&mut a, KeyCode::End, KeyModifiers::NONE);
    let s = screen(&a);
    println!("{s}");
    assert!(a.show_help, "a scroll key keeps it open");
    assert!(
        s.contains("input line)"),
        "the last line is reachable:\n{s}"
    );
    key(&mut a, KeyCode::Home, KeyModifiers::NONE);
    assert!(screen(&a).contains("sockchat — keys"));
}

/// Issue 16 item 5: a long room name gives way to its counts; without the
/// sidebar the status bar lists the rooms with new lines.
#[test]
fn counts_always_show_and_an_activity_line_replaces_the_sidebar() {
    let (mut a, _) = app(80, 16);
    a.panel_override = Some(false);
    connected(&mut a);
    server(
        &mut a,
        ServerMsg::Joined {
            room: "projectdiscussion".into(),
            nick: "alice".into(),
        },
    );
    key(&mut a, KeyCode::Char('1'), KeyModifiers::ALT);
    assert_eq!(a.room().name, "lobby", "Alt-1: the first room");
    for i in 0..3 {
        let text = if i == 1 { "alice: look" } else { "chatter" };
        chat_in(&mut a, "projectdiscussion", "bob", text, WALL, false);
    }
    let s = screen(&a);
    println!("{s}");
    assert!(s.contains(" projectd… (3 @1)│"), "{s}");
    a.update(Event::Resize(60, 16));
    let s = screen(&a);
    println!("{s}");
    let status = s.lines().last().unwrap_or("");
    assert!(status.contains("Act: projectdisc…(3 @1)"), "{status}");
    key(&mut a, KeyCode::Char('2'), KeyModifiers::ALT);
    let s = screen(&a);
    assert!(!s.contains("Act:"), "seen: {s}");
}

/// Issue 16 item 5: replayed history is marked, at the server's time,
/// with a date line where the day changes; live lines show our clock.
#[test]
fn history_is_marked_and_a_date_line_separates_days() {
    let (mut a, _) = app(90, 16);
    a.panel_override = Some(false);
    connected(&mut a);
    let yesterday = WALL - 86_400_000;
    chat_in(&mut a, "lobby", "bob", "said yesterday", yesterday, true);
    chat_in(&mut a, "lobby", "bob", "said now", WALL + 5000, false);
    let s = screen(&a);
    println!("{s}");
    let at = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle:?}:\n{s}"));
    assert!(
        at("── history") < at("── Friday 20 November 2026 ──"),
        "{s}"
    );
    assert!(at("── Friday 20 November 2026 ──") < at("↶ bob: said yesterday"));
    assert!(at("said yesterday") < at("── Saturday 21 November 2026 ──"));
    assert!(at("── Saturday 21 November 2026 ──") < at("23:40:00 bob: said now"));
}

/// Issue 16 item 5: PgUp past the oldest line keeps the screen full.
#[test]
fn scrolling_past_the_oldest_line_keeps_the_screen_full() {
    let (mut a, _) = app(80, 12);
    a.panel_override = Some(false);
    connected(&mut a);
    for i in 0..30 {
        chat_in(&mut a, "lobby", "bob", &format!("line {i}"), WALL, false);
    }
    for _ in 0..10 {
        key(&mut a, KeyCode::PageUp, KeyModifiers::NONE);
    }
    let s = screen(&a);
    println!("{s}");
    let chat_rows = s.lines().filter(|l| l.contains("23:40:00")).count();
    assert!(chat_rows >= 8, "a full screen of lines:\n{s}");
    assert!(
        s.contains("welcome alice"),
        "the oldest line is at the top:\n{s}"
    );
}

/// Issue 16 item 2: the loop rings the terminal bell once for a private
/// message (the default `bell = "mentions"`), not for a plain line.
#[tokio::test]
async fn the_loop_rings_the_bell_for_a_private_message() {
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let bell = Shared::default();
    let run = |events: Vec<SocketEvent>| {
        let bell = bell.clone();
        async move {
            let (mut a, _) = app(80, 12);
            connected(&mut a);
            let mut term = Terminal::new(TestBackend::new(80, 12)).expect("terminal");
            let (ev_tx, ev_rx) = tokio::sync::mpsc::channel(64);
            let (cmd_tx, _cmd_rx) = tokio::sync::mpsc::channel(64);
            for e in events {
                ev_tx.send(e).await.expect("queue");
            }
            drop(ev_tx);
            let input = futures::stream::iter(Vec::<std::io::Result<_>>::new());
            let out = sockchat::tui::Outputs {
                bell: Box::new(bell),
                chatlog: None,
                record: None,
            };
            tokio::time::timeout(
                Duration::from_secs(5),
                sockchat::tui::run_loop(&mut term, &mut a, input, ev_rx, cmd_tx, out),
            )
            .await
            .expect("ends")
            .expect("no error");
        }
    };
    let plain = SocketEvent::Server(ServerMsg::Chat {
        room: "lobby".into(),
        from: "bob".into(),
        text: "nothing for you".into(),
        kind: ChatKind::Say,
        ts_ms: WALL,
        history: false,
    });
    run(vec![plain]).await;
    assert!(bell.0.lock().expect("lock").is_empty(), "no bell");
    let pm = SocketEvent::Server(ServerMsg::Private {
        from: "bob".into(),
        to: "alice".into(),
        text: "psst".into(),
        ts_ms: WALL,
    });
    run(vec![pm]).await;
    assert_eq!(*bell.0.lock().expect("lock"), b"\x07");
}

fn cluster_notice(a: &mut App, text: &str) {
    a.update(Event::Socket(SocketEvent::Server(ServerMsg::Notice {
        text: text.into(),
    })));
}

/// Cluster mode: the node the user is on and the link state, from the
/// server's notices (PROTOCOL.md "Cluster mode").
#[test]
fn the_panel_shows_the_node_and_follows_the_link() {
    let mut a = App::new(UiConfig::default(), "al", Instant::now(), 1_795_304_400_000);
    a.update(Event::Resize(150, 40));
    a.update(Event::Socket(SocketEvent::Connected {
        local: "127.0.0.1:50123".parse().expect("addr"),
        peer: "127.0.0.1:7878".parse().expect("addr"),
        transport: Transport::Tcp,
    }));
    a.update(Event::Socket(SocketEvent::Server(ServerMsg::Welcome {
        nick: "al".into(),
        room: "lobby".into(),
        server: "sockchat-server 0.1.0".into(),
    })));
    assert!(!screen(&a).contains("link up"), "no cluster: no node line");
    cluster_notice(&mut a, &sockchat_shared::cluster::describe("n2", true, 1));
    let s = screen(&a);
    assert!(s.contains("node     n2  link up"), "{s}");
    cluster_notice(&mut a, sockchat_shared::cluster::LINK_LOST);
    let s = screen(&a);
    assert!(
        s.contains("node     n2  link down: local rooms only"),
        "{s}"
    );
    cluster_notice(&mut a, sockchat_shared::cluster::LINK_BACK);
    assert!(screen(&a).contains("node     n2  link up"));
    // Another server (a reconnect to a single process) has no node.
    a.update(Event::Socket(SocketEvent::Server(ServerMsg::Welcome {
        nick: "al".into(),
        room: "lobby".into(),
        server: "sockchat-server 0.1.0".into(),
    })));
    assert!(!screen(&a).contains("node     n2"));
}

/// `/topic`: the chat's title shows the room's topic (gone when cleared);
/// `/stats` is a block of fields, four a line.
#[test]
fn topic_in_the_title_and_stats_as_a_block() {
    let (mut a, _) = app(120, 14);
    a.panel_override = Some(false);
    connected(&mut a);
    let topic = |text: &str| ServerMsg::Topic {
        room: "lobby".into(),
        text: text.into(),
        by: "bob".into(),
        changed: true,
    };
    server(&mut a, topic("release friday"));
    let s = screen(&a);
    assert!(s.contains(" lobby — release friday "), "{s}");
    assert!(
        s.contains("bob set the topic of lobby: release friday"),
        "{s}"
    );
    server(&mut a, topic(""));
    let s = screen(&a);
    assert!(!s.contains("lobby — "), "{s}");
    assert!(s.contains("bob cleared the topic of lobby"), "{s}");
    let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
    server(
        &mut a,
        ServerMsg::Stats {
            fields: vec![
                kv("users", "2"),
                kv("rooms", "1"),
                kv("udp_sessions", "0"),
                kv("messages_per_sec", "0.5"),
                kv("deliveries", "7"),
            ],
        },
    );
    let s = screen(&a);
    assert!(s.contains("server stats (/stats):"), "{s}");
    assert!(
        s.contains("users=2  rooms=1  udp_sessions=0  messages_per_sec=0.5"),
        "{s}"
    );
    assert!(s.contains("  deliveries=7"), "{s}");
}

/// A regional-indicator flag reaches the terminal as two cells, one
/// indicator each (what tmux draws), never as one 2-cell grapheme whose
/// second cell ratatui stops tracking (tui/flags.rs).
#[test]
fn flags_are_drawn_as_two_cells() {
    let (mut a, _) = app(80, 12);
    connected(&mut a);
    chat(&mut a, "bob", "flags 🇫🇷🇩🇪 end", 1);
    let (w, h) = a.size;
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| view::render(&a, f)).expect("draw");
    let buf = t.backend().buffer();
    let row = (0..h)
        .find(|&y| (0..w).any(|x| buf[(x, y)].symbol() == "🇫"))
        .expect("a row with the flag");
    let x = (0..w).find(|&x| buf[(x, row)].symbol() == "🇫").expect("x");
    let cells: Vec<&str> = (x..x + 5).map(|x| buf[(x, row)].symbol()).collect();
    assert_eq!(cells, ["🇫", "🇷", "🇩", "🇪", " "]);
    assert_eq!(
        buf[(x + 5, row)].symbol(),
        "e",
        "the text goes on after them"
    );
}
