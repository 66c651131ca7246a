//! App update tests: state in, event in, state (and actions) out.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test with its message"
)]

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};
use sockchat::net::{CloseReason, Fault, LineId, NetCmd, SocketEvent, SysError, Transport};
use sockchat::tui::app::{Action, App, ConnState, Event, LineKind, UiConfig};
use sockchat_shared::text::Severity;
use sockchat_shared::{ChatKind, ClientMsg, DisconnectReason, ServerMsg};

fn new_app() -> (App, Instant) {
    let t0 = Instant::now();
    let mut a = App::new(UiConfig::default(), "alice", t0, 1_795_304_400_000);
    a.update(Event::Resize(120, 30));
    (a, t0)
}

fn key(a: &mut App, code: KeyCode) -> Vec<Action> {
    a.update(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn ctrl(a: &mut App, c: char) -> Vec<Action> {
    a.update(Event::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::CONTROL,
    )))
}

fn type_line(a: &mut App, s: &str) -> Vec<Action> {
    for c in s.chars() {
        key(a, KeyCode::Char(c));
    }
    key(a, KeyCode::Enter)
}

fn server(a: &mut App, m: ServerMsg) -> Vec<Action> {
    a.update(Event::Socket(SocketEvent::Server(m)))
}

fn welcome(a: &mut App) {
    a.update(Event::Socket(SocketEvent::Connected {
        local: "127.0.0.1:40000".parse().expect("addr"),
        peer: "127.0.0.1:7878".parse().expect("addr"),
        transport: Transport::Tcp,
    }));
    let acts = server(
        a,
        ServerMsg::Welcome {
            nick: "alice".into(),
            room: "lobby".into(),
            server: "s".into(),
        },
    );
    assert_eq!(
        acts,
        vec![Action::Net(NetCmd::Send {
            id: None,
            msg: ClientMsg::Who {
                room: "lobby".into()
            }
        })]
    );
    server(
        a,
        ServerMsg::Who {
            room: "lobby".into(),
            nicks: vec!["alice".into(), "bob".into(), "bert".into()],
        },
    );
}

fn chat(room: &str, from: &str, text: &str) -> ServerMsg {
    ServerMsg::Chat {
        room: room.into(),
        from: from.into(),
        text: text.into(),
        kind: ChatKind::Say,
        ts_ms: 1_795_304_401_000,
        history: false,
    }
}

fn last_text(a: &App) -> String {
    a.room()
        .lines
        .back()
        .map(|l| l.text.clone())
        .unwrap_or_default()
}

#[test]
fn typing_sends_to_the_current_room_and_history_recalls() {
    let (mut a, _) = new_app();
    welcome(&mut a);
    let acts = type_line(&mut a, "hello there");
    assert_eq!(
        acts,
        vec![Action::Net(NetCmd::Send {
            id: Some(LineId(1)),
            msg: ClientMsg::Say {
                room: "lobby".into(),
                text: "hello there".into()
            }
        })]
    );
    assert!(a.input.is_empty());
    key(&mut a, KeyCode::Up);
    assert_eq!(a.input.text(), "hello there");
    // Cursor editing: Home, insert, Ctrl-K.
    key(&mut a, KeyCode::Home);
    key(&mut a, KeyCode::Char('>'));
    assert_eq!(a.input.text(), ">hello there");
    for _ in 0..5 {
        key(&mut a, KeyCode::Right);
    }
    ctrl(&mut a, 'k');
    assert_eq!(a.input.text(), ">hello");
}

#[test]
fn join_switches_room_and_unread_counts() {
    let (mut a, _) = new_app();
    welcome(&mut a);
    let acts = type_line(&mut a, "/join #dev");
    assert_eq!(
        acts,
        vec![Action::Net(NetCmd::Send {
            id: None,
            msg: ClientMsg::Join { room: "dev".into() }
        })]
    );
    // The focus moves at once: the next line is for dev.
    assert_eq!(a.room().name, "dev");
    assert!(!a.room().joined);
    let acts = server(
        &mut a,
        ServerMsg::Joined {
            room: "dev".into(),
            nick: "alice".into(),
        },
    );
    assert_eq!(a.room().name, "dev");
    assert!(a.room().joined);
    assert_eq!(
        acts,
        vec![Action::Net(NetCmd::Send {
            id: None,
            msg: ClientMsg::Who { room: "dev".into() }
        })]
    );
    server(&mut a, chat("lobby", "bob", "one"));
    server(&mut a, chat("lobby", "bob", "two"));
    let lobby = a.find_room("lobby").expect("lobby");
    assert_eq!(lobby.unread, 2);
    ctrl(&mut a, 'n');
    assert_eq!(a.room().name, "lobby");
    assert_eq!(a.room().unread, 0);
    // Typing in lobby now goes to lobby.
    let acts = type_line(&mut a, "/me waves");
    assert_eq!(
        acts,
        vec![Action::Net(NetCmd::Send {
            id: Some(LineId(1)),
            msg: ClientMsg::Me {
                room: "lobby".into(),
                text: "waves".into()
            }
        })]
    );
}

