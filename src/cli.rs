//! The command line (clap): `serve`, `check`, `default-config`, `schedule`, `admin-token`, …

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
    /// Print the admin API's token (the first of http.admin_tokens, else http.token_file's).
    ///
    /// For scripts: `curl -H "Authorization: Bearer $(centralino admin-token)" …`. The token
    /// file is the one `serve` generates at its first start when http.admin_tokens is empty.
    AdminToken,
    /// Whether the office is open at a moment, why, and when that changes.
    /// Create or upgrade the database schema (serve does it too).
    Migrate,
    /// Operator accounts in the database.
    Operators {
        #[command(subcommand)]
        action: OperatorsAction,
    },
    /// Per-queue KPIs from the stored call records.
    Report {
        /// First local date, YYYY-MM-DD (default: today).
        #[arg(long)]
        from: Option<String>,
        /// Last local date, YYYY-MM-DD, included (default: `--from`).
        #[arg(long)]
        to: Option<String>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Group by queue, day or hour; or `operator` for calls, talk and paused time per operator.
        #[arg(long, default_value = "queue")]
        by: String,
        /// table, csv or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Export stored events.
    Export {
        #[command(subcommand)]
        what: ExportWhat,
    },
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

#[derive(Debug, Subcommand)]
pub enum ExportWhat {
    /// Queue events in Asterisk's queue_log format (epoch|callid|queue|agent|event|data…).
    QueueLog {
        /// First local date, YYYY-MM-DD (default: today).
        #[arg(long)]
        from: Option<String>,
        /// Last local date, YYYY-MM-DD, included.
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OperatorsAction {
    /// Add an account. The password is stored only as digest HA1 hashes.
    Add {
        username: String,
        /// Shown in the admin API.
        #[arg(long)]
        name: Option<String>,
        /// The SIP password (or set CENTRALINO_OPERATOR_PASSWORD).
        #[arg(long, env = "CENTRALINO_OPERATOR_PASSWORD")]
        password: String,
        /// A queue served, `queue` or `queue:level` (lower level = preferred); repeatable.
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// Languages spoken, e.g. `it,en`.
        #[arg(long, default_value = "it")]
        languages: String,
        /// Calls at once.
        #[arg(long, default_value_t = 1)]
        max_calls: u32,
    },
    /// List the accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an account.
    Remove { username: String },
    /// Change a password.
    Passwd {
        username: String,
        #[arg(long, env = "CENTRALINO_OPERATOR_PASSWORD")]
        password: String,
    },
    /// Change an account's name, queues (replaced when given), languages or max calls.
    Set {
        username: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "queue")]
        queues: Vec<String>,
        #[arg(long)]
        languages: Option<String>,
        #[arg(long)]
        max_calls: Option<u32>,
    },
}
