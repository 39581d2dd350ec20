//! `centralino`: parse the command line, set up logging, hand over to the library.

use std::process::ExitCode;

use clap::Parser;

use centralino::cli::{Cli, Command};
use centralino::{commands, commands_db};

/// jemalloc: every SIP message is parsed into owned headers, so allocation is a large part
/// of a call's work. Against glibc's malloc, same code (ops/bench/RESULTS.md): 4–6 % less
/// CPU per call at 600–800 calls/s, and near saturation the difference that matters — at
/// 1,000 calls/s 100 % of calls succeed instead of 95 %, at 1,200 99.7 % instead of 54 %.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
        Command::AdminToken => commands::admin_token(cli.config.as_deref()),
        Command::Schedule { at, year, json } => commands::schedule(cli.config.as_deref(), at, year, json),
        Command::Migrate => commands_db::with_config(cli.config.as_deref(), commands_db::migrate),
        Command::Operators { action } => {
            commands_db::with_config(cli.config.as_deref(), |c| commands_db::operators(c, action))
        }
        Command::Report { from, to, queue, by, format } => commands_db::with_config(cli.config.as_deref(), |c| {
            commands_db::report(c, from, to, queue, &by, &format)
        }),
        Command::Export { what } => commands_db::with_config(cli.config.as_deref(), |c| commands_db::export(c, what)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("centralino: {e:#}");
            ExitCode::FAILURE
        }
    }
}