#[test]
fn other_users_disconnect_shows_its_reason() {
    let (mut a, _) = new_app();
    welcome(&mut a);
    assert!(a.room().members.contains("bob"));
    server(
        &mut a,
        ServerMsg::Left {
            room: "lobby".into(),
            nick: "bob".into(),
            reason: Some(DisconnectReason::Reset),
        },
    );
    assert!(!a.room().members.contains("bob"));
    let l = a.room().lines.back().expect("a line");
    assert_eq!(
        l.text,
        "* bob left lobby: connection reset by peer (ECONNRESET 104)"
    );
    assert_eq!(
        l.kind,
        LineKind::Rendered(Severity::Error),
        "an abrupt end is highlighted"
    );
    server(
        &mut a,
        ServerMsg::Left {
            room: "lobby".into(),
            nick: "bert".into(),
            reason: None,
        },
    );
    assert_eq!(
        a.room().lines.back().map(|l| &l.kind),
        Some(&LineKind::Rendered(Severity::Notice))
    );
}

#[test]
fn socket_errors_reach_the_event_log_and_state() {
    let (mut a, t0) = new_app();
    welcome(&mut a);
    a.update(Event::Socket(SocketEvent::Error(SysError {
        syscall: "write",
        errno: libc::EPIPE,
    })));
    a.update(Event::Socket(SocketEvent::Closed(CloseReason::Peer(
        DisconnectReason::BrokenPipe,
    ))));
    let log: Vec<&str> = a.log.iter().map(|e| e.text.as_str()).collect();
    assert!(
        log.iter().any(|l| l.starts_with(
            "! write: EPIPE (32) broken pipe — peer already closed; the first write after its close succeeds"
        )),
        "{log:?}"
    );
    assert!(a.log.iter().any(|e| e.error));
    assert_eq!(
        a.conn.state,
        ConnState::Closed("broken pipe (EPIPE 32)".into())
    );
    a.update(Event::Socket(SocketEvent::Reconnecting {
        delay: Duration::from_secs(4),
        attempt: 3,
    }));
    assert_eq!(
        a.conn.state,
        ConnState::Waiting {
            until: t0 + Duration::from_secs(4),
            attempt: 3
        }
    );
    assert_eq!(a.conn.last_close.as_deref(), Some("broken pipe (EPIPE 32)"));
}

#[test]
fn oversized_input_is_a_local_error() {
    let (mut a, _) = new_app();
    welcome(&mut a);
    a.update(Event::Paste("x".repeat(5000)));
    let acts = key(&mut a, KeyCode::Enter);
    assert!(acts.is_empty(), "nothing sent: {acts:?}");
    assert_eq!(
        a.room().lines.back().map(|l| &l.kind),
        Some(&LineKind::Error)
    );
    assert!(last_text(&a).contains("message too long: 5000 bytes (max 4096)"));
}

#[test]
fn faults_and_crash() {
    let (mut a, _) = new_app();
    welcome(&mut a);
    assert_eq!(
        type_line(&mut a, "/fault rst"),
        vec![Action::Net(NetCmd::Fault(Fault::Rst))]
    );
    let acts = type_line(&mut a, "/fault crash");
    assert!(matches!(&acts[..], [Action::Crash { .. }]), "{acts:?}");
    let acts = type_line(&mut a, "/fault sideways");
    assert!(acts.is_empty());
    assert!(last_text(&a).contains("unknown fault"));
}

#[test]
fn tab_completes_nicks_and_commands() {
    let (mut a, _) = new_app();
    welcome(&mut a);
    key(&mut a, KeyCode::Char('b'));
    key(&mut a, KeyCode::Tab);
    assert_eq!(a.input.text(), "bert: ");
    key(&mut a, KeyCode::Tab);
    assert_eq!(a.input.text(), "bob: ");
    ctrl(&mut a, 'u');
    for c in "/sock".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    key(&mut a, KeyCode::Tab);
    assert_eq!(a.input.text(), "/sockinfo ");
}

