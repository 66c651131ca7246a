//! `sockchat`: chat client, bots and lab. Thin: parse, then hand over.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = sockchat::cli::Cli::parse();
    match sockchat::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sockchat: {e:#}");
            // 2: usage or config error; 1: failed while running (README).
            let usage = e.downcast_ref::<sockchat::cli::UsageError>().is_some();
            std::process::ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
