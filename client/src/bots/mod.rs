//! `sockchat bots`: scripted bots for load tests.

#[derive(Debug, Clone, clap::Args)]
pub struct BotsArgs {
    /// Server address (HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub server: String,
    /// Print the final report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: BotsArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("the bots are not built yet")
}
