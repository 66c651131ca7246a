//! The socket panel with `--udp`: datagram counts, loss/dup/reorder with
//! rates, RTT, SO_RCVBUF and the kernel's drop counter instead of TCP_INFO,
//! rendered into ratatui's TestBackend.

use std::time::{Duration, Instant};

use sockchat::net::udp::{UdpCounters, UdpInfo};
use sockchat::net::{SocketEvent, Transport};
use sockchat::tui::app::{App, Event, UiConfig};
use sockchat_shared::ServerMsg;
use sockchat_shared::udp::{FaultStats, SeqStats};

mod common;
use common::screen;

#[test]
fn udp_panel_shows_datagrams_loss_rtt_and_kernel_drops() {
    let mut a = App::new(
        UiConfig::default(),
        "carol",
        Instant::now(),
        1_795_304_400_000,
    );
    a.update(Event::Resize(150, 40));
    let sock = |a: &mut App, e| a.update(Event::Socket(e));
    sock(
        &mut a,
        SocketEvent::Connected {
            local: "127.0.0.1:50123".parse().expect("addr"),
            peer: "127.0.0.1:7878".parse().expect("addr"),
            transport: Transport::Udp,
        },
    );
    sock(
        &mut a,
        SocketEvent::Server(ServerMsg::Welcome {
            nick: "carol".into(),
            room: "lobby".into(),
            server: "sockchat-server 0.1.0".into(),
        }),
    );
    let info = UdpInfo {
        local: Some("127.0.0.1:50123".parse().expect("addr")),
        peer: Some("127.0.0.1:7878".parse().expect("addr")),
        counters: UdpCounters {
            datagrams_in: 190,
            datagrams_out: 205,
            bytes_in: 9000,
            bytes_out: 7000,
            ..UdpCounters::default()
        },
        rx: SeqStats {
            received: 190,
            unique: 180,
            expected: 200,
            lost: 20,
            duplicated: 10,
            reordered: 9,
            late: 0,
        },
        faults: Some(FaultStats {
            offered: 200,
            dropped: 21,
            duplicated: 11,
            reordered: 8,
        }),
        rtt: Some(Duration::from_micros(350)),
        srtt: Some(Duration::from_micros(420)),
        rtt_min: Some(Duration::from_micros(300)),
        pings: 40,
        pongs: 36,
        rcvbuf: Some(212_992),
        sndbuf: Some(212_992),
        rx_queue: Some(0),
        kernel_drops: Some(3),
        max_payload: 1472,
    };
    sock(&mut a, SocketEvent::UdpInfo(Box::new(info)));
    let s = screen(&a);
    for want in [
        "in 190 / out 205",
        "20 of 200 (10.0%)",
        "10 (5.3%)",
        "9 (5.0%)",
        "0.35 ms (srtt 0.42, min 0.30)",
        "212992 (SO_RCVBUF)",
        "3 (/proc/net/udp)",
        "1472 B",
        "drop 21 dup 11 reord 8 of 200",
    ] {
        assert!(s.contains(want), "missing {want:?} in:\n{s}");
    }
    // No TCP_INFO words on a UDP socket, and no TCP state: UDP has no
    // connection, so the state line says what is true of the session.
    assert!(!s.contains("cwnd") && !s.contains("tcp_info"), "{s}");
    assert!(!s.contains("ESTABLISHED"), "{s}");
    assert!(s.contains("session up (cookie ok)"), "{s}");
    // A ping unanswered for 3 s: the state says so.
    sock(&mut a, SocketEvent::Lag { waiting_ms: 3200 });
    let s = screen(&a);
    assert!(s.contains("no reply for 3 s"), "{s}");
    assert!(!s.contains("session up (cookie ok)"), "{s}");
    sock(&mut a, SocketEvent::Latency(Duration::from_micros(400)));
    assert!(screen(&a).contains("session up (cookie ok)"));
}
