//! Text mode for `nc`/telnet users, as the server runs it: what a typed line
//! means and how a server message reads. Both come from `shared::text` (the
//! one parser and the one renderer, which the client's input line and chat
//! view use too); this module only maps them onto what the TCP reader does
//! with a line.
//!
//! **Invariant:** a rendered line never contains a control character (the
//! shared renderer sanitises the whole line; the caller appends the `\n`).

use sockchat_shared::ClientMsg;
use sockchat_shared::ServerMsg;
use sockchat_shared::text::{self, Command, CommandError};

/// The `/help` text, one notice line each.
pub fn help() -> Vec<String> {
    text::help_lines(&[])
}

/// What a typed line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextCommand {
    /// A protocol command (rooms empty = current room).
    Msg(ClientMsg),
    Help,
    /// Nothing to do (a blank line).
    Nothing,
    /// A usage error to show after `! `.
    Error(String),
}

/// Parse one line (without its line ending).
pub fn parse(line: &str) -> TextCommand {
    match text::parse_command(line) {
        Ok(None) => TextCommand::Nothing,
        Ok(Some(Command::Help)) => TextCommand::Help,
        // The sockchat client's file commands: say what it takes.
        Ok(Some(Command::Other { name, .. }))
            if matches!(name.as_str(), "send" | "accept" | "decline" | "cancel") =>
        {
            TextCommand::Error(format!(
                "/{name}: files need the sockchat client (text mode carries lines only)"
            ))
        }
        Ok(Some(Command::Other { name, .. })) => {
            TextCommand::Error(CommandError::Unknown(name).to_string())
        }
        // A query view is the client's; here `/query` is `/msg`.
        Ok(Some(Command::Query(_))) => {
            TextCommand::Error(CommandError::Usage("/msg NICK TEXT").to_string())
        }
        Ok(Some(c)) => match c.to_client_msg("") {
            Some(m) => TextCommand::Msg(m),
            None => TextCommand::Nothing,
        },
        Err(e) => TextCommand::Error(e.to_string()),
    }
}

/// The line for a server message as any member sees it (a room broadcast),
/// or `None` when text users do not see it (pings).
pub fn render(msg: &ServerMsg) -> Option<String> {
    render_for(msg, "")
}

/// The line for a message to the user `me` (a private message they sent
/// reads `[pm] -> bob: ...`).
pub fn render_for(msg: &ServerMsg, me: &str) -> Option<String> {
    text::render(msg, me).map(|l| l.text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockchat_shared::ChatKind;

    #[test]
    fn lines_come_from_the_shared_renderer() {
        let chat = |history| ServerMsg::Chat {
            room: "lobby".into(),
            from: "alice".into(),
            text: "hi\x1b[2J".into(),
            kind: ChatKind::Say,
            ts_ms: 1,
            history,
        };
        assert_eq!(
            render(&chat(false)).as_deref(),
            Some("[lobby] alice: hi\u{FFFD}[2J")
        );
        assert_eq!(
            render(&chat(true)).as_deref(),
            Some("[lobby history] alice: hi\u{FFFD}[2J")
        );
        let pm = ServerMsg::Private {
            from: "alice".into(),
            to: "bob".into(),
            text: "psst".into(),
            ts_ms: 0,
        };
        assert_eq!(
            render_for(&pm, "alice").as_deref(),
            Some("[pm] -> bob: psst")
        );
        assert_eq!(render(&pm).as_deref(), Some("[pm] alice: psst"));
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
        assert_eq!(parse("/HELP"), TextCommand::Help);
        assert_eq!(parse("  "), TextCommand::Nothing);
        assert_eq!(
            parse("/frobnicate"),
            TextCommand::Error("unknown command: /frobnicate (try /help)".into())
        );
        assert_eq!(
            parse("/send f.txt bob"),
            TextCommand::Error(
                "/send: files need the sockchat client (text mode carries lines only)".into()
            )
        );
        assert_eq!(
            parse("/msg bob"),
            TextCommand::Error("usage: /msg NICK TEXT".into())
        );
        assert_eq!(
            parse("/sockinfo"),
            TextCommand::Msg(ClientMsg::SockInfo {
                nick: String::new()
            })
        );
    }
}
