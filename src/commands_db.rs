//! The database subcommands: `migrate`, `operators …`, `report`, `export queue-log`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::cli::{ExportWhat, OperatorsAction};
use crate::config::Config;
use crate::sip::registrar::Credentials;
use crate::store::operators::OperatorRow;
use crate::store::report::{render, ReportParams};
use crate::store::Store;

fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?.block_on(f)
}

async fn open(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&config.database.url)
        .await
        .with_context(|| format!("opening the database {}", config.database.url))?
        .with_node(config.node.clone()))
}

/// `centralino migrate`.
pub fn migrate(config: &Config) -> anyhow::Result<ExitCode> {
    block_on(async {
        let store = open(config).await?;
        println!("database {} is up to date ({})", config.database.url, store.backend().as_str());
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// `queue` or `queue:level`, checked against the configured queues.
fn parse_queues(config: &Config, specs: &[String]) -> anyhow::Result<Vec<(String, u32)>> {
    specs
        .iter()
        .map(|spec| {
            let (name, level) = match spec.split_once(':') {
                Some((n, l)) => (n, l.parse::<u32>().with_context(|| format!("{spec:?}: the level is a number"))?),
                None => (spec.as_str(), 1),
            };
            if !config.queues.iter().any(|q| q.name == name) {
                bail!("{name:?} is not a configured queue");
            }
            Ok((name.to_string(), level))
        })
        .collect()
}

fn parse_languages(text: &str) -> anyhow::Result<Vec<String>> {
    text.split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match crate::engine::ids::Language::from_code(l) {
            Some(lang) => Ok(lang.code().to_string()),
            None => bail!("{l:?} is not a supported language (it, en)"),
        })
        .collect()
}

/// `centralino operators …`.
pub fn operators(config: &Config, action: OperatorsAction) -> anyhow::Result<ExitCode> {
    let realm = config.sip.domain.clone();
    block_on(async move {
        let store = open(config).await?;
        let code = match action {
            OperatorsAction::Add { username, name, password, queues, languages, max_calls } => {
                if username.is_empty() || !username.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                    bail!("{username:?}: use letters, digits, '.', '_' and '-' (it is the SIP user)");
                }
                let creds = Credentials::from_password(&username, &realm, &password);
                let row = OperatorRow {
                    display_name: name.unwrap_or_else(|| username.clone()),
                    username: username.clone(),
                    ha1_md5: creds.ha1_md5,
                    ha1_sha256: creds.ha1_sha256,
                    queues: parse_queues(config, &queues)?,
                    languages: parse_languages(&languages)?,
                    max_calls: max_calls.max(1),
                };
                if store.add_operator(&row, crate::clock::Now::read().wall).await? {
                    println!("added {username}");
                    ExitCode::SUCCESS
                } else {
                    eprintln!("{username} already exists (use `operators set` or `operators passwd`)");
                    ExitCode::FAILURE
                }
            }
            OperatorsAction::List { json } => {
                let rows = store.operators().await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    println!("{:<16} {:<24} {:<8} {:<5} queues", "username", "name", "lang", "max");
                    for r in rows {
                        let queues: Vec<String> = r.queues.iter().map(|(q, l)| format!("{q}:{l}")).collect();
                        println!("{:<16} {:<24} {:<8} {:<5} {}", r.username, r.display_name, r.languages.join(","), r.max_calls, queues.join(" "));
                    }
                }
                ExitCode::SUCCESS
            }
            OperatorsAction::Remove { username } => found(store.remove_operator(&username).await?, &username, "removed"),
            OperatorsAction::Passwd { username, password } => {
                let Some(mut row) = store.operators().await?.into_iter().find(|r| r.username == username) else {
                    return Ok(found(false, &username, ""));
                };
                let creds = Credentials::from_password(&username, &realm, &password);
                row.ha1_md5 = creds.ha1_md5;
                row.ha1_sha256 = creds.ha1_sha256;
                found(store.update_operator(&row).await?, &username, "password changed for")
            }
            OperatorsAction::Set { username, name, queues, languages, max_calls } => {
                let Some(mut row) = store.operators().await?.into_iter().find(|r| r.username == username) else {
                    return Ok(found(false, &username, ""));
                };
                if let Some(name) = name {
                    row.display_name = name;
                }
                if !queues.is_empty() {
                    row.queues = parse_queues(config, &queues)?;
                }
                if let Some(languages) = languages {
                    row.languages = parse_languages(&languages)?;
                }
                if let Some(max) = max_calls {
                    row.max_calls = max.max(1);
                }
                found(store.update_operator(&row).await?, &username, "updated")
            }
        };
        store.close().await;
        Ok(code)
    })
}

fn found(ok: bool, username: &str, done: &str) -> ExitCode {
    if ok {
        println!("{done} {username}");
        ExitCode::SUCCESS
    } else {
        eprintln!("no operator {username:?}");
        ExitCode::FAILURE
    }
}

fn local_date(text: Option<&str>, config: &Config) -> anyhow::Result<jiff::civil::Date> {
    match text {
        Some(t) => t.parse().with_context(|| format!("{t:?} is not a date (YYYY-MM-DD)")),
        None => {
            let tz = jiff::tz::TimeZone::get(&config.schedule.timezone).context("time zone")?;
            Ok(crate::clock::Now::read().wall.to_zoned(tz).date())
        }
    }
}

/// `centralino report`.
pub fn report(
    config: &Config,
    from: Option<String>,
    to: Option<String>,
    queue: Option<String>,
    by: &str,
    format: &str,
) -> anyhow::Result<ExitCode> {
    let from = local_date(from.as_deref(), config)?;
    let to = match to {
        Some(t) => local_date(Some(&t), config)?,
        None => from,
    };
    let mut params = ReportParams::new(from, to);
    params.time_zone = jiff::tz::TimeZone::get(&config.schedule.timezone).context("time zone")?;
    params.queue = queue;
    let by_operator = by == "operator";
    if !by_operator {
        params.by = by.parse().map_err(|e| anyhow::anyhow!("--by: {e} (or operator)"))?;
    }
    let format = format.parse().map_err(|e| anyhow::anyhow!("--format: {e}"))?;
    block_on(async {
        let store = open(config).await?;
        if by_operator {
            let rows = store.operator_report(&params, crate::clock::Now::read().wall).await?;
            print!("{}", crate::store::report::render_operators(&rows, format));
        } else {
            let report = store.report(&params).await?;
            print!("{}", render(&report, format));
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// `centralino export queue-log`.
pub fn export(config: &Config, what: ExportWhat) -> anyhow::Result<ExitCode> {
    let ExportWhat::QueueLog { from, to } = what;
    let tz = jiff::tz::TimeZone::get(&config.schedule.timezone).context("time zone")?;
    let from = local_date(from.as_deref(), config)?;
    let to = match to {
        Some(t) => local_date(Some(&t), config)?,
        None => from,
    };
    let start = from.to_zoned(tz.clone())?.timestamp();
    let end = to.tomorrow()?.to_zoned(tz)?.timestamp();
    block_on(async {
        let store = open(config).await?;
        let mut out = std::io::stdout();
        store.export_queue_log(start, end, &mut out).await?;
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Loads the config for a database command.
pub fn with_config(path: Option<&Path>, f: impl FnOnce(&Config) -> anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match Config::load(path) {
        Ok(config) => f(&config),
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
