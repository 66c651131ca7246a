//! The `sockchat` client: terminal chat UI, plain/JSON mode, scripted bots
//! and the disconnect lab. `main.rs` only parses the command line and calls
//! [`run`].
//!
//! **Boundary:** only this crate knows crossterm and ratatui.

pub mod bots;
pub mod cli;
pub mod lab;
pub mod net;
pub mod plain;
pub mod tui;

/// Dispatch a parsed command line.
pub fn run(cli: cli::Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Some(cli::Command::Lab(args)) => lab::run(args),
        Some(cli::Command::Bots(args)) => bots::run(args),
        None => {
            if cli.chat.plain
                || cli.chat.json
                || !std::io::IsTerminal::is_terminal(&std::io::stdout())
            {
                plain::run(cli.chat)
            } else {
                tui::run(cli.chat)
            }
        }
    }
}
