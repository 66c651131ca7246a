//! Text mode for `nc`/telnet users: parsing typed lines into commands and
//! rendering server messages as the exact lines of DESIGN.md's contract.
//!
//! **Invariant:** a rendered line never contains a control character: every
//! line passes through `sanitize` last (the caller appends the one `\n`).

use sockchat_shared::sanitize::sanitize;
use sockchat_shared::{ChatKind, ClientMsg, DisconnectReason, ServerMsg};

/// The `/help` text, one notice line each.
pub const HELP: &[&str] = &[
    "commands:",
    "  /nick NAME         change your nick",
    "  /join ROOM         join (or create) ROOM and talk there",
    "  /leave [ROOM]      leave the current room (or ROOM)",
    "  /msg NICK TEXT     private message",
    "  /me TEXT           action: [room] * you TEXT",
    "  /who [ROOM]        who is in the room",
    "  /rooms             list rooms",
    "  /sockinfo [NICK]   the server's view of a user's socket (TCP_INFO)",
    "  /quit [MESSAGE]    leave the server",
    "  /help              this help",
    "other lines are said in your current room; start a line with // to say one beginning with /",
];

/// What a typed line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextCommand {
    /// A protocol command (rooms empty = current room).
    Msg(ClientMsg),
    Help,
    /// Nothing to do (an empty line).
    Nothing,
    /// A usage error to show after `! `.
    Error(String),
}

fn arg(rest: &str) -> Option<&str> {
    let a = rest.trim();
    (!a.is_empty()).then_some(a)
}

/// Parse one line (without its line ending).
pub fn parse(line: &str) -> TextCommand {
    use TextCommand::*;
    if line.trim().is_empty() {
        return Nothing;
    }
    if let Some(lit) = line.strip_prefix("//") {
        return Msg(ClientMsg::Say {
            room: String::new(),
            text: format!("/{lit}"),
        });
    }
    let Some(cmdline) = line.strip_prefix('/') else {
        return Msg(ClientMsg::Say {
            room: String::new(),
            text: line.to_string(),
        });
    };
    let (cmd, rest) = match cmdline.split_once(char::is_whitespace) {
        Some((c, r)) => (c, r),
        None => (cmdline, ""),
    };
    match cmd.to_ascii_lowercase().as_str() {
        "nick" => match arg(rest) {
            Some(n) => Msg(ClientMsg::Nick { nick: n.into() }),
            None => Error("usage: /nick NAME".into()),
        },
        "join" | "j" => match arg(rest) {
            Some(r) => Msg(ClientMsg::Join { room: r.into() }),
            None => Error("usage: /join ROOM".into()),
        },
        "leave" | "part" => Msg(ClientMsg::Leave {
            room: arg(rest).unwrap_or("").into(),
        }),
        "msg" | "m" | "query" => {
            let rest = rest.trim_start();
            match rest.split_once(char::is_whitespace) {
                Some((to, text)) if !text.trim().is_empty() => Msg(ClientMsg::Private {
                    to: to.into(),
                    text: text.trim_start().into(),
                }),
                _ => Error("usage: /msg NICK TEXT".into()),
            }
        }
        "me" => match arg(rest) {
            Some(_) => Msg(ClientMsg::Me {
                room: String::new(),
                text: rest.trim_start().into(),
            }),
            None => Error("usage: /me TEXT".into()),
        },
        "who" | "names" => Msg(ClientMsg::Who {
            room: arg(rest).unwrap_or("").into(),
        }),
        "rooms" | "list" => Msg(ClientMsg::Rooms),
        "quit" | "exit" | "bye" => Msg(ClientMsg::Quit {
            message: rest.trim().into(),
        }),
        "sockinfo" => Msg(ClientMsg::SockInfo {
            nick: arg(rest).unwrap_or("").into(),
        }),
        "help" | "?" => Help,
        _ => Error(format!("unknown command: /{cmd} (try /help)")),
    }
}

