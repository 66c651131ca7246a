//! The one renderer of server messages to text-mode lines (DESIGN.md "Text
//! mode"): `[room] nick: text` for chat, `* ...` for notices, `! ...` for
//! errors. The severity comes with the line as data, so a UI styles it
//! without looking at the prefix.
//!
//! **Invariant:** a rendered line never contains a control character or a
//! bidi override: the whole line passes through [`sanitize`] last (the
//! caller appends the one `\n`).

use crate::sanitize::sanitize;
use crate::{ChatKind, DisconnectReason, ServerMsg};

/// What kind of line this is, for styling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// A room message (`[room] nick: text`, `[room] * nick text`).
    Chat,
    /// A private message (`[pm] ...`).
    Private,
    /// A system notice (`* ...`).
    Notice,
    /// An error, or the reason a connection is being closed (`! ...`).
    Error,
}

/// One rendered line: its full text (prefix included, no line ending) and
/// its severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub severity: Severity,
    pub text: String,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The line for `msg` as seen by the user `me` (their nick; used only to
/// tell a private message *from* them, `[pm] -> bob: text`, from one *to*
/// them, `[pm] alice: text`). `None` for protocol chatter a person does not
/// see (ping, pong).
pub fn render(msg: &ServerMsg, me: &str) -> Option<Line> {
    use Severity::*;
    let (severity, text) = match msg {
        ServerMsg::Welcome { nick, room, server } => (
            Notice,
            format!("* welcome {nick}: you are in {room} on {server} (type /help for commands)"),
        ),
        // Replayed history reads `[lobby history] ...`: a room name has no
        // space, so a program tells it from live chat by the bracket alone.
        ServerMsg::Chat {
            room,
            from,
            text,
            kind,
            history,
            ..
        } => {
            let tag = if *history { " history" } else { "" };
            match kind {
                ChatKind::Say => (Chat, format!("[{room}{tag}] {from}: {text}")),
                ChatKind::Me => (Chat, format!("[{room}{tag}] * {from} {text}")),
            }
        }
        ServerMsg::Private { from, to, text, .. } => {
            // Nicks compare by plain lowercasing (PROTOCOL.md).
            if from.to_lowercase() == me.to_lowercase() && to.to_lowercase() != me.to_lowercase() {
                (Private, format!("[pm] -> {to}: {text}"))
            } else {
                (Private, format!("[pm] {from}: {text}"))
            }
        }
        ServerMsg::Joined { room, nick } => (Notice, format!("* {nick} joined {room}")),
        ServerMsg::Left {
            room,
            nick,
            reason: None,
        } => (Notice, format!("* {nick} left {room}")),
        ServerMsg::Left {
            room,
            nick,
            reason: Some(r),
        } => (Notice, format!("* {nick} left {room}: {r}")),
        ServerMsg::NickChanged { old, new } => (Notice, format!("* {old} is now known as {new}")),
        ServerMsg::Who { room, nicks } => (
            Notice,
            format!("* {room} ({}): {}", nicks.len(), nicks.join(", ")),
        ),
        ServerMsg::Rooms { rooms } => {
            let list: Vec<String> = rooms
                .iter()
                .map(|r| format!("{} ({})", r.name, r.members))
                .collect();
            (
                Notice,
                format!("* rooms ({}): {}", rooms.len(), list.join(", ")),
            )
        }
        ServerMsg::Notice { text } => (Notice, format!("* {text}")),
        ServerMsg::Error { text, .. } => (Error, format!("! {text}")),
        ServerMsg::SockInfo { nick, fields } => {
            let kv: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (Notice, format!("* sockinfo {nick}: {}", kv.join(" ")))
        }
        ServerMsg::Topic {
            room,
            text,
            by,
            changed,
        } => match (changed, text.is_empty()) {
            (true, false) => (Notice, format!("* {by} set the topic of {room}: {text}")),
            (true, true) => (Notice, format!("* {by} cleared the topic of {room}")),
            (false, false) => (Notice, format!("* topic of {room}: {text} (set by {by})")),
            (false, true) => (Notice, format!("* {room} has no topic")),
        },
        ServerMsg::Stats { fields } => {
            let kv: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (Notice, format!("* stats {}", kv.join(" ")))
        }
        ServerMsg::Away { nick, text } => {
            let you = nick.to_lowercase() == me.to_lowercase();
            match (you, text.is_empty()) {
                (true, true) => (Notice, "* you are no longer marked away".to_string()),
                (true, false) => (Notice, format!("* you are marked away: {text}")),
                (false, true) => (Notice, format!("* {nick} is back")),
                (false, false) => (Notice, format!("* {nick} is away: {text}")),
            }
        }
        ServerMsg::Bye { reason } => match reason {
            DisconnectReason::ServerShutdown => (Notice, "* server shutting down".to_string()),
            DisconnectReason::Quit { .. } => (Notice, "* bye".to_string()),
            other => (Error, format!("! {other}")),
        },
        // Transfer messages are the client's file machinery, shown by it
        // as transfer events; a text user is never sent one.
        ServerMsg::Ping { .. } | ServerMsg::Pong { .. } | ServerMsg::Transfer(_) => return None,
    };
    Some(Line {
        severity,
        text: sanitize(&text).into_owned(),
    })
}

/// The disconnect reason a text-mode line announces, if it is the line the
/// server renders for a `Bye` (the inverse of [`render`] for `Bye`):
/// `* server shutting down`, `* bye` (quit; its own message is not shown to
/// the quitter), or `! <reason text>`. A `! `
/// line that is not a reason text (a refused command) gives `None`. A
/// trailing `\r` is ignored.
pub fn bye_reason(line: &str) -> Option<DisconnectReason> {
    let line = line.trim_end_matches(['\r', '\n']);
    match line {
        "* server shutting down" => Some(DisconnectReason::ServerShutdown),
        "* bye" => Some(DisconnectReason::quit()),
        _ => line.strip_prefix("! ")?.parse().ok(),
    }
}

/// The room a text-mode `Joined` line names, and who joined it (the
/// inverse of [`render`] for `Joined`: `* NICK joined ROOM`). Nicks and room
/// names have no spaces, so the split is unambiguous. A trailing `\r` is
/// ignored. Load generators wait for their own join with it before sending.
pub fn joined(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (nick, room) = line.strip_prefix("* ")?.split_once(" joined ")?;
    (!nick.is_empty() && !nick.contains(' ') && !room.is_empty() && !room.contains(' '))
        .then_some((nick, room))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorCode, RoomInfo};

    fn line(msg: &ServerMsg) -> String {
        render(msg, "me").map(|l| l.text).unwrap_or_default()
    }

    fn chat(kind: ChatKind) -> ServerMsg {
        ServerMsg::Chat {
            room: "lobby".into(),
            from: "alice".into(),
            text: "hello".into(),
            kind,
            ts_ms: 1,
            history: false,
        }
    }

    #[test]
    fn joined_is_the_inverse_of_the_joined_line() {
        let l = line(&ServerMsg::Joined {
            room: "bots3".into(),
            nick: "guest7".into(),
        });
        assert_eq!(joined(&l), Some(("guest7", "bots3")));
        assert_eq!(joined("* guest7 joined bots3\r"), Some(("guest7", "bots3")));
        assert_eq!(joined("[lobby] bob: * x joined y"), None);
        assert_eq!(joined("* guest7 left bots3"), None);
        assert_eq!(joined("* a b joined c"), None);
    }

    /// Away and back read "you" for your own nick (any case) and the nick
    /// for anyone else's.
    #[test]
    fn away_is_yours_or_theirs() {
        let away = |nick: &str, text: &str, me: &str| {
            render(
                &ServerMsg::Away {
                    nick: nick.into(),
                    text: text.into(),
                },
                me,
            )
            .expect("line")
            .to_string()
        };
        assert_eq!(away("Bob", "lunch", "bob"), "* you are marked away: lunch");
        assert_eq!(away("bob", "", "BOB"), "* you are no longer marked away");
        assert_eq!(away("bob", "lunch", "alice"), "* bob is away: lunch");
        assert_eq!(away("bob", "", "alice"), "* bob is back");
    }

    #[test]
    fn a_line_displays_as_its_text() {
        let l = render(&ServerMsg::Notice { text: "hi".into() }, "me").expect("line");
        assert_eq!(l.to_string(), "* hi");
    }

    /// Replayed history is marked inside the brackets (a room name has no
    /// space, so it cannot be mistaken for a live line).
    #[test]
    fn history_is_marked() {
        let mut m = chat(ChatKind::Say);
        if let ServerMsg::Chat { history, .. } = &mut m {
            *history = true;
        }
        assert_eq!(line(&m), "[lobby history] alice: hello");
        if let ServerMsg::Chat { kind, .. } = &mut m {
            *kind = ChatKind::Me;
        }
        assert_eq!(line(&m), "[lobby history] * alice hello");
    }

    #[test]
    fn contract_lines() {
        assert_eq!(line(&chat(ChatKind::Say)), "[lobby] alice: hello");
        assert_eq!(line(&chat(ChatKind::Me)), "[lobby] * alice hello");
        let pm = |from: &str, to: &str| ServerMsg::Private {
            from: from.into(),
            to: to.into(),
            text: "psst".into(),
            ts_ms: 0,
        };
        assert_eq!(line(&pm("alice", "me")), "[pm] alice: psst");
        assert_eq!(line(&pm("Me", "bob")), "[pm] -> bob: psst");
        assert_eq!(line(&pm("me", "ME")), "[pm] me: psst");
        assert_eq!(
            line(&ServerMsg::Welcome {
                nick: "alice".into(),
                room: "lobby".into(),
                server: "sockchat-server 0.1.0".into()
            }),
            "* welcome alice: you are in lobby on sockchat-server 0.1.0 (type /help for commands)"
        );
        assert_eq!(
            line(&ServerMsg::Joined {
                room: "lobby".into(),
                nick: "bob".into()
            }),
            "* bob joined lobby"
        );
        assert_eq!(
            line(&ServerMsg::Left {
                room: "lobby".into(),
                nick: "bob".into(),
                reason: Some(DisconnectReason::Reset)
            }),
            "* bob left lobby: connection reset by peer (ECONNRESET 104)"
        );
        assert_eq!(
            line(&ServerMsg::Left {
                room: "dev".into(),
                nick: "bob".into(),
                reason: None
            }),
            "* bob left dev"
        );
        assert_eq!(
            line(&ServerMsg::NickChanged {
                old: "guest1".into(),
                new: "dave".into()
            }),
            "* guest1 is now known as dave"
        );
        assert_eq!(
            line(&ServerMsg::Who {
                room: "lobby".into(),
                nicks: vec!["alice".into(), "bob".into()]
            }),
            "* lobby (2): alice, bob"
        );
        assert_eq!(
            line(&ServerMsg::Rooms {
                rooms: vec![
                    RoomInfo {
                        name: "dev".into(),
                        members: 1
                    },
                    RoomInfo {
                        name: "lobby".into(),
                        members: 2
                    }
                ]
            }),
            "* rooms (2): dev (1), lobby (2)"
        );
        assert_eq!(
            line(&ServerMsg::SockInfo {
                nick: "bob".into(),
                fields: vec![("a".into(), "1".into()), ("b".into(), "x y".into())]
            }),
            "* sockinfo bob: a=1 b=x y"
        );
        assert_eq!(
            line(&ServerMsg::Stats {
                fields: vec![("users".into(), "2".into()), ("rooms".into(), "1".into())]
            }),
            "* stats users=2 rooms=1"
        );
        let topic = |text: &str, changed| {
            line(&ServerMsg::Topic {
                room: "dev".into(),
                text: text.into(),
                by: "alice".into(),
                changed,
            })
        };
        assert_eq!(
            topic("ship it", true),
            "* alice set the topic of dev: ship it"
        );
        assert_eq!(topic("", true), "* alice cleared the topic of dev");
        assert_eq!(
            topic("ship it", false),
            "* topic of dev: ship it (set by alice)"
        );
        assert_eq!(topic("", false), "* dev has no topic");
        assert_eq!(line(&ServerMsg::Notice { text: "hi".into() }), "* hi");
        let err = render(
            &ServerMsg::Error {
                code: ErrorCode::NickTaken,
                text: "nick already taken: alice".into(),
            },
            "me",
        );
        assert_eq!(
            err,
            Some(Line {
                severity: Severity::Error,
                text: "! nick already taken: alice".into()
            })
        );
        assert_eq!(render(&ServerMsg::Ping { token: 1 }, "me"), None);
        assert_eq!(render(&ServerMsg::Pong { token: 1 }, "me"), None);
    }

    #[test]
    fn severities() {
        let sev = |m: &ServerMsg| render(m, "me").map(|l| l.severity);
        assert_eq!(sev(&chat(ChatKind::Me)), Some(Severity::Chat));
        assert_eq!(
            sev(&ServerMsg::Private {
                from: "a".into(),
                to: "me".into(),
                text: "t".into(),
                ts_ms: 0
            }),
            Some(Severity::Private)
        );
        assert_eq!(
            sev(&ServerMsg::Bye {
                reason: DisconnectReason::quit()
            }),
            Some(Severity::Notice)
        );
        assert_eq!(
            sev(&ServerMsg::Bye {
                reason: DisconnectReason::RateLimited
            }),
            Some(Severity::Error)
        );
    }

    #[test]
    fn bye_lines_round_trip() {
        for reason in [
            DisconnectReason::ServerShutdown,
            DisconnectReason::quit(),
            DisconnectReason::RateLimited,
            DisconnectReason::IdleTimeout { secs: 30 },
            DisconnectReason::SlowConsumer { frames: 1024 },
            DisconnectReason::ProtocolError {
                detail: "line too long".into(),
            },
        ] {
            let l = line(&ServerMsg::Bye {
                reason: reason.clone(),
            });
            assert_eq!(bye_reason(&format!("{l}\r")), Some(reason), "{l}");
        }
        assert_eq!(bye_reason("! nick already taken: alice"), None);
        assert_eq!(bye_reason("[lobby] alice: * bye"), None);
    }

    #[test]
    fn no_control_characters_escape() {
        let evil = ServerMsg::Chat {
            room: "lobby".into(),
            from: "mallory\u{202E}".into(),
            text: "hi\x1b[2J\r\nfake line\x07".into(),
            kind: ChatKind::Say,
            ts_ms: 0,
            history: false,
        };
        let l = line(&evil);
        assert!(crate::sanitize::is_clean(&l), "{l:?}");
        assert!(l.starts_with("[lobby] mallory"), "{l:?}");
    }
}
