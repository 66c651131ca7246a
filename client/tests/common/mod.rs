//! Helpers shared by the client's TestBackend tests.

#![allow(dead_code, reason = "each test file uses part of it")]

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sockchat::net::{SocketInfo, Stats};
use sockchat::tui::app::App;
use sockchat::tui::view;
use sockchat_shared::sockopt::{KeepaliveSettings, TcpInfo, TcpSnapshot};

/// The screen as text at the app's size, one row per line (trailing
/// blanks cut), a wide character counted once.
pub fn screen(a: &App) -> String {
    let (w, h) = a.size;
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| view::render(a, f)).expect("draw");
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        let mut skip = 0;
        for x in 0..w {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let sym = buf[(x, y)].symbol();
            skip = unicode_width::UnicodeWidthStr::width(sym).saturating_sub(1);
            line.push_str(sym);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A TCP_INFO poll of an established loopback connection.
pub fn info() -> SocketInfo {
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
        tls: None,
    }
}
