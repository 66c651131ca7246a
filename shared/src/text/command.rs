//! The one parser of typed lines: chat text or a `/command`, with one set of
//! aliases, for the server's text mode and the client's input line alike.
//!
//! Parsing is syntax only ([`parse_command`]); a client that wants to refuse
//! a bad nick or an over-long message before a round trip also calls
//! [`Command::check`] (the server checks everything again anyway).
//! Commands a program adds on its own (the client's `/fault`) come back as
//! [`Command::Other`] for it to handle; everyone else answers
//! [`CommandError::Unknown`].

use crate::ClientMsg;
use crate::names;

/// What a typed line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Text for the current room (a `//` line: the text with one `/` less).
    Say(String),
    /// `/me TEXT`.
    Me(String),
    /// `/nick NAME`.
    Nick(String),
    /// `/join ROOM` (`/j`), the room as typed (`#dev` stays `#dev` until
    /// [`Command::check`]; the server strips the `#` too).
    Join(String),
    /// `/leave [ROOM]` (`/part`); `None`: the current room.
    Leave(Option<String>),
    /// `/msg NICK TEXT` (`/m`, `/query`).
    Msg { to: String, text: String },
    /// `/who [ROOM]` (`/names`); `None`: the current room.
    Who(Option<String>),
    /// `/rooms` (`/list`).
    Rooms,
    /// `/sockinfo [NICK]`; `None`: your own connection.
    SockInfo(Option<String>),
    /// `/quit [MESSAGE]` (`/exit`, `/bye`, `/q`).
    Quit(String),
    /// `/help` (`/h`, `/?`).
    Help,
    /// A `/command` this parser does not know: its name lowercased without
    /// the `/`, and the rest of the line trimmed.
    Other { name: String, rest: String },
}

/// Why a typed line was refused; the `Display` text is shown to the user
/// (after `! `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Wrong arguments: the text is the usage line.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// A command nobody here knows.
    #[error("unknown command: /{0} (try /help)")]
    Unknown(String),
    /// Text over the message limit (bytes).
    #[error("message too long: {len} bytes (max {max}); not sent")]
    TooLong { len: usize, max: usize },
    /// A nick or room name that breaks the naming rules.
    #[error(transparent)]
    BadName(#[from] names::NameError),
}

/// One protocol command for the help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandHelp {
    /// `/join`.
    pub name: &'static str,
    /// `ROOM` (empty when it takes none).
    pub args: &'static str,
    /// What it does.
    pub about: &'static str,
}

/// Every protocol command, in help order (aliases in [`Command`]'s docs and
/// PROTOCOL.md).
pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "/nick",
        args: "NAME",
        about: "change your nick",
    },
    CommandHelp {
        name: "/join",
        args: "ROOM",
        about: "join (or create) ROOM and talk there",
    },
    CommandHelp {
        name: "/leave",
        args: "[ROOM]",
        about: "leave the current room (or ROOM)",
    },
    CommandHelp {
        name: "/msg",
        args: "NICK TEXT",
        about: "private message",
    },
    CommandHelp {
        name: "/me",
        args: "TEXT",
        about: "action: [room] * you TEXT",
    },
    CommandHelp {
        name: "/who",
        args: "[ROOM]",
        about: "who is in the room",
    },
    CommandHelp {
        name: "/rooms",
        args: "",
        about: "list rooms",
    },
    CommandHelp {
        name: "/sockinfo",
        args: "[NICK]",
        about: "the server's view of a user's socket (yours without NICK)",
    },
    CommandHelp {
        name: "/quit",
        args: "[MESSAGE]",
        about: "leave the server",
    },
    CommandHelp {
        name: "/help",
        args: "",
        about: "this help",
    },
];

/// The help text for [`COMMANDS`] (plus `extra`, a program's own commands),
/// one aligned line each, then how plain lines and `//` work.
pub fn help_lines(extra: &[CommandHelp]) -> Vec<String> {
    let mut lines = vec!["commands:".to_string()];
    for c in COMMANDS.iter().chain(extra) {
        let usage = if c.args.is_empty() {
            c.name.to_string()
        } else {
            format!("{} {}", c.name, c.args)
        };
        lines.push(format!("  {usage:<18} {}", c.about));
    }
    lines.push(
        "other lines are said in your current room; start a line with // to say one beginning with /"
            .to_string(),
    );
    lines
}

