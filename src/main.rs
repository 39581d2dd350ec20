//! `centralino`: parse the command line, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;

use centralino::cli::{Cli, Command};
use centralino::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rsipstack=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve => commands::serve(cli.config.as_deref()),
        Command::Check => commands::check(cli.config.as_deref()),
        Command::DefaultConfig => {
            print!("{}", centralino::config::DEFAULT_CONFIG);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schedule { at, year, json } => commands::schedule(cli.config.as_deref(), at, year, json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("centralino: {e:#}");
            ExitCode::FAILURE
        }
    }
}
