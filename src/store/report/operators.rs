//! The per-operator report: calls answered, talk time, and time paused by reason, over a
//! range of local days. Occupancy figures come from the presence history.
//!
//! Owns: the operator KPIs (pure `compute_operators`) and their SQL fetch. Must not touch:
//! the per-queue KPIs (kpis.rs), rendering of those.

use std::collections::BTreeMap;

use jiff::Timestamp;
use sqlx::Row;

use super::{ReportError, ReportFormat, ReportParams};
use crate::store::{from_ms, to_ms, Store};

/// One operator's figures.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct OperatorKpis {
    pub operator: String,
    /// Calls the operator answered.
    pub calls: u64,
    /// Total talk time, seconds.
    pub talk_seconds: f64,
    /// Mean talk time, seconds.
    pub avg_talk_seconds: Option<f64>,
    /// Seconds paused, by reason.
    pub paused_seconds: BTreeMap<String, f64>,
}

/// A presence interval as stored: `(operator, state, reason, start, end)`.
pub type PresenceRow = (String, String, Option<String>, Timestamp, Option<Timestamp>);

/// Figures per operator from answered calls `(operator, talk)` and presence intervals, with
/// intervals clipped to `[from, to)` and an open interval ending at `now`.
pub fn compute_operators(
    calls: &[(String, Option<i64>)],
    presence: &[PresenceRow],
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> Vec<OperatorKpis> {
    let mut by: BTreeMap<String, OperatorKpis> = BTreeMap::new();
    for (operator, talk_ms) in calls {
        let k = by.entry(operator.clone()).or_insert_with(|| OperatorKpis { operator: operator.clone(), ..Default::default() });
        k.calls += 1;
        k.talk_seconds += talk_ms.unwrap_or(0) as f64 / 1000.0;
    }
    for (operator, state, reason, start, end) in presence {
        if state != "paused" {
            continue;
        }
        let end = end.unwrap_or(now).min(to);
        let start = (*start).max(from);
        if end <= start {
            continue;
        }
        let secs = end.duration_since(start).as_secs_f64();
        let k = by.entry(operator.clone()).or_insert_with(|| OperatorKpis { operator: operator.clone(), ..Default::default() });
        *k.paused_seconds.entry(reason.clone().unwrap_or_default()).or_default() += secs;
    }
    by.into_values()
        .map(|mut k| {
            k.avg_talk_seconds = (k.calls > 0).then(|| k.talk_seconds / k.calls as f64);
            k
        })
        .collect()
}

/// Renders the operator report.
pub fn render_operators(rows: &[OperatorKpis], format: ReportFormat) -> String {
    let paused = |k: &OperatorKpis| {
        k.paused_seconds.iter().map(|(r, s)| format!("{}={:.0}", if r.is_empty() { "-" } else { r }, s)).collect::<Vec<_>>().join(" ")
    };
    match format {
        ReportFormat::Json => serde_json::to_string_pretty(&serde_json::json!({ "operators": rows })).unwrap_or_default() + "\n",
        ReportFormat::Csv => {
            let mut out = String::from("operator,calls,talk_seconds,avg_talk_seconds,paused_seconds_by_reason\n");
            for k in rows {
                out.push_str(&format!(
                    "{},{},{:.0},{},\"{}\"\n",
                    k.operator,
                    k.calls,
                    k.talk_seconds,
                    k.avg_talk_seconds.map(|v| format!("{v:.0}")).unwrap_or_default(),
                    paused(k).replace('"', "\"\"")
                ));
            }
            out
        }
        ReportFormat::Table => {
            let mut out = format!("{:<16} {:>6} {:>10} {:>9}  paused s by reason\n", "operator", "calls", "talk_s", "avg_talk");
            for k in rows {
                out.push_str(&format!(
                    "{:<16} {:>6} {:>10.0} {:>9}  {}\n",
                    k.operator,
                    k.calls,
                    k.talk_seconds,
                    k.avg_talk_seconds.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into()),
                    paused(k)
                ));
            }
            out
        }
    }
}

