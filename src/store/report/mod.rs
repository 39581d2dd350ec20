//! `centralino report`: per-queue KPIs over the stored call records.
//!
//! Owns: the report's parameters (local-date range, queue filter, grouping, service level) and
//! the one SQL fetch. The figures are computed in `kpis.rs`, rendered in `render.rs`.
//! Must not touch: the clock (the caller picks the dates), writes, engine decisions.
//! The computation is pure ([`compute`]) and identical on both backends: the database only
//! filters rows; counting, averages and the 90th percentile happen here.

mod kpis;
mod operators;
mod render;

use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

pub use kpis::{compute, Kpis, Report, ReportCall, ReportRow};
pub use operators::{compute_operators, render_operators, OperatorKpis};
pub use render::render;

use super::{from_ms, to_ms, Store, StoreError};

/// The default service-level threshold: answered within 20 s.
pub const DEFAULT_SERVICE_LEVEL: Duration = Duration::from_secs(20);

/// The default report time zone.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Rome";

/// What went wrong building a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// `--from` is after `--to`.
    #[error("the report range is empty: --from {from} is after --to {to}")]
    EmptyRange {
        /// First day.
        from: Date,
        /// Last day.
        to: Date,
    },
    /// A date cannot be placed in the time zone (outside jiff's range).
    #[error("cannot place {date} in the report time zone: {source}")]
    Date {
        /// The date.
        date: Date,
        /// Why.
        source: jiff::Error,
    },
    /// An unknown `--by` or `--format` value.
    #[error("unknown {what} {value:?} (expected {expected})")]
    UnknownChoice {
        /// `--by` or `--format`.
        what: &'static str,
        /// What was given.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// Reading the records failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How rows are split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One row per queue over the whole range.
    Queue,
    /// One row per local day and queue.
    Day,
    /// One row per local hour interval (`2026-03-02 09:00`) and queue.
    Hour,
}

impl std::str::FromStr for GroupBy {
    type Err = ReportError;
    fn from_str(s: &str) -> Result<GroupBy, ReportError> {
        match s {
            "queue" => Ok(GroupBy::Queue),
            "day" => Ok(GroupBy::Day),
            "hour" => Ok(GroupBy::Hour),
            _ => Err(ReportError::UnknownChoice { what: "--by", value: s.into(), expected: "queue, day, hour" }),
        }
    }
}

/// The output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// Aligned columns for a terminal.
    Table,
    /// Comma-separated with a header line (RFC 4180 quoting).
    Csv,
    /// One JSON object: the parameters, `rows` and `total`.
    Json,
}

impl std::str::FromStr for ReportFormat {
    type Err = ReportError;
    fn from_str(s: &str) -> Result<ReportFormat, ReportError> {
        match s {
            "table" => Ok(ReportFormat::Table),
            "csv" => Ok(ReportFormat::Csv),
            "json" => Ok(ReportFormat::Json),
            _ => Err(ReportError::UnknownChoice { what: "--format", value: s.into(), expected: "table, csv, json" }),
        }
    }
}

/// What to report on.
#[derive(Clone, Debug)]
pub struct ReportParams {
    /// First local day, included.
    pub from: Date,
    /// Last local day, included.
    pub to: Date,
    /// The zone the days are local to.
    pub time_zone: TimeZone,
    /// Only this queue (and no queue-less row), when set.
    pub queue: Option<String>,
    /// How rows are split.
    pub by: GroupBy,
    /// Answered within this wait counts towards the service level.
    pub service_level: Duration,
}

impl ReportParams {
    /// Days `from..=to` in Europe/Rome, per queue, service level 20 s.
    pub fn new(from: Date, to: Date) -> ReportParams {
        ReportParams {
            from,
            to,
            // Invariant: jiff's `tzdb-bundle-always` feature embeds the IANA database.
            time_zone: TimeZone::get(DEFAULT_TIME_ZONE).expect("bundled tzdb has Europe/Rome"),
            queue: None,
            by: GroupBy::Queue,
            service_level: DEFAULT_SERVICE_LEVEL,
        }
    }