#[test]
fn scrollback_and_new_messages_marker() {
    let (mut a, _) = new_app();
    welcome(&mut a);
    for i in 0..100 {
        server(&mut a, chat("lobby", "bob", &format!("line {i}")));
    }
    key(&mut a, KeyCode::PageUp);
    let s = a.room().scroll;
    assert!(s > 0);
    server(&mut a, chat("lobby", "bob", "new one"));
    assert_eq!(a.room().scroll, s + 1, "the view stays where it was");
    assert_eq!(a.room().new_below, 1);
    a.update(Event::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollUp,
        column: 0,
        row: 0,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(a.room().scroll, s + 4);
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.room().scroll, 0);
    assert_eq!(a.room().new_below, 0);
}

#[test]
fn quit_waits_for_the_close() {
    let (mut a, _) = new_app();
    welcome(&mut a);
    let acts = ctrl(&mut a, 'c');
    assert_eq!(acts, vec![Action::Net(NetCmd::Quit(String::new()))]);
    assert!(a.quitting && !a.done);
    a.update(Event::Socket(SocketEvent::Closed(CloseReason::Local(
        "quit".into(),
    ))));
    assert!(a.done);
}

#[test]
fn help_overlay_opens_and_any_key_closes() {
    let (mut a, _) = new_app();
    type_line(&mut a, "/help");
    assert!(a.show_help);
    // Typing closes the overlay and is typed: nothing is lost.
    key(&mut a, KeyCode::Char('x'));
    assert!(!a.show_help);
    assert_eq!(a.input.text(), "x", "the closing key is typed, not lost");
    key(&mut a, KeyCode::Backspace);
    // The overlay's own key and Esc only close it.
    key(&mut a, KeyCode::F(1));
    assert!(a.show_help);
    key(&mut a, KeyCode::F(1));
    assert!(!a.show_help);
    key(&mut a, KeyCode::F(3));
    assert!(a.show_log);
    key(&mut a, KeyCode::Esc);
    assert!(!a.show_log);
    assert!(a.input.is_empty());
}

/// Issue 15 item 1: `/msg bob ...` typed while an overlay is open is a
/// private message, never room text.
#[test]
fn a_command_typed_over_an_overlay_stays_a_command() {
    let (mut a, _) = new_app();
    welcome(&mut a);
    for overlay in [KeyCode::F(1), KeyCode::F(3)] {
        key(&mut a, overlay);
        assert!(a.show_help || a.show_log);
        let acts = type_line(&mut a, "/msg bob my password is hunter2");
        assert!(
            matches!(
                acts.as_slice(),
                [Action::Net(NetCmd::Send {
                    msg: ClientMsg::Private { to, text },
                    id: Some(_),
                })] if to == "bob" && text == "my password is hunter2"
            ),
            "{acts:?}"
        );
    }
}

#[test]
fn panel_toggles_and_follows_width() {
    let (mut a, _) = new_app();
    a.update(Event::Resize(150, 40));
    assert!(a.panel_visible());
    a.update(Event::Resize(80, 24));
    assert!(!a.panel_visible());
    key(&mut a, KeyCode::F(2));
    assert!(a.panel_visible());
}

#[test]
fn history_replay_after_reconnect_is_not_duplicated() {
    let (mut a, _) = new_app();
    welcome(&mut a);
    server(&mut a, chat("lobby", "bob", "said once"));
    let n = a.room().lines.len();
    let mut h = chat("lobby", "bob", "said once");
    if let ServerMsg::Chat { history, .. } = &mut h {
        *history = true;
    }
    server(&mut a, h);
    assert_eq!(a.room().lines.len(), n);
}

#[test]
fn reconnect_keeps_the_view_on_the_room_being_restored() {
    let (mut a, _) = new_app();
    welcome(&mut a);
    type_line(&mut a, "/join dev");
    server(
        &mut a,
        ServerMsg::Joined {
            room: "dev".into(),
            nick: "alice".into(),
        },
    );
    assert_eq!(a.room().name, "dev");
    a.update(Event::Socket(SocketEvent::Closed(CloseReason::Peer(
        DisconnectReason::Eof,
    ))));
    assert!(a.room().members.is_empty(), "members unknown while away");
    // The new connection starts in lobby; the net task rejoins dev.
    server(
        &mut a,
        ServerMsg::Welcome {
            nick: "alice".into(),
            room: "lobby".into(),
            server: "s".into(),
        },
    );
    assert_eq!(a.room().name, "dev", "the view does not jump to lobby");
    server(
        &mut a,
        ServerMsg::Joined {
            room: "dev".into(),
            nick: "alice".into(),
        },
    );
    assert_eq!(a.room().name, "dev");
    assert!(a.room().joined);
}