/// Limits a client checks locally (see [`Command::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    pub max_message_len: usize,
    pub max_nick_len: usize,
    pub max_room_len: usize,
}

impl Default for InputLimits {
    /// The server's defaults (`[limits]` in config.toml).
    fn default() -> Self {
        let l = crate::config::LimitsConfig::default();
        Self {
            max_message_len: l.max_message_len,
            max_nick_len: l.max_nick_len,
            max_room_len: l.max_room_len,
        }
    }
}

/// The single argument of a command, or its usage error (none, or more
/// than one word).
fn one_arg<'a>(rest: &'a str, usage: &'static str) -> Result<&'a str, CommandError> {
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        Err(CommandError::Usage(usage))
    } else {
        Ok(rest)
    }
}

/// An optional single argument.
fn opt_arg(rest: &str, usage: &'static str) -> Result<Option<String>, CommandError> {
    if rest.is_empty() {
        Ok(None)
    } else {
        one_arg(rest, usage).map(|a| Some(a.to_string()))
    }
}

/// Parse one typed line (a trailing `\r`/`\n` is ignored). `Ok(None)`: a
/// blank line, nothing to do. Text lines are kept exactly as typed; command
/// arguments are trimmed (`/msg`'s text only at its ends).
pub fn parse_command(line: &str) -> Result<Option<Command>, CommandError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(None);
    }
    if let Some(lit) = line.strip_prefix("//") {
        return Ok(Some(Command::Say(format!("/{lit}"))));
    }
    let Some(cmdline) = line.strip_prefix('/') else {
        return Ok(Some(Command::Say(line.to_string())));
    };
    let (name, rest) = match cmdline.split_once(char::is_whitespace) {
        Some((c, r)) => (c, r.trim()),
        None => (cmdline, ""),
    };
    let name = name.to_lowercase();
    Ok(Some(match name.as_str() {
        "nick" => Command::Nick(one_arg(rest, "/nick NAME")?.to_string()),
        "join" | "j" => Command::Join(one_arg(rest, "/join ROOM")?.to_string()),
        "leave" | "part" => Command::Leave(opt_arg(rest, "/leave [ROOM]")?),
        "msg" | "m" | "query" => match rest.split_once(char::is_whitespace) {
            Some((to, text)) => Command::Msg {
                to: to.to_string(),
                text: text.trim().to_string(),
            },
            None => return Err(CommandError::Usage("/msg NICK TEXT")),
        },
        "me" if rest.is_empty() => return Err(CommandError::Usage("/me TEXT")),
        "me" => Command::Me(rest.to_string()),
        "who" | "names" => Command::Who(opt_arg(rest, "/who [ROOM]")?),
        "rooms" | "list" if rest.is_empty() => Command::Rooms,
        "rooms" | "list" => return Err(CommandError::Usage("/rooms")),
        "sockinfo" => Command::SockInfo(opt_arg(rest, "/sockinfo [NICK]")?),
        "quit" | "exit" | "bye" | "q" => Command::Quit(rest.to_string()),
        "help" | "h" | "?" => Command::Help,
        _ => Command::Other {
            name,
            rest: rest.to_string(),
        },
    }))
}

impl Command {
    /// The command with the local checks a client makes before sending:
    /// text within `max_message_len` bytes, a valid nick, valid room names
    /// (a leading `#` stripped). The server makes the same checks again.
    pub fn check(self, lim: &InputLimits) -> Result<Command, CommandError> {
        let text_ok = |t: &str| {
            if t.len() > lim.max_message_len {
                Err(CommandError::TooLong {
                    len: t.len(),
                    max: lim.max_message_len,
                })
            } else {
                Ok(())
            }
        };
        let room_ok = |r: String| -> Result<String, CommandError> {
            let r = names::normalize_room(&r);
            names::check_room(r, lim.max_room_len)?;
            Ok(r.to_string())
        };
        Ok(match self {
            Command::Say(t) | Command::Me(t) | Command::Msg { text: t, .. } | Command::Quit(t)
                if text_ok(&t).is_err() =>
            {
                return Err(CommandError::TooLong {
                    len: t.len(),
                    max: lim.max_message_len,
                });
            }
            Command::Nick(n) => {
                names::check_nick(&n, lim.max_nick_len)?;
                Command::Nick(n)
            }
            Command::Msg { to, text } => {
                names::check_nick(&to, lim.max_nick_len)?;
                Command::Msg { to, text }
            }
            Command::Join(r) => Command::Join(room_ok(r)?),
            Command::Leave(r) => Command::Leave(r.map(room_ok).transpose()?),
            Command::Who(r) => Command::Who(r.map(room_ok).transpose()?),
            other => other,
        })
    }

