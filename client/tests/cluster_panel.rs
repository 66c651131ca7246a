//! Cluster mode in the socket panel: the node the user is on and the link
//! state, from the server's notices (PROTOCOL.md "Cluster mode"), rendered
//! into ratatui's TestBackend.

use std::time::Instant;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sockchat::net::{SocketEvent, Transport};
use sockchat::tui::app::{App, Event, UiConfig};
use sockchat::tui::view;
use sockchat_shared::{ServerMsg, cluster};

fn screen(a: &App) -> String {
    let (w, h) = a.size;
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| view::render(a, f)).expect("draw");
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        for x in 0..w {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn notice(a: &mut App, text: &str) {
    a.update(Event::Socket(SocketEvent::Server(ServerMsg::Notice {
        text: text.into(),
    })));
}

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
    notice(&mut a, &cluster::describe("n2", true, 1));
    let s = screen(&a);
    assert!(s.contains("node     n2  link up"), "{s}");
    notice(&mut a, cluster::LINK_LOST);
    let s = screen(&a);
    assert!(
        s.contains("node     n2  link down: local rooms only"),
        "{s}"
    );
    notice(&mut a, cluster::LINK_BACK);
    assert!(screen(&a).contains("node     n2  link up"));
    // Another server (a reconnect to a single process) has no node.
    a.update(Event::Socket(SocketEvent::Server(ServerMsg::Welcome {
        nick: "al".into(),
        room: "lobby".into(),
        server: "sockchat-server 0.1.0".into(),
    })));
    assert!(!screen(&a).contains("node     n2"));
}