#[test]
fn configured_room_is_where_the_user_lands() {
    let t0 = Instant::now();
    let cfg = UiConfig {
        room: "dev".into(),
        ..UiConfig::default()
    };
    let mut a = App::new(cfg, "alice", t0, 0);
    server(
        &mut a,
        ServerMsg::Welcome {
            nick: "alice".into(),
            room: "lobby".into(),
            server: "s".into(),
        },
    );
    server(
        &mut a,
        ServerMsg::Joined {
            room: "dev".into(),
            nick: "alice".into(),
        },
    );
    assert_eq!(a.room().name, "dev");
}

#[test]
fn keys_can_be_rebound() {
    let t0 = Instant::now();
    let mut c = sockchat_shared::config::ClientConfig {
        key_panel: "F5".into(),
        key_next_room: "M-j".into(),
        ..Default::default()
    };
    let cfg = UiConfig {
        keys: sockchat::tui::keys::KeyMap::from_config(&c).expect("valid keys"),
        ..UiConfig::default()
    };
    let mut a = App::new(cfg, "alice", t0, 0);
    a.update(Event::Resize(80, 24));
    assert!(!a.panel_visible());
    key(&mut a, KeyCode::F(2));
    assert!(!a.panel_visible(), "F2 is no longer the panel key");
    key(&mut a, KeyCode::F(5));
    assert!(a.panel_visible());
    welcome(&mut a);
    server(
        &mut a,
        ServerMsg::Joined {
            room: "dev".into(),
            nick: "alice".into(),
        },
    );
    let before = a.room().name.clone();
    a.update(Event::Key(KeyEvent::new(
        KeyCode::Char('j'),
        KeyModifiers::ALT,
    )));
    assert_ne!(a.room().name, before, "Alt-J switches rooms");
    assert!(a.input.is_empty(), "the key is not typed");
    c.key_log = "Q".into();
    let err = sockchat::tui::keys::KeyMap::from_config(&c).expect_err("bad key");
    assert!(err.contains("key_log"), "{err}");
}

/// A refused /join (the server answers joins in order) takes the user back
/// to the room they were in, and the room that never was goes; the line
/// typed for it fails where it was typed.
#[test]
fn a_refused_join_leads_back() {
    let (mut a, _) = new_app();
    welcome(&mut a);
    type_line(&mut a, "/join full");
    assert_eq!(a.room().name, "full", "the focus moved at once");
    server(
        &mut a,
        ServerMsg::Error {
            code: sockchat_shared::ErrorCode::TooManyRooms,
            text: "too many rooms".into(),
        },
    );
    assert_eq!(a.room().name, "lobby", "back where the user was");
    assert!(a.find_room("full").is_none());
    assert_eq!(
        a.room().lines.back().map(|l| l.text.as_str()),
        Some("! too many rooms")
    );
    // An error with no join waiting changes no room.
    server(
        &mut a,
        ServerMsg::Error {
            code: sockchat_shared::ErrorCode::BadName,
            text: "bad".into(),
        },
    );
    assert_eq!(a.room().name, "lobby");
}

fn alt(a: &mut App, c: char) -> Vec<Action> {
    a.update(Event::Key(KeyEvent::new(
        KeyCode::Char(c),
        KeyModifiers::ALT,
    )))
}

/// Issue 16 item 5: readline keys, and Ctrl-C that clears a half-typed
/// line before it quits; Ctrl-L asks the loop for a full redraw.
#[test]
fn readline_keys_and_ctrl_c_clears_first() {
    let (mut a, _) = new_app();
    welcome(&mut a);
    for c in "say one two".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    alt(&mut a, 'b');
    alt(&mut a, 'b');
    alt(&mut a, 'd');
    assert_eq!(a.input.text(), "say  two", "Alt-b twice, then Alt-d");
    alt(&mut a, 'f');
    ctrl(&mut a, 'y');
    assert_eq!(a.input.text(), "say  twoone", "Ctrl-Y yanks Alt-d's cut");
    ctrl(&mut a, 'w');
    ctrl(&mut a, 'y');
    assert_eq!(a.input.text(), "say  twoone");
    // Ctrl-C with text: cleared, not quitting.
    assert!(ctrl(&mut a, 'c').is_empty());
    assert!(a.input.is_empty() && !a.quitting);
    ctrl(&mut a, 'y');
    assert_eq!(a.input.text(), "say  twoone", "the cleared line comes back");
    ctrl(&mut a, 'u');
    ctrl(&mut a, 'l');
    assert!(a.redraw);
    // Ctrl-C on an empty line quits.
    let acts = ctrl(&mut a, 'c');
    assert!(a.quitting);
    assert_eq!(acts, vec![Action::Net(NetCmd::Quit(String::new()))]);
}

