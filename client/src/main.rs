//! `sockchat`: chat client, bots and lab. Thin: parse, then hand over.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = sockchat::cli::Cli::parse();
    match sockchat::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sockchat: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
