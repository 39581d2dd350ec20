//! Renders a [`Report`] as an aligned table, CSV or JSON.
//!
//! Owns: column names and order, number formatting (one decimal), CSV quoting.
//! Must not touch: the figures themselves (kpis.rs), the database.
//! Queue-less calls show as `-` in the table and an empty field in CSV; the total row is labelled
//! `TOTAL` in both (JSON keeps it apart in `total`).

use std::fmt::Write as _;

use super::{Kpis, Report, ReportFormat};

/// The columns after `period` and `queue`, in output order.
const COLUMNS: [&str; 14] = [
    "calls",
    "offered",
    "answered",
    "answered_in_sl",
    "service_level_pct",
    "abandoned",
    "short_abandoned",
    "timeout",
    "overflow",
    "closed",
    "interrupted",
    "avg_wait_s",
    "p90_wait_s",
    "avg_talk_s",
];

/// Shorter headings for the terminal table, same order as [`COLUMNS`].
const TABLE_HEADINGS: [&str; 14] = [
    "calls",
    "offered",
    "answered",
    "in_sl",
    "sl_%",
    "abandoned",
    "short",
    "timeout",
    "overflow",
    "closed",
    "interrupted",
    "avg_wait",
    "p90_wait",
    "avg_talk",
];

/// The report in the chosen format, ending with a newline.
pub fn render(report: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Table => table(report),
        ReportFormat::Csv => csv(report),
        ReportFormat::Json => {
            // Invariant: a Report holds only strings, integers, finite floats and options.
            let mut out = serde_json::to_string_pretty(report).expect("a Report always serialises");
            out.push('\n');
            out
        }
    }
}

fn values(k: &Kpis) -> [String; 14] {
    let n = |v: u64| v.to_string();
    let f = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_default();
    [
        n(k.calls),
        n(k.offered),
        n(k.answered),
        n(k.answered_in_sl),
        f(k.service_level_pct),
        n(k.abandoned),
        n(k.short_abandoned),
        n(k.timeout),
        n(k.overflow),
        n(k.closed),
        n(k.interrupted),
        f(k.avg_wait_s),
        f(k.p90_wait_s),
        f(k.avg_talk_s),
    ]
}

fn csv(report: &Report) -> String {
    let mut out = String::from("period,queue,");
    out.push_str(&COLUMNS.join(","));
    out.push('\n');
    let mut line = |period: &str, queue: &str, k: &Kpis| {
        let mut fields = vec![csv_field(period), csv_field(queue)];
        fields.extend(values(k));
        out.push_str(&fields.join(","));
        out.push('\n');
    };
    for row in &report.rows {
        line(row.period.as_deref().unwrap_or(""), row.queue.as_deref().unwrap_or(""), &row.kpis);
    }
    line("", "TOTAL", &report.total);
    out
}

/// RFC 4180: quote fields holding a comma, quote or line break; double inner quotes.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn table(report: &Report) -> String {
    let with_period = report.rows.iter().any(|r| r.period.is_some());
    let mut head: Vec<String> = Vec::new();
    if with_period {
        head.push("period".into());
    }
    head.push("queue".into());
    head.extend(TABLE_HEADINGS.iter().map(|h| h.to_string()));
    let label_cols = if with_period { 2 } else { 1 };

    let mut lines: Vec<Vec<String>> = vec![head];
    let mut push = |period: Option<&str>, queue: &str, k: &Kpis| {
        let mut cells = Vec::new();
        if with_period {
            cells.push(period.unwrap_or("").to_string());
        }
        cells.push(queue.to_string());
        cells.extend(values(k).into_iter().map(|v| if v.is_empty() { "-".into() } else { v }));
        lines.push(cells);
    };
    for row in &report.rows {
        push(row.period.as_deref(), row.queue.as_deref().unwrap_or("-"), &row.kpis);
    }
    push(None, "TOTAL", &report.total);

    let widths: Vec<usize> =
        (0..lines[0].len()).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    let queue = report.queue.as_deref().map(|q| format!(", queue {q}")).unwrap_or_default();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "calls from {} to {} ({}{queue}), service level {} s",
        report.from, report.to, report.time_zone, report.service_level_s
    );
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c < label_cols {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{compute, GroupBy, ReportCall, ReportParams};
    use super::*;

    fn report(by: GroupBy) -> Report {
        let calls = vec![
            ReportCall {
                arrived_at: "2026-03-02T08:05:00Z".parse().unwrap(),
                queue: Some("tributi, ufficio \"A\"".into()),
                outcome: "answered".into(),
                wait_ms: Some(12_000),
                talk_ms: Some(90_000),
                short_abandon: false,
            },
            ReportCall {
                arrived_at: "2026-03-02T18:00:00Z".parse().unwrap(),
                queue: None,
                outcome: "closed".into(),
                wait_ms: None,
                talk_ms: None,
                short_abandon: false,
            },
        ];
        let day = "2026-03-02".parse().unwrap();
        compute(&calls, &ReportParams { by, ..ReportParams::new(day, day) })
    }

    #[test]
    fn csv_has_a_header_quotes_awkward_queue_names_and_ends_with_total() {
        let out = render(&report(GroupBy::Queue), ReportFormat::Csv);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("period,queue,{}", COLUMNS.join(",")));
        assert_eq!(lines[1], ",\"tributi, ufficio \"\"A\"\"\",1,1,1,1,100.0,0,0,0,0,0,0,12.0,12.0,90.0");
        assert_eq!(lines[2], ",,1,0,0,0,,0,0,0,0,1,0,,,");
        assert!(lines[3].starts_with(",TOTAL,2,1,1,1,100.0,"), "{}", lines[3]);
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn table_aligns_columns_and_shows_missing_figures_as_dashes() {
        let out = render(&report(GroupBy::Day), ReportFormat::Table);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("calls from 2026-03-02 to 2026-03-02 (Europe/Rome)"), "{}", lines[0]);
        assert!(lines[1].starts_with("period      queue"), "{}", lines[1]);
        assert!(lines[3].starts_with("2026-03-02  -  "), "{}", lines[3]);
        assert!(lines[4].starts_with("            TOTAL"), "{}", lines[4]);
        // Right-aligned numbers: every data line ends at the same column.
        let ends: Vec<usize> = lines[1..].iter().map(|l| l.chars().count()).collect();
        assert!(ends.iter().all(|&e| e == ends[0]), "{out}");
    }

    #[test]
    fn json_keeps_rows_and_total_apart_with_nulls_for_missing_figures() {
        let out = render(&report(GroupBy::Queue), ReportFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["by"], "queue");
        assert_eq!(v["rows"][0]["answered_in_sl"], 1);
        assert_eq!(v["rows"][1]["queue"], serde_json::Value::Null);
        assert_eq!(v["rows"][1]["avg_wait_s"], serde_json::Value::Null);
        assert_eq!(v["total"]["calls"], 2);
    }
}
