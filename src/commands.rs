//! The bodies of the subcommands that are not `serve`'s run loop.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Config;
use crate::engine::ids::QueueName;
use crate::engine::schedule::report;

/// Loads the config or prints each problem as `file:line: message`.
fn load_config(path: Option<&Path>) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|errors| {
        for e in errors {
            eprintln!("{e}");
        }
        ExitCode::FAILURE
    })
}

/// `centralino serve`.
pub fn serve(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting tokio")?;
    runtime.block_on(crate::app::serve(config))?;
    Ok(ExitCode::SUCCESS)
}

/// `centralino check`: config, IVR scripts, prompt files. Prints every problem.
pub fn check(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let queues: Vec<QueueName> = config.queues.iter().map(|q| QueueName(q.name.clone())).collect();
    match crate::ivr_scripts::load(&config.ivr.scripts, &queues) {
        Ok(loaded) => {
            let mut needed = crate::engine::engine_prompt_names();
            for q in &config.queues {
                if let Ok(setup) = q.setup() {
                    needed.extend(setup.prompt_names());
                }
            }
            let missing = loaded.missing(needed.iter().map(String::as_str));
            if !missing.is_empty() {
                let dir = config.ivr.scripts.join("prompts");
                for p in &missing {
                    println!("{}:1: prompt {} is needed by centralino but has no recording", dir.join(p.lang.code()).join(format!("{}.wav", p.name)).display(), p.name);
                }
                return Ok(ExitCode::FAILURE);
            }
            println!(
                "ok: config, {} IVR menus, {} prompts, music on hold ({:.1} s)",
                loaded.scripts.menus().count(),
                loaded.prompts.len(),
                loaded.music.samples.len() as f64 / 8000.0
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for p in &problems {
                println!("{p}");
            }
            eprintln!("{} problem(s) found", problems.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `centralino admin-token`: prints the admin token alone on its line, for `$(…)` in scripts.
pub fn admin_token(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    println!("{}", crate::http::token_file::current(&config.http)?);
    Ok(ExitCode::SUCCESS)
}

/// `centralino schedule [--at] [--year] [--json]`.
pub fn schedule(path: Option<&Path>, at: Option<String>, year: Option<i16>, json: bool) -> anyhow::Result<ExitCode> {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let schedule = config
        .schedule
        .compile()
        .map_err(|e| anyhow::anyhow!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")))?;
    let tz = schedule.time_zone().clone();
    let at = match at {
        Some(text) => parse_moment(&text, &tz)?,
        None => crate::clock::Now::read().wall.to_zoned(tz),
    };
    if let Some(year) = year {
        print!("{}", report::describe_year(&schedule, year));
    } else if json {
        println!("{}", report::state_json(&schedule, &at));
    } else {
        println!("{}", report::describe_state(&schedule, &at));
    }
    Ok(ExitCode::SUCCESS)
}

/// RFC 3339 with an offset, or a local time in the schedule's zone.
fn parse_moment(text: &str, tz: &jiff::tz::TimeZone) -> anyhow::Result<jiff::Zoned> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.to_zoned(tz.clone()));
    }
    let civil: jiff::civil::DateTime = text
        .parse()
        .with_context(|| format!("{text:?} is not an RFC 3339 time"))?;
    civil.to_zoned(tz.clone()).with_context(|| format!("{text:?} does not exist in the time zone"))
}
