//! What a line typed into the client means: `shared::text`'s one parser (the
//! same commands and aliases as the server's text mode) plus the client's
//! own `/fault`. The TUI and plain mode both call [`parse_input`], so both
//! understand exactly the same input.

use sockchat_shared::ClientMsg;
use sockchat_shared::text::{self, Command, CommandError, CommandHelp};

pub use sockchat_shared::text::InputLimits;

use crate::net::transfer::XferCmd;
use crate::net::{Fault, LineId, NetCmd};

/// The client's own commands, for `/help` and Tab completion.
pub const CLIENT_COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "/fault",
        args: "fin|rst|close-unread|stop-reading|resume|crash",
        about: "abrupt-disconnect demos on your own socket",
    },
    CommandHelp {
        name: "/send",
        args: "PATH NICK|#ROOM",
        about: "offer a file to NICK, or to each member of #ROOM",
    },
    CommandHelp {
        name: "/accept",
        args: "[ID]",
        about: "take a file offered to you",
    },
    CommandHelp {
        name: "/decline",
        args: "[ID]",
        about: "refuse a file offered to you",
    },
    CommandHelp {
        name: "/cancel",
        args: "[ID]",
        about: "stop a file transfer",
    },
    CommandHelp {
        name: "/query",
        args: "NICK",
        about: "a private view with NICK (its lines go to NICK)",
    },
    CommandHelp {
        name: "/close",
        args: "",
        about: "close the private view you are in",
    },
    CommandHelp {
        name: "/clear",
        args: "",
        about: "clear the lines of the room in view",
    },
    CommandHelp {
        name: "/ignore",
        args: "[NICK]",
        about: "hide NICK's lines (no NICK: list); /unignore NICK",
    },
    CommandHelp {
        name: "/search",
        args: "[TEXT]",
        about: "find TEXT in this room's lines (again: the older one)",
    },
];

/// What the terminal UI does by itself, without the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// `/query NICK`: open (or go to) the private view with NICK.
    Query(String),
    /// `/close`: close the private view in view.
    Close,
    /// `/clear`: forget the lines of the room in view.
    Clear,
    /// `/ignore [NICK]`: hide NICK's lines; `None`: list who is ignored.
    Ignore(Option<String>),
    /// `/unignore NICK`.
    Unignore(String),
    /// `/search [TEXT]`: the newest line above the view holding TEXT;
    /// `None`: the next older match of the last search.
    Search(Option<String>),
}

/// A parsed input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Nothing to do (a blank line).
    Empty,
    /// `/help`: the program shows the help itself.
    Help,
    /// `/quit [MESSAGE]`.
    Quit(String),
    /// `/fault NAME`.
    Fault(Fault),
    /// `/send`, `/accept`, `/decline`, `/cancel`.
    Transfer(XferCmd),
    /// The terminal UI's own commands (views, ignore, search).
    Local(Local),
    /// Anything that becomes one protocol message (chat text, `/msg`,
    /// `/join`...), already checked against the local limits.
    Send(Command),
}

/// Parse one line the user typed. `Err` is the error to show; nothing is
/// sent.
pub fn parse_input(line: &str, lim: &InputLimits) -> Result<Input, String> {
    let cmd = match text::parse_command(line) {
        Ok(None) => return Ok(Input::Empty),
        Ok(Some(c)) => c,
        Err(e) => return Err(e.to_string()),
    };
    Ok(match cmd {
        Command::Help => Input::Help,
        Command::Other { name, rest } if name == "fault" => {
            let usage =
                || CommandError::Usage("/fault fin|rst|close-unread|stop-reading|resume|crash");
            if rest.is_empty() || rest.contains(char::is_whitespace) {
                return Err(usage().to_string());
            }
            Input::Fault(Fault::parse(&rest).ok_or_else(|| {
                format!(
                    "unknown fault {rest:?}: use fin, rst, close-unread, stop-reading, resume or crash"
                )
            })?)
        }
        Command::Other { name, rest }
            if matches!(name.as_str(), "send" | "accept" | "decline" | "cancel") =>
        {
            Input::Transfer(transfer_command(&name, &rest)?)
        }
        Command::Query(nick) => Input::Local(Local::Query(nick)),
        Command::Other { name, rest } if name == "close" && rest.is_empty() => {
            Input::Local(Local::Close)
        }
        Command::Other { name, rest } if name == "clear" && rest.is_empty() => {
            Input::Local(Local::Clear)
        }
        Command::Other { name, rest } if name == "ignore" || name == "unignore" => {
            let usage = if name == "ignore" {
                "/ignore [NICK]"
            } else {
                "/unignore NICK"
            };
            if rest.contains(char::is_whitespace) || (name == "unignore" && rest.is_empty()) {
                return Err(CommandError::Usage(usage).to_string());
            }
            match (name.as_str(), rest.is_empty()) {
                ("ignore", true) => Input::Local(Local::Ignore(None)),
                ("ignore", false) => Input::Local(Local::Ignore(Some(rest))),
                _ => Input::Local(Local::Unignore(rest)),
            }
        }
        Command::Other { name, rest } if name == "search" => {
            Input::Local(Local::Search((!rest.is_empty()).then_some(rest)))
        }
        Command::Other { name, .. } => return Err(CommandError::Unknown(name).to_string()),
        other => match other.check(lim).map_err(|e| e.to_string())? {
            Command::Quit(m) => Input::Quit(m),
            checked => Input::Send(checked),
        },
    })
}