/// An app welcomed as alice that got `psst` from bob: its private view.
fn bob_wrote_psst() -> (App, sockchat::tui::rooms::RoomId) {
    let (mut a, _) = new_app();
    welcome(&mut a);
    server(
        &mut a,
        ServerMsg::Private {
            from: "bob".into(),
            to: "alice".into(),
            text: "psst".into(),
            ts_ms: 1,
        },
    );
    let q = a.rooms.find("@bob").expect("bob's view");
    (a, q)
}

/// Issue 16 items 2 and 5: a private message opens its peer's view,
/// counted as a mention; a line typed there goes to the peer; /ignore
/// hides a nick; /search scrolls to a match; /clear empties the room;
/// `/me` with no text is refused.
#[test]
fn query_views_ignore_search_clear() {
    let (mut a, q) = bob_wrote_psst();
    let r = a.rooms.get(q).expect("view");
    assert_eq!((r.unread, r.mentions), (1, 1));
    assert!(
        a.room().lines.iter().all(|l| l.text != "psst"),
        "not in lobby"
    );
    assert_eq!(a.bells, 1, "a private message rings");
    type_line(&mut a, "/query bob");
    assert_eq!(a.room().name, "@bob");
    let acts = type_line(&mut a, "hello bob");
    assert!(
        matches!(
            &acts[..],
            [Action::Net(NetCmd::Send { msg: ClientMsg::Private { to, text }, .. })] if to == "bob" && text == "hello bob"
        ),
        "{acts:?}"
    );
    type_line(&mut a, "/close");
    assert_eq!(a.room().name, "lobby");

    type_line(&mut a, "/ignore bert");
    server(&mut a, chat("lobby", "BERT", "spam"));
    assert!(
        a.room().lines.iter().all(|l| l.text != "spam"),
        "ignored, any case"
    );
    for i in 0..50 {
        server(&mut a, chat("lobby", "bob", &format!("filler {i}")));
    }
    type_line(&mut a, "/search FILLER 3");
    assert!(a.room().scroll > 0, "scrolled up to the match");
    let found = a.search.as_ref().and_then(|(_, at)| *at).expect("found");
    let front = a.room().front_no();
    assert_eq!(a.room().lines[(found - front) as usize].text, "filler 39");
    type_line(&mut a, "/search");
    let older = a.search.as_ref().and_then(|(_, at)| *at).expect("found");
    assert_eq!(a.room().lines[(older - front) as usize].text, "filler 38");
    type_line(&mut a, "/clear");
    assert!(a.room().lines.is_empty());

    assert!(
        type_line(&mut a, "/me").is_empty(),
        "/me with no text: nothing sent"
    );
    assert!(
        a.room()
            .lines
            .iter()
            .any(|l| l.text.contains("usage: /me TEXT"))
    );
    // A mention in another room: counted apart, and it rings.
    type_line(&mut a, "/query carol");
    let bells = a.bells;
    server(&mut a, chat("lobby", "bob", "ALICE: ping"));
    server(&mut a, chat("lobby", "bob", "malice"));
    let lobby = a
        .rooms
        .get(a.rooms.find("lobby").expect("lobby"))
        .expect("lobby");
    assert_eq!((lobby.unread, lobby.mentions), (2, 1));
    assert_eq!(a.bells, bells + 1);
}

/// A private view follows its peer's nick (as irssi's query does): same
/// buffer, new name, the rename told there, and a line typed in it goes to
/// the new nick.
#[test]
fn a_private_view_is_renamed_with_its_peer() {
    let (mut a, q) = bob_wrote_psst();
    server(
        &mut a,
        ServerMsg::NickChanged {
            old: "bob".into(),
            new: "bobby".into(),
        },
    );
    assert_eq!(a.rooms.find("@bob"), None, "no stale view");
    assert_eq!(a.rooms.find("@bobby"), Some(q), "the same buffer");
    let r = a.rooms.get(q).expect("view");
    assert_eq!(r.query.as_deref(), Some("bobby"));
    assert!(r.lines.iter().any(|l| l.text == "psst"), "its lines kept");
    assert!(
        r.lines
            .iter()
            .any(|l| l.text.contains("bob is now known as bobby")),
        "the rename is told in the view"
    );
    type_line(&mut a, "/query bobby");
    let acts = type_line(&mut a, "still there?");
    assert!(
        matches!(
            &acts[..],
            [Action::Net(NetCmd::Send { msg: ClientMsg::Private { to, .. }, .. })] if to == "bobby"
        ),
        "{acts:?}"
    );
}
