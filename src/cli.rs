//! The command line (clap): `serve`, `check`, `default-config`, `schedule`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "centralino", version, about = "Call-center queue manager: SIP, IVR, queues, operators")]
pub struct Cli {
    /// The TOML configuration file (defaults are built in; see `default-config`).
    #[arg(long, global = true, env = "CENTRALINO_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service until SIGINT/SIGTERM.
    Serve,
    /// Validate the config, the IVR scripts and the prompt files; exit 1 on any problem.
    Check,
    /// Print the commented default configuration.
    DefaultConfig,
    /// Whether the office is open at a moment, why, and when that changes.
    Schedule {
        /// The moment (RFC 3339, e.g. 2026-12-24T15:00:00+01:00); default: now.
        #[arg(long)]
        at: Option<String>,
        /// List the holidays and closures of this year instead.
        #[arg(long)]
        year: Option<i16>,
        /// Print `{"open", "reason", "next_change"}` as JSON.
        #[arg(long)]
        json: bool,
    },
}
