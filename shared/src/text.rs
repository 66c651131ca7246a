//! Text mode, written once: how a [`ServerMsg`](crate::ServerMsg) reads as
//! one line ([`render`]), and what a typed line means ([`parse_command`]).
//! The server's text mode (for `nc`/telnet users) and the client's input
//! line and chat view use these, so one rule has one place. PROTOCOL.md
//! ("Text mode") documents the shapes.

mod command;
mod duration;
mod render;

pub use command::{
    COMMANDS, Command, CommandError, CommandHelp, InputLimits, help_lines, parse_command,
};
pub use duration::{MAX_SECS, parse_duration, parse_span};
pub use render::{Line, Severity, bye_reason, joined, render};
