//! What a person sees: the chat UI rendered into ratatui's TestBackend for
//! the main states (chat, socket panel, ECONNRESET, reconnect countdown,
//! narrow terminal).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sockchat::net::{CloseReason, SocketEvent, SocketInfo, Stats, SysError, Transport};
use sockchat::tui::app::{App, Event, UiConfig};
use sockchat::tui::view;
use sockchat_shared::sockopt::{KeepaliveSettings, TcpInfo, TcpSnapshot};
use sockchat_shared::{ChatKind, DisconnectReason, ServerMsg};

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

fn info() -> SocketInfo {
    let t = TcpInfo {
        len: 232,
        state: 1,
        snd_mss: 32741,
        rtt_us: 312,
        rttvar_us: 80,
        snd_cwnd: 10,
        snd_ssthresh: 0x7fff_ffff,
        unacked: 0,
        rto_us: 201_000,
        total_retrans: 0,
        bytes_acked: Some(1234),
        bytes_received: Some(5678),
        notsent_bytes: Some(0),
        min_rtt_us: Some(40),
        snd_wnd: None,
        last_data_recv_ms: 1000,
        last_ack_recv_ms: 1000,
        ..TcpInfo::default()
    };
    SocketInfo {
        snap: TcpSnapshot {
            info: Some(t),
            send_queue: Some(0),
            recv_queue: Some(0),
            sndbuf: Some(2_626_560),
            rcvbuf: Some(131_072),
            keepalive: Some(KeepaliveSettings {
                enabled: true,
                idle_secs: 60,
                interval_secs: 10,
                count: 5,
                user_timeout_ms: 0,
            }),
        },
        stats: Stats {
            frames_in: 12,
            frames_out: 8,
            bytes_in: 5678,
            bytes_out: 1234,
        },
        reading_paused: false,
    }
}

fn screen(a: &App) -> String {
    let (w, h) = a.size;
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| view::render(a, f)).expect("draw");
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        for x in 0..w {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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
    assert!(s.contains("23:40:05"), "timestamp: {s}");
    assert!(s.contains("Members (2)"), "{s}");
    assert!(s.contains("ESTABLISHED"), "{s}");
    assert!(s.contains("[lobby] hello bob"), "{s}");
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
    assert!(s.contains("peer wnd n/a"), "{s}");
    assert!(s.contains("mss 32741"), "{s}");
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
}