/// `/send PATH NICK` or `/send PATH #ROOM` (the target is the last word,
/// so a path may hold spaces), `/accept [ID]`, `/decline [ID]`, `/cancel [ID]`.
fn transfer_command(name: &str, rest: &str) -> Result<XferCmd, String> {
    let rest = rest.trim();
    if name == "send" {
        let usage = "usage: /send PATH NICK|#ROOM";
        let (path, to) = rest.rsplit_once(char::is_whitespace).ok_or(usage)?;
        let (path, to) = (path.trim(), to.trim());
        if path.is_empty() || to.is_empty() {
            return Err(usage.into());
        }
        let path = match path.strip_prefix("~/") {
            Some(p) => std::env::var_os("HOME")
                .map(|h| std::path::Path::new(&h).join(p))
                .unwrap_or_else(|| path.into()),
            None => path.into(),
        };
        return Ok(XferCmd::Send {
            path,
            to: to.to_string(),
        });
    }
    let id = if rest.is_empty() {
        None
    } else {
        Some(
            rest.trim_start_matches('#')
                .parse::<u64>()
                .map_err(|_| format!("usage: /{name} [ID] (ID is the transfer's number)"))?,
        )
    };
    Ok(match name {
        "accept" => XferCmd::Accept(id),
        "decline" => XferCmd::Decline(id),
        _ => XferCmd::Cancel(id),
    })
}

impl Input {
    /// Is this a line a person wrote to others (chat, action, private
    /// message)? Those are tracked until the server's echo confirms them.
    pub fn is_line(&self) -> bool {
        matches!(
            self,
            Input::Send(Command::Say(_) | Command::Me(_) | Command::Msg { .. })
        )
    }

    /// The protocol message, addressed to `room` where it needs one.
    pub fn to_msg(&self, room: &str) -> Option<ClientMsg> {
        match self {
            Input::Send(c) => c.to_client_msg(room),
            _ => None,
        }
    }

    /// The net command for this input; `room` is the room the user is
    /// looking at, `id` the number the caller gave a typed line (see
    /// [`Input::is_line`]; commands go without one). What the UI handles
    /// itself (help, crash, empty) gives `None`.
    pub fn to_net(&self, room: &str, id: Option<LineId>) -> Option<NetCmd> {
        match self {
            Input::Empty | Input::Help | Input::Fault(Fault::Crash) | Input::Local(_) => None,
            Input::Quit(m) => Some(NetCmd::Quit(m.clone())),
            Input::Fault(f) => Some(NetCmd::Fault(*f)),
            Input::Transfer(c) => Some(NetCmd::Transfer(c.clone())),
            Input::Send(_) => self.to_msg(room).map(|msg| NetCmd::Send {
                id: id.filter(|_| self.is_line()),
                msg,
            }),
        }
    }
}

/// The help text: every command, one line each.
pub fn help_lines() -> Vec<String> {
    text::help_lines(CLIENT_COMMANDS)
}

/// Every command name (`/join`...), for Tab completion.
pub fn command_names() -> Vec<&'static str> {
    text::COMMANDS
        .iter()
        .chain(CLIENT_COMMANDS)
        .map(|c| c.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let l = InputLimits::default();
        let p = |s: &str| parse_input(s, &l);
        assert_eq!(p("hello"), Ok(Input::Send(Command::Say("hello".into()))));
        assert_eq!(p("//etc"), Ok(Input::Send(Command::Say("/etc".into()))));
        assert_eq!(
            p("/join #dev"),
            Ok(Input::Send(Command::Join("dev".into())))
        );
        assert_eq!(
            p("/msg bob hi there"),
            Ok(Input::Send(Command::Msg {
                to: "bob".into(),
                text: "hi there".into()
            }))
        );
        assert!(p("/msg bob hi").is_ok_and(|i| i.is_line()));
        assert!(p("/join x").is_ok_and(|i| !i.is_line()));
        assert_eq!(
            p("/fault close-unread"),
            Ok(Input::Fault(Fault::CloseUnread))
        );
        assert_eq!(p("/quit bye now"), Ok(Input::Quit("bye now".into())));
        assert_eq!(p("/?"), Ok(Input::Help));
        assert!(p("/fault nope").is_err());
        assert!(p("/fault").is_err());
        assert_eq!(
            p("/bogus"),
            Err("unknown command: /bogus (try /help)".to_string())
        );
        assert!(p("/nick a b").is_err());
        assert_eq!(
            p("/query bob"),
            Ok(Input::Local(Local::Query("bob".into())))
        );
        assert_eq!(p("/clear"), Ok(Input::Local(Local::Clear)));
        assert_eq!(p("/ignore"), Ok(Input::Local(Local::Ignore(None))));
        assert_eq!(
            p("/ignore spam"),
            Ok(Input::Local(Local::Ignore(Some("spam".into()))))
        );
        assert!(p("/unignore").is_err());
        assert_eq!(
            p("/search two words"),
            Ok(Input::Local(Local::Search(Some("two words".into()))))
        );
        assert_eq!(p("/search"), Ok(Input::Local(Local::Search(None))));
        assert!(p("/me").is_err(), "/me with no text is refused");
        assert_eq!(
            p("/away back soon"),
            Ok(Input::Send(Command::Away("back soon".into())))
        );
        assert_eq!(p("   "), Ok(Input::Empty));
        let long = "x".repeat(l.max_message_len + 1);
        assert!(p(&long).is_err_and(|e| e.contains("too long")));
    }

    #[test]
    fn help_and_completion_know_fault() {
        assert!(help_lines().iter().any(|l| l.contains("/fault")));
        assert!(command_names().contains(&"/fault"));
        assert!(command_names().contains(&"/sockinfo"));
    }
}