impl Store {
    /// The per-operator report over `params`' days (its queue filter applies to calls).
    pub async fn operator_report(&self, params: &ReportParams, now: Timestamp) -> Result<Vec<OperatorKpis>, ReportError> {
        let (from, to) = params.range()?;
        let calls = sqlx::query(
            "SELECT operator, talk_ms, queue FROM calls WHERE operator IS NOT NULL AND answered_at IS NOT NULL \
             AND arrived_at >= $1 AND arrived_at < $2",
        )
        .bind(to_ms(from))
        .bind(to_ms(to))
        .fetch_all(&self.pool)
        .await
        .map_err(crate::store::StoreError::from)?;
        let mut answered = Vec::new();
        for r in calls {
            let queue: Option<String> = r.try_get("queue").map_err(crate::store::StoreError::from)?;
            if params.queue.as_ref().is_some_and(|q| queue.as_ref() != Some(q)) {
                continue;
            }
            answered.push((
                r.try_get::<String, _>("operator").map_err(crate::store::StoreError::from)?,
                r.try_get::<Option<i64>, _>("talk_ms").map_err(crate::store::StoreError::from)?,
            ));
        }
        let rows = sqlx::query(
            "SELECT username, state, reason, started_at, ended_at FROM operator_presence \
             WHERE started_at < $2 AND (ended_at IS NULL OR ended_at > $1)",
        )
        .bind(to_ms(from))
        .bind(to_ms(to))
        .fetch_all(&self.pool)
        .await
        .map_err(crate::store::StoreError::from)?;
        let mut presence = Vec::new();
        for r in rows {
            let get = |c: &str| r.try_get::<String, _>(c).map_err(crate::store::StoreError::from);
            presence.push((
                get("username")?,
                get("state")?,
                r.try_get::<Option<String>, _>("reason").map_err(crate::store::StoreError::from)?,
                from_ms(r.try_get("started_at").map_err(crate::store::StoreError::from)?),
                r.try_get::<Option<i64>, _>("ended_at").map_err(crate::store::StoreError::from)?.map(from_ms),
            ));
        }
        Ok(compute_operators(&answered, &presence, from, to, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn pauses_are_clipped_to_the_range_and_summed_by_reason() {
        let calls = vec![("op1".to_string(), Some(120_000)), ("op1".to_string(), Some(60_000)), ("op2".to_string(), None)];
        let presence = vec![
            ("op1".to_string(), "paused".to_string(), Some("riunione".to_string()), ts("2026-03-01T23:30:00Z"), Some(ts("2026-03-02T00:30:00Z"))),
            ("op1".to_string(), "available".to_string(), None, ts("2026-03-02T00:30:00Z"), Some(ts("2026-03-02T01:00:00Z"))),
            ("op1".to_string(), "paused".to_string(), Some("riunione".to_string()), ts("2026-03-02T01:00:00Z"), Some(ts("2026-03-02T01:10:00Z"))),
            ("op2".to_string(), "paused".to_string(), Some("no answer".to_string()), ts("2026-03-02T10:00:00Z"), None),
        ];
        let rows = compute_operators(&calls, &presence, ts("2026-03-02T00:00:00Z"), ts("2026-03-03T00:00:00Z"), ts("2026-03-02T10:05:00Z"));
        assert_eq!(rows[0].operator, "op1");
        assert_eq!((rows[0].calls, rows[0].talk_seconds, rows[0].avg_talk_seconds), (2, 180.0, Some(90.0)));
        assert_eq!(rows[0].paused_seconds["riunione"], 40.0 * 60.0, "30 min inside the range + 10 min");
        assert_eq!(rows[1].paused_seconds["no answer"], 300.0, "an open pause counts until now");
        assert!(render_operators(&rows, ReportFormat::Table).contains("riunione=2400"));
    }
}