    /// `[start of from, start of the day after to)` as instants (DST-correct).
    pub fn range(&self) -> Result<(Timestamp, Timestamp), ReportError> {
        if self.from > self.to {
            return Err(ReportError::EmptyRange { from: self.from, to: self.to });
        }
        let start = |date: Date| -> Result<Timestamp, ReportError> {
            date.to_zoned(self.time_zone.clone())
                .map(|z| z.timestamp())
                .map_err(|source| ReportError::Date { date, source })
        };
        let end_day = self.to.tomorrow().map_err(|source| ReportError::Date { date: self.to, source })?;
        Ok((start(self.from)?, start(end_day)?))
    }
}

impl Store {
    /// Reads the finished calls in the range and computes the report.
    pub async fn report(&self, params: &ReportParams) -> Result<Report, ReportError> {
        let (from, to) = params.range()?;
        let calls = self.report_calls(from, to, params.queue.as_deref()).await?;
        Ok(compute(&calls, params))
    }

    /// Finished calls that arrived in `[from, to)`, optionally of one queue, oldest first.
    pub async fn report_calls(
        &self,
        from: Timestamp,
        to: Timestamp,
        queue: Option<&str>,
    ) -> Result<Vec<ReportCall>, StoreError> {
        type Row = (i64, Option<String>, String, Option<i64>, Option<i64>, i64);
        const ALL: &str = "SELECT arrived_at, queue, outcome, wait_ms, talk_ms, \
                                  CASE WHEN short_abandon THEN 1 ELSE 0 END \
                           FROM calls WHERE arrived_at >= $1 AND arrived_at < $2 AND outcome IS NOT NULL \
                           ORDER BY arrived_at, id";
        const ONE: &str = "SELECT arrived_at, queue, outcome, wait_ms, talk_ms, \
                                  CASE WHEN short_abandon THEN 1 ELSE 0 END \
                           FROM calls WHERE arrived_at >= $1 AND arrived_at < $2 AND outcome IS NOT NULL \
                                AND queue = $3 \
                           ORDER BY arrived_at, id";
        let rows: Vec<Row> = match queue {
            None => sqlx::query_as(ALL).bind(to_ms(from)).bind(to_ms(to)).fetch_all(&self.pool).await?,
            Some(q) => sqlx::query_as(ONE).bind(to_ms(from)).bind(to_ms(to)).bind(q).fetch_all(&self.pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(|(arrived, queue, outcome, wait_ms, talk_ms, short)| ReportCall {
                arrived_at: from_ms(arrived),
                queue,
                outcome,
                wait_ms,
                talk_ms,
                short_abandon: short != 0,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn range_spans_local_days_inclusive() {
        let p = ReportParams::new(d("2026-03-02"), d("2026-03-03"));
        let (from, to) = p.range().unwrap();
        assert_eq!(from.to_string(), "2026-03-01T23:00:00Z");
        assert_eq!(to.to_string(), "2026-03-03T23:00:00Z");
    }

    #[test]
    fn range_over_the_spring_dst_change_is_23_hours_long() {
        let p = ReportParams::new(d("2026-03-29"), d("2026-03-29"));
        let (from, to) = p.range().unwrap();
        assert_eq!((to.as_second() - from.as_second()) / 3600, 23);
    }

    #[test]
    fn from_after_to_is_an_error_not_an_empty_report() {
        let p = ReportParams::new(d("2026-03-05"), d("2026-03-02"));
        assert!(matches!(p.range(), Err(ReportError::EmptyRange { .. })));
    }

    #[test]
    fn by_and_format_parse_their_cli_spellings() {
        assert_eq!("hour".parse::<GroupBy>().unwrap(), GroupBy::Hour);
        assert_eq!("csv".parse::<ReportFormat>().unwrap(), ReportFormat::Csv);
        let err = "week".parse::<GroupBy>().unwrap_err().to_string();
        assert!(err.contains("queue, day, hour"), "{err}");
    }
}
