//! The TUI's wire view (F4) rendered into ratatui's TestBackend from
//! recorded captures: two pcap files written by `sockchat lab --wire
//! --pcap` on this kernel (`data/wire-*.pcap`: a normal close, FIN both
//! ways; SO_LINGER 0, an RST), read back, parsed by the capture's own
//! parser, fed to the app as the net task would, and drawn. The listening
//! end reads `server`, the connecting one `me`, as for the client's own
//! connection.

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
use ratatui::style::Color;
use sockchat::net::sock_diag::KernelSocket;
use sockchat::net::{AfterClose, CloseReason, SocketEvent, Transport, WireNews};
use sockchat::tui::app::{App, Event, UiConfig};
use sockchat::tui::view;
use sockchat::wire::capture::RawPacket;
use sockchat::wire::packet::Parser;

/// 2026-11-21 23:40:00 UTC.
const WALL: u64 = 1_795_304_400_000;

/// The packets of a pcap file in `tests/data`, and the listening port
/// (where the first SYN went).
fn recorded(name: &str) -> (Vec<RawPacket>, u16, u16) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let file = std::fs::File::open(&path).expect("fixture");
    let mut r = pcap_file::pcap::PcapReader::new(file).expect("pcap");
    let mut raw = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.expect("packet");
        raw.push(RawPacket {
            ts: p.timestamp,
            orig_len: p.orig_len,
            data: p.data.into_owned(),
        });
    }
    // IPv4, 20-byte header: ports at 20..24.
    let syn = &raw[0].data;
    let src = u16::from_be_bytes([syn[20], syn[21]]);
    let dst = u16::from_be_bytes([syn[22], syn[23]]);
    (raw, src, dst)
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An app that saw the recorded connection as the net task reports it:
/// the handshake in one poll, the state, the rest in the next, the close,
/// what the kernel kept; the wire view opened with F4.
fn app_after(name: &str, kept: Option<KernelSocket>, reason: &str) -> (App, Instant) {
    let (raw, me, server) = recorded(name);
    let mut parser = Parser::new(server);
    let segs: Vec<_> = raw.iter().filter_map(|p| parser.push(p)).collect();
    assert_eq!(segs.len(), raw.len(), "every recorded packet parses");
    let t0 = Instant::now();
    let mut a = App::new(UiConfig::default(), "alice", t0, WALL);
    a.update(Event::Resize(200, 24));
    a.panel_override = Some(false);
    let mut sock = |e| {
        a.update(Event::Socket(e));
    };
    sock(SocketEvent::Connecting {
        addr: format!("127.0.0.1:{server}"),
        attempt: 1,
    });
    sock(SocketEvent::Connected {
        local: addr(me),
        peer: addr(server),
        transport: Transport::Tcp,
    });
    let (hs, rest) = segs.split_at(3);
    sock(SocketEvent::Wire(Box::new(WireNews::Packets {
        segments: hs.to_vec(),
        lost: 0,
    })));
    sock(SocketEvent::TcpState {
        from: "SYN_SENT",
        to: "ESTABLISHED",
    });
    sock(SocketEvent::Closed(CloseReason::Local(reason.into())));
    sock(SocketEvent::Wire(Box::new(WireNews::Packets {
        segments: rest.to_vec(),
        lost: 0,
    })));
    sock(SocketEvent::AfterClose(Box::new(AfterClose {
        local: addr(me),
        peer: addr(server),
        socket: kept,
        error: None,
    })));
    a.update(Event::Key(KeyEvent::new(KeyCode::F(4), KeyModifiers::NONE)));
    assert!(a.show_wire);
    (a, t0)
}

fn draw(a: &App) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(a.size.0, a.size.1)).expect("terminal");
    t.draw(|f| view::render(a, f)).expect("draw");
    t
}

