//! Plain mode: stdin lines in, one line per event out (or JSON).

pub fn run(_args: crate::cli::ChatArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("plain mode is not built yet")
}
