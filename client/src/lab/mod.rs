//! `sockchat lab`: the classic abrupt-disconnect experiments on real sockets.

#[derive(Debug, Clone, clap::Args)]
pub struct LabArgs {
    /// Print one JSON object per scenario.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: LabArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("the lab is not built yet")
}