fn screen(t: &Terminal<TestBackend>) -> String {
    let b = t.backend().buffer();
    (0..b.area.height)
        .map(|y| {
            (0..b.area.width)
                .map(|x| b[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The foreground colour of the first cell of `needle` on screen.
fn fg_of(t: &Terminal<TestBackend>, needle: &str) -> Color {
    let b = t.backend().buffer();
    for y in 0..b.area.height {
        let row: String = (0..b.area.width)
            .map(|x| b[(x, y)].symbol().to_string())
            .collect();
        if let Some(i) = row.find(needle) {
            // Cells are one column each here (ASCII before the needle).
            let x = row[..i].chars().count() as u16;
            return b[(x, y)].fg;
        }
    }
    panic!("{needle:?} not on screen:\n{}", screen(t));
}

#[test]
fn normal_close_handshake_data_fins_and_the_time_wait_left() {
    let kept = KernelSocket {
        state: "TIME_WAIT",
        timer: Some("timewait"),
        expires: Some(Duration::from_secs(60)),
    };
    let (mut a, t0) = app_after("wire-normal-close.pcap", Some(kept), "quit");
    let t = draw(&a);
    let s = screen(&t);
    for want in [
        "wire: this connection's packets (F4 closes)",
        "── connection 127.0.0.1:",
        "me.33172 > server.37013: Flags [S], seq 0, win 65495, options [mss 65495,sackOK,TS val",
        "server.37013 > me.33172: Flags [S.], seq 0, ack 1, win 65483",
        "me.33172 > server.37013: Flags [P.], seq 1:12, ack 1, win 64, length 11",
        "---- tcp state SYN_SENT -> ESTABLISHED",
        "---- CLOSED: quit",
        "me.33172 > server.37013: Flags [F.], seq 12, ack 1",
        "server.37013 > me.33172: Flags [F.], seq 1, ack 13",
        "after our close the kernel keeps the socket in TIME_WAIT, 60 s left",
    ] {
        assert!(s.contains(want), "{want:?} not on screen:\n{s}");
    }
    // The state change comes between the handshake and the data.
    assert!(s.find("tcp state").unwrap() < s.find("Flags [P.]").unwrap());
    assert_eq!(fg_of(&t, "[S]"), Color::LightGreen);
    assert_eq!(fg_of(&t, "[S.]"), Color::LightGreen);
    assert_eq!(fg_of(&t, "[F.]"), Color::Yellow);
    assert_eq!(fg_of(&t, "[P.]"), Color::Reset);
    insta::assert_snapshot!(t.backend());

    // The kernel's timer counts down; the socket panel shows it too, and
    // the state diagram lights TIME_WAIT.
    a.update(Event::Tick(t0 + Duration::from_secs(15)));
    a.panel_override = Some(true);
    let s = screen(&draw(&a));
    assert!(s.contains("45 s left"), "{s}");
    assert!(
        s.contains("kept     TIME_WAIT 45 s left (sock_diag)"),
        "{s}"
    );
    let lit = view::diagram_lines(&a)
        .into_iter()
        .flat_map(|l| l.spans)
        .find(|sp| sp.style.bg == Some(Color::Green))
        .expect("a lit state");
    assert_eq!(lit.content, "TIME_WAIT");
}

#[test]
fn linger_zero_rst_in_red_and_nothing_kept() {
    let (a, _) = app_after(
        "wire-linger-zero.pcap",
        None,
        "we reset the connection (fault rst)",
    );
    let t = draw(&a);
    let s = screen(&t);
    assert!(
        s.contains("me.51982 > server.41309: Flags [R.], seq 1, ack 1, win 64, length 0"),
        "{s}"
    );
    assert_eq!(fg_of(&t, "[R.]"), Color::LightRed);
    assert!(
        s.contains("the kernel keeps nothing of 127.0.0.1:51982"),
        "{s}"
    );
    assert!(!s.contains("TIME_WAIT,"), "{s}");
    insta::assert_snapshot!(t.backend());
}

#[test]
fn without_capture_the_view_says_why_and_what_to_run() {
    let t0 = Instant::now();
    let mut a = App::new(UiConfig::default(), "alice", t0, WALL);
    a.update(Event::Resize(240, 12));
    a.panel_override = Some(false);
    let why = "cannot capture this connection's packets: Operation not permitted (os error 1). Capturing needs CAP_NET_RAW: grant it once with `sudo setcap cap_net_raw+ep /usr/bin/sockchat` (or run as root)";
    a.update(Event::Socket(SocketEvent::Wire(Box::new(WireNews::Off(
        why.into(),
    )))));
    a.update(Event::Key(KeyEvent::new(KeyCode::F(4), KeyModifiers::NONE)));
    let t = draw(&a);
    let s = screen(&t);
    assert!(s.contains("Capturing needs CAP_NET_RAW"), "{s}");
    assert!(s.contains("sudo setcap cap_net_raw+ep"), "{s}");
    // UDP: the view says it shows TCP only.
    a.update(Event::Socket(SocketEvent::Connected {
        local: addr(40000),
        peer: addr(7878),
        transport: Transport::Udp,
    }));
    let s = screen(&draw(&a));
    assert!(s.contains("the wire view shows TCP only"), "{s}");
}
