//! What a typed line means: chat text or a `/command`. Shared by the TUI and
//! plain mode so both understand exactly the same input.

use sockchat_shared::ClientMsg;
use sockchat_shared::names;

use super::NetCmd;

/// Every `/command` the client understands (for `/help` and Tab completion).
pub const COMMANDS: &[(&str, &str)] = &[
    ("/join", "ROOM  join a room (and switch to it)"),
    ("/leave", "[ROOM]  leave a room (default: the current one)"),
    ("/nick", "NAME  change nick"),
    ("/msg", "NICK TEXT  private message"),
    ("/me", "TEXT  action"),
    ("/who", "[ROOM]  list members"),
    ("/rooms", "list rooms"),
    ("/sockinfo", "NICK  the server's view of NICK's socket"),
    (
        "/fault",
        "fin|rst|close-unread|stop-reading|resume|crash  abrupt-disconnect demos",
    ),
    ("/help", "this help"),
    ("/quit", "[MESSAGE]  leave"),
];

/// The `/fault` actions: ways to end or stall a TCP connection on purpose so
/// the other side's reaction can be watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// shutdown(SHUT_WR): send FIN, keep reading.
    Fin,
    /// SO_LINGER {on, 0} then close(): send RST.
    Rst,
    /// close() while unread bytes wait in the receive queue: RST.
    CloseUnread,
    /// Stop reading the socket: our receive window fills and closes.
    StopReading,
    /// Start reading again.
    Resume,
    /// abort(): die without any cleanup.
    Crash,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Fin,
        Fault::Rst,
        Fault::CloseUnread,
        Fault::StopReading,
        Fault::Resume,
        Fault::Crash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Fin => "fin",
            Fault::Rst => "rst",
            Fault::CloseUnread => "close-unread",
            Fault::StopReading => "stop-reading",
            Fault::Resume => "resume",
            Fault::Crash => "crash",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s)
    }

    /// What `/fault crash` does and what the peer should observe (the UI
    /// prints it before aborting; the net task never sees a crash).
    pub fn crash_text() -> (&'static str, &'static str) {
        (
            "abort(): the process dies without closing anything; the kernel closes the socket for us",
            "EOF (FIN) if nothing was unread in our receive queue, otherwise ECONNRESET (104)",
        )
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Nothing to do (empty line).
    Empty,
    Say(String),
    Me(String),
    Nick(String),
    Join(String),
    Leave(Option<String>),
    Msg {
        to: String,
        text: String,
    },
    Who(Option<String>),
    Rooms,
    SockInfo(String),
    Fault(Fault),
    Help,
    Quit(String),
}

/// Limits the parser checks locally so the user gets an immediate, clear
/// error instead of a round trip (the server checks again).
#[derive(Debug, Clone, Copy)]
pub struct InputLimits {
    pub max_message_len: usize,
    pub max_nick_len: usize,
    pub max_room_len: usize,
}

impl Default for InputLimits {
    fn default() -> Self {
        let l = sockchat_shared::config::LimitsConfig::default();
        Self {
            max_message_len: l.max_message_len,
            max_nick_len: l.max_nick_len,
            max_room_len: l.max_room_len,
        }
    }
}

fn text_ok(text: &str, lim: &InputLimits) -> Result<String, String> {
    if text.len() > lim.max_message_len {
        return Err(format!(
            "message too long: {} bytes (max {}); not sent",
            text.len(),
            lim.max_message_len
        ));
    }
    Ok(text.to_string())
}

fn room_ok(room: &str, lim: &InputLimits) -> Result<String, String> {
    let room = names::normalize_room(room);
    names::check_room(room, lim.max_room_len).map_err(|e| e.to_string())?;
    Ok(room.to_string())
}