    /// The protocol message for this command; `room` is the current room
    /// (the server's text mode passes `""`, which means the same). `None`
    /// for what the program handles itself (`Help`, `Other`).
    pub fn to_client_msg(&self, room: &str) -> Option<ClientMsg> {
        Some(match self {
            Command::Say(text) => ClientMsg::Say {
                room: room.to_string(),
                text: text.clone(),
            },
            Command::Me(text) => ClientMsg::Me {
                room: room.to_string(),
                text: text.clone(),
            },
            Command::Nick(nick) => ClientMsg::Nick { nick: nick.clone() },
            Command::Join(r) => ClientMsg::Join { room: r.clone() },
            Command::Leave(r) => ClientMsg::Leave {
                room: r.clone().unwrap_or_else(|| room.to_string()),
            },
            Command::Msg { to, text } => ClientMsg::Private {
                to: to.clone(),
                text: text.clone(),
            },
            Command::Who(r) => ClientMsg::Who {
                room: r.clone().unwrap_or_else(|| room.to_string()),
            },
            Command::Rooms => ClientMsg::Rooms,
            Command::SockInfo(n) => ClientMsg::SockInfo {
                nick: n.clone().unwrap_or_default(),
            },
            Command::Quit(message) => ClientMsg::Quit {
                message: message.clone(),
            },
            Command::Help | Command::Other { .. } => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Option<Command>, CommandError> {
        parse_command(line)
    }

    fn ok(line: &str) -> Command {
        p(line).ok().flatten().unwrap_or(Command::Help)
    }

    #[test]
    fn plain_lines_and_literal_slash() {
        assert_eq!(ok("hello  "), Command::Say("hello  ".into()));
        assert_eq!(ok("//etc"), Command::Say("/etc".into()));
        assert_eq!(ok("hi\r\n"), Command::Say("hi".into()));
        assert_eq!(p(""), Ok(None));
        assert_eq!(p("   \r"), Ok(None));
    }

    #[test]
    fn commands_and_aliases() {
        for (line, want) in [
            ("/nick bob", Command::Nick("bob".into())),
            ("/NICK bob ", Command::Nick("bob".into())),
            ("/join #dev", Command::Join("#dev".into())),
            ("/j dev", Command::Join("dev".into())),
            ("/leave", Command::Leave(None)),
            ("/part dev", Command::Leave(Some("dev".into()))),
            ("/who", Command::Who(None)),
            ("/names dev", Command::Who(Some("dev".into()))),
            ("/rooms", Command::Rooms),
            ("/list", Command::Rooms),
            ("/sockinfo", Command::SockInfo(None)),
            ("/sockinfo bob", Command::SockInfo(Some("bob".into()))),
            ("/quit", Command::Quit(String::new())),
            ("/exit see you", Command::Quit("see you".into())),
            ("/bye", Command::Quit(String::new())),
            ("/q", Command::Quit(String::new())),
            ("/help", Command::Help),
            ("/h", Command::Help),
            ("/?", Command::Help),
            ("/me waves  ", Command::Me("waves".into())),
            (
                "/msg bob  hi there ",
                Command::Msg {
                    to: "bob".into(),
                    text: "hi there".into(),
                },
            ),
            (
                "/m bob x",
                Command::Msg {
                    to: "bob".into(),
                    text: "x".into(),
                },
            ),
            (
                "/query bob x",
                Command::Msg {
                    to: "bob".into(),
                    text: "x".into(),
                },
            ),
            (
                "/Fault  rst ",
                Command::Other {
                    name: "fault".into(),
                    rest: "rst".into(),
                },
            ),
        ] {
            assert_eq!(p(line), Ok(Some(want)), "{line:?}");
        }
    }

    #[test]
    fn usage_errors() {
        for (line, usage) in [
            ("/nick", "/nick NAME"),
            ("/nick a b", "/nick NAME"),
            ("/join", "/join ROOM"),
            ("/join a b", "/join ROOM"),
            ("/leave a b", "/leave [ROOM]"),
            ("/who a b", "/who [ROOM]"),
            ("/msg bob", "/msg NICK TEXT"),
            ("/msg bob   ", "/msg NICK TEXT"),
            ("/msg", "/msg NICK TEXT"),
            ("/me", "/me TEXT"),
            ("/me   ", "/me TEXT"),
            ("/rooms x", "/rooms"),
            ("/sockinfo a b", "/sockinfo [NICK]"),
        ] {
            assert_eq!(p(line), Err(CommandError::Usage(usage)), "{line:?}");
        }
        assert_eq!(
            CommandError::Usage("/msg NICK TEXT").to_string(),
            "usage: /msg NICK TEXT"
        );
        assert_eq!(
            CommandError::Unknown("frob".into()).to_string(),
            "unknown command: /frob (try /help)"
        );
    }

    #[test]
    fn local_checks() {
        let lim = InputLimits {
            max_message_len: 5,
            max_nick_len: 4,
            max_room_len: 3,
        };
        let c = |line: &str| ok(line).check(&lim);
        assert_eq!(c("hello"), Ok(Command::Say("hello".into())));
        assert_eq!(c("hello!"), Err(CommandError::TooLong { len: 6, max: 5 }));
        assert_eq!(
            CommandError::TooLong { len: 6, max: 5 }.to_string(),
            "message too long: 6 bytes (max 5); not sent"
        );
        assert!(c("/me waves!").is_err());
        assert!(c("/msg bob toolong").is_err());
        assert!(c("/msg bobby hi").is_err());
        assert!(c("/quit byebye").is_err());
        assert_eq!(c("/join #dev"), Ok(Command::Join("dev".into())));
        assert!(c("/join #devs").is_err());
        assert_eq!(c("/leave #dev"), Ok(Command::Leave(Some("dev".into()))));
        assert_eq!(c("/who"), Ok(Command::Who(None)));
        assert!(c("/who a.b.c").is_err());
        assert!(c("/nick bobby").is_err());
        assert!(c("/nick b\u{1b}").is_err());
        assert_eq!(c("/nick bob"), Ok(Command::Nick("bob".into())));
        assert_eq!(c("/rooms"), Ok(Command::Rooms));
    }

    #[test]
    fn to_messages() {
        let m = |line: &str| ok(line).to_client_msg("dev");
        assert_eq!(
            m("hi"),
            Some(ClientMsg::Say {
                room: "dev".into(),
                text: "hi".into()
            })
        );
        assert_eq!(
            m("/me x"),
            Some(ClientMsg::Me {
                room: "dev".into(),
                text: "x".into()
            })
        );
        assert_eq!(m("/leave"), Some(ClientMsg::Leave { room: "dev".into() }));
        assert_eq!(m("/leave a"), Some(ClientMsg::Leave { room: "a".into() }));
        assert_eq!(m("/who"), Some(ClientMsg::Who { room: "dev".into() }));
        assert_eq!(m("/who a"), Some(ClientMsg::Who { room: "a".into() }));
        assert_eq!(
            m("/sockinfo"),
            Some(ClientMsg::SockInfo {
                nick: String::new()
            })
        );
        assert_eq!(m("/nick z"), Some(ClientMsg::Nick { nick: "z".into() }));
        assert_eq!(m("/join z"), Some(ClientMsg::Join { room: "z".into() }));
        assert_eq!(m("/rooms"), Some(ClientMsg::Rooms));
        assert_eq!(
            m("/quit bye"),
            Some(ClientMsg::Quit {
                message: "bye".into()
            })
        );
        assert_eq!(
            m("/msg a b c"),
            Some(ClientMsg::Private {
                to: "a".into(),
                text: "b c".into()
            })
        );
        assert_eq!(m("/help"), None);
        assert_eq!(m("/fault rst"), None);
    }

    #[test]
    fn help_has_every_command_once() {
        let lines = help_lines(&[CommandHelp {
            name: "/fault",
            args: "KIND",
            about: "demo",
        }]);
        assert_eq!(lines[0], "commands:");
        assert_eq!(lines[1], "  /nick NAME         change your nick");
        assert_eq!(lines.len(), COMMANDS.len() + 3);
        assert!(lines.iter().any(|l| l.starts_with("  /fault KIND")));
        assert!(lines.last().is_some_and(|l| l.contains("//")));
    }
}
