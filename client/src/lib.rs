//! The `sockchat` client: terminal chat UI, plain/JSON mode, scripted bots
//! and the disconnect lab. `main.rs` only parses the command line and calls
//! [`run`].
//!
//! **Boundary:** only this crate knows crossterm and ratatui.

pub mod bots;
pub mod cli;
pub mod discover;
pub mod lab;
pub mod net;
pub mod plain;
pub mod present;
pub mod record;
pub mod tui;
pub mod usage;
pub mod wire;

/// Dispatch a parsed command line. Everything the command line and the
/// config files ask for is checked before anything runs, and a bad value
/// is a [`cli::UsageError`] (exit 2); a failure while running is any other
/// error (exit 1).
pub fn run(cli: cli::Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Some(cli::Command::Lab(args)) => lab::run(args),
        Some(cli::Command::Replay(args)) => tui::replay::run(args),
        Some(cli::Command::Bots(args)) => {
            bots::plan::Plan::from_args(&args).map_err(|e| cli::usage(format!("{e:#}")))?;
            bots::run(args)
        }
        None if cli.chat.discover => {
            let timeout = cli.chat.discover_timeout()?;
            discover::run(timeout, cli.chat.json)
        }
        None => {
            let settings = cli.chat.settings()?;
            if cli.chat.plain
                || cli.chat.json
                || !std::io::IsTerminal::is_terminal(&std::io::stdout())
            {
                plain::run(cli.chat)
            } else {
                tui::keys::KeyMap::from_config(&settings.client).map_err(cli::usage)?;
                tui::run(cli.chat)
            }
        }
    }
}