/// Parse one line the user typed. `Err` is a local error to show; nothing is
/// sent. A line starting with `//` sends the text with one `/` stripped.
pub fn parse_input(line: &str, lim: &InputLimits) -> Result<Input, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(Input::Empty);
    }
    if let Some(rest) = line.strip_prefix("//") {
        return Ok(Input::Say(text_ok(&format!("/{rest}"), lim)?));
    }
    let Some(cmdline) = line.strip_prefix('/') else {
        return Ok(Input::Say(text_ok(line, lim)?));
    };
    let (cmd, rest) = match cmdline.split_once(char::is_whitespace) {
        Some((c, r)) => (c, r.trim()),
        None => (cmdline, ""),
    };
    let one_arg = |what: &str| -> Result<&str, String> {
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            Err(format!("usage: /{cmd} {what}"))
        } else {
            Ok(rest)
        }
    };
    Ok(match cmd.to_ascii_lowercase().as_str() {
        "me" => Input::Me(text_ok(rest, lim)?),
        "nick" => {
            let n = one_arg("NAME")?;
            names::check_nick(n, lim.max_nick_len).map_err(|e| e.to_string())?;
            Input::Nick(n.to_string())
        }
        "join" | "j" => Input::Join(room_ok(one_arg("ROOM")?, lim)?),
        "leave" | "part" => {
            if rest.is_empty() {
                Input::Leave(None)
            } else {
                Input::Leave(Some(room_ok(one_arg("[ROOM]")?, lim)?))
            }
        }
        "msg" | "m" => {
            let Some((to, text)) = rest.split_once(char::is_whitespace) else {
                return Err("usage: /msg NICK TEXT".into());
            };
            Input::Msg {
                to: to.to_string(),
                text: text_ok(text.trim(), lim)?,
            }
        }
        "who" | "names" => {
            if rest.is_empty() {
                Input::Who(None)
            } else {
                Input::Who(Some(room_ok(one_arg("[ROOM]")?, lim)?))
            }
        }
        "rooms" | "list" => Input::Rooms,
        // Without NICK: your own connection as the server sees it.
        "sockinfo" if rest.is_empty() => Input::SockInfo(String::new()),
        "sockinfo" => Input::SockInfo(one_arg("[NICK]")?.to_string()),
        "fault" => {
            let f = one_arg("fin|rst|close-unread|stop-reading|resume|crash")?;
            Input::Fault(Fault::parse(f).ok_or_else(|| {
                format!(
                    "unknown fault {f:?}: use fin, rst, close-unread, stop-reading, resume or crash"
                )
            })?)
        }
        "help" | "h" | "?" => Input::Help,
        "quit" | "exit" | "q" => Input::Quit(rest.to_string()),
        other => return Err(format!("unknown command /{other} (try /help)")),
    })
}

impl Input {
    /// The net command for this input. `room` is the current room. Inputs
    /// the UI handles itself (help, crash, empty) give `None`.
    pub fn to_net(&self, room: &str) -> Option<NetCmd> {
        let send = |msg| Some(NetCmd::Send { id: None, msg });
        match self {
            Input::Empty | Input::Help | Input::Fault(Fault::Crash) => None,
            Input::Say(t) => send(ClientMsg::Say {
                room: room.into(),
                text: t.clone(),
            }),
            Input::Me(t) => send(ClientMsg::Me {
                room: room.into(),
                text: t.clone(),
            }),
            Input::Nick(n) => send(ClientMsg::Nick { nick: n.clone() }),
            Input::Join(r) => send(ClientMsg::Join { room: r.clone() }),
            Input::Leave(r) => send(ClientMsg::Leave {
                room: r.clone().unwrap_or_else(|| room.to_string()),
            }),
            Input::Msg { to, text } => send(ClientMsg::Private {
                to: to.clone(),
                text: text.clone(),
            }),
            Input::Who(r) => send(ClientMsg::Who {
                room: r.clone().unwrap_or_else(|| room.to_string()),
            }),
            Input::Rooms => send(ClientMsg::Rooms),
            Input::SockInfo(n) => send(ClientMsg::SockInfo { nick: n.clone() }),
            Input::Fault(f) => Some(NetCmd::Fault(*f)),
            Input::Quit(m) => Some(NetCmd::Quit(m.clone())),
        }
    }
}

/// The help text, one line per command.
pub fn help_lines() -> Vec<String> {
    COMMANDS.iter().map(|(c, d)| format!("{c} {d}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let l = InputLimits::default();
        assert_eq!(parse_input("hello", &l), Ok(Input::Say("hello".into())));
        assert_eq!(parse_input("//etc", &l), Ok(Input::Say("/etc".into())));
        assert_eq!(parse_input("/join #dev", &l), Ok(Input::Join("dev".into())));
        assert_eq!(
            parse_input("/msg bob hi there", &l),
            Ok(Input::Msg {
                to: "bob".into(),
                text: "hi there".into()
            })
        );
        assert_eq!(
            parse_input("/fault close-unread", &l),
            Ok(Input::Fault(Fault::CloseUnread))
        );
        assert!(parse_input("/fault nope", &l).is_err());
        assert!(parse_input("/bogus", &l).is_err());
        assert!(parse_input("/nick a b", &l).is_err());
        assert_eq!(parse_input("   ", &l), Ok(Input::Empty));
        let long = "x".repeat(l.max_message_len + 1);
        let err = parse_input(&long, &l).expect_err("too long");
        assert!(err.contains("too long"), "{err}");
    }
}
