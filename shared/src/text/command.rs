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
    /// `/pass PASSWORD`: the server's password (text mode: before anything
    /// else).
    Pass(String),
    /// `/register PASSWORD`: register your current nick.
    Register(String),
    /// `/identify [NICK] PASSWORD`; `None`: your current nick.
    Identify {
        nick: Option<String>,
        password: String,
    },
    /// `/oper PASSWORD`.
    Oper(String),
    /// `/join ROOM KEY`.
    JoinKey { room: String, key: String },
    /// `/invite NICK [ROOM]`; `None`: the current room.
    Invite { nick: String, room: Option<String> },
    /// `/key ROOM [KEY]`; no key: remove it.
    RoomKey { room: String, key: Option<String> },
    /// `/inviteonly ROOM on|off`.
    InviteOnly { room: String, on: bool },
    /// `/kick NICK [REASON]`.
    Kick { nick: String, reason: String },
    /// `/ban NICK|ADDR|CIDR [DURATION] [REASON]`; `secs` 0: until lifted.
    Ban {
        target: String,
        secs: u32,
        reason: String,
    },
    /// `/unban NICK|ADDR|CIDR`.
    Unban(String),
    /// `/bans`: list the bans.
    Bans,
    /// `/mute NICK [DURATION]`; `secs` 0: until lifted.
    Mute { nick: String, secs: u32 },
    /// `/unmute NICK`.
    Unmute(String),
    /// `/away [TEXT]`: mark yourself away (`""`: back).
    Away(String),
    /// `/stats`: the server's numbers (server operators).
    Stats,
    /// `/topic [#ROOM] [TEXT|-delete]`: show (no TEXT), set or clear
    /// (`Some("")`) a room's topic; `room` `None`: the current room.
    Topic {
        room: Option<String>,
        text: Option<String>,
    },
    /// `/query NICK` without text: a client opens a private view with NICK
    /// (with text it is `/msg`). The server's text mode has no views.
    Query(String),
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
    /// A password or key that breaks its rule.
    #[error(transparent)]
    BadSecret(#[from] crate::secret::SecretError),
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
        name: "/topic",
        args: "[#ROOM] [TEXT]",
        about: "show or set a room's topic (-delete clears it; room operators)",
    },
    CommandHelp {
        name: "/away",
        args: "[TEXT]",
        about: "mark yourself away (no TEXT: back); /who shows it",
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
    CommandHelp {
        name: "/pass",
        args: "PASSWORD",
        about: "the server's password (text mode: first)",
    },
    CommandHelp {
        name: "/register",
        args: "PASSWORD",
        about: "register your nick (then nobody else can use it)",
    },
    CommandHelp {
        name: "/identify",
        args: "[NICK] PASSWORD",
        about: "prove a registered nick is yours (and take it)",
    },
    CommandHelp {
        name: "/invite",
        args: "NICK [ROOM]",
        about: "invite NICK into an invite-only room",
    },
    CommandHelp {
        name: "/key",
        args: "ROOM [KEY]",
        about: "set (or without KEY remove) ROOM's key",
    },
    CommandHelp {
        name: "/inviteonly",
        args: "ROOM on|off",
        about: "make ROOM invite-only, or open it",
    },
    CommandHelp {
        name: "/oper",
        args: "PASSWORD",
        about: "become a server operator",
    },
    CommandHelp {
        name: "/kick",
        args: "NICK [REASON]",
        about: "operator: disconnect NICK",
    },
    CommandHelp {
        name: "/ban",
        args: "NICK|ADDR|CIDR [TIME] [REASON]",
        about: "operator: ban (TIME: 30s, 10m, 2h, 7d)",
    },
    CommandHelp {
        name: "/unban",
        args: "NICK|ADDR|CIDR",
        about: "operator: lift a ban",
    },
    CommandHelp {
        name: "/bans",
        args: "",
        about: "operator: list the bans",
    },
    CommandHelp {
        name: "/mute",
        args: "NICK [TIME]",
        about: "operator: refuse NICK's messages",
    },
    CommandHelp {
        name: "/unmute",
        args: "NICK",
        about: "operator: lift a mute",
    },
    CommandHelp {
        name: "/stats",
        args: "",
        about: "operator: users, rooms, messages/s, drops, uptime",
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
        lines.push(format!("  {usage:<18} {}", c.about).trim_end().to_string());
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

/// Exactly `n` words (`/key ROOM KEY`), or the usage error.
fn words(rest: &str, n: usize, usage: &'static str) -> Result<Vec<String>, CommandError> {
    let w: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
    if w.len() == n {
        Ok(w)
    } else {
        Err(CommandError::Usage(usage))
    }
}

/// The first word and the rest of the line (trimmed), or the usage error
/// when there is no first word.
fn first_and_rest<'a>(
    rest: &'a str,
    usage: &'static str,
) -> Result<(&'a str, &'a str), CommandError> {
    if rest.is_empty() {
        return Err(CommandError::Usage(usage));
    }
    Ok(match rest.split_once(char::is_whitespace) {
        Some((a, b)) => (a, b.trim()),
        None => (rest, ""),
    })
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
        "join" | "j" => match words(rest, 2, "/join ROOM [KEY]") {
            Ok(w) => Command::JoinKey {
                room: w[0].clone(),
                key: w[1].clone(),
            },
            Err(_) => Command::Join(one_arg(rest, "/join ROOM [KEY]")?.to_string()),
        },
        "leave" | "part" => Command::Leave(opt_arg(rest, "/leave [ROOM]")?),
        "query" if !rest.is_empty() && !rest.contains(char::is_whitespace) => {
            Command::Query(rest.to_string())
        }
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
        "pass" => Command::Pass(one_arg(rest, "/pass PASSWORD")?.to_string()),
        "register" => Command::Register(one_arg(rest, "/register PASSWORD")?.to_string()),
        "identify" => match words(rest, 2, "/identify [NICK] PASSWORD") {
            Ok(w) => Command::Identify {
                nick: Some(w[0].clone()),
                password: w[1].clone(),
            },
            Err(_) => Command::Identify {
                nick: None,
                password: one_arg(rest, "/identify [NICK] PASSWORD")?.to_string(),
            },
        },
        "oper" => Command::Oper(one_arg(rest, "/oper PASSWORD")?.to_string()),
        "invite" => {
            let usage = "/invite NICK [ROOM]";
            let (nick, room) = first_and_rest(rest, usage)?;
            Command::Invite {
                nick: nick.to_string(),
                room: opt_arg(room, usage)?,
            }
        }
        "key" => {
            let usage = "/key ROOM [KEY]";
            let (room, key) = first_and_rest(rest, usage)?;
            Command::RoomKey {
                room: room.to_string(),
                key: opt_arg(key, usage)?,
            }
        }
        "inviteonly" => {
            let usage = "/inviteonly ROOM on|off";
            let w = words(rest, 2, usage)?;
            let on = match w[1].to_lowercase().as_str() {
                "on" => true,
                "off" => false,
                _ => return Err(CommandError::Usage(usage)),
            };
            Command::InviteOnly {
                room: w[0].clone(),
                on,
            }
        }
        "kick" => {
            let (nick, reason) = first_and_rest(rest, "/kick NICK [REASON]")?;
            Command::Kick {
                nick: nick.to_string(),
                reason: reason.to_string(),
            }
        }
        "ban" => {
            let (target, more) = first_and_rest(rest, "/ban NICK|ADDR|CIDR [TIME] [REASON]")?;
            // A second word that is a duration is the duration; anything
            // else starts the reason.
            let (secs, reason) = match more.split_once(char::is_whitespace) {
                Some((d, r)) if super::parse_duration(d).is_some() => {
                    (super::parse_duration(d).unwrap_or(0), r.trim())
                }
                None if super::parse_duration(more).is_some() => {
                    (super::parse_duration(more).unwrap_or(0), "")
                }
                _ => (0, more),
            };
            Command::Ban {
                target: target.to_string(),
                secs,
                reason: reason.to_string(),
            }
        }
        "unban" => Command::Unban(one_arg(rest, "/unban NICK|ADDR|CIDR")?.to_string()),
        "bans" if rest.is_empty() => Command::Bans,
        "bans" => return Err(CommandError::Usage("/bans")),
        "mute" => {
            let usage = "/mute NICK [TIME]";
            let (nick, time) = first_and_rest(rest, usage)?;
            let secs = match opt_arg(time, usage)? {
                None => 0,
                Some(t) => super::parse_duration(&t).ok_or(CommandError::Usage(usage))?,
            };
            Command::Mute {
                nick: nick.to_string(),
                secs,
            }
        }
        "unmute" => Command::Unmute(one_arg(rest, "/unmute NICK")?.to_string()),
        "away" => Command::Away(rest.to_string()),
        "topic" => {
            // A first word starting with `#` names the room (as in IRC);
            // anything else is the topic of the current room.
            let (room, text) = match rest.split_once(char::is_whitespace) {
                _ if !rest.starts_with('#') => (None, rest),
                Some((r, t)) => (Some(r.to_string()), t.trim()),
                None => (Some(rest.to_string()), ""),
            };
            let text = match text {
                "" => None,
                "-delete" => Some(String::new()),
                t => Some(t.to_string()),
            };
            Command::Topic { room, text }
        }
        "stats" if rest.is_empty() => Command::Stats,
        "stats" => return Err(CommandError::Usage("/stats")),
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
            Command::Say(t)
            | Command::Me(t)
            | Command::Msg { text: t, .. }
            | Command::Quit(t)
            | Command::Away(t)
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
            Command::JoinKey { room, key } => {
                crate::secret::check_room_key(&key)?;
                Command::JoinKey {
                    room: room_ok(room)?,
                    key,
                }
            }
            Command::RoomKey { room, key } => {
                if let Some(k) = &key {
                    crate::secret::check_room_key(k)?;
                }
                Command::RoomKey {
                    room: room_ok(room)?,
                    key,
                }
            }
            Command::Pass(p) => {
                crate::secret::check_password(&p)?;
                Command::Pass(p)
            }
            Command::Register(p) => {
                crate::secret::check_password(&p)?;
                Command::Register(p)
            }
            Command::Oper(p) => {
                crate::secret::check_password(&p)?;
                Command::Oper(p)
            }
            Command::Identify { nick, password } => {
                crate::secret::check_password(&password)?;
                if let Some(n) = &nick {
                    names::check_nick(n, lim.max_nick_len)?;
                }
                Command::Identify { nick, password }
            }
            Command::Leave(r) => Command::Leave(r.map(room_ok).transpose()?),
            Command::Topic { room, text } => {
                if let Some(t) = &text {
                    text_ok(t)?;
                }
                Command::Topic {
                    room: room.map(room_ok).transpose()?,
                    text,
                }
            }
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
            Command::Pass(password) => ClientMsg::Pass {
                password: password.clone(),
            },
            Command::Register(password) => ClientMsg::Register {
                password: password.clone(),
            },
            Command::Identify { nick, password } => ClientMsg::Identify {
                nick: nick.clone().unwrap_or_default(),
                password: password.clone(),
            },
            Command::Oper(password) => ClientMsg::Oper {
                password: password.clone(),
            },
            Command::JoinKey { room, key } => ClientMsg::JoinKey {
                room: room.clone(),
                key: key.clone(),
            },
            Command::Invite { nick, room: r } => ClientMsg::Invite {
                nick: nick.clone(),
                room: r.clone().unwrap_or_else(|| room.to_string()),
            },
            Command::RoomKey { room, key } => ClientMsg::RoomKey {
                room: room.clone(),
                key: key.clone().unwrap_or_default(),
            },
            Command::InviteOnly { room, on } => ClientMsg::InviteOnly {
                room: room.clone(),
                on: *on,
            },
            Command::Kick { nick, reason } => ClientMsg::Kick {
                nick: nick.clone(),
                reason: reason.clone(),
            },
            Command::Ban {
                target,
                secs,
                reason,
            } => ClientMsg::Ban {
                target: target.clone(),
                secs: *secs,
                reason: reason.clone(),
            },
            Command::Unban(target) => ClientMsg::Unban {
                target: target.clone(),
            },
            Command::Bans => ClientMsg::Bans,
            Command::Mute { nick, secs } => ClientMsg::Mute {
                nick: nick.clone(),
                secs: *secs,
            },
            Command::Unmute(nick) => ClientMsg::Unmute { nick: nick.clone() },
            Command::Away(text) => ClientMsg::Away { text: text.clone() },
            Command::Stats => ClientMsg::Stats,
            Command::Topic { room: r, text } => ClientMsg::Topic {
                room: r.clone().unwrap_or_else(|| room.to_string()),
                text: text.clone(),
            },
            Command::Help | Command::Query(_) | Command::Other { .. } => return None,
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
            ("/away", Command::Away(String::new())),
            ("/STATS", Command::Stats),
            (
                "/topic",
                Command::Topic {
                    room: None,
                    text: None,
                },
            ),
            (
                "/topic release on friday ",
                Command::Topic {
                    room: None,
                    text: Some("release on friday".into()),
                },
            ),
            (
                "/topic #dev  ship it",
                Command::Topic {
                    room: Some("#dev".into()),
                    text: Some("ship it".into()),
                },
            ),
            (
                "/topic #dev",
                Command::Topic {
                    room: Some("#dev".into()),
                    text: None,
                },
            ),
            (
                "/topic -delete",
                Command::Topic {
                    room: None,
                    text: Some(String::new()),
                },
            ),
            (
                "/away  gone to lunch ",
                Command::Away("gone to lunch".into()),
            ),
            ("/query bob", Command::Query("bob".into())),
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
            ("/join", "/join ROOM [KEY]"),
            ("/join a b c", "/join ROOM [KEY]"),
            ("/pass", "/pass PASSWORD"),
            ("/pass a b", "/pass PASSWORD"),
            ("/register", "/register PASSWORD"),
            ("/identify", "/identify [NICK] PASSWORD"),
            ("/identify a b c", "/identify [NICK] PASSWORD"),
            ("/oper", "/oper PASSWORD"),
            ("/invite", "/invite NICK [ROOM]"),
            ("/invite a b c", "/invite NICK [ROOM]"),
            ("/key", "/key ROOM [KEY]"),
            ("/key a b c", "/key ROOM [KEY]"),
            ("/inviteonly dev", "/inviteonly ROOM on|off"),
            ("/inviteonly dev maybe", "/inviteonly ROOM on|off"),
            ("/kick", "/kick NICK [REASON]"),
            ("/ban", "/ban NICK|ADDR|CIDR [TIME] [REASON]"),
            ("/unban", "/unban NICK|ADDR|CIDR"),
            ("/unban a b", "/unban NICK|ADDR|CIDR"),
            ("/bans all", "/bans"),
            ("/mute", "/mute NICK [TIME]"),
            ("/mute bob soon", "/mute NICK [TIME]"),
            ("/mute bob 10m x", "/mute NICK [TIME]"),
            ("/unmute", "/unmute NICK"),
            ("/leave a b", "/leave [ROOM]"),
            ("/who a b", "/who [ROOM]"),
            ("/msg bob", "/msg NICK TEXT"),
            ("/msg bob   ", "/msg NICK TEXT"),
            ("/msg", "/msg NICK TEXT"),
            ("/me", "/me TEXT"),
            ("/me   ", "/me TEXT"),
            ("/rooms x", "/rooms"),
            ("/sockinfo a b", "/sockinfo [NICK]"),
            ("/stats now", "/stats"),
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
    fn who_may_come_in_commands() {
        let ban = |target: &str, secs, reason: &str| Command::Ban {
            target: target.into(),
            secs,
            reason: reason.into(),
        };
        for (line, want) in [
            ("/pass pw", Command::Pass("pw".into())),
            ("/register pw", Command::Register("pw".into())),
            (
                "/identify pw",
                Command::Identify {
                    nick: None,
                    password: "pw".into(),
                },
            ),
            (
                "/identify alice pw",
                Command::Identify {
                    nick: Some("alice".into()),
                    password: "pw".into(),
                },
            ),
            ("/oper pw", Command::Oper("pw".into())),
            (
                "/j #dev k",
                Command::JoinKey {
                    room: "#dev".into(),
                    key: "k".into(),
                },
            ),
            (
                "/invite bob",
                Command::Invite {
                    nick: "bob".into(),
                    room: None,
                },
            ),
            (
                "/invite bob dev",
                Command::Invite {
                    nick: "bob".into(),
                    room: Some("dev".into()),
                },
            ),
            (
                "/key dev k",
                Command::RoomKey {
                    room: "dev".into(),
                    key: Some("k".into()),
                },
            ),
            (
                "/key dev",
                Command::RoomKey {
                    room: "dev".into(),
                    key: None,
                },
            ),
            (
                "/inviteonly dev ON",
                Command::InviteOnly {
                    room: "dev".into(),
                    on: true,
                },
            ),
            (
                "/inviteonly dev off",
                Command::InviteOnly {
                    room: "dev".into(),
                    on: false,
                },
            ),
            (
                "/kick bob",
                Command::Kick {
                    nick: "bob".into(),
                    reason: String::new(),
                },
            ),
            (
                "/kick bob  stop  that ",
                Command::Kick {
                    nick: "bob".into(),
                    reason: "stop  that".into(),
                },
            ),
            ("/ban bob", ban("bob", 0, "")),
            ("/ban 10.0.0.0/8 2h flood", ban("10.0.0.0/8", 7200, "flood")),
            ("/ban bob 10m", ban("bob", 600, "")),
            ("/ban bob spam again", ban("bob", 0, "spam again")),
            // One word that is not a duration is the whole reason.
            ("/ban bob spammer", ban("bob", 0, "spammer")),
            (
                "/ban bob 0 zero is no duration",
                ban("bob", 0, "0 zero is no duration"),
            ),
            ("/unban 127.0.0.5", Command::Unban("127.0.0.5".into())),
            ("/bans", Command::Bans),
            (
                "/mute bob",
                Command::Mute {
                    nick: "bob".into(),
                    secs: 0,
                },
            ),
            (
                "/mute bob 30s",
                Command::Mute {
                    nick: "bob".into(),
                    secs: 30,
                },
            ),
            ("/unmute bob", Command::Unmute("bob".into())),
        ] {
            assert_eq!(p(line), Ok(Some(want)), "{line:?}");
        }
    }

    #[test]
    fn who_may_come_in_messages() {
        let m = |line: &str| ok(line).to_client_msg("dev");
        assert_eq!(
            m("/identify pw"),
            Some(ClientMsg::Identify {
                nick: String::new(),
                password: "pw".into()
            })
        );
        assert_eq!(
            m("/identify al pw"),
            Some(ClientMsg::Identify {
                nick: "al".into(),
                password: "pw".into()
            })
        );
        assert_eq!(
            m("/invite bob"),
            Some(ClientMsg::Invite {
                nick: "bob".into(),
                room: "dev".into()
            })
        );
        assert_eq!(
            m("/key dev"),
            Some(ClientMsg::RoomKey {
                room: "dev".into(),
                key: String::new()
            })
        );
        assert_eq!(
            m("/inviteonly x on"),
            Some(ClientMsg::InviteOnly {
                room: "x".into(),
                on: true
            })
        );
        assert_eq!(
            m("/join x k"),
            Some(ClientMsg::JoinKey {
                room: "x".into(),
                key: "k".into()
            })
        );
        assert_eq!(
            m("/kick bob go"),
            Some(ClientMsg::Kick {
                nick: "bob".into(),
                reason: "go".into()
            })
        );
        assert_eq!(
            m("/ban bob 1m x"),
            Some(ClientMsg::Ban {
                target: "bob".into(),
                secs: 60,
                reason: "x".into()
            })
        );
        assert_eq!(
            m("/mute bob 2m"),
            Some(ClientMsg::Mute {
                nick: "bob".into(),
                secs: 120
            })
        );
        assert_eq!(
            m("/unmute bob"),
            Some(ClientMsg::Unmute { nick: "bob".into() })
        );
        assert_eq!(
            m("/unban bob"),
            Some(ClientMsg::Unban {
                target: "bob".into()
            })
        );
        assert_eq!(m("/bans"), Some(ClientMsg::Bans));
        assert_eq!(
            m("/pass x"),
            Some(ClientMsg::Pass {
                password: "x".into()
            })
        );
        assert_eq!(
            m("/oper x"),
            Some(ClientMsg::Oper {
                password: "x".into()
            })
        );
        assert_eq!(
            m("/register x"),
            Some(ClientMsg::Register {
                password: "x".into()
            })
        );
        let lim = InputLimits::default();
        assert!(ok("/pass a\u{1b}b").check(&lim).is_err());
        assert!(ok("/oper a\u{7f}").check(&lim).is_err());
        assert!(ok("/register a\u{0}").check(&lim).is_err());
        assert!(
            ok(&format!("/identify {}", "x".repeat(129)))
                .check(&lim)
                .is_err()
        );
        assert!(ok("/identify b\u{1b}d pw").check(&lim).is_err());
        assert!(ok("/join dev k\u{1}").check(&lim).is_err());
        assert!(ok("/key dev k\u{1}").check(&lim).is_err());
        assert_eq!(
            ok("/join #dev k").check(&lim),
            Ok(Command::JoinKey {
                room: "dev".into(),
                key: "k".into()
            })
        );
        assert_eq!(
            ok("/key #dev").check(&lim),
            Ok(Command::RoomKey {
                room: "dev".into(),
                key: None
            })
        );
        assert_eq!(ok("/oper pw").check(&lim), Ok(Command::Oper("pw".into())));
        assert_eq!(ok("/pass pw").check(&lim), Ok(Command::Pass("pw".into())));
        assert_eq!(
            ok("/register pw").check(&lim),
            Ok(Command::Register("pw".into()))
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
