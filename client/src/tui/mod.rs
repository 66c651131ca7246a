//! The full-screen chat UI: state + update + view.

pub fn run(_args: crate::cli::ChatArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("the terminal UI is not built yet")
}
