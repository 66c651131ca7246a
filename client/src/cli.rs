//! Command line: `sockchat [chat flags]`, `sockchat lab ...`, `sockchat bots ...`.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sockchat",
    version,
    about = "Terminal chat for the LAN that tells the truth about its sockets",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub chat: ChatArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the abrupt-disconnect experiments on real sockets.
    Lab(crate::lab::LabArgs),
    /// Load-test a chat server with scripted bots.
    Bots(crate::bots::BotsArgs),
}

/// Flags of the chat client (TUI and plain mode).
#[derive(Debug, Clone, Args, Default)]
pub struct ChatArgs {
    /// Server address (HOST:PORT). Default: [client] server in the config.
    #[arg(long, short)]
    pub server: Option<String>,
    /// Nick to ask for. Default: the server assigns guestN.
    #[arg(long, short)]
    pub nick: Option<String>,
    /// Config file (default: ~/.config/sockchat/config.toml if present).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
    /// Use UDP instead of TCP.
    #[arg(long)]
    pub udp: bool,
    /// Plain mode: stdin lines are sent, every event is printed as one line.
    #[arg(long)]
    pub plain: bool,
    /// Plain mode with one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Do not reconnect automatically.
    #[arg(long)]
    pub no_reconnect: bool,
}