/// The line for a server message, or `None` when text users do not see it
/// (pings).
pub fn render(msg: &ServerMsg) -> Option<String> {
    let line = match msg {
        ServerMsg::Welcome { nick, room, server } => {
            format!("* welcome to {server}: you are {nick} in {room} (type /help for commands)")
        }
        ServerMsg::Chat {
            room,
            from,
            text,
            kind: ChatKind::Say,
            ..
        } => format!("[{room}] {from}: {text}"),
        ServerMsg::Chat {
            room,
            from,
            text,
            kind: ChatKind::Me,
            ..
        } => format!("[{room}] * {from} {text}"),
        ServerMsg::Private { from, text, .. } => format!("[pm] {from}: {text}"),
        ServerMsg::Joined { room, nick } => format!("* {nick} joined {room}"),
        ServerMsg::Left {
            room,
            nick,
            reason: None,
        } => format!("* {nick} left {room}"),
        ServerMsg::Left {
            room,
            nick,
            reason: Some(r),
        } => format!("* {nick} left {room}: {r}"),
        ServerMsg::NickChanged { old, new } => format!("* {old} is now known as {new}"),
        ServerMsg::Who { room, nicks } => {
            format!("* {room} ({}): {}", nicks.len(), nicks.join(", "))
        }
        ServerMsg::Rooms { rooms } => {
            let list: Vec<String> = rooms
                .iter()
                .map(|r| format!("{} ({})", r.name, r.members))
                .collect();
            format!("* rooms ({}): {}", rooms.len(), list.join(", "))
        }
        ServerMsg::Notice { text } => format!("* {text}"),
        ServerMsg::Error { text, .. } => format!("! {text}"),
        ServerMsg::Ping { .. } | ServerMsg::Pong { .. } => return None,
        ServerMsg::SockInfo { nick, fields } => {
            let kv: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("* sockinfo {nick}: {}", kv.join(" "))
        }
        ServerMsg::Bye { reason } => match reason {
            DisconnectReason::ServerShutdown => "* server shutting down".to_string(),
            DisconnectReason::Quit { .. } => "* bye".to_string(),
            other => format!("! {other}"),
        },
    };
    Some(sanitize(&line).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn contract_lines() {
        assert_eq!(
            render(&chat(ChatKind::Say)).as_deref(),
            Some("[lobby] alice: hello")
        );
        assert_eq!(
            render(&chat(ChatKind::Me)).as_deref(),
            Some("[lobby] * alice hello")
        );
        assert_eq!(
            render(&ServerMsg::Private {
                from: "alice".into(),
                to: "bob".into(),
                text: "psst".into(),
                ts_ms: 0
            })
            .as_deref(),
            Some("[pm] alice: psst")
        );
        assert_eq!(
            render(&ServerMsg::Joined {
                room: "lobby".into(),
                nick: "bob".into()
            })
            .as_deref(),
            Some("* bob joined lobby")
        );
        assert_eq!(
            render(&ServerMsg::Left {
                room: "lobby".into(),
                nick: "bob".into(),
                reason: Some(DisconnectReason::Reset)
            })
            .as_deref(),
            Some("* bob left lobby: connection reset by peer (ECONNRESET 104)")
        );
        assert_eq!(
            render(&ServerMsg::Error {
                code: sockchat_shared::ErrorCode::NickTaken,
                text: "nick already taken: alice".into()
            })
            .as_deref(),
            Some("! nick already taken: alice")
        );
        assert_eq!(
            render(&ServerMsg::Bye {
                reason: DisconnectReason::ServerShutdown
            })
            .as_deref(),
            Some("* server shutting down")
        );
    }

    #[test]
    fn no_control_characters_escape() {
        let evil = ServerMsg::Chat {
            room: "lobby".into(),
            from: "mallory".into(),
            text: "hi\x1b[2J\r\nfake line\x07".into(),
            kind: ChatKind::Say,
            ts_ms: 0,
            history: false,
        };
        let line = render(&evil).expect("line");
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    }

    #[test]
    fn parse_commands() {
        assert_eq!(
            parse("hello"),
            TextCommand::Msg(ClientMsg::Say {
                room: String::new(),
                text: "hello".into()
            })
        );
        assert_eq!(
            parse("/msg bob  hi there"),
            TextCommand::Msg(ClientMsg::Private {
                to: "bob".into(),
                text: "hi there".into()
            })
        );
        assert_eq!(
            parse("/join #dev"),
            TextCommand::Msg(ClientMsg::Join {
                room: "#dev".into()
            })
        );
        assert_eq!(
            parse("/leave"),
            TextCommand::Msg(ClientMsg::Leave {
                room: String::new()
            })
        );
        assert_eq!(parse("/help"), TextCommand::Help);
        assert_eq!(parse(""), TextCommand::Nothing);
        assert!(matches!(parse("/frobnicate"), TextCommand::Error(_)));
        assert!(matches!(parse("/msg bob"), TextCommand::Error(_)));
        assert_eq!(
            parse("//slash"),
            TextCommand::Msg(ClientMsg::Say {
                room: String::new(),
                text: "/slash".into()
            })
        );
    }
}
